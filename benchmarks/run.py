"""Speed and memory benchmarks: every stage in its own process, timed (wall, CPU) with its peak memory.

    python -m benchmarks.run                                   # 100k and 1M leads, every stage (= make bench)
    python -m benchmarks.run --sizes 100000 --stages generate,validate,featurize
    python -m benchmarks.run --score-chunked 10000000          # 10M leads scored in chunks (needs the 1M run)
    python -m benchmarks.run --report                          # print the README table from the JSON results

Stages (per size, data under benchmarks/data/<size>/, results in benchmarks/results/bench_<size>.json):

  generate         the demo CRM (about 20 activities per lead)
  validate         contract checks and quarantine (pandas engine)
  featurize        features of every open lead for ONE as-of date (the export date): what scoring needs
  featurize_train  the training table (all monthly snapshots + test + score)
  train            the calibrated LightGBM (train.n_jobs threads), logged to a local MLflow store
  score            the `score` stage (gates, decision, tiers, rank, exports) on the one-date feature table
  floor            reading the feature table and LightGBM predict_proba alone on the same rows
  bench_score      benchmarks/bench_score.py main(), when that module exists
  e2e              validate -> featurize -> score in one process (the path of a scoring run)

Each stage runs in a fresh subprocess; the parent reads that child's peak RSS from os.wait4. CPU is user +
system time of the child. LightGBM threads are the params' train.n_jobs (2); nothing else is pinned.
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
STAGES = ("generate", "validate", "featurize", "featurize_train", "train", "score", "floor", "bench_score", "e2e")
DEFAULT_SIZES = (100_000, 1_000_000)
BENCH_HISTORY_DAYS = 540  # the generated CRMs span this many days (see the generate stage)
TARGETS = {  # 2 cores; seconds and GB
    "validate_featurize_score_s_1m": 90.0, "featurize_s_1m": 60.0, "featurize_peak_gb_1m": 6.0,
    "validate_s_1m": 60.0, "score_over_floor": 3.0, "train_s_1m": 180.0, "peak_gb": 8.0,
}


# ----------------------------------------------------------------------------------------------- workers
def _model_size(size: int) -> int:
    """The size whose trained model scores this size (`--model-from`; default: its own)."""
    return int(os.environ.get("LEADSCORE_BENCH_MODEL_FROM") or size)


def _paths(size: int) -> dict[str, Path]:
    root = DATA / str(size)
    return {"root": root, "raw": root / "01_raw", "truth": root / "00_truth", "validated": root / "02_validated",
            "features_score": root / "03_features" / "features_score.parquet",
            "features_train": root / "03_features_train", "models": DATA / str(_model_size(size)) / "04_models",
            "scored": root / "05_scored", "reports": root / "06_reports", "mlflow": root / "mlflow.db"}


def _params():
    from pipeline.params import load_params

    return load_params(ROOT / "params.yaml")


def _featurize_one_date(validated: Path, out: Path, export_date: str, p) -> dict:
    import pandas as pd

    from features.build import build_feature_table, prepare_crm
    from features.schema import TABLE_ORDER
    from features.build import feature_config
    from pipeline.io import read_tables, write_parquet

    timings = {}
    t = time.perf_counter()
    tables = read_tables(validated, TABLE_ORDER)
    timings["read_s"] = time.perf_counter() - t
    config = feature_config(p)
    t = time.perf_counter()
    crm = prepare_crm(**tables, icp=config.icp)
    timings["prepare_s"] = time.perf_counter() - t
    del tables
    t = time.perf_counter()
    table = build_feature_table(crm, {"score": [pd.Timestamp(export_date).normalize()]}, config, float32=p.float32)
    timings["snapshot_s"] = time.perf_counter() - t
    t = time.perf_counter()
    write_parquet(table, out)
    timings["write_s"] = time.perf_counter() - t
    return {"rows": int(len(table)), "columns": int(table.shape[1]), "activities": int(len(crm.events.ts_ns)),
            **{k: round(v, 2) for k, v in timings.items()}}


def _score(size: int, prm) -> dict:
    """The score stage as `leadscore score` runs it, with its parts timed by wrapping the stage's helpers."""
    import pipeline.score as stage

    P = _paths(size)
    parts: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name] = round(parts.get(name, 0.0) + time.perf_counter() - t, 2)
        return wrapper

    stage.score_frame = timed("score_frame_s", stage.score_frame)
    stage.export_all = timed("export_s", stage.export_all)
    stage.load_model = timed("load_model_s", stage.load_model)
    stage.hand_over = timed("hand_over_s", stage.hand_over)
    summary = stage.run(P["features_score"], P["models"], P["validated"], P["scored"], P["reports"], prm.score)
    return {"rows": summary["n_scored"], "n_sql": summary["n_sql"], "model_trained_on": _model_size(size), **parts}


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
    return {"rows": int(len(p)), "read_s": round(read_s, 2), "predict_s": round(predict_s, 2),
            "lightgbm_threads": model.booster_.get_params()["n_jobs"], "trees": model.best_iteration_,
            "model_trained_on": _model_size(size)}


