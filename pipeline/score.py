"""Stage `score`: probability, BANT gates, SQL decision, expected value and rank for every open lead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.build import feature_columns
from features.subscores import engagement_score, fit_score
from models.gates import evaluate_gates, parse_gates
from models.ranking import DecisionPolicy, assign_tiers, decide, fit_deal_size, rank_leads
from pipeline.export import export_all
from pipeline.io import find_table, read_table, write_json
from pipeline.params import ScoreParams
from pipeline.progress import log
from pipeline.train import load_model

ACCOUNT_COLUMNS = ("employees", "annual_revenue", "country")
OUTPUT_COLUMNS = (
    "lead_id", "account_id", "rank", "status", "is_sql", "score", "p_convert", "expected_value",
    "expected_deal_size", "tier", "fit_score", "engagement_score", "gate_budget", "gate_authority",
    "gate_need", "gate_timeline", "status_reason", "as_of", "model_version", "run_id", "scored_at",
)


def score_frame(rows: pd.DataFrame, model, accounts: pd.DataFrame, opportunities: pd.DataFrame, p: ScoreParams,
                model_version: str, run_id: str, scored_at: pd.Timestamp) -> pd.DataFrame:
    """The ranked SQL table for feature rows of one as-of date."""
    acc = accounts.drop_duplicates("account_id").set_index("account_id")
    rows = rows.reset_index(drop=True)
    context = rows.copy()
    for col in ACCOUNT_COLUMNS:
        context[col] = acc[col].reindex(rows["account_id"]).to_numpy() if col in acc else np.nan
    gates = parse_gates(p.gates, list(context.columns))
    gate_table = evaluate_gates(context, gates)
    p_convert = model.predict_proba(rows[model.feature_names_in_.tolist()])[:, 1]
    decision = decide(gate_table, p_convert, DecisionPolicy(p.threshold, p.unknown_policy, p.tiers))

    as_of = pd.Timestamp(rows["as_of"].iloc[0]) if len(rows) else scored_at
    won = opportunities[(opportunities["stage"] == "closed_won") & (pd.to_datetime(opportunities["closed_at"]) < as_of)]
    won_employees = acc["employees"].reindex(won["account_id"]).reset_index(drop=True)
    deal_model = fit_deal_size(won["amount"].reset_index(drop=True), won_employees, p.default_deal_size)
    deal_size = deal_model.predict(context["employees"])

    out = pd.DataFrame({"lead_id": rows["lead_id"], "account_id": rows["account_id"]})
    out["p_convert"] = p_convert.round(6)
    out["score"] = np.rint(100 * p_convert).astype(int)
    out["expected_deal_size"] = deal_size.round(2)
    out["expected_value"] = (p_convert * deal_size).round(2)
    out["tier"] = assign_tiers(p_convert, p.tiers)
    out["fit_score"] = fit_score(rows)
    out["engagement_score"] = engagement_score(rows)
    out = out.join(gate_table).join(decision)
    out["rank"] = rank_leads(out["status"], out["expected_value"].to_numpy())
    out["as_of"] = as_of
    out["model_version"] = model_version
    out["run_id"] = run_id
    out["scored_at"] = scored_at
    ordered = [c for c in OUTPUT_COLUMNS if c in out] + [c for c in out if c not in OUTPUT_COLUMNS]
    return out[ordered].sort_values("rank").reset_index(drop=True)


def run(features_path: Path, models_dir: Path, validated_dir: Path, out_dir: Path, reports_dir: Path,
        p: ScoreParams, database_url: str | None = None) -> dict:
    table = pd.read_parquet(features_path)
    rows = table[table["split"] == "score"]
    model, info = load_model(models_dir)
    accounts = read_table(find_table(validated_dir, "accounts"))
    opportunities = read_table(find_table(validated_dir, "opportunities"))
    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    # Feature columns must be exactly the model's: a schema mismatch is refused, naming the columns.
    missing = sorted(set(model.feature_names_in_) - set(feature_columns(table)))
    if missing:
        raise ValueError(f"{features_path}: missing feature column(s) the model needs: {missing}")
    scored = score_frame(rows, model, accounts, opportunities, p, info["model_version"], info["run_id"], scored_at)
    paths = export_all(scored, out_dir, database_url)
    summary = {
        "n_scored": int(len(scored)),
        "n_sql": int(scored["is_sql"].sum()),
        "status_counts": {k: int(v) for k, v in scored["status"].value_counts().items()},
        "tier_counts": {k: int(v) for k, v in scored["tier"].value_counts().items()},
        "expected_value_sql": float(scored.loc[scored["is_sql"], "expected_value"].sum()),
    }
    write_json(summary, Path(reports_dir) / "score_summary.json")
    log(f"scored {summary['n_scored']:,} leads: {summary['n_sql']:,} SQLs; written to {paths['database']}, "
        f"{paths['parquet']}, {paths['csv']}")
    return summary
