"""How close the model gets to the demo's oracle, by demo size and history: the table in the README.

    python -m benchmarks.oracle_gap                      # the three configurations of the README (~15 min, 2 cores)
    python -m benchmarks.oracle_gap --configs 20000:540 --seeds 42,7

For each configuration (leads : days of history) and seed, the pipeline's own stages in a folder: `ingest` (the
demo profile generates the CRM), `validate`, `featurize` and `train` with the params' sections (account-held-out
validation, early stopping, calibration, refit on every training row), then `evaluate` on the held-out snapshot,
which reports the model's AUC, the baselines' and the oracle's. The model before its refit is the train stage's
core (`models.training.fit`) with `train.refit_full` off, scored on the same held-out rows. Reported: LightGBM
before and after the refit, the logistic baseline refitted on the same rows, the oracle AUC and the gap.
Everything else comes from params.yaml. Data under benchmarks/data/oracle_gap/, results in
benchmarks/results/oracle_gap.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "oracle_gap"
RESULT = ROOT / "benchmarks" / "results" / "oracle_gap.json"
DEFAULT_CONFIGS = ((20_000, 540), (33_000, 900), (66_000, 900))


def measure(n_leads: int, history_days: int, seed: int, n_jobs: int) -> dict:
    from models.training import fit
    from pipeline import evaluate, featurize, ingest, train, validate
    from pipeline.params import load_params
    from pipeline.sources.exports import load_profile

    prm = load_params(ROOT / "params.yaml")
    P = {k: Path(v) for k, v in vars(prm.paths.under(DATA / f"{n_leads}_{history_days}_{seed}")).items()}
    features = P["features"] / "features.parquet"
    train_cfg = dataclasses.replace(prm.train, n_jobs=n_jobs)
    start = time.perf_counter()
    ingest.run(load_profile("demo"), ROOT / prm.ingest.input, P["raw"], P["truth"],
               demo=dataclasses.replace(prm.demo, n_leads=n_leads, history_days=history_days, seed=seed),
               as_of=prm.ingest.as_of, outputs=list(P.values()))
    validate.run(P["raw"], P["validated"], P["reports"], prm.validate)
    snapshots = featurize.run(P["validated"], P["features"], prm.featurize, seed=prm.train.seed)
    trained = train.run(features, P["models"], P["reports"], train_cfg)
    held = evaluate.run(features, P["models"], None, P["reports"], prm.evaluate, prm.featurize.horizon_days,
                        P["truth"], P["raw"], train_cfg)
    if "oracle_roc_auc" not in held:
        raise RuntimeError(f"{P['truth']}: evaluate found no oracle (the demo's truth is missing)")

    if trained.get("n_refit_rows"):  # the shipped model was refitted: the same fit without its refit
        table = pd.read_parquet(features, filters=[("split", "in", ["train", "test"])])
        before = fit(table, dataclasses.replace(train_cfg, refit_full=False)).model
        test = evaluate.held_out(table)
        del table
        lightgbm_auc = float(roc_auc_score(test["label"].astype(int),
                                           before.predict_proba(test[list(before.feature_names_in_)])[:, 1]))
    else:  # large data: no refit, the shipped model is the one before it
        lightgbm_auc = held["roc_auc"]
    return {"n_leads": n_leads, "history_days": history_days, "seed": seed, "held_out_rows": int(held["n_test"]),
            "held_out_conversions": int(snapshots["test"]["positives"]), "train_rows": int(held["n_train"]),
            "trees": int(trained["best_iteration"]), "model_kind": trained["model_kind"],
            "lightgbm_roc_auc": lightgbm_auc, "lightgbm_refit_roc_auc": held["roc_auc"],
            "logistic_refit_roc_auc": held["baseline_logistic_roc_auc"], "oracle_roc_auc": held["oracle_roc_auc"],
            "oracle_gap": held["oracle_gap"], "oracle_coverage": held["oracle_coverage"],
            "lightgbm_threads": n_jobs, "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default=",".join(f"{n}:{d}" for n, d in DEFAULT_CONFIGS),
                        help="comma-separated leads:history_days")
    parser.add_argument("--seeds", default="42", help="comma-separated demo seeds")
    parser.add_argument("--threads", type=int, default=2, help="LightGBM threads")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    rows = []
    for item in args.configs.split(","):
        n, days = (int(x) for x in item.split(":"))
        for seed in (int(s) for s in args.seeds.split(",")):
            row = measure(n, days, seed, args.threads)
            rows.append(row)
            print(f"{n:>7,} leads {days:>4} days seed {seed:>3}: LightGBM {row['lightgbm_roc_auc']:.4f} -> refit "
                  f"{row['lightgbm_refit_roc_auc']:.4f}, logistic {row['logistic_refit_roc_auc']:.4f}, oracle "
                  f"{row['oracle_roc_auc']:.4f}, gap {row['oracle_gap']:.4f} ({row['seconds']} s)", flush=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULT.read_text()) if RESULT.exists() else []
    keep = [r for r in previous if (r["n_leads"], r["history_days"], r["seed"]) not in
            {(x["n_leads"], x["history_days"], x["seed"]) for x in rows}]
    RESULT.write_text(json.dumps(keep + rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
