"""Stage `train`: fit the calibrated conversion model and its baselines on earlier snapshots, log them to MLflow.

The model is logged as one pyfunc (models/pyfunc.py: fitted model + gates + decision policy) and registered;
the first registered version becomes `champion`, later ones `challenger` until `leadscore promote` moves the
alias. With fewer than `train.min_positives` conversions the logistic baseline is the model, and the run says
why (tag `fallback_reason`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from features.build import CATEGORICAL_FEATURES, feature_columns
from features.sets import select_feature_set
from models.baselines import LogisticBaseline, PointsRuleScore
from models.conversion import BoosterConfig, ConversionModel
from models.evaluate import classification_metrics
from models.pyfunc import LeadScoreModel
from models.sampling import downsample_negatives, stratified_sample
from pipeline import tracking
from pipeline.io import read_json, write_atomic, write_json
from pipeline.params import ScoreParams, TrainParams
from pipeline.progress import log

MODEL_FILE = "model.joblib"
BASELINES_FILE = "baselines.joblib"
MODEL_INFO = "model_info.json"
CHAMPION, CHALLENGER = "champion", "challenger"


VALIDATION_GROUP_SHARE = 0.25


def split_train_validation(table: pd.DataFrame, group_share: float = 0.0,
                           seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier training snapshots to fit on, the latest one as the (later) validation period — split by account.

    The same lead (and account) appears in many monthly snapshots with the same outcome ahead of it, so a
    validation snapshot of leads the trees have already seen rewards memorising them (account fingerprints such
    as exact size and revenue): early stopping then picks far too many trees. A random `group_share` of the
    accounts (leads when there is no account_id) is held out: only their rows of the latest snapshot validate,
    and none of their rows are fitted on. `group_share = 0` (the default, for other callers) gives the plain
    temporal split; the `train` stage uses VALIDATION_GROUP_SHARE.
    """
    train = table[table["split"] == "train"]
    dates = sorted(train["as_of"].unique())
    if len(dates) < 2:
        return train, train.iloc[0:0]
    earlier, latest = train[train["as_of"] < dates[-1]], train[train["as_of"] == dates[-1]]
    if group_share <= 0:
        return earlier, latest
    key = "account_id" if "account_id" in train else "lead_id"
    groups = pd.Index(train[key].dropna().unique()).sort_values()
    rng = np.random.default_rng(seed)
    held = set(groups[rng.random(len(groups)) < group_share])
    return earlier[~earlier[key].isin(held)], latest[latest[key].isin(held)]


def learning_rate_for(n_rows: int, p: TrainParams) -> float:
    """The booster's learning rate for `n_rows` fitted rows: `large_data_learning_rate` from `large_data_rows` on.

    A million leads give ~2M snapshot rows: at the small-data rate of 0.02 early stopping wants ~1,300 trees
    (a 5-minute fit and a slow scorer) where 0.1 reaches the same validation AUC with about a fifth of them.
    The demo (tens of thousands of rows) keeps the rate it was tuned with.
    """
    return p.large_data_learning_rate if n_rows >= p.large_data_rows else p.learning_rate


def negative_sample_for(y: np.ndarray, p: TrainParams) -> tuple[np.ndarray, np.ndarray]:
    """Rows (and weights) the booster fits on: all of them below `large_data_rows`; from there on every positive
    and a `large_data_negative_rate` share of the negatives, weighted 1 / rate so the probabilities stay those of
    the full data (the calibrator is fitted on the untouched validation period all the same)."""
    if len(y) < p.large_data_rows:
        return np.arange(len(y)), np.ones(len(y))
    return downsample_negatives(y, p.large_data_negative_rate, seed=p.seed)