def run_stage(stage: str, size: int) -> dict:
    """The work of one stage (called inside the child process). Returns stage-specific details."""
    prm = _params()
    P = _paths(size)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{P['mlflow']}"
    if stage == "generate":
        from pipeline import demo_data

        # The benchmark CRMs keep the shape all results so far were measured on (540 days of history), whatever
        # the demo's params say, so that timings stay comparable across runs.
        counts = demo_data.run(P["raw"], P["truth"], dataclasses.replace(prm.demo, n_leads=size,
                                                                         history_days=BENCH_HISTORY_DAYS))
        return {"rows": counts}
    if stage == "validate":
        from pipeline import validate

        metrics = validate.run(P["raw"], P["validated"], P["reports"], prm.demo.export_date,
                               dataclasses.replace(prm.validate, engine="pandas"))
        return {"engine": "pandas", "quarantined_share": metrics["quarantined_share"],
                "rows_in": {k: v["rows_in"] for k, v in metrics.get("counts", {}).items()}}
    if stage == "featurize":
        return _featurize_one_date(P["validated"], P["features_score"], prm.demo.export_date, prm.featurize)
    if stage == "featurize_train":
        from pipeline import featurize

        summary = featurize.run(P["validated"], P["features_train"], prm.demo.export_date, prm.featurize)
        return {"rows": {k: v["rows"] for k, v in summary.items() if isinstance(v, dict)}}
    if stage == "train":
        from pipeline import train

        metrics = train.run(P["features_train"] / "features.parquet", P["root"] / "04_models", P["reports"],
                            dataclasses.replace(prm.train, experiment="leadscore-bench"), source_tag=f"bench-{size}")
        return {"lightgbm_threads": prm.train.n_jobs, **metrics}
    if stage == "score":
        return _score(size, prm)
    if stage == "floor":
        return _floor(size)
    if stage == "bench_score":
        try:
            from benchmarks import bench_score
        except ImportError:
            return {"skipped": "benchmarks/bench_score.py not present"}
        return bench_score.main(n=size)
    if stage == "e2e":
        from pipeline import validate

        t = time.perf_counter()
        validate.run(P["raw"], P["validated"], P["reports"], prm.demo.export_date,
                     dataclasses.replace(prm.validate, engine="pandas"))
        v = time.perf_counter() - t
        t = time.perf_counter()
        f = _featurize_one_date(P["validated"], P["features_score"], prm.demo.export_date, prm.featurize)
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
    else:
        detail = run_stage(stage, size)
    detail["seconds"] = round(time.perf_counter() - start, 2)
    out.write_text(json.dumps(detail, default=str))


