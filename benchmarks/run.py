"""Speed and memory benchmarks: every stage in its own process, timed (wall, CPU) with its peak memory.

    python -m benchmarks.run                                   # 100k and 1M leads, every stage (= make bench)
    python -m benchmarks.run --sizes 100000 --stages generate,validate,featurize
    python -m benchmarks.run --score-chunked 10000000          # 10M leads scored in chunks (needs the 1M run)
    python -m benchmarks.run --stages score,naive,floor --sizes 100000   # leadscore's scorer beside its peers
    python -m benchmarks.run --stages real --real-sets uci_bank           # `leadscore run` beside plain CV peers
    python -m benchmarks.run --report                          # print the README tables from the JSON results

Stages (per size, data under benchmarks/data/<size>/, results in benchmarks/results/bench_<size>.json); each
runs the shipped stage function (`pipeline.<stage>.run`) or, where no stage does exactly that work, its core:

  generate         the `ingest` stage on the demo profile: the demo CRM (about 20 activities per lead)
  validate         the `validate` stage (pandas engine): contract checks and quarantine
  featurize        features of every open lead for ONE as-of date (ingest's scoring date): what scoring needs
                   (the core `features.build.score_features`, as `leadscore score --input` builds them)
  featurize_train  the `featurize` stage: the training table (all monthly snapshots + test + score)
  train            the `train` stage: the calibrated LightGBM (train.n_jobs threads, or --threads); no MLflow
  package          the `package` stage: the model bundled, logged and registered in a local MLflow store
  score            the `score` stage (gates, decision, tiers, rank, hand-over, exports) on the one-date table
  floor            reading the feature table and LightGBM predict_proba alone on the same rows
  naive            the naive pandas scorer (benchmarks/peers.py): read the same rows, predict with the same model,
                   sort, write Parquet, CSV and SQLite with pandas -- the peer `score` is compared with
  bench_score      benchmarks/bench_score.py main(), when that module exists (the demo model: `make demo`)
  e2e              validate -> featurize -> score in one process (the path of a scoring run)
  real             not per size: on each real data set (--real-sets, read from --real-data; skipped with the
                   reason when that folder is absent) `leadscore run` (pipeline.run.run, 5-fold CV, tracked in
                   its own store), then a plain LightGBM and a one-hot logistic 5-fold CV on the rows and columns
                   that run trained on (benchmarks/peers.py); results in benchmarks/results/real_peers.json

Every leadscore / peer ratio (score / naive, score / floor, peak memory, run / plain LightGBM CV) is printed at
the end with its target and the load, and written to benchmarks/results/peers.json (`--report` prints them).

Each stage runs in a fresh subprocess; the parent reads that child's peak RSS from os.wait4. CPU is user +
system time of the child. LightGBM threads are the params' train.n_jobs (2) unless --threads; nothing else is
pinned.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
STAGES = ("generate", "validate", "featurize", "featurize_train", "train", "package", "score", "floor", "naive",
          "bench_score", "e2e")
REAL = "real"  # the real-data peers: not a per-size stage, run once after the sizes
# real data set (its shipped profile) -> its folder under the real-data root (tests/data/test_real_data.py)
REAL_SETS = {"x_education": "x_education_leads", "uci_bank": "uci_bank_marketing", "olist": "olist_marketing_funnel"}
REAL_STAGES = ("run", "lgbm_cv", "logreg_cv")
REAL_DATA_ENV = "LEADSCORE_REAL_DATA"  # the real-data root (default: ../shared/data/real beside the checkout)
DEFAULT_SIZES = (100_000, 1_000_000)
BENCH_HISTORY_DAYS = 540  # the generated CRMs span this many days (see the generate stage)
BENCH_EXPERIMENT = "leadscore-bench"
TARGETS = {  # 2 cores; seconds and GB
    "validate_featurize_score_s_1m": 90.0, "featurize_s_1m": 60.0, "featurize_peak_gb_1m": 6.0,
    "validate_s_1m": 60.0, "score_over_floor": 3.0, "train_s_1m": 180.0, "peak_gb": 8.0,
    "score_over_naive": 1.0, "run_over_lgbm_cv_uci_bank": 3.0,
}


# ----------------------------------------------------------------------------------------------- workers
def _model_size(size: int) -> int:
    """The size whose trained model scores this size (`--model-from`; default: its own)."""
    return int(os.environ.get("LEADSCORE_BENCH_MODEL_FROM") or size)


def _paths(size: int) -> dict[str, Path]:
    root = DATA / str(size)
    model_root = DATA / str(_model_size(size))
    return {"root": root, "raw": root / "01_raw", "truth": root / "00_truth", "validated": root / "02_validated",
            "features_score": root / "03_features" / "features_score.parquet",
            "features_train": root / "03_features_train", "models": model_root / "04_models",
            "package": model_root / "04_package", "scored": root / "05_scored", "reports": root / "06_reports",
            "mlflow": root / "mlflow.db", "mlruns": root / "mlruns", "model_mlflow": model_root / "mlflow.db"}


def _params():
    from pipeline.params import load_params

    return load_params(ROOT / "params.yaml")


def _threads(prm=None) -> int:
    """LightGBM threads of training: --threads, else the params' train.n_jobs."""
    return int(os.environ.get("LEADSCORE_BENCH_THREADS") or (prm or _params()).train.n_jobs)


