"""The command line's conventions (docs/cli.md): --version, -h, --json, the one-line summary, progress, quiet and
verbose, `show` fitting the terminal, and one documented exit code per kind of failure, each provoked here."""

import errno
import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import isolated_store
from typer.testing import CliRunner

from pipeline import cli, progress
from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[2]
PROFILE = {"name": "tiny", "kind": "flat", "id": "Lead ID",
           "label": {"column": "Converted", "positive": ["1"], "negative": ["0"]},
           "numeric": ["Visits"], "categorical": ["Source"], "missing": ["Select"]}


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _json(result) -> dict:
    """The one JSON object on stdout (nothing else may be there)."""
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


# ------------------------------------------------------------------------------------ a small flat project
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A flat export of 60 leads (20 converted: the logistic fallback, fast) run by `leadscore run --json` in a
    work folder that is also the working folder, with a params.yaml the stage commands read there."""
    root = tmp_path_factory.mktemp("cli")
    mp = isolated_store(root)
    mp.setenv(progress.PROGRESS_EVERY_ENV, "0")
    mp.setattr(progress, "SHOW_AFTER_S", 0.0)  # every loop prints its plain progress lines
    rng = np.random.default_rng(0)
    y = np.zeros(60, dtype=int)
    y[rng.choice(60, 20, replace=False)] = 1
    pd.DataFrame({"Lead ID": [f"L{i:03d}" for i in range(60)], "Visits": rng.poisson(2 + 3 * y),
                  "Source": np.where(rng.random(60) < 0.5, "Google", "Referral"), "Converted": y}
                 ).to_csv(root / "leads.csv", index=False)
    (root / "tiny.yaml").write_text(json.dumps(PROFILE))
    (root / "params.yaml").write_text(yaml.safe_dump({
        "ingest": {"profile": str(root / "tiny.yaml"), "input": str(root / "leads.csv")},
        "train": {"n_jobs": 1}, "evaluate": {"n_bootstrap": 20, "cv_folds": 0},
        "score": {"model": "latest"}, "report": {"shap_sample": 20}}))
    result = invoke("run", "--profile", "tiny.yaml", "--input", "leads.csv", "--workdir", ".", "--n-jobs", "1",
                    "--no-track", "--cv-folds", "2", "--json")
    yield {"root": root, "run": result}
    mp.undo()


def test_version_and_short_help():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"leadscore {version('leadscore')}"
    assert invoke("-h").exit_code == 0 and "Usage" in invoke("-h").stdout
    for command in ("run", "score", "validate", "evaluate", "compare", "promote", "report", "show", "train"):
        short, long = invoke(command, "-h"), invoke(command, "--help")
        assert short.exit_code == 0 and short.stdout == long.stdout, command
    assert "--json" in invoke("score", "-h").stdout and "--quiet" in invoke("-h").stdout


def test_run_json_carries_the_numbers_the_summary_line_and_the_progress(project):
    result = project["run"]
    assert result.exit_code == 0, result.output
    out = _json(result)
    metrics = json.loads((project["root"] / "metrics.json").read_text())
    assert out["command"] == "run" and out["ok"] is True and out["exit_code"] == 0
    assert out["roc_auc"] == pytest.approx(metrics["roc_auc"]) and 0.5 < out["roc_auc"] <= 1
    assert out["n_scored"] == metrics["n_scored"] > 0 and out["n_test"] + out["n_train"] == 60
    assert len(metrics["cv_roc_auc_folds"]) == 2 and out["cv_roc_auc"] == pytest.approx(metrics["cv_roc_auc"])
    assert Path(out["paths"]["metrics"]).exists() and Path(out["paths"]["scored"]).is_dir()
    # human lines on stderr: the progress of the folds and the scored rows, with rate; the summary line last
    assert re.search(r"cross-validation: 2/2 folds, [\d.]+ folds/s", result.stderr), result.stderr
    assert re.search(r"scoring: [\d,]+/[\d,]+ rows", result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert f"run tiny: held-out AUC {metrics['roc_auc']:.4f}" in last and f"{metrics['n_scored']} rows scored" in last


def test_stage_commands_print_json_and_a_summary(project):
    params = str(project["root"] / "params.yaml")
    validated = invoke("validate", "--params", params, "--json")
    assert validated.exit_code == 0, validated.output
    v = _json(validated)
    assert v["rows_in"] == 60 and v["valid"] + v["quarantined"] == 60
    assert Path(v["paths"]["validation"]).exists()
    assert re.search(r"validate: 60 valid, 0 quarantined of 60 rows", validated.stderr)

    evaluated = invoke("evaluate", "--params", params, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    e = _json(evaluated)
    written = json.loads(Path(e["paths"]["metrics"]).read_text())
    assert e["roc_auc"] == pytest.approx(written["roc_auc"]) and e["ece"] == pytest.approx(written["ece"])
    assert f"evaluate: held-out AUC {written['roc_auc']:.4f}, ECE {written['ece']:.4f}" in evaluated.stderr

    scored = invoke("-q", "score", "--params", params, "--json")
    assert scored.exit_code == 0, scored.output
    s = _json(scored)
    table = pd.read_parquet(s["paths"]["sql_leads"])
    assert s["n_scored"] == len(table) and s["n_sql"] == int(table["is_sql"].sum())
    # quiet: the summary line is the only human line
    assert scored.stderr.strip().count("\n") == 0 and "score: " in scored.stderr
    assert f"{s['n_scored']} rows scored, {s['n_sql']} SQLs" in scored.stderr


# ---------------------------------------------------------------------------------------------- show
def _scored(tmp_path: Path) -> Path:
    scored = tmp_path / "scored"
    scored.mkdir()
    pd.DataFrame({
        "rank": [1, 2], "lead_id": ["L1", "L2"], "status": ["sql", "nurture"], "is_sql": [True, False],
        "tier": ["A", "D"], "score": [62, 1], "p_convert": [0.62, 0.01], "expected_value": [12400.0, 10.0],
        "fit_score": [80.0, 10.0], "engagement_score": [70.0, 0.0], "gate_budget": ["pass"] * 2,
        "gate_authority": ["pass"] * 2, "gate_need": ["pass"] * 2, "gate_timeline": ["pass"] * 2,
        "assigned_rep": ["Avery Chen", None], "status_reason": ["all gates pass", "below threshold"],
        "reasons_for": [None, None], "reasons_against": [None, None], "model_version": ["m/1"] * 2,
    }).to_parquet(scored / "sql_leads.parquet")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"scored": str(scored)}}))
    return params


def test_show_fits_the_terminal_width(tmp_path):
    params = str(_scored(tmp_path))
    narrow = invoke("show", "--params", params, env={"COLUMNS": "60"})
    wide = invoke("show", "--params", params, env={"COLUMNS": "220"})
    assert narrow.exit_code == 0 and wide.exit_code == 0, narrow.output
    table_lines = [line for line in narrow.stdout.splitlines() if line.startswith(("┃", "│", "┏", "┡", "└"))]
    assert table_lines and max(len(line) for line in table_lines) <= 60
    assert "L1" in narrow.stdout and "rank" in narrow.stdout and "gate_timeline" not in narrow.stdout.split("not shown")[0]
    assert "not shown (too narrow):" in narrow.stdout and "gate_timeline" in narrow.stdout
    assert "gate_timeline" in wide.stdout and "engagement_score" in wide.stdout and "not shown" not in wide.stdout
    assert max(len(line) for line in wide.stdout.splitlines()) > 60


def test_show_refuses_an_unknown_status_listing_the_valid_ones(tmp_path):
    params = str(_scored(tmp_path))
    result = invoke("show", "--params", params, "--status", "bogus")
    assert result.exit_code == cli.EXIT_USAGE
    message = " ".join(result.output.replace("│", " ").split())
    assert "'bogus' is not a status" in message
    assert "sql, needs_call, nurture, disqualified, with_sales" in message
    assert invoke("show", "--params", params, "--status", "with_sales").exit_code == 0


# ---------------------------------------------------------------------------------------- exit codes
def _features(root: Path) -> Path:
    """A params file whose feature table and scored table exist (a stand-in: the stage is replaced)."""
    for folder, name in (("03_features", "features.parquet"), ("05_scored", "sql_leads.parquet")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"lead_id": ["L1", "L2"], "split": ["test"] * 2, "label": [0, 1]}).to_parquet(root / folder / name)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {k: str(root / v) for k, v in {
        "raw": "01_raw", "validated": "02_validated", "features": "03_features", "models": "04_models",
        "package": "04_package", "scored": "05_scored", "reports": "06_reports", "truth": "00_truth"}.items()},
        "train": {"n_jobs": 1}}))
    return params


def _raiser(exc: BaseException):
    def run(*_args, **_kwargs):
        raise exc

    return run


def test_every_exit_code_of_the_table(tmp_path, monkeypatch):
    """Each documented code, provoked: for real where it is fast, by the stage raising what it raises otherwise."""
    import sqlalchemy.exc

    from pipeline import promote as promote_stage
    from pipeline import report as report_stage
    from pipeline import validate as validate_stage

    monkeypatch.chdir(tmp_path)
    params = _features(tmp_path)
    p = str(params)
    seen: dict[int, str] = {}

    def check(code: int, args: list[str], *named: str):
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output, result.output
        for name in named:
            assert name in result.output, (name, result.output)
        seen[code] = result.output
        return result

    check(cli.EXIT_OK, ["contract"])
    check(cli.EXIT_USAGE, ["score", "--no-such-flag"], "--no-such-flag")
    # 3: drift over the limit; the report's numbers are still summed up (JSON on stdout)
    (tmp_path / "06_reports").mkdir()
    (tmp_path / "06_reports" / "monitoring.json").write_text(json.dumps(
        {"drift_n_features": 9, "drift_n_flagged": 1, "score_psi": 0.3}))
    monkeypatch.setattr(report_stage, "run", _raiser(report_stage.DriftDetected(
        "drift flagged in 1 column(s): visits (report: r.html)")))
    drift = check(cli.EXIT_DRIFT, ["report", "--params", p, "--fail-on-drift", "--json"], "drift flagged", "visits")
    assert _json(drift)["drift_n_flagged"] == 1 and _json(drift)["exit_code"] == 3 and _json(drift)["drift"]
    # 4: promotion refused, naming the condition
    refused = promote_stage.Decision(False, "1", "2", (promote_stage.RuleCheck("auc_gain", False, "0.80 < 0.81"),))
    monkeypatch.setattr(promote_stage, "promote", lambda *a, **k: refused)
    out = check(cli.EXIT_PROMOTION_REFUSED, ["promote", "--params", p, "--json"], "failed auc_gain")
    assert _json(out)["decision"] == "refused" and _json(out)["conditions"][0]["name"] == "auc_gain"
    # 5: a missing input, named with the command that writes it (featurize, train and evaluate alike)
    check(cli.EXIT_INPUT, ["featurize", "--params", p], str(tmp_path / "02_validated" / "ingest.json"),
          "leadscore validate")
    (tmp_path / "03_features" / "features.parquet").write_text("not parquet")
    check(cli.EXIT_INPUT, ["train", "--params", p], "features.parquet: not a readable Parquet file")
    check(cli.EXIT_INPUT, ["evaluate", "--params", p], "features.parquet")
    _features(tmp_path)
    # 6: a bad param, a bad profile
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"n_trees": 3}}))
    check(cli.EXIT_CONFIG, ["train", "--params", str(bad)], "n_trees", str(bad))
    bad.write_text(yaml.safe_dump({"ingest": {"profile": "no_such_profile"}}))
    check(cli.EXIT_CONFIG, ["validate", "--params", str(bad)], "no_such_profile")
    # 7: an unknown model URI
    check(cli.EXIT_MODEL, ["compare", "not/a-model", "also/not", "--params", p], "not/a-model")
    # 8: a database that refuses: named, its password hidden
    url = "sqlite:////no/such/folder/leadscore.db"
    check(cli.EXIT_DATABASE, ["score", "--params", p, "--database-url", url], "/no/such/folder")
    monkeypatch.setattr(validate_stage, "run", _raiser(sqlalchemy.exc.OperationalError(
        "CONNECT", {}, Exception("connection refused"))))
    (tmp_path / "01_raw").mkdir()
    (tmp_path / "01_raw" / "ingest.json").write_text("{}")
    monkeypatch.setenv("LEADSCORE_DATABASE_URL", "postgresql://rev:s3cret@db.example:5432/crm")
    result = check(cli.EXIT_DATABASE, ["validate", "--params", p], "connection refused")
    assert "s3cret" not in result.output
    # 9: a full disk
    monkeypatch.setattr(validate_stage, "run", _raiser(OSError(errno.ENOSPC, "No space left on device",
                                                               str(tmp_path / "02_validated" / "leads.parquet"))))
    check(cli.EXIT_OUTPUT, ["validate", "--params", p, "--json"], "no space left on device", "leads.parquet")
    # 1: anything else: still one message, the traceback only with --verbose
    monkeypatch.setattr(validate_stage, "run", _raiser(ZeroDivisionError("division by zero")))
    check(cli.EXIT_ERROR, ["validate", "--params", p], "ZeroDivisionError: division by zero", "--verbose")
    verbose = invoke("-v", "validate", "--params", p)
    assert verbose.exit_code == cli.EXIT_ERROR and "Traceback" in verbose.output

    assert set(seen) == set(cli.EXIT_CODES) == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
    for code, output in seen.items():  # each failure says what to do, under its code's name
        if code not in (cli.EXIT_OK, cli.EXIT_USAGE, cli.EXIT_PROMOTION_REFUSED):
            assert f"exit {code} ({cli.EXIT_CODES[code][0]})" in output, output


def test_the_table_maps_each_exception_type_once(monkeypatch):
    """Every entry of ERRORS resolves to a real exception type and gives its own code (first match wins)."""
    import importlib

    for spec, code in cli.ERRORS:
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseException), spec
        exc = cls.__new__(cls)
        assert cli.exit_code_for(exc) == code, spec
    from pipeline.artifacts import ModelIntegrityError
    from pipeline.sources.profiles import LabelValueError
    from pipeline.transaction import DatabaseBusyError, OutputFolderError

    assert cli.exit_code_for(ModelIntegrityError("x")) == cli.EXIT_MODEL
    assert cli.exit_code_for(DatabaseBusyError("x")) == cli.EXIT_DATABASE
    assert cli.exit_code_for(OutputFolderError("x")) == cli.EXIT_OUTPUT
    assert cli.exit_code_for(LabelValueError("x")) == cli.EXIT_CONFIG
    wrapped = RuntimeError("export failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert cli.exit_code_for(wrapped) == cli.EXIT_OUTPUT


def test_the_documented_table_is_the_clis():
    doc = (ROOT / "docs" / "cli.md").read_text()
    rows = {int(line.split("|")[1]): line.split("|")[2].strip() for line in doc.split("## Exit codes", 1)[1].splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()}
    assert {c: n.strip("`") for c, n in rows.items()} == {c: name for c, (name, _) in cli.EXIT_CODES.items()}
    assert "docs/cli.md" in (ROOT / "README.md").read_text() and "cli.md" in (ROOT / "docs" / "schedule.md").read_text()


# --------------------------------------------------------------------------------- noise and progress
def test_third_party_warnings_go_to_the_log_file_unless_verbose(tmp_path, monkeypatch):
    from pipeline import validate as validate_stage

    monkeypatch.chdir(tmp_path)
    p = str(_features(tmp_path))
    (tmp_path / "01_raw").mkdir()
    (tmp_path / "01_raw" / "ingest.json").write_text("{}")

    def noisy(*_args, **_kwargs):
        warnings.warn("a deprecated thing", UserWarning, stacklevel=1)
        logging.getLogger("mlflow.store").warning("mlflow says hello")
        return {"counts": {"leads": {"rows_in": 3, "valid": 3, "quarantined": 0}}, "quarantined_share": 0.0}

    monkeypatch.setattr(validate_stage, "run", noisy)
    quiet = invoke("validate", "--params", p)
    assert quiet.exit_code == 0, quiet.output
    assert "deprecated thing" not in quiet.output and "mlflow says hello" not in quiet.output
    logged = (tmp_path / ".leadscore" / "leadscore.log").read_text()
    assert "a deprecated thing" in logged and "mlflow says hello" in logged
    (tmp_path / ".leadscore" / "leadscore.log").unlink()
    loud = invoke("-v", "validate", "--params", p)  # left to the terminal (under pytest: pytest's own capture)
    assert loud.exit_code == 0 and not (tmp_path / ".leadscore" / "leadscore.log").exists()
    assert invoke("-q", "-v", "validate", "--params", p).exit_code == cli.EXIT_USAGE


def test_progress_prints_rate_and_eta_when_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv(progress.PROGRESS_EVERY_ENV, "0")
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)
    with progress.progress("training", 4, "rounds") as update:
        for i in range(1, 5):
            update(i, 4)
    err = capsys.readouterr().err
    assert re.search(r"training: 2/4 rounds \(50%\), [\d.,]+ rounds/s, 0:00:00 elapsed, ETA 0:00:00", err), err
    assert re.search(r"training: 4/4 rounds, [\d.,]+ rounds/s", err)
    progress.set_verbosity(progress.QUIET)
    try:
        with progress.progress("scoring", 10) as update:
            update(10, 10)
    finally:
        progress.set_verbosity(progress.NORMAL)
    assert capsys.readouterr().err == ""


def test_the_booster_reports_its_rounds_through_the_callback():
    """models/ stays pure: a plain callable gets (rounds done, rounds at most); the pipeline passes the progress."""
    from models.conversion import BoosterConfig, ConversionModel

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X["a"] + rng.normal(size=300) > 0).astype(int)
    rounds: list[tuple[int, int]] = []
    model = ConversionModel(BoosterConfig(n_estimators=30, n_jobs=1, early_stopping_rounds=5), calibration="none")
    model.fit(X[:200], y[:200], X[200:], y[200:], on_round=lambda done, total: rounds.append((done, total)))
    assert rounds[0] == (1, 30) and [d for d, _ in rounds] == list(range(1, len(rounds) + 1))
    model.refit(X, y, on_round=lambda done, total: rounds.append((done, total)))
    assert rounds[-1] == (model.best_iteration_, model.best_iteration_)
