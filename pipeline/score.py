"""Stage `score`: probability, BANT gates, SQL decision, expected value, rank, hand-over and reasons for open leads."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import feature_columns, with_categories
from features.subscores import engagement_score, fit_score
from models.assignment import assign, parse_assignment
from models.changes import change_counts, compare
from models.gates import evaluate_gates, parse_gates
from models.ranking import (
    NEEDS_CALL,
    SQL,
    DecisionPolicy,
    assign_tiers,
    decide,
    fit_deal_size,
    rank_leads,
)
from models.reasons import Phrasebook, top_reasons
from pipeline.export import OUTPUT_COLUMNS, SCHEMA_VERSION, export_all
from pipeline.io import find_table, read_table, write_json, write_parquet
from pipeline.params import IcpParams, ScoreParams
from pipeline.progress import log
from pipeline.train import load_model

ACCOUNT_COLUMNS = ("employees", "annual_revenue", "country")
HISTORY_COLUMNS = ("lead_id", "status", "tier", "rank", "scoring_run_id", "scored_at")


class FeatureSchemaError(ValueError):
    """The rows to score do not carry the columns the model was trained on."""


def check_feature_schema(columns, model, source: str) -> None:
    """Refuse rows whose feature columns differ from the model's, naming the missing and unexpected ones."""
    needed = [str(c) for c in model.feature_names_in_]
    have = [c for c in columns if c not in ("lead_id", "account_id", "as_of", "split", "label")]
    missing = [c for c in needed if c not in set(have)]
    if missing:
        unexpected = sorted(set(have) - set(needed))
        extra = f"; columns the model does not know: {unexpected[:20]}" if unexpected else ""
        raise FeatureSchemaError(f"{source}: feature schema mismatch: missing column(s) the model needs: {missing}{extra}")


def policy_of(p: ScoreParams) -> DecisionPolicy:
    capacity = p.sql_capacity if p.sql_capacity is not None else parse_assignment(p.assignment).capacity
    return DecisionPolicy(p.threshold, p.unknown_policy, p.tiers, p.sql_rule, capacity)


def _context(rows: pd.DataFrame, accounts: pd.DataFrame | None, needed: list[str]) -> pd.DataFrame:
    """The `needed` columns of the feature rows plus the account columns gates may name (from accounts, else
    from the log features). Only what the gates read is copied: chunks of a large run stay small."""
    context = rows.loc[:, [c for c in needed if c in rows]].copy()
    acc = accounts.drop_duplicates("account_id").set_index("account_id") if accounts is not None and len(accounts) \
        else None
    where = None  # each lead's row in `acc`, -1 when unknown: looked up once for all account columns
    for col in ACCOUNT_COLUMNS:
        if col in context or col in rows:
            if col not in context:
                context[col] = rows[col].to_numpy()
            continue
        if acc is not None and col in acc:
            if where is None:
                where = acc.index.get_indexer(rows["account_id"])
            context[col] = acc[col].array.take(where, allow_fill=True).to_numpy()  # = reindex, one lookup
        elif col == "employees" and "log_employees" in rows:
            context[col] = np.round(10 ** rows["log_employees"].astype(float))
        elif col == "annual_revenue" and "log_revenue" in rows:
            context[col] = 10 ** rows["log_revenue"].astype(float)
        else:
            context[col] = np.nan
    return context


def score_frame(rows: pd.DataFrame, model, accounts: pd.DataFrame | None, opportunities: pd.DataFrame | None,
                p: ScoreParams, model_version: str, run_id: str, scored_at: pd.Timestamp,
                scoring_run_id: str = "") -> pd.DataFrame:
    """The ranked table for feature rows of one as-of date: gates, probability, decision, value, tier, rank.

    `run_id` is the MLflow run that trained the model; `scoring_run_id` identifies this scoring.
    """
    rows = rows.reset_index(drop=True)
    gates = parse_gates(p.gates, list(dict.fromkeys([*rows.columns, *ACCOUNT_COLUMNS])))
    context = _context(rows, accounts, list(dict.fromkeys(c for g in gates for c in g.columns())))
    gate_table = evaluate_gates(context, gates)
    p_convert = np.asarray(model.predict_proba(rows[[str(c) for c in model.feature_names_in_]])[:, 1], dtype=float)

    as_of = pd.Timestamp(rows["as_of"].iloc[0]) if len(rows) and "as_of" in rows else scored_at
    if opportunities is not None and accounts is not None and len(opportunities):
        acc = accounts.drop_duplicates("account_id").set_index("account_id")
        won = opportunities[(opportunities["stage"] == "closed_won")
                            & (pd.to_datetime(opportunities["closed_at"]) < as_of)]
        won_employees = acc["employees"].reindex(won["account_id"]).reset_index(drop=True)
        deal_model = fit_deal_size(won["amount"].reset_index(drop=True), won_employees, p.default_deal_size)
    else:
        deal_model = fit_deal_size(pd.Series(dtype=float), pd.Series(dtype=float), p.default_deal_size)
    deal_size = deal_model.predict(context["employees"])
    expected_value = p_convert * deal_size
    decision = decide(gate_table, p_convert, policy_of(p), priority=expected_value)

    out = pd.DataFrame({"lead_id": rows["lead_id"].astype(str),
                        "account_id": rows["account_id"].astype(str) if "account_id" in rows else None})
    out["p_convert"] = p_convert.round(6)
    out["score"] = np.rint(100 * p_convert).astype(int)
    out["expected_deal_size"] = deal_size.round(2)
    out["expected_value"] = expected_value.round(2)
    out["tier"] = assign_tiers(p_convert, p.tiers)
    out["fit_score"] = fit_score(rows).to_numpy()
    out["engagement_score"] = engagement_score(rows).to_numpy()
    territory = parse_assignment(p.assignment).territory_column
    out["territory"] = rows[territory].astype("string").to_numpy() if territory in rows else pd.NA
    out = out.join(gate_table).join(decision)
    out["rank"] = rank_leads(out["status"], out["expected_value"].to_numpy())
    out["as_of"] = as_of
    out["model_version"] = model_version
    out["model_run_id"] = run_id
    out["scoring_run_id"] = scoring_run_id
    out["scored_at"] = scored_at
    out["schema_version"] = SCHEMA_VERSION
    ordered = [c for c in OUTPUT_COLUMNS if c in out] + [c for c in out if c not in OUTPUT_COLUMNS]
    return out[ordered].sort_values("rank").reset_index(drop=True)