def booster_config(p: TrainParams, *, n_rows: int = 0, **overrides) -> BoosterConfig:
    config = BoosterConfig(
        learning_rate=learning_rate_for(n_rows, p), num_leaves=p.num_leaves, min_child_samples=p.min_child_samples,
        n_estimators=p.n_estimators, early_stopping_rounds=p.early_stopping_rounds, subsample=p.subsample,
        colsample_bytree=p.colsample_bytree, reg_lambda=p.reg_lambda, n_jobs=p.n_jobs, seed=p.seed,
        monotone_increasing=tuple(p.monotone_increasing), boost_from_logistic=p.boost_from_logistic,
        logistic_C=p.logistic_C, blend_logistic=p.blend_logistic, logistic_max_rows=p.baseline_max_rows,
    )
    return dataclasses.replace(config, **overrides)


def fallback_reason(n_positives: int, p: TrainParams) -> str | None:
    """Why the logistic baseline replaces LightGBM, or None when there are conversions enough."""
    if n_positives < p.min_positives:
        return (f"only {n_positives} conversions in the training snapshots (train.min_positives = "
                f"{p.min_positives}): too few for a boosted model, using the regularised logistic regression")
    return None


def tune_config(fit_part: pd.DataFrame, val_part: pd.DataFrame, cols: list[str], p: TrainParams) -> tuple[BoosterConfig, dict]:
    """Optuna search of the booster's shape on the validation period, bounded by trials and time."""
    try:
        import optuna
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("train.tune = true needs optuna: pip install -e '.[tune]'") from exc
    from sklearn.metrics import roc_auc_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    y_fit, y_val = fit_part["label"].astype(int), val_part["label"].astype(int).to_numpy()

    def objective(trial) -> float:
        cfg = booster_config(
            p, learning_rate=trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
            num_leaves=trial.suggest_int("num_leaves", 7, 63, log=True),
            min_child_samples=trial.suggest_int("min_child_samples", 20, 500, log=True),
            colsample_bytree=trial.suggest_float("colsample_bytree", 0.3, 1.0),
            reg_lambda=trial.suggest_float("reg_lambda", 1e-2, 30.0, log=True),
        )
        model = ConversionModel(cfg, calibration="none").fit(fit_part[cols], y_fit, val_part[cols], y_val)
        trial.set_user_attr("best_iteration", model.best_iteration_)
        return float(roc_auc_score(y_val, model.predict_proba(val_part[cols])[:, 1]))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=p.seed))
    study.optimize(objective, n_trials=p.tune_trials, timeout=p.tune_timeout_seconds)
    best = study.best_trial
    log(f"tuning: {len(study.trials)} trials, best validation AUC {best.value:.4f} with {best.params}")
    return booster_config(p, **best.params), {"tune_trials_run": len(study.trials), "tune_best_val_auc": best.value,
                                              **{f"tuned_{k}": v for k, v in best.params.items()}}