# ----------------------------------------------------------------------------------- the parent side
def measure(stage: str, size: int, extra: tuple[str, ...] = ()) -> dict:
    """Run one stage in a child process; wall, CPU and peak RSS of that child, plus what the stage reported."""
    out = DATA / f".{stage}-{size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.run", "--worker", stage, "--size", str(size), "--out", str(out), *extra]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}
    load = os.getloadavg()  # other work on the machine inflates wall time (not CPU time): recorded beside it
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {"stage": stage, "size": size, "ok": proc.returncode == 0,
              "process_wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
              "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 3),  # ru_maxrss is KiB on Linux
              "load_avg_at_start": [round(x, 2) for x in load]}
    if proc.returncode == 0 and out.exists():
        detail = json.loads(out.read_text())
        result["seconds"] = detail.pop("seconds")
        result["detail"] = detail
    else:
        result["error"] = f"exit code {proc.returncode}"
    out.unlink(missing_ok=True)
    print(f"  {stage:<16} {size:>10,}  {result.get('seconds', float('nan')):8.1f} s  "
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
            "lightgbm_threads": _params().train.n_jobs, "load_avg_at_start": os.getloadavg()}


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
        # the same without writing the three exports (SQLite, Parquet, CSV), which the floor does not do
        out["score_without_export_over_floor"] = round((sec("score") - score.get("export_s", 0.0)) / floor_s, 2)
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
        for stage in stages:
            results[stage] = measure(stage, size)
            results[stage]["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            # Written after every stage: a partial or interrupted run keeps what it measured.
            doc = {"size": size, "machine": machine(), "stages": results, "summary": summarise(results),
                   "targets": TARGETS}
            path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
            if not results[stage]["ok"] and stage in ("generate", "validate", "featurize", "featurize_train"):
                print(f"  {stage} failed: later stages need its output, stopping this size", flush=True)
                break
        print(f"  -> {path.relative_to(ROOT)}  {doc['summary']}", flush=True)


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
    from pipeline.chunked import score_in_chunks
    from pipeline.io import find_table, read_table
    from pipeline.artifacts import load_model

    P = _paths(source_size)
    model, info = load_model(P["models"])
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
        for key in ("validate_featurize_score_s", "floor_s", "score_over_floor", "score_without_export_over_floor"):
            lines.append(f"| **{key}** | " + " | ".join(str(d["summary"].get(key, "–")) for d in docs) + " |")
    for p in sorted(RESULTS.glob("chunked_*.json")):
        d = json.loads(p.read_text())
        s = d["score"]
        if s.get("ok"):
            lines.append(f"\nChunked scoring, {d['rows']:,} rows in batches of {s['detail']['batch_rows']:,}: "
                         f"{s['seconds']:.1f} s ({d.get('seconds_per_million')} s per million), "
                         f"CPU {s['cpu_s']:.1f} s, peak {s['peak_rss_gb']:.2f} GB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated lead counts")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {','.join(STAGES)}")
    ap.add_argument("--score-chunked", default=None, help="comma-separated row counts to score in chunks")
    ap.add_argument("--chunk-source", type=int, default=1_000_000, help="size whose one-date table is copied")
    ap.add_argument("--model-from", type=int, default=None,
                    help="score and floor with the model trained at this size (e.g. 100000) instead of each size's own")
    ap.add_argument("--report", action="store_true", help="print the README table and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args, extra = ap.parse_known_args(argv)
    if args.worker:
        _worker(args.worker, args.size, args.out, extra)
        return
    if args.model_from:
        os.environ["LEADSCORE_BENCH_MODEL_FROM"] = str(args.model_from)
    if args.report:
        print(report())
        return
    if args.score_chunked:
        run_chunked([int(x) for x in args.score_chunked.split(",")], args.chunk_source)
        return
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        ap.error(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    run_sizes([int(x) for x in args.sizes.split(",")], stages)
    print(report())


if __name__ == "__main__":
    main()