def _demo(prm, size: int):
    """The demo generator's settings for `size` leads. The benchmark CRMs keep the shape all results so far were
    measured on (540 days of history), whatever the demo's params say, so that timings stay comparable."""
    return dataclasses.replace(prm.demo, n_leads=size, history_days=BENCH_HISTORY_DAYS)


def _package_dir(P: dict[str, Path]) -> Path | None:
    """The package folder of the scoring model when the package stage ran for it (else a local model version)."""
    return P["package"] if (P["package"] / "model_info.json").exists() else None


class _Timer:
    """Wraps functions of the shipped modules (by attribute) to add up the seconds spent in each."""

    def __init__(self):
        self.parts: dict[str, float] = {}
        self.last: dict[str, object] = {}

    def wrap(self, module, attr: str, name: str) -> None:
        fn = getattr(module, attr)

        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
                self.last[name] = out
                return out
            finally:
                self.parts[name] = round(self.parts.get(name, 0.0) + time.perf_counter() - t, 2)

        setattr(module, attr, wrapper)


def _featurize_one_date(validated: Path, out: Path, p) -> dict:
    """The open leads of ingest's scoring date (`ingest.json`, copied by validate) featurized by the core,
    `features.build.score_features`, as `leadscore score --input` does; written for the score stage (a feature
    file without snapshots.json is a snapshot table). Not `pipeline.featurize`: its import of the training code
    (LightGBM, scikit-learn) would be timed as featurizing."""
    import pandas as pd

    import features.build as build
    from features.schema import TABLE_ORDER
    from pipeline.io import read_json, read_tables, write_parquet

    timings = {}
    t = time.perf_counter()
    tables = read_tables(validated, TABLE_ORDER)
    manifest = read_json(Path(validated) / "ingest.json")
    timings["read_s"] = time.perf_counter() - t
    timer = _Timer()
    timer.wrap(build, "prepare_crm", "prepare_s")  # score_features -> featurize -> prepare_crm: timed inside
    t = time.perf_counter()
    table = build.score_features(tables, pd.Timestamp(manifest["as_of"]), p)
    total = time.perf_counter() - t
    n_activities = int(len(timer.last.pop("prepare_s").events.ts_ns))
    del tables
    timings["prepare_s"] = timer.parts["prepare_s"]
    timings["snapshot_s"] = total - timer.parts["prepare_s"]
    t = time.perf_counter()
    write_parquet(table, out)
    timings["write_s"] = time.perf_counter() - t
    return {"rows": int(len(table)), "columns": int(table.shape[1]), "activities": n_activities,
            "as_of": manifest["as_of"], **{k: round(v, 2) for k, v in timings.items()}}