def run(features_path: Path, out_dir: Path, reports_dir: Path, p: TrainParams, source_tag: str = "demo",
        score_params: ScoreParams | None = None) -> dict:
    # Only the training snapshots: test and score rows are other stages' business (and most of the memory).
    table = pd.read_parquet(features_path, filters=[("split", "==", "train")])
    fit_part, val_part = split_train_validation(table, VALIDATION_GROUP_SHARE, seed=p.seed)
    example_rows = table.head(200)
    table_columns = feature_columns(table)
    # Below large_data_rows the final model is refitted on every training row: keep them; else free the memory.
    refit_table = table if p.refit_full and len(fit_part) < p.large_data_rows else None
    del table
    excluded = set(p.exclude_features)
    unknown = sorted(excluded - set(table_columns))
    if unknown:
        log(f"train.exclude_features: {unknown} not in the feature table (ignored)")
    cols = [c for c in select_feature_set(table_columns, p.feature_set) if c not in excluded]
    y_fit = fit_part["label"].astype(int)
    y_val = val_part["label"].astype(int)
    n_positives = int(y_fit.sum() + y_val.sum())
    reason = fallback_reason(n_positives, p)

    start = time.perf_counter()
    extra: dict = {}
    if reason:
        log(f"small data: {reason}")
        model = LogisticBaseline(C=p.logistic_C).fit(pd.concat([fit_part[cols], val_part[cols]]), pd.concat([y_fit, y_val]))
        model_kind = "logistic_fallback"
    else:
        config = booster_config(p, n_rows=len(fit_part))
        if p.tune and len(val_part) and y_val.nunique() == 2:
            config, extra = tune_config(fit_part, val_part, cols, p)
        rows, weight = negative_sample_for(y_fit.to_numpy(), p)
        if len(rows) < len(fit_part):
            log(f"large data: fitting the trees on all {int(y_fit.sum()):,} positives and "
                f"{p.large_data_negative_rate:.0%} of the negatives ({len(rows):,} of {len(fit_part):,} rows, "
                f"negatives weighted {1 / p.large_data_negative_rate:.2f})")
            extra["n_fit_rows_sampled"] = int(len(rows))
        model = ConversionModel(config, calibration=p.calibration).fit(
            fit_part.iloc[rows][cols], y_fit.iloc[rows], val_part[cols], y_val,
            sample_weight=None if len(rows) == len(fit_part) else weight)
        model_kind = "lightgbm"
    fit_seconds = time.perf_counter() - start
    # Baselines are yardsticks, not the model: a stratified sample of at most baseline_max_rows rows fits them
    # (the logistic regression on 2M rows alone took longer than the boosted model at 1M leads).
    sample = stratified_sample(y_fit.to_numpy(), p.baseline_max_rows, seed=p.seed)
    X_base, y_base = fit_part.iloc[sample][cols], y_fit.iloc[sample]
    baselines = {"logistic": LogisticBaseline(C=p.logistic_C).fit(X_base, y_base),
                 "points_rule": PointsRuleScore().fit(X_base, y_base)}
    del X_base
    # Validation scores of the models fitted without the validation period (before any refit): an honest comparison.
    scored_validation = len(val_part) > 0 and y_val.nunique() == 2
    validation_scores = {"model": model.predict_proba(val_part[cols])[:, 1],
                         **{n: b.predict_proba(val_part[cols])[:, 1] for n, b in baselines.items()}} \
        if scored_validation else {}

    refit_rows = 0
    if refit_table is not None:
        # Early stopping and calibration held the latest snapshot's validation accounts out; now that trees, blend
        # weight and calibrator are chosen, every training row goes into the final fit (model and baselines
        # alike, so the held-out comparison stays fair). Large tables skip this: the hold-out costs them little.
        X_all, y_all = refit_table[cols], refit_table["label"].astype(int)
        del refit_table
        start = time.perf_counter()
        model = model.refit(X_all, y_all) if hasattr(model, "refit") else \
            LogisticBaseline(C=p.logistic_C).fit(X_all, y_all)
        fit_seconds += time.perf_counter() - start
        baselines = {"logistic": LogisticBaseline(C=p.logistic_C).fit(X_all, y_all),
                     "points_rule": PointsRuleScore().fit(X_all, y_all)}
        refit_rows = len(X_all)
        del X_all

    metrics = {"fit_seconds": round(fit_seconds, 2), "best_iteration": int(getattr(model, "best_iteration_", 0)),
               "n_train": int(len(fit_part)), "n_validation": int(len(val_part)), "n_positives": n_positives,
               "n_features": len(cols), "model_kind": model_kind, "n_baseline_rows": int(len(sample)),
               **extra}
    if reason:
        metrics["fallback_reason"] = reason
    else:
        metrics["calibration"] = model.calibration_
        metrics["learning_rate"] = float(model.config.learning_rate)
    if refit_rows:
        metrics["n_refit_rows"] = int(refit_rows)
    if scored_validation:
        val = classification_metrics(y_val, validation_scores["model"])
        metrics.update({f"validation_{k}": v for k, v in val.items() if k in ("roc_auc", "pr_auc", "brier", "ece")})
        for name in baselines:
            metrics[f"validation_baseline_{name}_roc_auc"] = classification_metrics(
                y_val, validation_scores[name])["roc_auc"]
    if getattr(model, "blend_model_", None) is not None:
        metrics["blend_weight_trees"] = float(model.blend_weight_)
    log(f"trained {model_kind} on {len(fit_part):,} rows in {fit_seconds:.1f}s ({p.n_jobs} threads), "
        f"{metrics['best_iteration']} trees, validation AUC {metrics.get('validation_roc_auc', float('nan')):.4f}")

    out_dir = Path(out_dir)
    write_atomic(out_dir / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))
    write_atomic(out_dir / BASELINES_FILE, lambda tmp: joblib.dump(baselines, tmp))
    bundle = pyfunc_bundle(model, score_params)
    info = log_to_mlflow(bundle, example_rows, metrics, p, source_tag, features_path)
    write_json(info, out_dir / MODEL_INFO)
    write_json(metrics, Path(reports_dir) / "train_metrics.json")
    return metrics


