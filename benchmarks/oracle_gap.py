"""How close the model gets to the demo's oracle, by demo size and history: the table in the README.

    python -m benchmarks.oracle_gap                      # the three configurations of the README (~15 min, 2 cores)
    python -m benchmarks.oracle_gap --configs 20000:540 --seeds 42,7

For each configuration (leads : days of history) and seed: generate the demo CRM, validate, featurize with the
params' featurize section, then train exactly as the `train` stage does (account-held-out validation, early
stopping, calibration, refit on every training row) and score the held-out snapshot. Reported: LightGBM before and
after the refit, the logistic baseline refitted on the same rows, the oracle AUC and the gap. Everything else comes
from params.yaml. Data under benchmarks/data/oracle_gap/, results in benchmarks/results/oracle_gap.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "oracle_gap"
RESULT = ROOT / "benchmarks" / "results" / "oracle_gap.json"
DEFAULT_CONFIGS = ((20_000, 540), (33_000, 900), (66_000, 900))


def measure(n_leads: int, history_days: int, seed: int, n_jobs: int) -> dict:
    from models.baselines import LogisticBaseline
    from models.conversion import ConversionModel
    from pipeline import demo_data, featurize, validate
    from pipeline.evaluate import held_out, oracle_scores
    from pipeline.params import load_params
    from models.training import VALIDATION_GROUP_SHARE, booster_config, split_train_validation

    prm = load_params(ROOT / "params.yaml")
    root = DATA / f"{n_leads}_{history_days}_{seed}"
    raw, truth, valid, feats = root / "01_raw", root / "00_truth", root / "02_validated", root / "03_features"
    start = time.perf_counter()
    demo_data.run(raw, truth, dataclasses.replace(prm.demo, n_leads=n_leads, history_days=history_days,
                                                  seed=seed))
    validate.run(raw, valid, root / "06_reports", prm.demo.export_date, prm.validate)
    featurize.run(valid, feats, prm.demo.export_date, prm.featurize)
    table = pd.read_parquet(feats / "features.parquet")

    from features.build import feature_columns

    cols = feature_columns(table)
    fit, val = split_train_validation(table, VALIDATION_GROUP_SHARE, seed=prm.train.seed)
    train_rows = table[table["split"] == "train"]
    test = held_out(table)
    y = test["label"].astype(int).to_numpy()
    config = booster_config(prm.train, n_rows=len(fit), n_jobs=n_jobs)
    model = ConversionModel(config, calibration=prm.train.calibration).fit(
        fit[cols], fit["label"].astype(int), val[cols], val["label"].astype(int))
    before = roc_auc_score(y, model.predict_proba(test[cols])[:, 1])
    model.refit(train_rows[cols], train_rows["label"].astype(int))
    after = roc_auc_score(y, model.predict_proba(test[cols])[:, 1])
    logistic = LogisticBaseline(C=prm.train.logistic_C).fit(train_rows[cols], train_rows["label"].astype(int))
    logistic_auc = roc_auc_score(y, logistic.predict_proba(test[cols])[:, 1])
    oracle = oracle_scores(truth, raw, test, prm.featurize.horizon_days)
    known = ~np.isnan(oracle)
    oracle_auc = roc_auc_score(y[known], oracle[known])
    return {"n_leads": n_leads, "history_days": history_days, "seed": seed, "held_out_rows": int(len(y)),
            "held_out_conversions": int(y.sum()), "train_rows": int(len(train_rows)), "trees": model.best_iteration_,
            "lightgbm_roc_auc": before, "lightgbm_refit_roc_auc": after, "logistic_refit_roc_auc": logistic_auc,
            "oracle_roc_auc": oracle_auc, "oracle_gap": oracle_auc - after, "lightgbm_threads": n_jobs,
            "seconds": round(time.perf_counter() - start, 1)}


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