def _score(size: int, prm) -> dict:
    """The score stage as `leadscore score` runs it (no score history), its parts timed by wrapping its helpers."""
    import pipeline.score as stage

    P = _paths(size)
    timer = _Timer()
    timer.wrap(stage, "score_frame", "score_frame_s")
    timer.wrap(stage, "export_all", "export_s")
    timer.wrap(stage, "load_model", "load_model_s")
    timer.wrap(stage, "hand_over", "hand_over_s")
    memory = _sql_writer_memory()
    summary = stage.run(P["features_score"], P["models"], _package_dir(P), P["validated"], P["scored"], P["reports"],
                        prm.score, icp=prm.featurize.icp)
    return {"rows": summary["n_scored"], "n_sql": summary["n_sql"], "model_trained_on": _model_size(size),
            "model_version": summary["model_version"], "predictor": summary.get("predictor"), **timer.parts,
            **({"sql_writer_private_gb": round(memory["private_bytes"] / 1024**3, 3)} if "private_bytes" in memory else {})}


def _sql_writer_memory() -> dict:
    """Filled, once the score stage has exported, with its forked SQL writer's memory (`SqlWriter.child_memory`):
    its private part is added to the stage's peak (the child's pages shared with the stage are counted once)."""
    import pipeline.export as export

    memory: dict = {}
    finish = export.SqlWriter.finish

    def recorded(self, swap):
        try:
            return finish(self, swap)
        finally:
            memory.update(self.child_memory)

    export.SqlWriter.finish = recorded
    return memory


def _floor(size: int) -> dict:
    """The least any scorer must do: read the feature rows and run the booster's predict_proba on them."""
    import pandas as pd

    from pipeline.artifacts import load_model

    P = _paths(size)
    model, _ = load_model(P["models"])
    cols = model.feature_names_in_.tolist()
    t = time.perf_counter()
    X = pd.read_parquet(P["features_score"], columns=cols)
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    p = model.booster_.predict_proba(X, num_iteration=model.best_iteration_)[:, 1]
    predict_s = time.perf_counter() - t
    compiled = {}
    try:  # the same trees compiled, as the score stage predicts them (from the compile cache it fills)
        from pipeline.compiled import compiled_trees

        fast, how = compiled_trees(model, len(X), "compiled")
        t = time.perf_counter()
        fast.booster_.compiled.predict(X, n_jobs=how["threads"])
        compiled = {"compiled_predict_s": round(time.perf_counter() - t, 2), "compile_cached": how["compile_cached"]}
    except (ImportError, RuntimeError) as exc:
        compiled = {"compiled_predict_skipped": str(exc)}
    return {"rows": int(len(p)), "read_s": round(read_s, 2), "predict_s": round(predict_s, 2), **compiled,
            "lightgbm_threads": model.booster_.get_params()["n_jobs"], "trees": model.best_iteration_,
            "model_trained_on": _model_size(size)}


def _naive(size: int) -> dict:
    """The naive pandas scorer (benchmarks/peers.py) on the score stage's feature file and model."""
    from benchmarks.peers import naive_score
    from pipeline.artifacts import load_model

    P = _paths(size)
    t = time.perf_counter()
    model, info = load_model(P["models"], _package_dir(P))
    load_s = time.perf_counter() - t
    out = naive_score(P["features_score"], model, P["root"] / "05_naive", info["model_version"])
    return {"load_model_s": round(load_s, 2), **out, "model_trained_on": _model_size(size),
            "model_version": info["model_version"]}


def _package(size: int, prm) -> dict:
    """The package stage into this size's own MLflow store (artifacts beside it, never in the working folder)."""
    import mlflow

    from pipeline import package, tracking

    P = _paths(size)
    tracking.configure()
    if mlflow.get_experiment_by_name(BENCH_EXPERIMENT) is None:
        mlflow.create_experiment(BENCH_EXPERIMENT, artifact_location=P["mlruns"].resolve().as_uri())
    train_cfg = dataclasses.replace(prm.train, n_jobs=_threads(prm), experiment=BENCH_EXPERIMENT)
    info = package.run(P["features_train"] / "features.parquet", P["root"] / "04_models", P["root"] / "04_package",
                       {"ingest": prm.ingest, "demo": _demo(prm, size), "train": train_cfg, "featurize": prm.featurize,
                        "score": prm.score}, source=f"bench-{size}",
                       experiment=BENCH_EXPERIMENT, registered_model=prm.train.registered_model,
                       tags={"driver": "benchmarks"})
    return {k: info.get(k) for k in ("run_id", "model_version", "alias")}


