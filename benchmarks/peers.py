"""leadscore's peers in the benchmark: what a data scientist would write in a notebook, timed beside the shipped code.

`benchmarks/run.py` runs each peer in its own child process, as it runs the stages, and reports leadscore ÷ peer:

  naive        a naive pandas scorer: read the score rows of the same feature file, predict with the same model
               (the trained model's own `predict_proba`, so the same probabilities), sort by probability, and write
               Parquet, CSV and SQLite with pandas (`to_parquet`, `to_csv`, `to_sql`). No gates, tiers, hand-over,
               CRM files or queues: the least a scorer that writes the same three formats does.
  lgbm_cv      on a real data set: a plain `LGBMClassifier()` (defaults; the benchmark's LightGBM threads) in the
               stratified 5-fold CV of the rows and columns `leadscore run` trained on (its feature table)
  logreg_cv    the same folds with a one-hot logistic regression (scikit-learn: median-imputed, standardised
               numerics; one-hot categoricals)

The folds are the project's own (`models.blend.cross_validated_auc` with `train.seed`), the rows and columns those
`models.training.cross_validate` uses (the labelled rows of the feature table `leadscore run` wrote, the columns
`models.training.model_columns` selects): every model sees the same split of the same data.

`ratios(results_dir)` reads the JSON results and returns every leadscore ÷ peer ratio with its targets;
`ratio_table` prints them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

NAIVE_TABLE = "sql_leads"
CV_FOLDS = 5
# leadscore ÷ peer, at most (2 cores). None: reported, no target.
RATIO_TARGETS = {"score_over_naive": 1.0, "score_over_floor": 3.0, "score_peak_over_naive_peak": None,
                 "run_over_lgbm_cv": 3.0, "run_peak_over_lgbm_cv_peak": None}
RUN_TARGET_SET = "uci_bank"  # the target for run ÷ plain LightGBM CV is set on UCI bank


# ------------------------------------------------------------------------------------------ (b) naive scorer
def naive_score(features_path: Path, model, out_dir: Path, model_version: str = "") -> dict:
    """Read, predict, sort, write: the notebook scorer. Returns its timings and what it wrote."""
    timings: dict[str, float] = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    df = pd.read_parquet(features_path, filters=[("split", "==", "score")])  # the rows the score stage scores
    timings["read_s"] = time.perf_counter() - t

    t = time.perf_counter()
    p = np.asarray(model.predict_proba(df[list(model.feature_names_in_)])[:, 1], dtype=float)
    timings["predict_s"] = time.perf_counter() - t

    t = time.perf_counter()
    order = np.argsort(-p, kind="stable")  # best first; ties keep the file's order
    out = pd.DataFrame({
        "lead_id": df["lead_id"].astype(str).to_numpy()[order],
        "account_id": df["account_id"].astype(str).to_numpy()[order] if "account_id" in df else None,
        "rank": np.arange(1, len(p) + 1),
        "score": np.rint(100 * p[order]).astype(int),
        "p_convert": p[order].round(6),
        "as_of": df["as_of"].to_numpy()[order] if "as_of" in df else pd.NaT,
        "model_version": model_version,
        "scored_at": pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None),
    })
    del df
    timings["sort_s"] = time.perf_counter() - t

    t = time.perf_counter()
    out.to_parquet(out_dir / f"{NAIVE_TABLE}.parquet", index=False)
    timings["parquet_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out.to_csv(out_dir / f"{NAIVE_TABLE}.csv", index=False)
    timings["csv_s"] = time.perf_counter() - t
    t = time.perf_counter()
    con = sqlite3.connect(out_dir / "leadscore.db")
    try:
        out.to_sql(NAIVE_TABLE, con, if_exists="replace", index=False)
        con.commit()
    finally:
        con.close()
    timings["sqlite_s"] = time.perf_counter() - t
    return {"rows": int(len(out)), "columns": int(out.shape[1]), **{k: round(v, 2) for k, v in timings.items()}}


# --------------------------------------------------------------------------------- (a) real-data CV peers
def labelled_rows(features_path: Path, train_cfg) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """(X, y, columns): the labelled rows (train + test splits) of the feature table `leadscore run` wrote and the
    columns its model reads: the rows and columns of its cross-validation (`models.training.cross_validate`)."""
    from features.build import feature_columns
    from models.training import model_columns

    table = pd.read_parquet(features_path, filters=[("split", "in", ["train", "test"])])
    labelled = table.reset_index(drop=True)
    cols, _ = model_columns(feature_columns(labelled), train_cfg)
    return labelled[cols], labelled["label"].astype(int).to_numpy(), cols


def lightgbm_fitter(threads: int, seed: int | None = None):
    """A plain LGBMClassifier with its defaults (threads set; quiet)."""
    import lightgbm as lgb

    def fit(X: pd.DataFrame, y: np.ndarray, _extra=None):
        kwargs = {"n_jobs": threads, "verbose": -1}
        if seed is not None:
            kwargs["random_state"] = seed
        return lgb.LGBMClassifier(**kwargs).fit(X, y)

    return fit


def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s.dtype)


def logistic_fitter():
    """One-hot logistic regression: median-imputed, standardised numerics; one-hot categoricals (missing its own
    level, unseen levels ignored)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    class _Logistic:
        def fit(self, X: pd.DataFrame, y: np.ndarray):
            self.categorical = [c for c in X.columns if _is_categorical(X[c])]
            self.numeric = [c for c in X.columns if c not in self.categorical]
            prep = ColumnTransformer([
                ("num", Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                  ("scale", StandardScaler())]), self.numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), self.categorical),
            ])
            self.pipeline = Pipeline([("prep", prep), ("lr", LogisticRegression(max_iter=2000))])
            self.pipeline.fit(self._prepare(X), y)
            return self

        def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
            out = X.copy()
            for c in self.categorical:
                out[c] = out[c].astype(object).where(out[c].notna(), "(missing)").astype(str)
            for c in self.numeric:
                out[c] = out[c].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            return out

        def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
            return self.pipeline.predict_proba(self._prepare(X))

    return lambda X, y, _extra=None: _Logistic().fit(X, y)


