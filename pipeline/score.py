"""Stage `score`: probability, BANT gates, SQL decision, expected value, rank, hand-over and reasons for open leads."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd

from features.build import score_features, with_categories
from features.config import FeaturizeConfig, Icp, ValidateConfig
from features.schema import FLAT
from models.changes import change_counts, diff_scorings
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
from models.reasons import Phrasebook
from pipeline import tracking
from pipeline.artifacts import features_variant, load_model
from pipeline.export import CONTACT_FIELDS, contact_table, export_all, owner_ids
from pipeline.io import find_table, read_table, write_json, write_parquet
from pipeline.progress import log

HISTORY_COLUMNS = ("lead_id", "status", "tier", "rank", "scoring_run_id", "scored_at")


def _latest_history(history_dir: Path) -> pd.DataFrame | None:
    files = sorted(Path(history_dir).glob("sql_leads_*.parquet"))
    return pd.read_parquet(files[-1]) if files else None


def finish(scored: pd.DataFrame, rows: pd.DataFrame, model, p: ScoreConfig, out_dir: Path, reports_dir: Path,
           history_dir: Path | None, database_url: str | None, phrasebook: Phrasebook | None,
           contacts: pd.DataFrame | None = None) -> dict:
    """Hand over, compare with the previous scoring, write every export and the summary. `contacts`: the leads'
    contact fields for the hand-over files (`pipeline.export.contact_table`)."""
    table = hand_over(scored, rows, model, p, phrasebook)
    previous = _latest_history(history_dir) if history_dir else None
    changes = diff_scorings(previous, table)
    table = table.merge(changes[["lead_id", "change"]], on="lead_id", how="left")
    ordered = [c for c in OUTPUT_COLUMNS if c in table] + [c for c in table if c not in OUTPUT_COLUMNS]
    table = table[ordered]
    paths = export_all(table, out_dir, database_url, changes=changes, contacts=contacts, owners=owner_ids(p.assignment))
    if history_dir and len(table):
        stamp = pd.Timestamp(table["scored_at"].iloc[0]).strftime("%Y%m%dT%H%M%S")
        write_parquet(table[list(HISTORY_COLUMNS)],
                      Path(history_dir) / f"sql_leads_{stamp}_{table['scoring_run_id'].iloc[0]}.parquet")
    handed = table["assigned_rep"].notna()
    summary = {
        "n_scored": int(len(table)),
        "n_sql": int(table["is_sql"].sum()),
        "n_assigned": int(handed.sum()),
        "n_call_queue": int(table["call_queue_position"].notna().sum()),
        "n_explained": int(table["reasons_for"].notna().sum()),
        "status_counts": {k: int(v) for k, v in table["status"].value_counts().items()},
        "tier_counts": {k: int(v) for k, v in table["tier"].value_counts().items()},
        "per_rep": {k: int(v) for k, v in table.loc[handed, "assigned_rep"].value_counts().items()},
        "changes": change_counts(changes),
        "expected_value_sql": float(table.loc[table["is_sql"], "expected_value"].sum()),
        "expected_value_assigned": float(table.loc[handed, "expected_value"].sum()),
        "scoring_run_id": str(table["scoring_run_id"].iloc[0]) if len(table) else "",
        "model_version": str(table["model_version"].iloc[0]) if len(table) else "",
        "schema_version": SCHEMA_VERSION,
    }
    write_json(summary, Path(reports_dir) / "score_summary.json")
    log(f"scored {summary['n_scored']:,} leads: {summary['n_sql']:,} SQLs, {summary['n_assigned']:,} handed to reps, "
        f"{summary['n_call_queue']:,} queued for a call; changes {summary['changes']}; written to {paths['database']}")
    return summary


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


def new_scoring_run_id() -> str:
    return uuid.uuid4().hex


def run(features_path: Path, models_dir: Path, package_dir: Path | None, validated_dir: Path, out_dir: Path,
        reports_dir: Path, p: ScoreConfig, database_url: str | None = None, history_dir: Path | None = None,
        icp: Icp | None = None) -> dict:
    features_path = Path(features_path)
    variant = features_variant(features_path)
    table = pd.read_parquet(features_path, filters=[("split", "in", ["score", "test"])] if variant == FLAT
                            else [("split", "==", "score")])
    rows, what = rows_to_score(table, variant)
    if what != OPEN_LEADS:
        log(f"WARNING: the export has no open (unlabelled) leads; scoring the {what}")
    model, info = load_model(models_dir, package_dir)
    accounts = opportunities = leads = None
    if variant != FLAT:
        accounts = read_table(find_table(validated_dir, "accounts"))
        opportunities = read_table(find_table(validated_dir, "opportunities"))
        leads = read_contacts(validated_dir)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    check_feature_schema(list(rows.columns), model, str(features_path))
    scored = score_frame(rows, model, accounts, opportunities, p, info["model_version"], info["run_id"], scored_at,
                         new_scoring_run_id())
    summary = finish(scored, rows, model, p, out_dir, reports_dir, history_dir, database_url, phrasebook_for(icp),
                     contact_table(leads, accounts))
    return {**summary, "scored": what}


# ------------------------------------------------------------------------------------ scoring new data
def read_input(input_path: Path, as_of: str | None, featurize_params: FeaturizeConfig,
               validate_params: ValidateConfig) -> tuple[pd.DataFrame, dict]:
    """Feature rows from a feature file (Parquet/CSV), or from a CRM export folder in the contract's tables
    (validated, then featurized as of `as_of`, by default the date the export implies)."""
    input_path = Path(input_path)
    if input_path.is_dir():
        from features.schema import TABLE_ORDER
        from features.validation import check_quarantine_limit, validate_export
        from pipeline.io import read_tables
        from pipeline.sources.profiles import export_as_of

        tables = read_tables(input_path, TABLE_ORDER)
        date = pd.Timestamp(as_of) if as_of else export_as_of(tables, not_after=pd.Timestamp.now())
        result = validate_export(tables, date, validate_params)
        check_quarantine_limit(result, validate_params)
        tables = result.valid
        rows = score_features(tables, date, featurize_params)  # as the featurize stage stores them
        return rows, {"accounts": tables["accounts"], "opportunities": tables["opportunities"]}
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: input not found (a feature file or a CRM export folder)")
    rows = read_table(input_path)
    if "split" in rows and (rows["split"] == "score").any():
        rows = rows[rows["split"] == "score"]
    if "lead_id" not in rows:
        raise FeatureSchemaError(f"{input_path}: feature schema mismatch: missing column(s) ['lead_id']")
    if "as_of" not in rows:
        rows = rows.assign(as_of=pd.Timestamp(as_of) if as_of else pd.Timestamp.now().normalize())
    return with_categories(rows), {}


def score_with_registered_model(model_uri: str, input_path: Path, out_dir: Path, reports_dir: Path, p: ScoreConfig,
                                as_of: str | None, featurize_params, validate_params, database_url: str | None = None,
                                history_dir: Path | None = None, validated_dir: Path | None = None) -> dict:
    """`leadscore score --model models:/<name>@champion --input ...`: score new data with a registered model."""
    import dataclasses

    model, overrides, version, model_run = tracking.load_registered(model_uri)
    rows, tables = read_input(Path(input_path), as_of, featurize_params, validate_params)
    check_feature_schema(list(rows.columns), model, str(input_path))
    accounts, opportunities = tables.get("accounts"), tables.get("opportunities")
    if accounts is None and validated_dir is not None and Path(validated_dir).exists():
        try:
            accounts = read_table(find_table(validated_dir, "accounts"))
            opportunities = read_table(find_table(validated_dir, "opportunities"))
        except FileNotFoundError:
            accounts = opportunities = None
    p = dataclasses.replace(p, **overrides)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    scored = score_frame(rows, model, accounts, opportunities, p, version, model_run, scored_at, new_scoring_run_id())
    return finish(scored, rows, model, p, out_dir, reports_dir, history_dir, database_url,
                  phrasebook_for(featurize_params.icp))