def run_stage(stage: str, size: int) -> dict:
    """The work of one stage (called inside the child process). Returns stage-specific details."""
    prm = _params()
    P = _paths(size)
    # the scorers log into the store that holds their model's training run (`--model-from`: that size's)
    store = P["model_mlflow"] if stage in ("score", "naive", "floor", "e2e") else P["mlflow"]
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    validate_cfg = dataclasses.replace(prm.validate, engine="pandas")
    if stage == "generate":
        from pipeline import ingest
        from pipeline.sources.exports import load_profile

        manifest = ingest.run(load_profile("demo"), ROOT / prm.ingest.input, P["raw"], P["truth"],
                              demo=_demo(prm, size), as_of=prm.ingest.as_of)
        return {"rows": manifest["rows_read"], "as_of": manifest["as_of"]}
    if stage == "validate":
        from pipeline import validate

        metrics = validate.run(P["raw"], P["validated"], P["reports"], validate_cfg)
        return {"engine": "pandas", "quarantined_share": metrics["quarantined_share"],
                "rows_in": {k: v["rows_in"] for k, v in metrics.get("counts", {}).items()}}
    if stage == "featurize":
        return _featurize_one_date(P["validated"], P["features_score"], prm.featurize)
    if stage == "featurize_train":
        from pipeline import featurize

        summary = featurize.run(P["validated"], P["features_train"], prm.featurize, seed=prm.train.seed)
        return {"rows": {k: v["rows"] for k, v in summary.items() if isinstance(v, dict)}}
    if stage == "train":
        from pipeline import train

        threads = _threads(prm)
        metrics = train.run(P["features_train"] / "features.parquet", P["root"] / "04_models", P["reports"],
                            dataclasses.replace(prm.train, n_jobs=threads))
        return {"lightgbm_threads": threads, **metrics}
    if stage == "package":
        return _package(size, prm)
    if stage == "score":
        return _score(size, prm)
    if stage == "floor":
        return _floor(size)
    if stage == "naive":
        return _naive(size)
    if stage == "bench_score":
        try:
            from benchmarks import bench_score
        except ImportError:
            return {"skipped": "benchmarks/bench_score.py not present"}
        workdir = os.environ.get("LEADSCORE_BENCH_DEMO_WORKDIR")
        return bench_score.main(n=size, workdir=Path(workdir) if workdir else None)
    if stage == "e2e":
        from pipeline import validate

        t = time.perf_counter()
        validate.run(P["raw"], P["validated"], P["reports"], validate_cfg)
        v = time.perf_counter() - t
        t = time.perf_counter()
        f = _featurize_one_date(P["validated"], P["features_score"], prm.featurize)
        fz = time.perf_counter() - t
        t = time.perf_counter()
        s = _score(size, prm)
        return {"validate_s": round(v, 2), "featurize_s": round(fz, 2),
                "score_s": round(time.perf_counter() - t, 2), "rows": f["rows"], "score": s}
    raise ValueError(f"unknown stage {stage!r}; stages are {STAGES}")


def _worker(stage: str, size: int, out: Path, extra: list[str]) -> None:
    start = time.perf_counter()
    if stage == "chunked_synth":
        detail = synth_chunks(int(extra[0]), int(extra[1]))
    elif stage == "chunked_score":
        detail = score_chunks(int(extra[0]), int(extra[1]))
    elif stage.startswith("real_"):
        detail = real_stage(stage.removeprefix("real_"), extra[0], Path(extra[1]))
    else:
        detail = run_stage(stage, size)
    detail["seconds"] = round(time.perf_counter() - start, 2)
    out.write_text(json.dumps(detail, default=str))