def cv_peer(kind: str, features_path: Path, train_cfg, threads: int, n_folds: int = CV_FOLDS) -> dict:
    """The peer's stratified k-fold CV AUC on leadscore's rows and columns, in the project's folds; `cv_s` is the
    folds' fits and predictions (the data already in memory), `read_s` reading the feature table."""
    from models.blend import cross_validated_auc

    t = time.perf_counter()
    X, y, cols = labelled_rows(features_path, train_cfg)
    read_s = time.perf_counter() - t
    fitter = lightgbm_fitter(threads) if kind == "lgbm_cv" else logistic_fitter()
    t = time.perf_counter()
    folds = cross_validated_auc(fitter, X, y, n_folds, train_cfg.seed)
    cv_s = time.perf_counter() - t
    return {"peer": kind, "cv_roc_auc": round(float(np.mean(folds)), 4), "cv_roc_auc_folds": [round(f, 4) for f in folds],
            "rows": int(len(y)), "columns": len(cols), "positives": int(y.sum()), "folds": n_folds,
            "seed": int(train_cfg.seed), "lightgbm_threads": threads if kind == "lgbm_cv" else None,
            "read_s": round(read_s, 2), "cv_s": round(cv_s, 2)}


# -------------------------------------------------------------------------------------------- the ratios
def _ok(stage: dict | None) -> bool:
    return bool(stage and stage.get("ok") and "seconds" in stage and not stage.get("detail", {}).get("skipped"))


def _ratio(a, b) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _loads(*stages: dict) -> list[float]:
    """The 1-minute load averages at start and end of the stages, in order."""
    out = []
    for s in stages:
        out.append(s.get("load_avg_at_start", [None])[0])
        out.append(s.get("load_avg_at_end", [None])[0])
    return [x for x in out if x is not None]


