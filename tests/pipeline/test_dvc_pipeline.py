"""The DVC pipeline end to end, as a user runs it: `dvc exp run -S ingest.profile=... -S ingest.input=...`.

One temporary git + DVC repository for the module, laid out like the project (dvc.yaml, params.yaml, the
packages, the fixtures), with small params (one thread, few bootstrap resamples, a small SHAP sample). The stages
run this checkout's code through the `leadscore` console script of the venv; MLflow writes to a sqlite file in the
temporary folder. The runs are shared: the Salesforce run is followed by the threshold-only experiment, the flat
export's run by the no-op and replaced-export reruns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.schema import FLAT, SNAPSHOTS

pytestmark = pytest.mark.slow  # eight stages in subprocesses, several times (a few minutes)

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["ingest", "validate", "featurize", "train", "package", "evaluate", "score", "report"]
# what the stages read: the pipeline definition, the code (hashed as deps), the default export folder, fixtures
COPY = ["dvc.yaml", "params.yaml", "pipeline", "features", "models", ".gitignore", ".dvcignore", "data/README.md",
        "data/.gitkeep", "data/demo", "tests/fixtures/salesforce", "tests/fixtures/hubspot"]
SMALL_PARAMS = {("train", "n_jobs"): "1", ("evaluate", "n_bootstrap"): "20", ("report", "shap_sample"): "100",
                ("demo", "n_leads"): "2000"}
FLAT_INPUT = "exports/leads.csv"  # the flat export's fixed path (inside the repo, outside the pipeline's outputs)
REGISTERED = "leadscore-conversion"


def _venv_bin() -> Path:
    here = Path(sys.executable).parent  # not resolved: a venv's python is a symlink
    return here if (here / "leadscore").exists() else ROOT / ".venv" / "bin"


VENV_BIN = _venv_bin()
SEARCH_PATH = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
_missing = [tool for tool in ("git", "dvc", "leadscore") if shutil.which(tool, path=SEARCH_PATH) is None]
if _missing:
    pytest.skip(f"{' and '.join(_missing)} not on PATH (venv bin {VENV_BIN} first): the DVC pipeline test runs "
                f"`dvc exp run` in a temporary git repository", allow_module_level=True)


# --------------------------------------------------------------------------------------------------
# The temporary repository


@dataclass
class Repo:
    path: Path
    env: dict[str, str]
    log: list[tuple[str, float]] = field(default_factory=list)

    @property
    def tracking_uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    def run(self, *args: str, timeout: float = 900) -> str:
        """Run a command in the repository; fail with its output's tail unless it exits 0. Returns stdout+stderr."""
        start = time.perf_counter()
        proc = subprocess.run(list(args), cwd=self.path, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        self.log.append((" ".join(args), time.perf_counter() - start))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"`{' '.join(args)}` exited {proc.returncode}:\n{out[-6000:]}"
        return out

    def dvc(self, *args: str) -> str:
        return self.run("dvc", *args)


def _set_param(text: str, section: str, key: str, value: str) -> str:
    """`section: key: value` in params.yaml's text, keeping its comments (exactly one match, or fail)."""
    pattern = re.compile(rf"(^{section}:[^\n]*\n(?:(?:[ \t][^\n]*|)\n)*?[ \t]+{key}:[ \t]*)([^\s#]+)", re.M)
    new, n = pattern.subn(lambda m: m.group(1) + value, text, count=1)
    assert n == 1, f"params.yaml: {section}.{key} not found"
    return new


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    tmp = tmp_path_factory.mktemp("dvc_pipeline")
    path = tmp / "repo"
    path.mkdir()
    for rel in COPY:
        src = ROOT / rel
        if not src.exists():
            assert rel in {".dvcignore", "data/README.md", "data/.gitkeep"}, f"{rel} missing in the project"
            continue
        dst = path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dst)
    params = (path / "params.yaml").read_text()
    for (section, key), value in SMALL_PARAMS.items():
        params = _set_param(params, section, key, value)
    (path / "params.yaml").write_text(params)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "GIT_"))}
    env.update({
        "PATH": SEARCH_PATH,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc_site_cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    r = Repo(path, env)
    r.run("git", "init", "-q")
    for key, value in (("user.name", "leadscore test"), ("user.email", "test@example.com"),
                       ("commit.gpgsign", "false")):
        r.run("git", "config", key, value)
    r.run("git", "add", "-A")
    r.run("git", "commit", "-qm", "init")
    r.dvc("init", "-q")
    r.run("git", "add", "-A")
    r.run("git", "commit", "-qm", "dvc init")
    yield r
    print("\n".join(f"{seconds:7.1f}s  {cmd}" for cmd, seconds in r.log if cmd.startswith("dvc")))


# --------------------------------------------------------------------------------------------------
# What a run leaves behind, read right after it (the next run overwrites the outputs)


@dataclass
class Outcome:
    output: str
    ingest: dict
    snapshots: dict
    scored: pd.DataFrame
    model_info: dict
    lock: dict
    params: dict
    mtimes: dict[str, int]
    run: object = None  # the MLflow run named in model_info.json


def mtimes(root: Path, *folders: str) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file()}


def collect(repo: Repo, output: str) -> Outcome:
    from mlflow import MlflowClient

    d = repo.path / "data"
    info = json.loads((d / "04_package" / "model_info.json").read_text())
    client = MlflowClient(tracking_uri=repo.tracking_uri)
    return Outcome(
        output=output,
        ingest=json.loads((d / "01_raw" / "ingest.json").read_text()),
        snapshots=json.loads((d / "03_features" / "snapshots.json").read_text()),
        scored=pd.read_parquet(d / "05_scored" / "sql_leads.parquet"),
        model_info=info,
        lock=yaml.safe_load((repo.path / "dvc.lock").read_text()),
        params=yaml.safe_load((repo.path / "params.yaml").read_text()),
        mtimes=mtimes(repo.path, "data/03_features", "data/04_models", "data/05_scored"),
        run=client.get_run(info["run_id"]),
    )


def ran(output: str) -> list[str]:
    """The stages DVC ran, in order."""
    return re.findall(r"Running stage '([a-z_]+)'", output)


def skipped(output: str) -> list[str]:
    return re.findall(r"Stage '([a-z_]+)' didn't change, skipping", output)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lock_dep(lock: dict, stage: str, path: str) -> dict:
    deps = {d["path"]: d for d in lock["stages"][stage]["deps"]}
    assert path in deps, f"dvc.lock: stage {stage} has no dependency {path}: {sorted(deps)}"
    return deps[path]


# --------------------------------------------------------------------------------------------------
# A flat export: one row per lead, the columns of pipeline/profiles/flat.yaml


def flat_export(n: int, n_open: int, prefix: str, seed: int) -> pd.DataFrame:
    """`n` leads created over 2025, the newest `n_open` still open (empty Converted); conversion follows engagement."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2025-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 365, n)), unit="D")
    visits, pricing, opens = rng.poisson(4, n), rng.poisson(0.8, n), rng.poisson(6, n)
    days = rng.integers(0, 120, n)
    source = rng.choice(["Web", "Referral", "Event", "Paid Search", "Select"], n)
    employees = np.round(rng.lognormal(5.5, 1.2, n))
    logit = -1.6 + 0.35 * (visits - 4) + 0.9 * pricing - 0.015 * (days - 60) + 0.8 * (source == "Referral")
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    open_ = np.arange(n) >= n - n_open
    df = pd.DataFrame({
        "Lead ID": [f"{prefix}{i:05d}" for i in range(n)],
        "Created Date": created.strftime("%Y-%m-%d"),
        "Employees": employees.astype(int),
        "Annual Revenue": np.round(employees * rng.uniform(50_000, 300_000, n), -3).astype(int),
        "Email Opens": opens,
        "Email Clicks": rng.binomial(opens, 0.3),
        "Web Visits": visits,
        "Pricing Page Views": pricing,
        "Days Since Last Activity": days,
        "Industry": rng.choice(["Software", "Retail", "Healthcare", "Manufacturing", "Financial Services"], n),
        "Country": rng.choice(["US", "DE", "GB", "FR", "BR"], n),
        "Lead Source": source,
        "Job Title": rng.choice(["VP Sales", "Sales Manager", "Marketing Coordinator", "CEO", "Head of Operations",
                                 "Data Analyst"], n),
        "Lead Status": np.where(open_, "Open", np.where(won, "Qualified", "Unqualified")),
        "Lost Reason": np.where(open_ | won, "", rng.choice(["No budget", "Competitor", "No response"], n)),
        "Converted": np.where(open_, "", np.where(won, "yes", "no")),
    })
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # row order carries no meaning


def open_ids(df: pd.DataFrame) -> set[str]:
    return set(df.loc[df["Converted"] == "", "Lead ID"])


# --------------------------------------------------------------------------------------------------
# The runs (module fixtures, shared by the tests)


def exp_run(repo: Repo, profile: str, input_path: str) -> Outcome:
    out = repo.dvc("exp", "run", "-S", f"ingest.profile={profile}", "-S", f"ingest.input={input_path}")
    return collect(repo, out)


@pytest.fixture(scope="module")
def salesforce(repo) -> Outcome:
    return exp_run(repo, "salesforce", "tests/fixtures/salesforce")


@pytest.fixture(scope="module")
def threshold(repo, salesforce) -> tuple[Outcome, Outcome]:
    """(the state before, the outcome of) `dvc exp run -S score.threshold=0.2` right after a full run."""
    before = collect(repo, salesforce.output)
    assert before.params["score"]["threshold"] != 0.2
    out = repo.dvc("exp", "run", "-S", "score.threshold=0.2")
    return before, collect(repo, out)


@pytest.fixture(scope="module")
def hubspot(repo) -> Outcome:
    return exp_run(repo, "hubspot", "tests/fixtures/hubspot")


@dataclass
class FlatRuns:
    v1: pd.DataFrame
    v2: pd.DataFrame
    first: Outcome
    noop_output: str
    noop_mtimes: dict[str, int]
    second: Outcome
    hashes: dict[str, str]  # the export's sha256: written / after each run


@pytest.fixture(scope="module")
def flat(repo) -> FlatRuns:
    """The flat export at a fixed path: run, rerun unchanged (`dvc repro`), replace the file, `dvc repro`."""
    csv = repo.path / FLAT_INPUT
    csv.parent.mkdir(parents=True, exist_ok=True)
    v1 = flat_export(n=320, n_open=60, prefix="F", seed=1)
    v1.to_csv(csv, index=False)
    hashes = {"v1 written": sha256(csv)}
    first = exp_run(repo, "flat", FLAT_INPUT)
    hashes["v1 after exp run"] = sha256(csv)

    noop_output = repo.dvc("repro")
    noop_mtimes = mtimes(repo.path, "data/03_features", "data/04_models", "data/05_scored")
    hashes["v1 after repro"] = sha256(csv)

    v2 = flat_export(n=280, n_open=45, prefix="G", seed=2)
    v2.to_csv(csv, index=False)
    hashes["v2 written"] = sha256(csv)
    second = collect(repo, repo.dvc("repro"))
    hashes["v2 after repro"] = sha256(csv)
    return FlatRuns(v1, v2, first, noop_output, noop_mtimes, second, hashes)


# --------------------------------------------------------------------------------------------------
# a. The Salesforce fixture end to end


def check_full_run(o: Outcome, repo: Repo, profile: str, input_path: str, variant: str) -> None:
    assert ran(o.output) == STAGES, o.output[-3000:]
    # ingest read the export through the profile
    assert o.ingest["profile"] == profile and o.ingest["input"] == input_path and o.ingest["variant"] == variant
    # the scored table: one row per lead of the score split, ranked 1..n
    sql = o.scored
    assert len(sql) == o.snapshots["score"]["rows"] > 0
    assert sql["lead_id"].is_unique
    assert sorted(sql["rank"].tolist()) == list(range(1, len(sql) + 1))
    assert sql.sort_values("rank")["status"].notna().all() and sql["p_convert"].between(0, 1).all()
    # DVC recorded the export as the ingest stage's dependency, by content
    dep = lock_dep(o.lock, "ingest", input_path)
    assert re.fullmatch(r"[0-9a-f]{32}(\.dir)?", str(dep.get("md5", ""))), dep
    assert o.lock["stages"]["ingest"]["params"]["params.yaml"]["ingest"]["profile"] == profile
    # the package stage's MLflow run: in the store, tagged with the source, with the params that made it
    assert o.model_info["tracking_uri"] == repo.tracking_uri
    run = o.run
    assert run.info.status == "FINISHED" and run.info.run_id == o.model_info["run_id"]
    assert run.data.tags["source"] == profile
    for section in ("train", "featurize", "score"):
        assert any(k.startswith(f"{section}.") for k in run.data.params), (section, sorted(run.data.params))
    p = run.data.params
    assert p["train.n_jobs"] == "1" and p["ingest.profile"] == profile and p["ingest.input"] == input_path
    assert float(p["score.threshold"]) == o.params["score"]["threshold"]
    # the scored rows name the model version they were scored with
    assert set(sql["model_run_id"]) == {run.info.run_id}
    assert set(sql["model_version"]) == {o.model_info["model_version"]}


def export_lead_ids(repo: Repo, file: str, column: str, sep: str) -> pd.Series:
    return pd.read_csv(repo.path / file, sep=sep, dtype=str, encoding="utf-8-sig")[column].str.strip()


def test_salesforce_export_runs_end_to_end(salesforce, repo):
    check_full_run(salesforce, repo, "salesforce", "tests/fixtures/salesforce", SNAPSHOTS)
    ids = export_lead_ids(repo, "tests/fixtures/salesforce/Lead.csv", "Id", ",")
    assert set(salesforce.scored["lead_id"]) <= set(ids)  # the export's own ids, nothing invented
    assert salesforce.ingest["rows_read"]["leads"] == len(ids)
    assert (repo.path / "data/06_reports/report.html").stat().st_size > 0


# --------------------------------------------------------------------------------------------------
# d. A policy change reruns package and score, never train


def test_threshold_change_does_not_retrain(threshold, repo):
    before, after = threshold
    assert "train" in skipped(after.output) and "train" not in ran(after.output), after.output[-3000:]
    assert {"ingest", "validate", "featurize"} <= set(skipped(after.output))
    assert ran(after.output) == ["package", "evaluate", "score", "report"], after.output[-3000:]
    # train's and featurize's outputs untouched
    untouched = [k for k in before.mtimes if k.startswith(("data/03_features/", "data/04_models/"))]
    assert untouched and {k: after.mtimes.get(k) for k in untouched} == {k: before.mtimes[k] for k in untouched}
    # package logged and registered a new version carrying the new threshold
    assert after.model_info["run_id"] != before.model_info["run_id"]
    assert after.model_info["model_version"] != before.model_info["model_version"]
    assert after.model_info["alias"] == "challenger"  # the first registered version stays champion
    assert float(after.run.data.params["score.threshold"]) == 0.2
    assert after.lock["stages"]["package"]["params"]["params.yaml"]["score.threshold"] == 0.2
    # reps keep getting the champion (its own policy) until `promote`; the challenger is scored in shadow
    assert after.mtimes["data/05_scored/sql_leads.parquet"] != before.mtimes["data/05_scored/sql_leads.parquet"]
    assert set(after.scored["model_version"]) == {before.model_info["model_version"]}
    pd.testing.assert_frame_equal(before.scored[["lead_id", "status", "p_convert"]],
                                  after.scored[["lead_id", "status", "p_convert"]])
    shadow = pd.read_parquet(repo.path / "data/05_scored/shadow_challenger.parquet")
    assert set(shadow["model_version"]) == {after.model_info["model_version"]}
    assert (shadow.loc[shadow["is_sql"], "p_convert"] >= 0.2).all()
    # the same leads with the same probabilities (same trees), only the decision moved
    merged = before.scored.merge(shadow, on="lead_id", suffixes=("_before", "_after"))
    assert len(merged) == len(shadow) == len(before.scored)
    assert np.allclose(merged["p_convert_before"], merged["p_convert_after"])
    assert shadow["is_sql"].sum() <= before.scored["is_sql"].sum()


# --------------------------------------------------------------------------------------------------
# b. The HubSpot fixture and a flat export


def test_hubspot_export_runs_end_to_end(hubspot, repo):
    check_full_run(hubspot, repo, "hubspot", "tests/fixtures/hubspot", SNAPSHOTS)
    ids = export_lead_ids(repo, "tests/fixtures/hubspot/contacts.csv", "Record ID", ";")  # a European portal
    assert set(hubspot.scored["lead_id"]) <= set(ids)
    assert hubspot.ingest["rows_read"]["leads"] == len(ids)


def test_flat_export_runs_end_to_end_and_scores_exactly_the_open_leads(flat, repo):
    o = flat.first
    check_full_run(o, repo, "flat", FLAT_INPUT, FLAT)
    assert o.snapshots["score"]["rows"] == 60
    assert set(o.scored["lead_id"]) == open_ids(flat.v1) and len(o.scored) == 60
    assert o.ingest["rows_read"] == {"flat": len(flat.v1)}


# --------------------------------------------------------------------------------------------------
# c. Replacing the export reruns; an unchanged one does not; the export is never written


def test_unchanged_export_reruns_nothing(flat):
    out = flat.noop_output
    assert ran(out) == [], out[-3000:]
    assert sorted(skipped(out)) == sorted(STAGES) or "up to date" in out, out[-3000:]
    assert flat.noop_mtimes == flat.first.mtimes


def test_replaced_export_is_scored_and_never_written(flat, repo):
    o = flat.second
    assert ran(o.output) == STAGES, o.output[-3000:]
    new = open_ids(flat.v2)
    assert set(o.scored["lead_id"]) == new and len(o.scored) == len(new) == o.snapshots["score"]["rows"]
    assert not set(o.scored["lead_id"]) & set(flat.v1["Lead ID"])
    # the lock follows the new file's content
    old_dep, new_dep = lock_dep(flat.first.lock, "ingest", FLAT_INPUT), lock_dep(o.lock, "ingest", FLAT_INPUT)
    assert old_dep["md5"] != new_dep["md5"]
    assert new_dep["md5"] == hashlib.md5((repo.path / FLAT_INPUT).read_bytes()).hexdigest()  # noqa: S324 - DVC's
    h = flat.hashes
    assert h["v1 written"] == h["v1 after exp run"] == h["v1 after repro"], h
    assert h["v2 written"] == h["v2 after repro"], h
    assert h["v1 written"] != h["v2 written"]