def hand_over(scored: pd.DataFrame, rows: pd.DataFrame, model, p: ScoreParams,
              phrasebook: Phrasebook | None = None) -> pd.DataFrame:
    """Assign SQLs to reps within capacity, queue calls within capacity, and explain exactly those leads.

    `scored` is ranked (score_frame's output); `rows` are the same leads' feature rows. Reasons come from the
    model's per-row contributions, computed only for the assigned SQLs and the call-queue leads within capacity.
    """
    out = scored.copy()
    policy = parse_assignment(p.assignment)
    sql = out.index[out["status"] == SQL]
    assignment = assign(out.loc[sql, ["lead_id"]].assign(**{policy.territory_column: out.loc[sql, "territory"]}),
                        policy)
    out["assigned_rep"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["queue_position"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["assignment_reason"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out.loc[sql, ["assigned_rep", "queue_position", "assignment_reason"]] = assignment.to_numpy()
    calls = out.index[out["status"] == NEEDS_CALL][: p.call_capacity]  # ranked: best expected value first
    out["call_queue_position"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out.loc[calls, "call_queue_position"] = np.arange(1, len(calls) + 1)

    out["reasons_for"] = pd.Series(pd.NA, index=out.index, dtype="string")
    out["reasons_against"] = pd.Series(pd.NA, index=out.index, dtype="string")
    explain = out["assigned_rep"].notna() | out["call_queue_position"].notna()
    if explain.any() and p.reasons_top_k > 0:
        ids = out.loc[explain, "lead_id"].to_numpy()
        features = rows.assign(_id=rows["lead_id"].astype(str)).drop_duplicates("_id").set_index("_id")
        X = features.loc[ids, [str(c) for c in model.feature_names_in_]]
        X.index = out.index[explain]
        reasons = top_reasons(model.contributions(X), X, k=p.reasons_top_k, phrasebook=phrasebook)
        out.loc[explain, "reasons_for"] = reasons["reasons_for"].to_numpy()
        out.loc[explain, "reasons_against"] = reasons["reasons_against"].to_numpy()
    return out


def _latest_history(history_dir: Path) -> pd.DataFrame | None:
    files = sorted(Path(history_dir).glob("sql_leads_*.parquet"))
    return pd.read_parquet(files[-1]) if files else None


def finish(scored: pd.DataFrame, rows: pd.DataFrame, model, p: ScoreParams, out_dir: Path, reports_dir: Path,
           history_dir: Path | None, database_url: str | None, phrasebook: Phrasebook | None) -> dict:
    """Hand over, compare with the previous scoring, write every export and the summary."""
    table = hand_over(scored, rows, model, p, phrasebook)
    previous = _latest_history(history_dir) if history_dir else None
    changes = compare(previous, table)
    table = table.merge(changes[["lead_id", "change"]], on="lead_id", how="left")
    ordered = [c for c in OUTPUT_COLUMNS if c in table] + [c for c in table if c not in OUTPUT_COLUMNS]
    table = table[ordered]
    paths = export_all(table, out_dir, database_url, changes=changes)
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


def new_scoring_run_id() -> str:
    return uuid.uuid4().hex


def _phrasebook(icp: IcpParams | None) -> Phrasebook:
    icp = icp or IcpParams()
    return Phrasebook(icp_min_employees=icp.min_employees, icp_max_employees=icp.max_employees)


def run(features_path: Path, models_dir: Path, validated_dir: Path, out_dir: Path, reports_dir: Path,
        p: ScoreParams, database_url: str | None = None, history_dir: Path | None = None,
        icp: IcpParams | None = None) -> dict:
    table = pd.read_parquet(features_path)
    rows = table[table["split"] == "score"] if "split" in table else table
    model, info = load_model(models_dir)
    accounts = read_table(find_table(validated_dir, "accounts"))
    opportunities = read_table(find_table(validated_dir, "opportunities"))
    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    check_feature_schema(feature_columns(table), model, str(features_path))
    scored = score_frame(rows, model, accounts, opportunities, p, info["model_version"], info["run_id"], scored_at,
                         new_scoring_run_id())
    return finish(scored, rows, model, p, out_dir, reports_dir, history_dir, database_url, _phrasebook(icp))


# ------------------------------------------------------------------------------------ scoring new data
def load_registered(model_uri: str):
    """(fitted model, bundled ScoreParams overrides, model version) from an MLflow model URI.

    A pyfunc bundle (models/pyfunc.py) brings its own gates and decision policy, so the batch scoring agrees with
    the served model; a plain sklearn-flavoured model brings only the classifier.
    """
    from pipeline import tracking

    tracking.configure()
    import mlflow

    overrides: dict = {}
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; the message is what the user needs
        raise ValueError(f"cannot load model {model_uri!r}: {exc}") from None
    try:
        bundle = loaded.unwrap_python_model()
    except Exception:  # noqa: BLE001 - not a python_model pyfunc (e.g. the sklearn flavour)
        bundle = None
    if bundle is not None and hasattr(bundle, "gate_config") and hasattr(bundle, "model"):
        model = bundle.model
        overrides = {"gates": dict(bundle.gate_config), "threshold": bundle.policy.threshold,
                     "unknown_policy": bundle.policy.unknown_policy, "tiers": dict(bundle.policy.tiers)}
    else:
        from pipeline.tracking import TRUSTED_MODEL_TYPES

        try:
            model = mlflow.sklearn.load_model(model_uri, skops_trusted_types=TRUSTED_MODEL_TYPES)
        except TypeError:  # an MLflow without the skops argument
            model = mlflow.sklearn.load_model(model_uri)
    meta = loaded.metadata
    version = model_uri
    if model_uri.startswith("models:/"):
        try:
            from mlflow.tracking import MlflowClient

            name, _, ref = model_uri.removeprefix("models:/").partition("@")
            if ref:
                version = f"{name}/{MlflowClient().get_model_version_by_alias(name, ref).version}"
            else:
                version = model_uri.removeprefix("models:/")
        except Exception:  # noqa: BLE001 - an unregistered URI keeps its own name as the version
            pass
    return model, overrides, version, meta.run_id or ""


def read_input(input_path: Path, as_of: str, featurize_params, validate_params) -> tuple[pd.DataFrame, dict]:
    """Feature rows from a feature file (Parquet/CSV), or from a CRM export folder (validated, then featurized)."""
    input_path = Path(input_path)
    if input_path.is_dir():
        from features.build import build_feature_table, prepare_crm
        from features.schema import TABLE_ORDER
        from pipeline import validate
        from pipeline.featurize import feature_config
        from pipeline.io import read_tables

        with tempfile.TemporaryDirectory() as tmp:
            validate.run(input_path, Path(tmp) / "validated", Path(tmp) / "reports", as_of, validate_params)
            tables = read_tables(Path(tmp) / "validated", TABLE_ORDER)
        config = feature_config(featurize_params)
        crm = prepare_crm(**tables, icp=config.icp)
        rows = build_feature_table(crm, {"score": [pd.Timestamp(as_of).normalize()]}, config,
                                   float32=featurize_params.float32)  # as the featurize stage stores them
        return rows, {"accounts": tables["accounts"], "opportunities": tables["opportunities"]}
    if not input_path.exists():
        raise FileNotFoundError(f"{input_path}: input not found (a feature file or a CRM export folder)")
    rows = read_table(input_path)
    if "split" in rows and (rows["split"] == "score").any():
        rows = rows[rows["split"] == "score"]
    if "lead_id" not in rows:
        raise FeatureSchemaError(f"{input_path}: feature schema mismatch: missing column(s) ['lead_id']")
    if "as_of" not in rows:
        rows = rows.assign(as_of=pd.Timestamp(as_of))
    return with_categories(rows), {}


def score_with_registered_model(model_uri: str, input_path: Path, out_dir: Path, reports_dir: Path, p: ScoreParams,
                                as_of: str, featurize_params, validate_params, database_url: str | None = None,
                                history_dir: Path | None = None, validated_dir: Path | None = None) -> dict:
    """`leadscore score --model models:/<name>@champion --input ...`: score new data with a registered model."""
    import dataclasses

    model, overrides, version, model_run = load_registered(model_uri)
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
                  _phrasebook(featurize_params.icp))