def scoring_ratios(doc: dict) -> dict:
    """score ÷ naive peer, score ÷ floor and peak memory score ÷ naive from one bench_<size>.json."""
    st = doc.get("stages", {})
    score, naive, floor = st.get("score"), st.get("naive"), st.get("floor")
    out = {}
    if _ok(score) and _ok(naive):
        out["score_over_naive"] = _ratio(score["seconds"], naive["seconds"])
        # the stage's own peak plus its forked SQL writer's private memory (an upper bound of the process tree's)
        writer = score.get("detail", {}).get("sql_writer_private_gb", 0.0)
        out["score_peak_over_naive_peak"] = _ratio(score["peak_rss_gb"] + writer, naive["peak_rss_gb"])
        out["score_cpu_over_naive_cpu"] = _ratio(score["cpu_s"], naive["cpu_s"])
        out["score_s"], out["naive_s"] = score["seconds"], naive["seconds"]
    if _ok(score) and _ok(floor):
        floor_s = floor["detail"]["read_s"] + floor["detail"]["predict_s"]
        out["score_over_floor"] = _ratio(score["seconds"], floor_s)
        out["floor_s"] = round(floor_s, 2)
    return _stamped(out, score, naive, floor)


def _stamped(out: dict, *stages: dict | None) -> dict:
    """`out` with the load averages and measurement times of the stages that ran (the ratios' conditions)."""
    used = [s for s in stages if _ok(s)]
    if used:
        out["load_1m"] = _loads(*used)
        out["measured_at"] = sorted(s.get("measured_at", "") for s in used)
    return out


def real_ratios(entry: dict) -> dict:
    """run ÷ plain LightGBM CV (wall and peak memory) and the CV AUC of each model, for one real data set."""
    run, lgbm, logreg = entry.get("run"), entry.get("lgbm_cv"), entry.get("logreg_cv")
    out = {}
    if _ok(run):
        out["leadscore_cv_roc_auc"] = run["detail"].get("cv_roc_auc")
        out["run_s"] = run["detail"].get("run_s", run["seconds"])
    if _ok(lgbm):
        out["lgbm_cv_roc_auc"] = lgbm["detail"]["cv_roc_auc"]
        out["lgbm_cv_s"] = lgbm["detail"]["cv_s"]
    if _ok(logreg):
        out["logreg_cv_roc_auc"] = logreg["detail"]["cv_roc_auc"]
        out["logreg_cv_s"] = logreg["detail"]["cv_s"]
    if _ok(run) and _ok(lgbm):
        out["run_over_lgbm_cv"] = _ratio(out["run_s"], out["lgbm_cv_s"])
        out["run_peak_over_lgbm_cv_peak"] = _ratio(run["peak_rss_gb"], lgbm["peak_rss_gb"])
        out["run_cpu_over_lgbm_cv_cpu"] = _ratio(run["cpu_s"], lgbm["cpu_s"])  # whole processes, imports included
        # whole processes against each other: each starts Python, imports, reads its input and does its job
        if run.get("process_wall_s") and lgbm.get("process_wall_s"):
            out["run_process_over_lgbm_cv_process"] = _ratio(run["process_wall_s"], lgbm["process_wall_s"])
            out["run_process_s"], out["lgbm_cv_process_s"] = run["process_wall_s"], lgbm["process_wall_s"]
    return _stamped(out, run, lgbm, logreg)


def ratios(results_dir: Path) -> dict:
    """Every leadscore ÷ peer ratio the JSON results in `results_dir` hold: per size (bench_<size>.json) and per
    real data set (real_peers.json), with the targets and the machine of the latest results."""
    results_dir = Path(results_dir)
    out: dict = {"targets": RATIO_TARGETS, "scoring": {}, "real": {}}
    machines = []
    for path in sorted(results_dir.glob("bench_*.json"), key=lambda p: int(p.stem.split("_")[1])):
        doc = json.loads(path.read_text())
        found = scoring_ratios(doc)
        if "score_over_naive" in found or "score_over_floor" in found:
            out["scoring"][str(doc["size"])] = found
            machines.append(doc.get("machine"))
    real = results_dir / "real_peers.json"
    if real.exists():
        doc = json.loads(real.read_text())
        for name, entry in doc.get("sets", {}).items():
            found = real_ratios(entry)
            if found:
                out["real"][name] = found
        machines.append(doc.get("machine"))
    machines = [m for m in machines if m]
    if machines:
        out["machine"] = machines[-1]
    return out


def _fmt(x, digits: int = 2) -> str:
    return "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float | int) else str(x))


