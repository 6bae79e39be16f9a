"""`leadscore run`: validate → featurize → train → evaluate → score one export through a profile, without DVC.

Writes into the work folder (every file atomically, and only after the input was read and mapped, so a
file-level error leaves nothing half-written):

- ``metrics.json``: held-out ``roc_auc``, ``pr_auc``, ``brier`` (time split when the data has time),
  ``cv_roc_auc`` (stratified 5-fold), ``n_train``, ``n_test``, leakage warnings, dropped columns, counts;
- ``sql_leads.parquet`` / ``.csv`` / ``leadscore.db``: the ranked table;
- ``validation.json`` and ``quarantine/<table>.csv`` (four-table exports): every bad row with its reason;
- ``model.joblib``: the fitted calibrated model.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import yaml

from features.profiles import (
    FlatData,
    Profile,
    ProfileError,
    empty_table,
    latest_date,
    map_flat,
    map_table,
    missing_source_column,
    parse_profile,
    typed_table,
)
from features.schema import BANT_CONFIRMED_COLUMNS, CONTRACT, TABLE_ORDER
from features.validation import validate_tables
from models import blend
from models.baselines import LogisticBaseline
from models.conversion import BoosterConfig, ConversionModel
from models.evaluate import classification_metrics
from models.flat import holdout_split
from models.leakage import DEFAULT_MAX_AUC, leakage_warnings
from pipeline.io import write_atomic, write_csv, write_json
from pipeline.params import Params, ScoreParams, TrainParams
from pipeline.progress import log
from pipeline.readers import InputFileError, read_export, wrong_delimiter_hint
from pipeline.validate import QuarantineLimitError

PROFILES_DIR = Path(__file__).parent / "profiles"
CV_FOLDS = 5
# Score-table columns the sub-scores read; a flat export without them gets them as missing.
SUBSCORE_COLUMNS = ("icp_industry", "icp_size", "icp_country", "seniority_level", "engagement_decayed")


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``pipeline/profiles/<name>.yaml``) or a profile YAML file by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ProfileError(f"profile {str(name_or_path)!r} not found; shipped profiles: {', '.join(available_profiles())}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML ({exc})") from None
    return parse_profile(data, path.stem)


def apply_overrides(params: Params, profile: Profile) -> Params:
    """The profile's ``overrides`` (per params section) on top of the params file; unknown fields refused."""
    sections = {}
    for section, fields in profile.overrides.items():
        if not hasattr(params, section):
            raise ProfileError(f"{profile.name}.overrides: unknown params section {section!r}")
        current = getattr(params, section)
        known = {f.name for f in dataclasses.fields(current)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ProfileError(f"{profile.name}.overrides.{section}: unknown field(s) {unknown}")
        sections[section] = dataclasses.replace(current, **{
            k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
        })
    return dataclasses.replace(params, **sections)


def booster_config(p: TrainParams, n_jobs: int | None = None) -> BoosterConfig:
    return BoosterConfig(
        learning_rate=p.learning_rate, num_leaves=p.num_leaves, min_child_samples=p.min_child_samples,
        n_estimators=p.n_estimators, early_stopping_rounds=p.early_stopping_rounds, subsample=p.subsample,
        colsample_bytree=p.colsample_bytree, reg_lambda=p.reg_lambda,
        n_jobs=p.n_jobs if n_jobs is None else n_jobs, seed=p.seed,
    )


def small_data_reason(n_positives: int, p: TrainParams) -> str | None:
    """Why the regularised logistic model replaces the blend, or None when there are conversions enough."""
    if n_positives < p.min_positives:
        return (f"only {n_positives} conversions in the training rows (train.min_positives = {p.min_positives}): "
                f"too few for a boosted model, using the regularised logistic regression")
    return None


def flat_fitter(p: TrainParams, config: BoosterConfig, reason: str | None, category_shares: bool = False):
    """``fit(X, y, time)`` for flat exports: the logistic fallback when ``reason`` says so, else the calibrated
    blend of LightGBM and the spline logistic model (choices made on an inner validation split, the latest rows
    when ``time`` is given)."""
    if reason:
        return lambda X, y, time=None: LogisticBaseline(C=p.logistic_C).fit(X, y)
    blend_config = blend.BlendConfig(booster=config, calibration=p.calibration, category_shares=category_shares)
    return lambda X, y, time=None: blend.fit_blend(X, y, blend_config, time=time)


def model_summary(model, reason: str | None) -> dict[str, Any]:
    """What was fitted and chosen, for metrics.json and the MLflow run."""
    if reason:
        return {"model_kind": "logistic_fallback", "fallback_reason": reason, "best_iteration": 0}
    out = {"model_kind": type(model).__name__, "best_iteration": int(model.best_iteration_),
           "calibration": getattr(model, "calibration_", "none")}
    if isinstance(model, blend.BlendedModel):
        out.update({"blend_weight_trees": model.blend_weight_, "logistic_C": model.logistic_C_,
                    "validation_roc_auc": round(model.validation_roc_auc_, 4)})
    return out


def _check_enough_outcomes(y: np.ndarray, cv_folds: int, path: Path, profile: Profile) -> None:
    """A plain error, before any fitting, when the labels cannot support the hold-out and the k-fold CV."""
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    need = max(cv_folds, 2)
    if min(n_pos, n_neg) < need:
        label = profile.label.column or f"{profile.label.in_file}:{profile.label.key}"
        raise ProfileError(
            f"{path}: label {label!r}: {n_pos} converted and {n_neg} not converted among {len(y)} labelled rows; "
            f"a hold-out and {cv_folds}-fold cross-validation need at least {need} of each")


def run(profile: Profile, input_path: Path, workdir: Path, params: Params, n_jobs: int | None = None,
        cv_folds: int = CV_FOLDS, track: bool = True) -> dict[str, Any]:
    """Run one export through the profile; returns the metrics written to ``workdir/metrics.json``.

    With ``track``, the run is logged to MLflow (see `log_run`): the store of env MLFLOW_TRACKING_URI, else
    ``workdir/mlflow.db``, so a run never writes into a store the caller did not choose.
    """
    start = time.perf_counter()
    params = apply_overrides(params, profile)
    input_path, workdir = Path(input_path), Path(workdir)
    if profile.kind == "flat":
        model, example, metrics = _run_flat(profile, input_path, workdir, params, n_jobs, cv_folds)
        gates = dict(profile.gates)
    else:
        model, example, metrics = _run_tables(profile, input_path, workdir, params, n_jobs, cv_folds)
        gates = dict(params.score.gates)
    metrics.update({"profile": profile.name, "kind": profile.kind, "input": str(input_path),
                    "n_jobs": params.train.n_jobs if n_jobs is None else n_jobs,
                    "seconds": round(time.perf_counter() - start, 1)})
    if track:
        metrics["mlflow"] = log_run(profile, params, model, example, gates, metrics, workdir)
    write_json(metrics, workdir / "metrics.json")
    log(f"{profile.name}: held-out ROC AUC {metrics['roc_auc']:.4f} ({metrics['split']} split), "
        f"{cv_folds}-fold CV ROC AUC {metrics['cv_roc_auc']:.4f}; wrote {workdir / 'metrics.json'}")
    return metrics


# --------------------------------------------------------------------------------------------------
# Flat one-row-per-lead exports


def _input_file(input_path: Path, name: str | None) -> Path:
    if input_path.is_dir():
        if not name:
            raise ProfileError(f"{input_path}: a folder was given, but the profile names no file")
        return input_path / name
    return input_path


def _run_flat(profile: Profile, input_path: Path, workdir: Path, params: Params, n_jobs: int | None,
              cv_folds: int) -> dict[str, Any]:
    path = _input_file(input_path, profile.file)
    raw = read_export(path)
    positives = None
    if profile.label.in_file:
        label_path = (input_path if input_path.is_dir() else input_path.parent) / profile.label.in_file
        label_raw = read_export(label_path)
        if profile.label.key not in label_raw.columns:
            raise ProfileError(f"{label_path}: column {profile.label.key!r} missing")
        positives = set(label_raw[profile.label.key].dropna().astype(str))
    missing = [c for c in profile.source_columns() if c not in raw.columns]
    if missing:
        raise ProfileError(f"{path}: column {missing[0]!r} missing{wrong_delimiter_hint(raw, missing[0])}; "
                           f"the file has {list(raw.columns)[:12]}")
    data = map_flat(raw, profile, positives, source=str(path))
    labelled = data.y.notna().to_numpy()
    if labelled.sum() == 0 or data.y[labelled].nunique() < 2:
        raise ProfileError(f"{path}: column {profile.label.column or profile.label.key!r}: the label needs both "
                           f"outcomes among labelled rows")
    X = data.X[labelled].reset_index(drop=True)
    y = data.y[labelled].astype(int).to_numpy()
    t = data.time[labelled].reset_index(drop=True) if data.time is not None else None
    _check_enough_outcomes(y, cv_folds, path, profile)
    warnings = _leak_check(X, y)

    config = booster_config(params.train, n_jobs)
    train_idx, test_idx = holdout_split(y, t, 0.2, config.seed)
    if len(np.unique(y[test_idx])) < 2 or len(np.unique(y[train_idx])) < 2:
        raise ProfileError(f"{path}: the {'latest' if t is not None else 'random'} 20% hold-out of {len(y):,} "
                           f"labelled rows does not hold both outcomes; more labelled rows are needed")
    reason = small_data_reason(int(y[train_idx].sum()), params.train)
    if reason:
        log(f"{profile.name}: {reason}")
    fit = flat_fitter(params.train, config, reason, profile.category_shares)
    t_train = t.iloc[train_idx].reset_index(drop=True) if t is not None else None
    model = fit(X.iloc[train_idx].reset_index(drop=True), y[train_idx], t_train)
    p_test = model.predict_proba(X.iloc[test_idx])[:, 1]
    held_out = classification_metrics(y[test_idx], p_test, params.evaluate.top_fraction)
    # every fold fits the same kind of model, choosing its own trees, L2, blend weight and calibrator inside the
    # training folds (no time inside a fold: stratified folds mix periods anyway)
    folds = blend.cross_validated_auc(lambda Xf, yf, _g: fit(Xf, yf, None), X, y, cv_folds, config.seed)

    # Score the open (unlabelled) leads; without any, the held-out leads the model has not seen.
    if (~labelled).any():
        score_rows, scored_what = np.flatnonzero(~labelled), "unlabelled leads"
    else:
        score_rows, scored_what = np.flatnonzero(labelled)[test_idx], "held-out leads (no unlabelled rows)"
    as_of = pd.Timestamp(profile.export_date) if profile.export_date != "auto" else pd.Timestamp.now().normalize()
    scored = _score_flat(data, score_rows, model, params.score, profile, as_of, workdir)
    write_atomic(workdir / "model.joblib", lambda tmp: joblib.dump(model, tmp))
    return model, X.iloc[train_idx], {
        **_headline(held_out, folds),
        "split": "time" if t is not None else "stratified random",
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "n_features": int(X.shape[1]),
        "features": list(X.columns),
        **model_summary(model, reason),
        "rows_in": int(len(raw)),
        "n_unlabelled": int((~labelled).sum()),
        "n_scored": int(len(scored)),
        "scored": scored_what,
        "dropped_leaky_columns": dict(profile.drop),
        "leakage_warnings": warnings,
    }


def _score_flat(data: FlatData, rows_idx: np.ndarray, model: ConversionModel, p: ScoreParams, profile: Profile,
                as_of: pd.Timestamp, workdir: Path) -> pd.DataFrame:

    rows = data.X.iloc[rows_idx].reset_index(drop=True).copy()
    rows.insert(0, "lead_id", data.ids.iloc[rows_idx].to_numpy())
    rows.insert(1, "account_id", pd.Series([None] * len(rows), dtype="string"))
    rows["as_of"] = as_of
    for col in (*SUBSCORE_COLUMNS, *BANT_CONFIRMED_COLUMNS):
        if col not in rows:
            rows[col] = np.nan
    # Without BANT mappings every gate is unknown (a missing answer is not a "no"): the call queue decides.
    # (the condition reads the always-missing confirmation column, so it is unknown, not false)
    gates = dict(profile.gates) or {
        name.split("_")[1]: {"confirmed": name, "any": [{"column": name, "op": "==", "value": 1}]}
        for name in BANT_CONFIRMED_COLUMNS
    }
    p = dataclasses.replace(p, gates=gates)
    accounts = pd.DataFrame({"account_id": pd.Series(dtype="string"), "employees": pd.Series(dtype=float)})
    opportunities = pd.DataFrame({"account_id": pd.Series(dtype="string"), "stage": pd.Series(dtype="string"),
                                  "closed_at": pd.Series(dtype="datetime64[ns]"), "amount": pd.Series(dtype=float)})
    return _score_and_export(rows, model, accounts, opportunities, p, profile, workdir)


def _score_and_export(rows: pd.DataFrame, model: ConversionModel, accounts: pd.DataFrame,
                      opportunities: pd.DataFrame, p: ScoreParams, profile: Profile, workdir: Path) -> pd.DataFrame:
    """The score stage's own code: ranked table, hand-over, every export (sql_leads.parquet among them)."""
    from pipeline.score import finish, new_scoring_run_id, score_frame

    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    scored = score_frame(rows, model, accounts, opportunities, p, f"local:{profile.name}", "-", scored_at,
                         new_scoring_run_id())
    finish(scored, rows, model, p, workdir, workdir, None, None, None)
    return scored


# --------------------------------------------------------------------------------------------------
# Four-table exports


def read_mapped_tables(profile: Profile, input_dir: Path) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The contract tables mapped from the export folder; a table the profile does not map is empty."""
    if not input_dir.is_dir():
        raise InputFileError(f"{input_dir}: a four-table profile needs the export folder, not a file")
    mapped, rows_read = {}, {}
    for table in TABLE_ORDER:
        if table not in profile.tables:
            mapped[table] = empty_table(table)
            continue
        spec = profile.tables[table]
        frames = []
        for fname in spec.files:
            df = read_export(input_dir / fname)
            missing = missing_source_column(list(df.columns), profile, table)
            if missing:
                raise ProfileError(
                    f"{input_dir / fname}: column {missing[0]!r} (contract {table}.{missing[1]}) missing"
                    f"{wrong_delimiter_hint(df, missing[0].split(' or ')[0])}; the file has {list(df.columns)[:12]}")
            frames.append(df)
        mapped[table] = map_table(frames, profile, table)
        rows_read[table] = sum(len(f) for f in frames)
    return mapped, rows_read


def validate_export(profile: Profile, input_dir: Path, params: Params, workdir: Path | None = None):
    """Read, map and validate a four-table export: (mapped tables, export date, validated contract, result).

    With ``workdir``, the quarantine files and ``validation.json`` are written there; over the quarantine
    limit ``QuarantineLimitError`` names the checks that failed most.
    """
    mapped, _ = read_mapped_tables(profile, input_dir)
    if profile.export_date == "auto":
        export_date = latest_date({k: v for k, v in mapped.items() if len(v)}, not_after=pd.Timestamp.now())
    else:
        export_date = pd.Timestamp(profile.export_date)
    present = {name: CONTRACT[name] for name in TABLE_ORDER if len(mapped[name]) or name != "activities"}
    result = validate_tables({k: mapped[k] for k in present}, export_date, contract=present,
                             engine=params.validate.engine)
    report = {**result.to_dict(), "export_date": str(export_date.date())}
    if workdir is not None:
        for name in present:
            write_csv(result.quarantine[name], Path(workdir) / "quarantine" / f"{name}.csv")
        write_json(report, Path(workdir) / "validation.json")
    for name in present:
        c = result.counts[name]
        log(f"{name}: {c['rows_in']:,} in = {c['valid']:,} valid + {c['quarantined']:,} quarantined")
    share = result.quarantined_share()
    if share > params.validate.max_quarantine_share:
        worst = sorted(((n, chk, k) for n, f in result.failures.items() for chk, k in f.items() if k),
                       key=lambda x: -x[2])[:5]
        detail = "; ".join(f"{n}.{chk}: {k:,} rows" for n, chk, k in worst)
        where = f" See {Path(workdir) / 'quarantine'}." if workdir is not None else ""
        raise QuarantineLimitError(
            f"{share:.1%} of rows quarantined, above the limit of {params.validate.max_quarantine_share:.1%} "
            f"(validate.max_quarantine_share). Most failed checks: {detail}.{where}")
    return mapped, export_date, present, result


def _run_tables(profile: Profile, input_dir: Path, workdir: Path, params: Params, n_jobs: int | None,
                cv_folds: int) -> dict[str, Any]:
    from features.build import build_feature_table, feature_columns, prepare_crm, snapshot_dates
    from pipeline.featurize import feature_config
    from pipeline.train import VALIDATION_GROUP_SHARE, split_train_validation

    mapped, export_date, present, result = validate_export(profile, input_dir, params, workdir)
    valid = {name: typed_table(result.valid[name], name) if name in present else mapped[name] for name in TABLE_ORDER}
    config = feature_config(params.featurize)
    crm = prepare_crm(**valid, icp=config.icp)
    f = params.featurize
    dates = snapshot_dates(export_date, f.horizon_days, f.snapshot_every_days, f.n_train_snapshots)
    table = build_feature_table(crm, dates, config)
    cols = [c for c in feature_columns(table) if c not in set(params.train.exclude_features)]
    labelled = table[table["split"] != "score"].reset_index(drop=True)
    for split in ("train", "test"):
        part = labelled[labelled["split"] == split]
        if part["label"].nunique() < 2:
            raise ProfileError(
                f"{input_dir}: the {split} snapshots ({', '.join(str(d.date()) for d in dates[split])}) have "
                f"{len(part):,} rows but not both outcomes; check export_date and featurize.horizon_days")
    warnings = _leak_check(labelled[cols], labelled["label"].astype(int).to_numpy())

    config_b = booster_config(params.train, n_jobs)
    # early stopping and calibration on the latest training snapshot's held-out accounts (leads without an
    # account: held-out leads), none of whose rows are fitted on: as the `train` stage does
    fit_part, val_part = split_train_validation(table, VALIDATION_GROUP_SHARE, seed=config_b.seed)
    reason = small_data_reason(int(fit_part["label"].astype(int).sum()), params.train)
    if reason:
        log(f"{profile.name}: {reason}")
    model = _fit_table_model(fit_part[cols], fit_part["label"], val_part[cols], val_part["label"], config_b,
                             params.train, reason)
    test = table[table["split"] == "test"]
    held_out = classification_metrics(test["label"].astype(int), model.predict_proba(test[cols])[:, 1],
                                      params.evaluate.top_fraction)
    # grouped folds (a lead's snapshots on one side); inside each, the validation part is whole accounts too
    account = labelled["account_id"].astype("string") if "account_id" in labelled else None
    inner_groups = (account.fillna(labelled["lead_id"].astype("string")) if account is not None
                    else labelled["lead_id"].astype("string")).to_numpy()
    lead_ids = labelled["lead_id"].astype("string").to_numpy()

    def fit_fold(Xf, yf, positions):
        fit_idx, val_idx = blend.inner_split(yf, 0.2, config_b.seed, groups=inner_groups[positions])
        return _fit_table_model(Xf.iloc[fit_idx], yf[fit_idx], Xf.iloc[val_idx], yf[val_idx], config_b,
                                params.train, reason)

    folds = blend.cross_validated_auc(fit_fold, labelled[cols], labelled["label"].astype(int).to_numpy(), cv_folds,
                                      config_b.seed, groups=lead_ids, pass_positions=True)

    rows = table[table["split"] == "score"].reset_index(drop=True)
    scored = _score_and_export(rows, model, valid["accounts"], valid["opportunities"], params.score, profile, workdir)
    write_atomic(workdir / "model.joblib", lambda tmp: joblib.dump(model, tmp))
    return model, fit_part[cols], {
        **_headline(held_out, folds),
        "split": "time",
        "export_date": str(export_date.date()),
        "n_train": int(len(fit_part) + len(val_part)),
        "n_test": int(len(test)),
        "n_features": len(cols),
        **model_summary(model, reason),
        "n_validation": int(len(val_part)),
        "n_scored": int(len(scored)),
        "n_sql": int(scored["is_sql"].sum()),
        "validation": {**result.to_dict(), "export_date": str(export_date.date())},
        "dropped_leaky_columns": dict(profile.drop),
        "leakage_warnings": warnings,
    }


def tracking_uri(workdir: Path) -> str:
    """Env MLFLOW_TRACKING_URI when set, else a sqlite store in the work folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(workdir) / 'mlflow.db').resolve()}"


