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
from models.conversion import BoosterConfig, ConversionModel
from models.evaluate import classification_metrics
from models.flat import cross_validated_auc, fit_with_validation, holdout_split
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


def run(profile: Profile, input_path: Path, workdir: Path, params: Params, n_jobs: int | None = None,
        cv_folds: int = CV_FOLDS) -> dict[str, Any]:
    """Run one export through the profile; returns the metrics written to ``workdir/metrics.json``."""
    start = time.perf_counter()
    params = apply_overrides(params, profile)
    input_path, workdir = Path(input_path), Path(workdir)
    if profile.kind == "flat":
        metrics = _run_flat(profile, input_path, workdir, params, n_jobs, cv_folds)
    else:
        metrics = _run_tables(profile, input_path, workdir, params, n_jobs, cv_folds)
    metrics.update({"profile": profile.name, "kind": profile.kind, "input": str(input_path),
                    "n_jobs": params.train.n_jobs if n_jobs is None else n_jobs,
                    "seconds": round(time.perf_counter() - start, 1)})
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
    warnings = _leak_check(X, y)

    config = booster_config(params.train, n_jobs)
    train_idx, test_idx = holdout_split(y, t, 0.2, config.seed)
    t_train = t.iloc[train_idx].reset_index(drop=True) if t is not None else None
    model = fit_with_validation(X.iloc[train_idx], y[train_idx], config, params.train.calibration, t_train)
    p_test = model.predict_proba(X.iloc[test_idx])[:, 1]
    held_out = classification_metrics(y[test_idx], p_test, params.evaluate.top_fraction)
    folds = cross_validated_auc(X, y, config, cv_folds)

    # Score the open (unlabelled) leads; without any, the held-out leads the model has not seen.
    if (~labelled).any():
        score_rows, scored_what = np.flatnonzero(~labelled), "unlabelled leads"
    else:
        score_rows, scored_what = np.flatnonzero(labelled)[test_idx], "held-out leads (no unlabelled rows)"
    as_of = pd.Timestamp(profile.export_date) if profile.export_date != "auto" else pd.Timestamp.now().normalize()
    scored = _score_flat(data, score_rows, model, params.score, profile, as_of, workdir)
    write_atomic(workdir / "model.joblib", lambda tmp: joblib.dump(model, tmp))
    return {
        **_headline(held_out, folds),
        "split": "time" if t is not None else "stratified random",
        "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)),
        "n_features": int(X.shape[1]),
        "features": list(X.columns),
        "best_iteration": model.best_iteration_,
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
    from pipeline.train import split_train_validation

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
    fit_part, val_part = split_train_validation(table)
    model = ConversionModel(config_b, calibration=params.train.calibration).fit(
        fit_part[cols], fit_part["label"].astype(int), val_part[cols], val_part["label"].astype(int))
    test = table[table["split"] == "test"]
    held_out = classification_metrics(test["label"].astype(int), model.predict_proba(test[cols])[:, 1],
                                      params.evaluate.top_fraction)
    folds = cross_validated_auc(labelled[cols], labelled["label"].astype(int).to_numpy(), config_b, cv_folds,
                                groups=labelled["lead_id"].to_numpy())

    rows = table[table["split"] == "score"].reset_index(drop=True)
    scored = _score_and_export(rows, model, valid["accounts"], valid["opportunities"], params.score, profile, workdir)
    write_atomic(workdir / "model.joblib", lambda tmp: joblib.dump(model, tmp))
    return {
        **_headline(held_out, folds),
        "split": "time",
        "export_date": str(export_date.date()),
        "n_train": int(len(fit_part) + len(val_part)),
        "n_test": int(len(test)),
        "n_features": len(cols),
        "best_iteration": model.best_iteration_,
        "n_scored": int(len(scored)),
        "n_sql": int(scored["is_sql"].sum()),
        "validation": {**result.to_dict(), "export_date": str(export_date.date())},
        "dropped_leaky_columns": dict(profile.drop),
        "leakage_warnings": warnings,
    }


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