def _load(s: dict) -> str:
    loads = s.get("load_1m") or []
    return f"{_fmt(loads[0])} → {_fmt(loads[-1])}" if loads else "?"


def _when(s: dict) -> str:
    days = sorted({t[:10] for t in s.get("measured_at", []) if t})
    return f" ({', '.join(days)})" if days else ""


def _verdict(value, target) -> str:
    if value is None or target is None:
        return ""
    return "met" if value <= target else "missed"


def ratio_table(r: dict) -> str:
    """The ratios as a Markdown table (leadscore ÷ peer; target; verdict; load at the stages' start and end)."""
    lines = []
    m = r.get("machine")
    if m:
        lines.append(f"Machine: {m.get('cpu')}, {m.get('nproc')} cores, LightGBM threads {m.get('lightgbm_threads')}. "
                     "Load: the 1-minute load average at the start of the first and the end of the last stage "
                     "compared.\n")
    lines.append("| ratio (leadscore ÷ peer) | where | value | target | verdict | leadscore / peer | CPU-time ratio "
                 "| load (1 min) |")
    lines.append("|---|---|---|---|---|---|---|---|")
    t = r.get("targets", RATIO_TARGETS)
    for size, s in r.get("scoring", {}).items():
        where = f"{int(size):,} leads{_when(s)}"
        load = _load(s)
        if "score_over_naive" in s:
            lines.append(f"| score ÷ naive pandas scorer | {where} | **{_fmt(s['score_over_naive'])}** | "
                         f"≤ {t['score_over_naive']} | {_verdict(s['score_over_naive'], t['score_over_naive'])} | "
                         f"{s['score_s']} s / {s['naive_s']} s | {_fmt(s.get('score_cpu_over_naive_cpu'))} | {load} |")
            lines.append(f"| score ÷ naive, peak memory | {where} | **{_fmt(s['score_peak_over_naive_peak'])}** | – | "
                         f" | | | {load} |")
        if "score_over_floor" in s:
            lines.append(f"| score ÷ read + predict floor | {where} | **{_fmt(s['score_over_floor'])}** | "
                         f"≤ {t['score_over_floor']} | {_verdict(s['score_over_floor'], t['score_over_floor'])} | "
                         f"– / {s['floor_s']} s | | {load} |")
    for name, s in r.get("real", {}).items():
        load = _load(s)
        where = f"{name}{_when(s)}"
        if "run_over_lgbm_cv" in s:
            target = t["run_over_lgbm_cv"] if name == RUN_TARGET_SET else None
            lines.append(f"| run ÷ plain LightGBM 5-fold CV | {where} | **{_fmt(s['run_over_lgbm_cv'])}** | "
                         f"{'≤ ' + str(target) if target else '–'} | {_verdict(s['run_over_lgbm_cv'], target)} | "
                         f"{s['run_s']} s / {s['lgbm_cv_s']} s | {_fmt(s.get('run_cpu_over_lgbm_cv_cpu'))} | {load} |")
            if "run_process_over_lgbm_cv_process" in s:
                lines.append(f"| run process ÷ plain LightGBM CV process (start, imports, read included) | {where} | "
                             f"**{_fmt(s['run_process_over_lgbm_cv_process'])}** | – | | "
                             f"{s['run_process_s']} s / {s['lgbm_cv_process_s']} s | | {load} |")
            lines.append(f"| run ÷ plain LightGBM CV, peak memory | {where} | "
                         f"**{_fmt(s['run_peak_over_lgbm_cv_peak'])}** | – | | | | {load} |")
    if r.get("real"):
        lines.append("\n| real data set | leadscore `run` CV AUC | plain LightGBM | logistic one-hot | "
                     "run s | LightGBM CV s | logistic CV s |")
        lines.append("|---|---|---|---|---|---|---|")
        for name, s in r["real"].items():
            aucs = [_fmt(s.get(k), 3) for k in ("leadscore_cv_roc_auc", "lgbm_cv_roc_auc", "logreg_cv_roc_auc")]
            secs = [_fmt(s.get(k), 1) for k in ("run_s", "lgbm_cv_s", "logreg_cv_s")]
            lines.append(f"| {name} | " + " | ".join(aucs + secs) + " |")
    return "\n".join(lines)