# ----------------------------------------------------------------------------------- the parent side
def measure(stage: str, size: int, extra: tuple[str, ...] = ()) -> dict:
    """Run one stage in a child process; wall, CPU and peak RSS of that child, plus what the stage reported."""
    out = DATA / (f".{stage}-{extra[0]}.json" if stage.startswith("real_") else f".{stage}-{size}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.run", "--worker", stage, "--size", str(size), "--out", str(out), *extra]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}
    # what earlier stages wrote is flushed first: a stage that syncs its own files (the score stage's transaction)
    # would otherwise wait for the disk to write theirs (1.1x the naive peer right after the test suite, 0.97x after
    # a sync, the same code)
    os.sync()
    load = os.getloadavg()  # other work on the machine inflates wall time (not CPU time): recorded beside it
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"stage": stage, "size": size, "ok": proc.returncode == 0,
              "process_wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
              "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3),  # ru_maxrss is KiB on Linux
              "load_avg_at_start": [round(x, 2) for x in load],
              "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]}
    if proc.returncode == 0 and out.exists():
        detail = json.loads(out.read_text())
        result["seconds"] = detail.pop("seconds")
        result["detail"] = detail
    else:
        result["error"] = f"exit code {proc.returncode}"
    out.unlink(missing_ok=True)
    print(f"  {stage:<16} {extra[0] if stage.startswith('real_') else f'{size:>10,}'}  "
          f"{result.get('seconds', float('nan')):8.1f} s  "
          f"cpu {result['cpu_s']:8.1f} s  peak {result['peak_rss_gb']:6.2f} GB  {'' if result['ok'] else 'FAILED'}",
          flush=True)
    return result


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                      if x.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    import lightgbm
    import pandas

    return {"nproc": os.cpu_count(), "affinity_cpus": len(os.sched_getaffinity(0)), "cpu": cpu,
            "ram_gb": round(mem_kb / 1024**2, 1), "python": platform.python_version(),
            "pandas": pandas.__version__, "lightgbm": lightgbm.__version__,
            "lightgbm_threads": _threads(), "load_avg_at_start": os.getloadavg()}


