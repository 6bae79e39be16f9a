"""Stage `score`: probability, BANT gates, SQL decision, expected value, rank, hand-over and reasons for open leads."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from pathlib import Path

import pandas as pd

from features.build import score_features, with_categories
from features.config import FeaturizeConfig, Icp, ValidateConfig
from features.schema import FLAT
from models.changes import change_counts, diff_scorings, first_scoring_changes
from models.config import ScoreConfig
from models.decision import (
    OPEN_LEADS,
    OUTPUT_COLUMNS,
    SCHEMA_VERSION,
    FeatureSchemaError,
    check_feature_schema,
    hand_over,
    phrasebook_for,
    rows_to_score,
    score_frame,
)
from models.ranking import WITH_SALES
from models.reasons import Phrasebook
from pipeline import tracking
from pipeline.artifacts import ModelIntegrityError, features_variant, load_model
from pipeline.compiled import compiled_trees
from pipeline.export import CONTACT_FIELDS, contact_table, export_all, owner_ids
from pipeline.history import History, scoring_key
from pipeline.io import find_table, read_rows, read_table, write_csv, write_json, write_parquet
from pipeline.progress import log, progress

LATEST = "latest"  # score.model: the model this pipeline just trained and packaged (data/04_package)
SHADOW_FILE = "shadow_challenger.parquet"


def model_uri(choice: str, registered_model: str | None) -> str | None:
    """The MLflow URI `score.model` names: ``champion`` / ``challenger`` (aliases of the registered model), a
    ``models:/`` or ``runs:/`` URI as given; None for ``latest`` (the package stage's own model)."""
    if choice in (None, "", LATEST):
        return None
    if choice in (tracking.CHAMPION, tracking.CHALLENGER):
        if not registered_model:
            raise ValueError(f"score.model {choice!r} needs train.registered_model (the registry's model name)")
        return f"models:/{registered_model}@{choice}"
    return choice


def load_scorer(uri: str | None, p: ScoreConfig, models_dir: Path | None = None,
                package_dir: Path | None = None) -> tuple[object, ScoreConfig, str, str]:
    """(model, the policy it is scored with, model version, training run id). A registered pyfunc brings its own
    gates, threshold, unknown policy and tiers (what it was packaged with); capacity and hand-over stay params'."""
    import dataclasses

    if uri is None:
        model, info = load_model(models_dir, package_dir)
        return model, p, info["model_version"], info["run_id"]
    model, overrides, version, run = tracking.load_registered(uri)
    return model, dataclasses.replace(p, **overrides), version, run


def import_model_libraries(registered: bool) -> None:
    """What unpickling a model imports (LightGBM, scikit-learn, `models.conversion`; MLflow's pyfunc for a
    `registered` one) and what compiles its trees (lleaves), imported ahead, in a thread: imports only, nothing
    that changes the working directory or reads the model. An import that fails here fails again, with its
    message, where it is needed."""
    with contextlib.suppress(Exception):
        import lleaves  # noqa: F401 - the compiled trees' (`pipeline.compiled.compiled_trees`)

        import models.conversion  # noqa: F401 - lightgbm and scikit-learn with it

        if registered:
            import mlflow.pyfunc  # noqa: F401


def champion_misfit(model, rows: pd.DataFrame, run_id: str, profile: str | None) -> str | None:
    """Why a registered model cannot score these rows (None when it can): it lacks feature columns, or it was
    trained on another profile's export (one store serving several CRMs: each profile's own model scores it)."""
    try:
        check_feature_schema(list(rows.columns), model, "rows")
    except FeatureSchemaError as exc:
        return str(exc).removeprefix("rows: ")
    if profile and run_id:
        try:
            from mlflow.tracking import MlflowClient

            trained_on = MlflowClient().get_run(run_id).data.tags.get("profile")
        except Exception:  # noqa: BLE001 - no run to read: nothing to compare
            trained_on = None
        if trained_on and trained_on != profile:
            return f"it was trained on profile {trained_on!r}, not {profile!r}"
    return None


def finish(scored: pd.DataFrame, rows: pd.DataFrame, model, p: ScoreConfig, out_dir: Path, reports_dir: Path,
           history_dir: Path | None, database_url: str | None, phrasebook: Phrasebook | None,
           contacts=None, key: str | None = None, extra: dict | None = None,
           shadow_table: pd.DataFrame | None = None) -> dict:
    """Hand over, compare with the previous scoring, write every export, the summary and the history entry.

    One transaction under the scored folder's lock (`pipeline.transaction`): a second scorer waits; the history's
    previous scoring is read, every export (with a copy of the summary and `shadow_table`) is written into the
    run's folder and switched to at once, and only then the history entry and the reports' summary are written.

    `contacts`: the leads' contact fields for the hand-over files (`pipeline.export.contact_table`; or a function
    of the table's lead ids that builds them, called while the SQL table is written, which does not hold them);
    `key`: the scoring's history key (`pipeline.history.scoring_key`)."""
    from pipeline.transaction import scoring_lock

    table = hand_over(scored, rows, model, p, phrasebook)
    if history_dir and not key and len(scored):  # a caller without score_rows: the key of what it scored
        key = scoring_key(rows, str(scored["model_version"].iloc[0]), p)
    with scoring_lock(out_dir):
        return _finish_locked(table, p, out_dir, reports_dir, history_dir, database_url, contacts, key, extra,
                              shadow_table)


def _finish_locked(table: pd.DataFrame, p: ScoreConfig, out_dir: Path, reports_dir: Path, history_dir: Path | None,
                   database_url: str | None, contacts, key: str | None, extra: dict | None,
                   shadow_table: pd.DataFrame | None) -> dict:
    from pipeline.secrets import hide_password

    history = History(history_dir) if history_dir else None
    previous = history.previous(key) if history and key else None
    changes, change = first_scoring_changes(table) if previous is None else (None, None)
    if changes is None:
        changes = diff_scorings(previous, table)
    if change is not None:  # aligned with the table's rows: what the merge below gives for unique lead ids
        table = table.assign(change=change)
    else:
        table = table.merge(changes[["lead_id", "change"]], on="lead_id", how="left")
    ordered = [c for c in OUTPUT_COLUMNS if c in table] + [c for c in table if c not in OUTPUT_COLUMNS]
    table = table[ordered]
    handed = table["assigned_rep"].notna()
    summary = {
        "n_scored": int(len(table)),
        "n_sql": int(table["is_sql"].sum()),
        "n_assigned": int(handed.sum()),
        "n_call_queue": int(table["call_queue_position"].notna().sum()),
        "n_with_sales": int((table["status"] == WITH_SALES).sum()),
        "n_explained": int(table["reasons_for"].notna().sum()),
        "status_counts": {k: int(v) for k, v in table["status"].value_counts().items()},
        "tier_counts": {k: int(v) for k, v in table["tier"].value_counts().items()},
        "per_rep": {k: int(v) for k, v in table.loc[handed, "assigned_rep"].value_counts().items()},
        "changes": change_counts(changes),
        "compared_with": str(previous["scoring_run_id"].iloc[0]) if previous is not None and len(previous) else None,
        "expected_value_sql": float(table.loc[table["is_sql"], "expected_value"].sum()),
        "expected_value_assigned": float(table.loc[handed, "expected_value"].sum()),
        "as_of": str(pd.Timestamp(table["as_of"].iloc[0]).date()) if len(table) else None,
        "scoring_run_id": str(table["scoring_run_id"].iloc[0]) if len(table) else "",
        "model_version": str(table["model_version"].iloc[0]) if len(table) else "",
        "schema_version": SCHEMA_VERSION,
        **(extra or {}),
    }
    files = {"score_summary.json": lambda target: write_json(summary, target)}  # the run's copy (no history fields)
    if shadow_table is not None:
        files[SHADOW_FILE] = lambda target: write_parquet(shadow_table, target)
    paths = export_all(table, out_dir, database_url, changes=changes, contacts=contacts, owners=owner_ids(p.assignment),
                       extra_files=files)
    if history and key:
        entry = history.add(table, key, summary)
        summary["history_entries"] = len(history.entries())
        summary["history_entry"] = entry["file"]
    write_json(summary, Path(reports_dir) / "score_summary.json")
    log(f"scored {summary['n_scored']:,} leads with {summary['model_version']}: {summary['n_sql']:,} SQLs, "
        f"{summary['n_assigned']:,} handed to reps, {summary['n_call_queue']:,} queued for a call, "
        f"{summary['n_with_sales']:,} already with sales; changes {summary['changes']}; written to {hide_password(paths['database'])} and {paths['run']}")
    return summary


def check_destinations(out_dir: Path, database_url: str | None, reports_dir: Path, mlflow_uri: str | None) -> None:
    """Before any work: the scored and reports folders take files, the database answers and takes a table, the
    MLflow store answers (`pipeline.transaction.check_destinations`; the free space is checked again with the
    table's size before the exports)."""
    from pipeline.transaction import check_destinations as check

    check(out_dir, database_url, reports_dir, mlflow_uri)


def store_uri() -> str:
    """The MLflow tracking store the registered models are read from."""
    import os

    return os.environ.get("MLFLOW_TRACKING_URI", tracking.DEFAULT_TRACKING_URI)


def new_scoring_run_id() -> str:
    return uuid.uuid4().hex


def score_rows(rows: pd.DataFrame, model, p: ScoreConfig, version: str, run_id: str, accounts, opportunities,
               history_dir: Path | None, source: str) -> tuple[pd.DataFrame, str]:
    """(the ranked table, its history key): a rerun of a scoring already in the history gets that scoring's
    `scoring_run_id` and `scored_at`, so the same export, model and policy give the same table."""
    check_feature_schema(list(rows.columns), model, source)
    key = scoring_key(rows, version, p) if history_dir else None  # the key finds and files history entries only
    known = History(history_dir).find(key) if history_dir else None
    scored_at = pd.Timestamp(known["scored_at"]) if known else pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    run = known["scoring_run_id"] if known else new_scoring_run_id()
    with progress("scoring", len(rows), "rows") as on_rows:
        table = score_frame(rows, model, accounts, opportunities, p, version, run_id, scored_at, run, on_rows=on_rows)
    return table, key


def shadow(rows: pd.DataFrame, uri: str, champion_version: str, p: ScoreConfig, accounts, opportunities,
           out_dir: Path) -> dict | None:
    """Score the same rows with the challenger beside the champion (nothing handed over): what reps would get if
    it were promoted. The table for `shadow_challenger.parquet` (written with the run by `finish`) is under the
    key ``_table``; None when there is no challenger (or it is the champion)."""
    try:
        model, p_chal, version, run_id = load_scorer(uri, p)
    except tracking.ModelLoadError:  # no challenger registered
        return None
    except ModelIntegrityError as exc:
        log(f"WARNING shadow scoring skipped: {exc}")
        return {"skipped": str(exc)}
    if version == champion_version:
        return None
    try:
        check_feature_schema(list(rows.columns), model, f"challenger {version}")
    except FeatureSchemaError as exc:
        log(f"WARNING shadow scoring skipped: {exc}")
        return {"version": version, "skipped": str(exc)}
    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    model, _ = compiled_trees(model, len(rows), p.predictor)
    table = score_frame(rows, model, accounts, opportunities, p_chal, version, run_id, scored_at, new_scoring_run_id())
    kept = table[["lead_id", "rank", "status", "is_sql", "score", "p_convert", "tier", "model_version"]]
    return {"version": version, "n_sql": int(table["is_sql"].sum()), "file": SHADOW_FILE, "_table": kept}


def run(features_path: Path, models_dir: Path, package_dir: Path | None, validated_dir: Path, out_dir: Path,
        reports_dir: Path, p: ScoreConfig, database_url: str | None = None, history_dir: Path | None = None,
        icp: Icp | None = None, registered_model: str | None = None, profile: str | None = None) -> dict:
    """Score the open leads of the feature table with `p.model` (the registered champion by default; ``latest``:
    the package stage's model) and, when the champion scores, the challenger in shadow beside it."""
    started = time.time()
    uri = model_uri(p.model, registered_model) if registered_model else None  # no registry: the package's model
    # loading the model is mostly importing its libraries: they are imported while the destinations are checked
    # and the rows read (Arrow, which leaves the interpreter free), 1.5-2 s saved at a million rows
    importing = threading.Thread(target=import_model_libraries, args=(uri is not None,), name="import-model",
                                 daemon=True)
    importing.start()
    check_destinations(out_dir, database_url, reports_dir, store_uri() if registered_model else None)
    features_path = Path(features_path)
    variant = features_variant(features_path)
    table = read_rows(features_path, "split", ["score", "test"] if variant == FLAT else ["score"])
    rows, what = rows_to_score(table, variant)
    importing.join()
    if what != OPEN_LEADS:
        log(f"WARNING: the export has no open (unlabelled) leads; scoring the {what}")
    extra = {"scored": what, "model": p.model}
    try:
        model, p_used, version, run_id = load_scorer(uri, p, models_dir, package_dir)
        misfit = champion_misfit(model, rows, run_id, profile) if uri is not None else None
    except (tracking.ModelLoadError, ModelIntegrityError) as exc:  # e.g. a version from before artefact hashes
        if uri is None:
            raise
        version, misfit = uri, f"it cannot be loaded: {exc}"
    if misfit:
        log(f"WARNING {p.model} {version} cannot score this export ({misfit}); scoring with this pipeline's model")
        uri = None
        model, p_used, version, run_id = load_scorer(None, p, models_dir, package_dir)
        extra["model_fallback"] = misfit
    model, extra["predictor"] = compiled_trees(model, len(rows), p.predictor)
    accounts = opportunities = leads = None
    if variant != FLAT:
        accounts = read_table(find_table(validated_dir, "accounts"))
        opportunities = read_table(find_table(validated_dir, "opportunities"))
        leads = read_contacts(validated_dir)
    scored, key = score_rows(rows, model, p_used, version, run_id, accounts, opportunities, history_dir,
                             str(features_path))
    with mlflow_logger(run_id) as logger:  # MLflow imported beside the hand-over and the exports
        if uri is not None and p.model == tracking.CHAMPION:
            extra["shadow"] = shadow(rows, model_uri(tracking.CHALLENGER, registered_model), version, p, accounts,
                                     opportunities, out_dir)
        shadow_table = extra["shadow"].pop("_table", None) if extra.get("shadow") else None
        summary = finish(scored, rows, model, p_used, out_dir, reports_dir, history_dir, database_url,
                         phrasebook_for(icp), lambda ids: contact_table(leads, accounts, ids), key, extra, shadow_table)
        log_score_run(run_id, started, p_used, summary, logger)
    return summary


SCORE_RUN_METRICS = ("n_scored", "n_sql", "n_assigned", "n_call_queue", "n_with_sales", "n_explained",
                     "expected_value_sql", "expected_value_assigned")


def mlflow_logger(train_run_id: str):
    """For a model with a training run (whose scoring `log_score_run` logs at the end): a
    `tracking.StageRunLogger`, whose helper process imports MLflow while this one hands over and exports (4-5 s
    of imports, which the scoring then does not wait for). Otherwise nothing."""
    return tracking.StageRunLogger() if train_run_id else contextlib.nullcontext()


def log_score_run(train_run_id: str, started: float, p: ScoreConfig, summary: dict,
                  logger: tracking.StageRunLogger | None = None) -> str | None:
    """The scoring as an MLflow run (``score <profile> <as-of>``) nested under the training run of the model that
    scored, with the policy it scored with (``score.*``) and the counts (by `logger` when given); None for a model
    without a run. The scoring is done and written by then, so a store that refuses the run is a warning, not a
    failure."""
    if not train_run_id:
        return None
    try:
        return (logger.log if logger is not None else tracking.log_stage_run)(
            "score", train_run_id, start_time=started, params=tracking.loggable_params({"score": p}),
            metrics={k: summary[k] for k in SCORE_RUN_METRICS if k in summary}, data_date=summary.get("as_of"),
            tags={"model_version": str(summary.get("model_version", "")),
                  "scoring_run_id": str(summary.get("scoring_run_id", ""))})
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; the scoring itself stands
        log(f"WARNING the scoring was not logged to MLflow: {type(exc).__name__}: {exc}")
        return None


# ------------------------------------------------------------------------------------ scoring new data
def read_contacts(validated_dir: Path) -> pd.DataFrame | None:
    """The validated leads' id, account and contact columns (None without a leads table)."""
    try:
        path = find_table(validated_dir, "leads")
    except FileNotFoundError:
        return None
    if path.suffix != ".parquet":
        return read_table(path)
    import pyarrow.parquet as pq

    have = set(pq.read_schema(path).names)
    wanted = ["lead_id", "account_id", *CONTACT_FIELDS]
    return pd.read_parquet(path, columns=[c for c in wanted if c in have])


def read_export(profile, input_path: Path, as_of: str | None, featurize_params: FeaturizeConfig,  # noqa: PLR0913
                validate_params: ValidateConfig, quarantine_dir: Path, seed: int = 42) -> tuple[pd.DataFrame, dict]:
    """The open leads' feature rows of a fresh export read through `profile`: mapped (ingest), validated (invalid
    rows to `quarantine_dir`, the quarantine limit enforced) and featurized as of the export's date, exactly as the
    pipeline's stages do, but only the scoring snapshot (no training rows)."""
    from features.build import flat_features
    from features.split import flat_split
    from features.validation import check_quarantine_limit, flat_result, validate_export
    from pipeline.sources.exports import ingest_export
    from pipeline.sources.profiles import typed_table

    if profile is None:  # a folder already in the contract's tables
        from features.schema import TABLE_ORDER
        from pipeline.io import read_tables
        from pipeline.sources.profiles import export_as_of

        tables = read_tables(input_path, TABLE_ORDER)
        date = pd.Timestamp(as_of) if as_of else export_as_of(tables, not_after=pd.Timestamp.now())
        name = "contract"
    else:
        data = ingest_export(profile, Path(input_path), None, as_of or "auto")
        if data.flat is not None:
            checked = flat_result(data.flat, data.flat_quarantine, data.flat_failures)
            write_csv(checked.quarantine["flat"], Path(quarantine_dir) / "flat.csv")
            check_quarantine_limit(checked, validate_params, quarantine_dir)
            table = flat_features(data.flat, data.as_of, flat_split(data.flat, seed))
            rows, what = rows_to_score(table, FLAT)
            if what != OPEN_LEADS:
                raise ValueError(f"{input_path}: the export has no open leads to score (no row carries an open label)")
            return with_categories(rows.reset_index(drop=True)), {"as_of": data.as_of}
        tables, date, name = data.tables, data.as_of, profile.name
    result = validate_export(tables, date, validate_params)
    for name in result.counts:
        write_csv(result.quarantine[name], Path(quarantine_dir) / f"{name}.csv")
    check_quarantine_limit(result, validate_params, quarantine_dir)
    tables = {t: typed_table(result.valid[t], t) if t in result.counts else tables[t] for t in tables}
    rows = score_features(tables, date, featurize_params)
    log(f"{name} export as of {date.date()}: "
        + ", ".join(f"{t} {c['rows_in']:,} in, {c['quarantined']:,} quarantined" for t, c in result.counts.items())
        + f"; {len(rows):,} open leads")
    return rows, {"accounts": tables["accounts"], "opportunities": tables["opportunities"], "leads": tables["leads"],
                  "as_of": date}


def read_input(input_path: Path, as_of: str | None, featurize_params: FeaturizeConfig,
               validate_params: ValidateConfig, quarantine_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Feature rows from a feature file (Parquet/CSV), or from a folder already in the contract's tables."""
    input_path = Path(input_path)
    if input_path.is_dir():
        return read_export(None, input_path, as_of, featurize_params, validate_params, quarantine_dir)
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: input not found (an export folder, or a feature file)")
    rows = read_table(input_path)
    if "split" in rows and (rows["split"] == "score").any():
        rows = rows[rows["split"] == "score"]
    if "lead_id" not in rows:
        raise FeatureSchemaError(f"{input_path}: feature schema mismatch: missing column(s) ['lead_id']")
    if "as_of" not in rows:
        rows = rows.assign(as_of=pd.Timestamp(as_of) if as_of else pd.Timestamp.now().normalize())
    return with_categories(rows), {}


def score_new_export(uri: str, input_path: Path, out_dir: Path, reports_dir: Path, p: ScoreConfig,
                     as_of: str | None, featurize_params: FeaturizeConfig, validate_params: ValidateConfig,
                     database_url: str | None = None, history_dir: Path | None = None, profile=None,
                     seed: int = 42) -> dict:
    """`leadscore score --profile P --input EXPORT`: score a fresh export with a registered model (the champion
    by default), without training. `profile` None: `input_path` is a feature file or a folder of contract tables."""
    started = time.time()
    check_destinations(out_dir, database_url, reports_dir, store_uri())
    model, p_used, version, run_id = load_scorer(uri, p)
    quarantine = Path(reports_dir) / "quarantine"  # the evidence of this export's bad rows, beside its summary
    if profile is not None:
        rows, tables = read_export(profile, input_path, as_of, featurize_params, validate_params, quarantine, seed)
    else:
        rows, tables = read_input(Path(input_path), as_of, featurize_params, validate_params, quarantine)
    accounts, opportunities = tables.get("accounts"), tables.get("opportunities")
    model, predictor = compiled_trees(model, len(rows), p.predictor)
    scored, key = score_rows(rows, model, p_used, version, run_id, accounts, opportunities, history_dir,
                             str(input_path))
    with mlflow_logger(run_id) as logger:
        summary = finish(scored, rows, model, p_used, out_dir, reports_dir, history_dir, database_url,
                         phrasebook_for(featurize_params.icp), lambda ids: contact_table(tables.get("leads"), accounts, ids),
                         key, {"scored": OPEN_LEADS, "model": uri, "input": str(input_path),
                               "profile": getattr(profile, "name", None), "predictor": predictor})
        log_score_run(run_id, started, p_used, summary, logger)
    return summary