def pyfunc_bundle(model, score_params: ScoreParams | None) -> LeadScoreModel:
    s = score_params or ScoreParams()
    return LeadScoreModel(model, s.gates, s.threshold, s.unknown_policy, s.tiers,
                          categorical=tuple(CATEGORICAL_FEATURES))


def data_version(features_path: Path, lock_path: Path = Path("dvc.lock")) -> str:
    """The DVC hash of the features output (dvc.lock), else the md5 of the features file itself."""
    features_path = Path(features_path)
    if lock_path.exists():
        import yaml

        lock = yaml.safe_load(lock_path.read_text()) or {}
        for out in (lock.get("stages", {}).get("featurize", {}) or {}).get("outs", []) or []:
            if Path(out.get("path", "")).resolve() in (features_path.parent.resolve(), features_path.resolve()):
                return f"dvc:{out.get('md5', 'unknown')}"
    digest = hashlib.md5()  # noqa: S324 - a content fingerprint, not security
    with features_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"md5:{digest.hexdigest()}"


def log_to_mlflow(bundle: LeadScoreModel, train_rows: pd.DataFrame, metrics: dict, p: TrainParams, source_tag: str,
                  features_path: Path) -> dict:
    tracking.configure()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_experiment(p.experiment)
    rows = train_rows.head(200)
    missing = [c for c in bundle.input_columns if c not in rows.columns]
    for col in missing:  # gate columns that are not features (annual_revenue): unknown in the example
        rows = rows.assign(**{col: np.nan})
    filled = rows.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:5]
    example = bundle.input_example(rows.loc[filled])
    output = bundle.score(example)
    signature = tracking.model_signature(example, output)
    with mlflow.start_run(run_name=f"train-{source_tag}") as run:
        tags = {"git_commit": tracking.git_commit(), "source": source_tag, "stage": "train",
                "features_path": str(features_path), "data_version": data_version(features_path),
                "model_kind": metrics["model_kind"]}
        if "fallback_reason" in metrics:
            tags["fallback_reason"] = metrics["fallback_reason"]
        mlflow.set_tags(tags)
        mlflow.log_params({f"train.{k}": v for k, v in vars(p).items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)})
        logged = mlflow.pyfunc.log_model(
            name="model", python_model=bundle, signature=signature, input_example=example,
            pip_requirements=tracking.model_requirements(), code_paths=tracking.model_code_paths(),
            registered_model_name=p.registered_model,
        )
        version = getattr(logged, "registered_model_version", None)
    alias = None
    if version is not None:
        client = MlflowClient()
        try:
            client.get_model_version_by_alias(p.registered_model, CHAMPION)
            alias = CHALLENGER
        except mlflow.exceptions.MlflowException:
            alias = CHAMPION  # the first registered version
        client.set_registered_model_alias(p.registered_model, alias, str(version))
        log(f"registered {p.registered_model} version {version} as {alias}")
    return {"run_id": run.info.run_id, "experiment": p.experiment, "registered_model": p.registered_model,
            "model_version": f"{p.registered_model}/{version}" if version else run.info.run_id,
            "model_uri": logged.model_uri, "alias": alias}


def load_model(models_dir: Path) -> tuple[ConversionModel, dict]:
    models_dir = Path(models_dir)
    return joblib.load(models_dir / MODEL_FILE), read_json(models_dir / MODEL_INFO)


def load_baselines(models_dir: Path) -> dict:
    path = Path(models_dir) / BASELINES_FILE
    return joblib.load(path) if path.exists() else {}
