"""Where the demo's oracle gap comes from: the same learner, given one piece of the demo's hidden state at a time.

    python -m benchmarks.hidden_information RUN_FOLDER      # a `leadscore run --profile demo` work folder (~15 min)

The oracle (`pipeline.sources.demo_crm.oracle_probability`) reads the generator's hidden state: each lead's
interest peak, its opportunity and win propensities (`p_opp`, `p_win`, which include lead-level noise that no
column of the export carries, by design) and the timing laws. To see which part of that knowledge the features
miss, one fixed LightGBM (learning rate 0.05, the params' tree shape, 2 threads) is fitted on the run's training
rows of the decision population, with the feature table's columns alone (`base`) and with hidden columns added:

    peak        days since the lead's interest peak at the as-of date (the timing the oracle knows)
    propensity  log(p_opp * p_win) (the lead's true conversion odds, noise included)
    drivers     the same odds from the generator's drivers alone (interest, fit, BANT truth), without the
                lead-level logit noise that no column carries: what a perfect reading of the signals could give
    all         both, and the peak's width
    interest, fit, need, bant   one driver (bant: the four true BANT flags) as it is, the others not: which
                signal the features read worst

and judged on the held-out rows (ROC AUC at 150 and 300 trees). A hidden column that lifts the AUC towards the
oracle's is information the features lack; one that does not is information they already carry. Results in
benchmarks/results/hidden_information.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "hidden_information.json"
META = ("lead_id", "account_id", "as_of", "split", "label", "with_sales")
HIDDEN = {"base": [], "peak": ["h_peak_age"], "propensity": ["h_log_propensity"], "drivers": ["h_log_drivers"],
          "all": ["h_peak_age", "h_log_propensity", "h_peak_width"],
          # one driver at a time: which signal the features read worst
          "interest": ["h_interest"], "fit": ["h_fit"], "need": ["h_need"],
          "bant": ["h_authority", "h_budget", "h_timeline", "h_need"]}
TREES = (150, 300)


def hidden_columns(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The feature table with the generator's hidden state of each lead, as of each row's date, beside it."""
    from scipy.special import expit

    from pipeline.sources import demo_crm

    drivers = truth[["interest", "fit", "authority", "budget_ok", "timeline_ok", "need"]].astype(float).rename(
        columns={"budget_ok": "budget", "timeline_ok": "timeline"})
    opp = demo_crm.OPP_INTERCEPT + sum(w * drivers[k] for k, w in demo_crm.OPP_WEIGHTS.items())
    win = demo_crm.WIN_INTERCEPT + sum(w * drivers[k] for k, w in demo_crm.WIN_WEIGHTS.items())
    truth = truth.assign(h_log_drivers=np.log(expit(opp)) + np.log(expit(win)),
                         **{f"h_{k}": drivers[k] for k in drivers.columns})
    one_by_one = [f"h_{k}" for k in drivers.columns]
    t = table.merge(truth[["lead_id", "peak_at", "p_opp", "p_win", "peak_width_days", "h_log_drivers", *one_by_one]],
                    on="lead_id", how="left")
    t["h_peak_age"] = (pd.to_datetime(t["as_of"]) - pd.to_datetime(t["peak_at"])).dt.total_seconds() / 86_400
    t["h_log_propensity"] = np.log(t["p_opp"]) + np.log(t["p_win"])
    t["h_peak_width"] = t["peak_width_days"]
    return t.drop(columns=["peak_at", "p_opp", "p_win", "peak_width_days"])


def measure(folder: Path, variants: list[str], n_jobs: int = 2) -> dict:
    data = folder / "data" if (folder / "data").is_dir() else folder
    table = pd.read_parquet(data / "03_features" / "features.parquet", filters=[("split", "in", ["train", "test"])])
    t = hidden_columns(table, pd.read_parquet(data / "00_truth" / "truth.parquet"))
    for c in t.columns:
        if not pd.api.types.is_numeric_dtype(t[c]) and c not in META:
            t[c] = t[c].astype("category")
    base = [c for c in table.columns if c not in META]
    train, test = t[t["split"] == "train"], t[t["split"] == "test"]
    params = dict(objective="binary", learning_rate=0.05, num_leaves=15, min_child_samples=300, subsample=0.5,
                  subsample_freq=1, colsample_bytree=0.5, reg_lambda=5.0, n_estimators=max(TREES), n_jobs=n_jobs,
                  verbose=-1, random_state=1)
    out = {}
    for name in variants:
        cols = base + HIDDEN[name]
        start = time.perf_counter()
        model = lgb.LGBMClassifier(**params).fit(train[cols], train["label"].astype(int))
        out[name] = {f"auc_{k}_trees": round(float(roc_auc_score(
            test["label"].astype(int), model.predict_proba(test[cols], num_iteration=k)[:, 1])), 4) for k in TREES}
        out[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(name, out[name], flush=True)
    return out


def oracle_aucs(folder: Path) -> dict:
    """The held-out rows' AUC under the oracle (which knows each lead's logit noise) and under the marginal oracle
    (the same, averaged over that noise: the best any model can do), as the evaluate stage computes the first."""
    from pipeline.io import find_table, read_table
    from pipeline.params import load_params
    from pipeline.sources.demo_crm import marginal_oracle_probability, oracle_probability

    horizon = load_params().featurize.horizon_days
    data = folder / "data" if (folder / "data").is_dir() else folder
    test = pd.read_parquet(data / "03_features" / "features.parquet", filters=[("split", "==", "test")])
    truth = pd.read_parquet(data / "00_truth" / "truth.parquet")
    opps = read_table(find_table(data / "01_raw", "opportunities"))
    opps = opps[opps["lead_id"].isin(truth["lead_id"])]
    as_of, y = pd.Timestamp(test["as_of"].iloc[0]), test["label"].astype(int).to_numpy()
    out = {}
    for name, f in (("oracle", oracle_probability), ("marginal_oracle", marginal_oracle_probability)):
        p = f(truth, opps, as_of, horizon).reindex(test["lead_id"]).to_numpy(dtype=float)
        known = ~np.isnan(p)
        out[f"{name}_roc_auc"] = round(float(roc_auc_score(y[known], p[known])), 4)
    out["n_test"] = int(len(test))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a `leadscore run --profile demo` work folder (or its data/)")
    ap.add_argument("--variants", default="base,peak,propensity,drivers,all")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    oracles = oracle_aucs(a.folder)
    print(oracles, flush=True)
    # the variants measured now replace theirs; the others are kept from the last measurement
    results = json.loads(RESULT.read_text()).get("variants", {}) if RESULT.exists() else {}
    if a.variants:
        results.update(measure(a.folder, a.variants.split(","), a.threads))
    metrics = a.folder / "data" / "06_reports" / "metrics.json"
    oracle = json.loads(metrics.read_text()).get("oracle_roc_auc") if metrics.exists() else None
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "threads": a.threads,
                                  "oracle_roc_auc": oracle, **oracles, "variants": results}, indent=2) + "\n")
    print(f"oracle ROC AUC {oracle}; written {RESULT}")


if __name__ == "__main__":
    main()