def experiment_name(profile: Profile) -> str:
    return f"leadscore-run-{profile.name}"


def log_run(profile: Profile, params: Params, model, example: pd.DataFrame, gates: dict, metrics: dict[str, Any],
            workdir: Path) -> dict[str, str]:
    """One MLflow run in the profile's experiment: tags (git commit, profile, input, model kind, fallback reason),
    params (the train section after the profile's overrides, the model's own choices), the numeric metrics,
    metrics.json, and the model as the served pyfunc (`LeadScoreModel`: probability, score, gates, status)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri(workdir)
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        mlflow.set_tracking_uri(uri)  # (MLflow also exports it as MLFLOW_TRACKING_URI: undone below)
        return _log_run(mlflow, profile, params, model, example, gates, metrics, workdir, uri, env_uri is None)
    finally:
        if env_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)


def _log_run(mlflow, profile: Profile, params: Params, model, example: pd.DataFrame, gates: dict,
             metrics: dict[str, Any], workdir: Path, uri: str, own_store: bool) -> dict[str, str]:

    from models.pyfunc import LeadScoreModel
    from pipeline import tracking

    name = experiment_name(profile)
    if mlflow.get_experiment_by_name(name) is None:
        # artifacts beside the store when the store is the work folder's (never in the caller's cwd)
        location = (Path(workdir) / "mlruns").resolve().as_uri() if own_store else None
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    score = params.score
    categorical = tuple(c for c in example.columns if blend.is_categorical(example[c]))
    bundle = LeadScoreModel(model, gates, score.threshold, score.unknown_policy, score.tiers, categorical=categorical)
    rows = example.head(200)
    for col in bundle.input_columns:  # gate columns that are not features: unknown in the example
        if col not in rows.columns:
            rows = rows.assign(**{col: np.nan})
    example_in = bundle.input_example(rows.head(5))
    with mlflow.start_run(run_name=f"run-{profile.name}") as active:
        tags = {"git_commit": tracking.git_commit(Path(__file__).parent), "profile": profile.name,
                "kind": profile.kind, "input": metrics["input"], "stage": "run", "model_kind": metrics["model_kind"],
                "split": metrics["split"]}
        if metrics.get("fallback_reason"):
            tags["fallback_reason"] = metrics["fallback_reason"]
        mlflow.set_tags(tags)
        logged_params = {f"train.{k}": v for k, v in vars(params.train).items()}
        logged_params.update({k: metrics[k] for k in ("blend_weight_trees", "logistic_C", "calibration")
                              if k in metrics})
        logged_params["dropped_leaky_columns"] = ", ".join(profile.drop) or "-"
        mlflow.log_params({k: str(v)[:6000] for k, v in logged_params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)})
        for i, auc in enumerate(metrics["cv_roc_auc_folds"]):
            mlflow.log_metric("cv_roc_auc_fold", float(auc), step=i)
        mlflow.log_dict({k: v for k, v in metrics.items() if k != "mlflow"}, "metrics.json")
        logged = mlflow.pyfunc.log_model(
            name="model", python_model=bundle, signature=tracking.model_signature(example_in, bundle.score(example_in)),
            input_example=example_in, pip_requirements=tracking.model_requirements(),
            code_paths=tracking.model_code_paths())
    log(f"{profile.name}: logged run {active.info.run_id} to experiment {name!r} ({uri})")
    return {"tracking_uri": uri, "experiment": name, "run_id": active.info.run_id, "model_uri": logged.model_uri}


def _fit_table_model(X, y, X_val, y_val, config: BoosterConfig, p: TrainParams, reason: str | None):
    y = np.asarray(y, dtype=int)
    if reason:
        return LogisticBaseline(C=p.logistic_C).fit(X, y)
    return ConversionModel(config, calibration=p.calibration).fit(X, y, X_val, np.asarray(y_val, dtype=int))


# --------------------------------------------------------------------------------------------------


def _leak_check(X: pd.DataFrame, y: np.ndarray) -> list[dict[str, Any]]:
    found = leakage_warnings(X, y, DEFAULT_MAX_AUC)
    for w in found:
        log("WARNING " + w.message())
    return [{"column": w.column, "auc": round(w.auc, 4)} for w in found]


def _headline(held_out: dict[str, float], folds: list[float]) -> dict[str, Any]:
    return {
        "roc_auc": held_out["roc_auc"],
        "pr_auc": held_out["pr_auc"],
        "brier": held_out["brier"],
        "ece": held_out["ece"],
        "base_rate_test": held_out["base_rate"],
        "cv_roc_auc": float(np.mean(folds)),
        "cv_roc_auc_std": float(np.std(folds)),
        "cv_roc_auc_folds": [round(f, 4) for f in folds],
    }