def _stamp_end(doc: dict) -> dict:
    """The machine's load average when the results were last written (the end of the run so far)."""
    doc["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def summarise(stages: dict[str, dict]) -> dict:
    def sec(name):
        s = stages.get(name)
        return s.get("seconds") if s and s.get("ok") else None

    out = {}
    vfs = [sec("validate"), sec("featurize"), sec("score")]
    if all(v is not None for v in vfs):
        out["validate_featurize_score_s"] = round(sum(vfs), 2)
    if sec("score") is not None and sec("floor") is not None:
        floor = stages["floor"]["detail"]
        floor_s = floor["read_s"] + floor["predict_s"]
        score = stages["score"]["detail"]
        out["floor_s"] = round(floor_s, 2)
        out["score_over_floor"] = round(sec("score") / floor_s, 2)
        if "compiled_predict_s" in floor:  # the floor of the compiled trees the stage predicts with
            out["floor_compiled_s"] = round(floor["read_s"] + floor["compiled_predict_s"], 2)
            out["score_over_compiled_floor"] = round(sec("score") / out["floor_compiled_s"], 2)
        # the same without writing the three exports (SQLite, Parquet, CSV), which the floor does not do
        out["score_without_export_over_floor"] = round((sec("score") - score.get("export_s", 0.0)) / floor_s, 2)
    if sec("score") is not None and sec("naive") is not None:
        out["score_over_naive"] = round(sec("score") / sec("naive"), 2)
        score = stages["score"]["detail"]
        # the stage's own peak plus its forked SQL writer's private memory: an upper bound of the process tree's
        out["score_peak_over_naive_peak"] = round(
            (stages["score"]["peak_rss_gb"] + score.get("sql_writer_private_gb", 0.0)) / stages["naive"]["peak_rss_gb"], 2)
    peaks = [s["peak_rss_gb"] for s in stages.values() if s.get("ok")]
    if peaks:
        out["max_peak_rss_gb"] = max(peaks)
    return out


def run_sizes(sizes: list[int], stages: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        path = RESULTS / f"bench_{size}.json"
        previous = json.loads(path.read_text()) if path.exists() else {"stages": {}}
        print(f"size {size:,}: {', '.join(stages)}", flush=True)
        results = dict(previous.get("stages", {}))
        started_machine = machine()  # the load average at the start of this size's stages
        for stage in stages:
            results[stage] = measure(stage, size)
            results[stage]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            # Written after every stage: a partial or interrupted run keeps what it measured.
            doc = {"size": size, "machine": started_machine, "stages": results, "summary": summarise(results),
                   "targets": TARGETS}
            _stamp_end(doc)
            path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
            if not results[stage]["ok"] and stage in ("generate", "validate", "featurize", "featurize_train"):
                print(f"  {stage} failed: later stages need its output, stopping this size", flush=True)
                break
        print(f"  -> {path.relative_to(ROOT)}  {doc['summary']}", flush=True)


# ------------------------------------------------------------------------------ real data: leadscore run vs peers
def real_data_root(given: Path | None = None) -> Path:
    """--real-data, else env LEADSCORE_REAL_DATA, else ../shared/data/real beside the checkout (as the tests)."""
    return Path(given or os.environ.get(REAL_DATA_ENV) or ROOT.parent / "shared" / "data" / "real")


def _real_workdir(profile: str) -> Path:
    return DATA / "real" / profile


def _real_store(profile: str) -> Path:
    """The MLflow store of a real set's `leadscore run`: beside its work folder, kept between benchmark runs."""
    return (DATA / "real" / f"{profile}-store" / "mlflow.db").resolve()


def real_stage(kind: str, profile: str, folder: Path) -> dict:
    """One real-data stage in the child: `run` is `leadscore run` (pipeline.run.run: every stage, 5-fold CV,
    tracked in the work folder's own MLflow store); `lgbm_cv` / `logreg_cv` the peers on the feature table that
    run wrote, with the profile's training columns (benchmarks/peers.py)."""
    import shutil

    from benchmarks.peers import CV_FOLDS, cv_peer
    from pipeline.sources.exports import apply_overrides, load_profile

    prm = _params()
    threads = _threads(prm)
    workdir = _real_workdir(profile)
    profile_ = load_profile(profile)
    if kind == "run":
        from pipeline.run import run

        if workdir.exists():  # a fresh work folder: no earlier scoring history or outputs
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        # The MLflow store lives beside the work folder and is kept, as an analyst's store is kept from one run to
        # the next: creating its tables on a first run costs ~4 s once (store_created_s), outside the clock.
        store = _real_store(profile)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
        t = time.perf_counter()
        created = not store.exists()
        store.parent.mkdir(parents=True, exist_ok=True)
        if created:
            from pipeline import tracking

            tracking.configure()
            from mlflow import MlflowClient

            MlflowClient().search_experiments()  # creates the store's tables
        store_created_s = round(time.perf_counter() - t, 2) if created else 0.0
        t = time.perf_counter()
        m = run(profile_, folder, workdir, prm, n_jobs=threads, cv_folds=CV_FOLDS, track=True)
        run_s = time.perf_counter() - t
        keep = ("cv_roc_auc", "cv_roc_auc_folds", "roc_auc", "n_train", "n_test", "n_features", "model_kind",
                "best_iteration", "split", "seconds")
        return {"profile": profile, "input": str(folder), "run_s": round(run_s, 2), "lightgbm_threads": threads,
                "cv_folds": CV_FOLDS, "store_created_s": store_created_s, **{k: m[k] for k in keep if k in m}}
    params = apply_overrides(prm, profile_)
    features = Path(params.paths.under(workdir).features) / "features.parquet"
    if not features.exists():
        raise FileNotFoundError(f"{features}: no feature table; the real stage `run` writes it first")
    return {"profile": profile, **cv_peer(kind, features, params.train, threads)}


def run_real(sets: list[str], root: Path) -> dict | None:
    """`leadscore run` and its CV peers on each real data set under `root`; results/real_peers.json. Skipped,
    with the reason printed, when `root` or a set's folder is absent."""
    if not root.is_dir():
        print(f"real-data peers skipped: {root} is absent (set --real-data or env {REAL_DATA_ENV})", flush=True)
        return None
    unknown = sorted(set(sets) - set(REAL_SETS))
    if unknown:
        raise SystemExit(f"unknown real data set(s) {unknown}; known: {', '.join(REAL_SETS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    started_machine = machine()
    path = RESULTS / "real_peers.json"
    doc = json.loads(path.read_text()) if path.exists() else {"sets": {}}
    for name in sets:
        folder = root / REAL_SETS[name]
        if not folder.is_dir():
            print(f"real data set {name} skipped: {folder} is absent", flush=True)
            continue
        print(f"real data set {name} ({folder}): {', '.join(REAL_STAGES)}", flush=True)
        entry = {}
        for stage in REAL_STAGES:
            entry[stage] = measure(f"real_{stage}", 0, (name, str(folder)))
            entry[stage]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if stage == "run" and not entry[stage]["ok"]:
                print(f"  leadscore run failed on {name}: the peers need its feature table, skipping them", flush=True)
                break
        doc["sets"][name] = entry
        doc["machine"] = started_machine
        path.write_text(json.dumps(_stamp_end(doc), indent=2, sort_keys=True, default=str) + "\n")
    print(f"  -> {path.relative_to(ROOT)}", flush=True)
    return doc


def write_peers(started: dict) -> Path:
    """Every leadscore / peer ratio the results hold, with this invocation's machine and load (start and end),
    to results/peers.json."""
    from benchmarks.peers import ratios

    doc = ratios(RESULTS)
    doc["invocation"] = {**started, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
                         "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = RESULTS / "peers.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    return path


# ------------------------------------------------------------------------------ 10M scored in chunks
def _chunk_dir(total: int) -> Path:
    return DATA / f"chunked_{total}"


def synth_chunks(total: int, source_size: int) -> dict:
    """A `total`-row feature table as Parquet parts, made from the `source_size` one-date table.

    Each copy gets new lead ids (`<id>-c<k>`) and its decayed engagement scaled by a per-copy factor, so the
    copies are not identical rows; every other feature is the source's. Written part by part: bounded memory.
    """
    import numpy as np
    import pandas as pd

    from pipeline.io import write_parquet

    src = pd.read_parquet(_paths(source_size)["features_score"])
    rng = np.random.default_rng(7)
    out = _chunk_dir(total) / "features"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.parquet"):
        old.unlink()
    written, k = 0, 0
    while written < total:
        part = src.iloc[: total - written].copy()
        part["lead_id"] = part["lead_id"].astype(str) + f"-c{k}"
        part["engagement_decayed"] = part["engagement_decayed"] * rng.uniform(0.8, 1.25, len(part))
        write_parquet(part, out / f"part-{k:05d}.parquet")
        written += len(part)
        k += 1
    return {"rows": written, "parts": k, "source_rows": int(len(src))}


def score_chunks(total: int, source_size: int, batch_rows: int = 250_000) -> dict:
    from pipeline.artifacts import load_model
    from pipeline.chunked import score_in_chunks
    from pipeline.io import find_table, read_table

    P = _paths(source_size)
    model, info = load_model(P["models"], _package_dir(P))
    accounts = read_table(find_table(P["validated"], "accounts"))
    opportunities = read_table(find_table(P["validated"], "opportunities"))
    parts = sorted((_chunk_dir(total) / "features").glob("part-*.parquet"))
    return score_in_chunks(parts, model, accounts, opportunities, _params().score, _chunk_dir(total) / "scored",
                           batch_rows=batch_rows, model_version=info["model_version"], run_id=info["run_id"])


def run_chunked(totals: list[int], source_size: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for total in totals:
        print(f"chunked scoring of {total:,} rows (from the {source_size:,}-lead table)", flush=True)
        synth = measure("chunked_synth", total, (str(total), str(source_size)))
        score = measure("chunked_score", total, (str(total), str(source_size)))
        doc = {"rows": total, "source_size": source_size, "machine": machine(), "synth": synth, "score": score}
        if score.get("ok"):
            doc["seconds_per_million"] = round(score["seconds"] / (total / 1e6), 2)
        path = RESULTS / f"chunked_{total}.json"
        path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
        print(f"  -> {path.relative_to(ROOT)}", flush=True)


# ------------------------------------------------------------------------------------------ report
def report() -> str:
    """The README table, from whatever JSON results exist."""
    lines = []
    docs = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("bench_*.json"), key=lambda p: int(p.stem[6:]))]
    if docs:
        m = docs[-1]["machine"]
        lines.append(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM; Python {m['python']}, "
                     f"pandas {m['pandas']}, LightGBM {m['lightgbm']} with {m['lightgbm_threads']} threads.\n")
        sizes = [d["size"] for d in docs]
        lines.append("| stage | " + " | ".join(f"{s:,} leads: s / CPU s / peak GB / load" for s in sizes) + " |")
        lines.append("|---|" + "---|" * len(sizes))
        for stage in STAGES:
            cells = []
            for d in docs:
                s = d["stages"].get(stage)
                if not s or not s.get("ok") or "seconds" not in s or s.get("detail", {}).get("skipped"):
                    cells.append("–")
                else:
                    load = s.get("load_avg_at_start", ["?"])[0]
                    cells.append(f"{s['seconds']:.1f} / {s['cpu_s']:.1f} / {s['peak_rss_gb']:.2f} / {load}")
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        for key in ("validate_featurize_score_s", "floor_s", "score_over_floor", "score_without_export_over_floor",
                    "floor_compiled_s", "score_over_compiled_floor", "score_over_naive", "score_peak_over_naive_peak"):
            lines.append(f"| **{key}** | " + " | ".join(str(d["summary"].get(key, "–")) for d in docs) + " |")
    for p in sorted(RESULTS.glob("chunked_*.json")):
        d = json.loads(p.read_text())
        s = d["score"]
        if s.get("ok"):
            lines.append(f"\nChunked scoring, {d['rows']:,} rows in batches of {s['detail']['batch_rows']:,}: "
                         f"{s['seconds']:.1f} s ({d.get('seconds_per_million')} s per million), "
                         f"CPU {s['cpu_s']:.1f} s, peak {s['peak_rss_gb']:.2f} GB.")
    from benchmarks.peers import ratio_table, ratios

    found = ratios(RESULTS)
    if found["scoring"] or found["real"]:
        lines.append("\nleadscore beside its peers (benchmarks/results/peers.json):\n")
        lines.append(ratio_table(found))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated lead counts")
    ap.add_argument("--stages", default=",".join((*STAGES, REAL)),
                    help=f"comma-separated, from {','.join((*STAGES, REAL))}")
    ap.add_argument("--score-chunked", default=None, help="comma-separated row counts to score in chunks")
    ap.add_argument("--chunk-source", type=int, default=1_000_000, help="size whose one-date table is copied")
    ap.add_argument("--model-from", type=int, default=None,
                    help="score, naive and floor with the model trained at this size (e.g. 1000000) instead of each "
                         "size's own")
    ap.add_argument("--threads", type=int, default=None,
                    help="LightGBM threads of the train stage (default: the params' train.n_jobs)")
    ap.add_argument("--demo-workdir", type=Path, default=None,
                    help="bench_score: the folder holding the demo pipeline's data/ (default: this checkout)")
    ap.add_argument("--real-data", type=Path, default=None,
                    help=f"the real data sets' folder (default: env {REAL_DATA_ENV}, else ../shared/data/real)")
    ap.add_argument("--real-sets", default=",".join(REAL_SETS),
                    help=f"stage `real`: comma-separated, from {','.join(REAL_SETS)}")
    ap.add_argument("--report", action="store_true", help="print the README tables and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args, extra = ap.parse_known_args(argv)
    if args.worker:
        _worker(args.worker, args.size, args.out, extra)
        return
    if args.model_from:
        os.environ["LEADSCORE_BENCH_MODEL_FROM"] = str(args.model_from)
    if args.threads:
        os.environ["LEADSCORE_BENCH_THREADS"] = str(args.threads)
    if args.demo_workdir:
        os.environ["LEADSCORE_BENCH_DEMO_WORKDIR"] = str(args.demo_workdir.resolve())
    if args.report:
        print(report())
        return
    if args.score_chunked:
        run_chunked([int(x) for x in args.score_chunked.split(",")], args.chunk_source)
        return
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - {*STAGES, REAL})
    if unknown:
        ap.error(f"unknown stage(s) {unknown}; stages are {', '.join((*STAGES, REAL))}")
    started = {"load_avg_at_start": [round(x, 2) for x in os.getloadavg()], "stages": stages,
               "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    per_size = [s for s in stages if s != REAL]
    if per_size:
        run_sizes([int(x) for x in args.sizes.split(",")], per_size)
    if REAL in stages:
        run_real([s.strip() for s in args.real_sets.split(",") if s.strip()], real_data_root(args.real_data))
    print(f"ratios -> {write_peers(started).relative_to(ROOT)}", flush=True)
    print(report())


if __name__ == "__main__":
    main()
