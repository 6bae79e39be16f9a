"""The score stage's core: probability, BANT gates, SQL decision, expected value, tier, rank, hand-over, reasons.

`score_frame` turns the feature rows of one as-of date into the ranked `sql_leads` table; `hand_over` assigns the
SQLs to reps and queues qualification calls within capacity, explaining exactly those leads. Every driver (the DVC
stage, `leadscore run`, `score --model`, the chunked scorer, Spark partitions, benchmarks, the report's backtest)
calls these. `ScoreConfig` is the ``score:`` section of params.yaml. Pure: frames in, frames out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from features.config import DEFAULT_ICP, Icp
from features.schema import BANT_CONFIRMED_COLUMNS, FLAT
from features.subscores import engagement_score, fit_score
from models.assignment import assign, parse_assignment
from models.config import ScoreConfig
from models.gates import evaluate_gates, parse_gates, texts_of
from models.ranking import NEEDS_CALL, SQL, DecisionPolicy, assign_tiers, decide, fit_deal_size, rank_leads
from models.reasons import Phrasebook, top_reasons


def phrasebook_for(icp: Icp | None = None) -> Phrasebook:
    """Plain-word reasons that quote the ideal customer profile's size band."""
    icp = icp or DEFAULT_ICP
    return Phrasebook(icp_min_employees=icp.min_employees, icp_max_employees=icp.max_employees)


# The documented schema of `sql_leads` (README "Output schema"). Bump SCHEMA_VERSION on any change a consumer
# could notice: a column added, removed, renamed or given another meaning. `gate_<name>` stands for one column
# per configured gate (budget, authority, need, timeline by default).
SCHEMA_VERSION = 3  # 3: status with_sales
PROGRESS_CHUNK_ROWS = 50_000  # rows scored between two progress reports
SQL_LEADS_SCHEMA: dict[str, str] = {
    "lead_id": "text: the CRM's lead id",
    "account_id": "text: the lead's company",
    "rank": "integer: 1 = call first (SQLs by expected value, then the call queue, nurture, disqualified)",
    "status": "text: sql / needs_call / nurture / disqualified / with_sales (sales already works the lead: never "
              "an SQL, never queued, ranked last)",
    "is_sql": "boolean: status = sql",
    "score": "integer 0-100: round(100 × p_convert)",
    "p_convert": "real 0-1: calibrated probability of closing won within the horizon",
    "expected_value": "real: p_convert × expected_deal_size",
    "expected_deal_size": "real: median won amount of companies in the same size band (default when too few)",
    "tier": "text: A / B / C / D by p_convert bounds",
    "fit_score": "real 0-100: firmographic and persona fit",
    "engagement_score": "real 0-100: time-decayed engagement",
    "gate_<name>": "text: pass / fail / unknown, one column per configured gate",
    "status_reason": "text: the failed gate(s), the gate(s) a call must confirm, or the threshold missed",
    "assigned_rep": "text or null: the sales rep the SQL is handed to this week",
    "queue_position": "integer or null: position in that rep's queue (1 = first)",
    "assignment_reason": "text or null: territory, round-robin, overflow, or why it is not assigned",
    "call_queue_position": "integer or null: position in the qualification-call queue (within call capacity)",
    "reasons_for": "text or null: up to three factors raising the score, '; '-separated (handed-over rows only)",
    "reasons_against": "text or null: up to three factors lowering the score (handed-over rows only)",
    "change": "text: new_sql / upgraded / downgraded / dropped / unchanged / new_lead since the previous scoring",
    "territory": "text or null: the territory used for assignment (params score.assignment.territory_column)",
    "as_of": "timestamp: the date the features describe",
    "scored_at": "timestamp (UTC): when this scoring ran",
    "model_version": "text: registered model name/version",
    "model_run_id": "text: MLflow run that trained the model",
    "scoring_run_id": "text: id of this scoring run (same on every row of one run)",
    "schema_version": f"integer: version of this schema ({SCHEMA_VERSION})",
}
OUTPUT_COLUMNS = tuple(SQL_LEADS_SCHEMA)


ACCOUNT_COLUMNS = ("employees", "annual_revenue", "country")
SUBSCORE_COLUMNS = ("icp_industry", "icp_size", "icp_country", "seniority_level", "engagement_decayed")


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


OPEN_LEADS = "open leads"
# What a flat export without open leads scores instead: its held-out leads, whose outcomes are known (won customers
# among them), so the table is a replay of the hold-out to look at, not leads to hand over. Callers warn with it.
HELD_OUT_REPLAY = ("held-out leads (a replay: the export has no open leads, every label is positive or negative; "
                   "their outcomes are known, so these are not leads to hand over)")


def rows_to_score(table: pd.DataFrame, variant: str) -> tuple[pd.DataFrame, str]:
    """(rows, what they are): the open leads (split ``score``: a flat export's declared open label values), and
    ``OPEN_LEADS``; a flat export without any open lead gives its held-out leads instead, and ``HELD_OUT_REPLAY``."""
    rows = table[table["split"] == "score"] if "split" in table else table
    if len(rows) == 0 and variant == FLAT and "split" in table:
        return table[table["split"] == "test"], HELD_OUT_REPLAY
    return rows, OPEN_LEADS


def with_subscore_inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with every column the fit and engagement sub-scores and the BANT answers read (missing when a
    flat export does not have it: a missing value is unknown, not "no")."""
    absent = [c for c in (*SUBSCORE_COLUMNS, *BANT_CONFIRMED_COLUMNS) if c not in rows]
    return rows.assign(**{c: np.nan for c in absent}) if absent else rows


def policy_of(p: ScoreConfig) -> DecisionPolicy:
    capacity = p.sql_capacity if p.sql_capacity is not None else parse_assignment(p.assignment).capacity
    return DecisionPolicy(p.threshold, p.unknown_policy, p.tiers, p.sql_rule, capacity)


def _context(rows: pd.DataFrame, accounts: pd.DataFrame | None, needed: list[str]) -> pd.DataFrame:
    """The `needed` columns of the feature rows plus the account columns gates may name (from accounts, else
    from the log features). Only what the gates read is copied: chunks of a large run stay small."""
    context = rows.loc[:, [c for c in needed if c in rows]].copy()
    acc = accounts if accounts is not None and len(accounts) else None
    where = source = None  # each lead's row in `source`, -1 when unknown: looked up once for all account columns
    for col in ACCOUNT_COLUMNS:
        if col in context or col in rows:
            if col not in context:
                context[col] = rows[col].to_numpy()
            continue
        if acc is not None and col in acc:
            if where is None:
                where, source = _account_rows(rows["account_id"], acc)
            context[col] = source[col].array.take(where, allow_fill=True).to_numpy()  # = reindex, one lookup
        elif col == "employees" and "log_employees" in rows:
            context[col] = np.round(10 ** rows["log_employees"].astype(float))
        elif col == "annual_revenue" and "log_revenue" in rows:
            context[col] = 10 ** rows["log_revenue"].astype(float)
        else:
            context[col] = np.nan
    return context


def _account_rows(ids: pd.Series, accounts: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(each lead's row in the returned accounts frame, -1 when unknown; that frame): the first row of its account
    id. Text ids are looked up in Arrow (one hash pass, rows of `accounts`); others through the de-duplicated
    index (rows of the de-duplicated frame)."""
    if isinstance(ids.dtype, pd.StringDtype) and isinstance(accounts["account_id"].dtype, pd.StringDtype):
        return first_match(ids, accounts["account_id"]), accounts
    dedup = accounts.drop_duplicates("account_id").set_index("account_id")
    return dedup.index.get_indexer(ids), dedup


def _arrow_text(s: pd.Series):
    """`s` as one Arrow string array (values as text, missing values null)."""
    import pyarrow as pa

    s = s if isinstance(s.dtype, pd.StringDtype) else s.astype(str)
    arr = pa.array(s.array)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def first_match(keys: pd.Series, lookup: pd.Series) -> np.ndarray:
    """Per key, the position of its first occurrence in `lookup` (both compared as text), -1 when absent: one
    hash pass in Arrow."""
    import pyarrow.compute as pc

    keys, lookup = _arrow_text(keys), _arrow_text(lookup)
    if len(keys) * FEW_KEYS_FACTOR >= len(lookup):
        found = pc.index_in(keys, value_set=lookup)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
    # a few keys in a long lookup (the explained leads among every scored row): hash the keys, not the lookup
    hit = pc.index_in(lookup, value_set=keys)  # per lookup row, the first key holding its value
    rows = np.flatnonzero(hit.is_valid().to_numpy(zero_copy_only=False))
    which = hit.drop_null().to_numpy(zero_copy_only=False).astype(np.intp)
    first = np.full(len(keys), -1, dtype=np.intp)
    found_keys, at = np.unique(which, return_index=True)  # rows ascend: each key's first row
    first[found_keys] = rows[at]
    own = pc.index_in(keys, value_set=keys).to_numpy(zero_copy_only=False).astype(np.intp)  # a repeated key: its first
    return first[own]


# first_match hashes the keys instead of the lookup when the lookup is this many times longer (hashing 1M ids to
# find 300 of them: 264 ms; probing the 1M ids against the 300: 12 ms)
FEW_KEYS_FACTOR = 8


def first_occurrence(keys: pd.Series) -> np.ndarray:
    """Per row, whether it holds the first occurrence of its key (compared as text; missing keys as one key): one
    dictionary-encoding pass, and none of the sorting when every key is distinct."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(_arrow_text(keys), null_encoding="encode")
    if len(encoded.dictionary) == len(keys):
        return np.ones(len(keys), dtype=bool)
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(encoded.indices.to_numpy(zero_copy_only=False), return_index=True)[1]] = True
    return first


def score_frame(rows: pd.DataFrame, model, accounts: pd.DataFrame | None, opportunities: pd.DataFrame | None,
                p: ScoreConfig, model_version: str, run_id: str, scored_at: pd.Timestamp,
                scoring_run_id: str = "", on_rows: Callable[[int, int], None] | None = None,
                p_convert: np.ndarray | None = None) -> pd.DataFrame:
    """The ranked table for feature rows of one as-of date: gates, probability, decision, value, tier, rank.

    `run_id` is the MLflow run that trained the model; `scoring_run_id` identifies this scoring; `on_rows(done,
    total)`, when given, is called as the rows are scored (progress); `p_convert`: the model's probabilities of
    these rows when the caller has them already (the report's held-out rows), in the rows' order.
    """
    rows = with_subscore_inputs(rows.reset_index(drop=True))
    gates = parse_gates(p.gates, list(dict.fromkeys([*rows.columns, *ACCOUNT_COLUMNS])))
    context = _context(rows, accounts, list(dict.fromkeys(c for g in gates for c in g.columns())))
    gate_table = evaluate_gates(context, gates)
    if p_convert is None:
        p_convert = predict_rows(model, rows[[str(c) for c in model.feature_names_in_]], on_rows)
    elif len(p_convert) != len(rows):
        raise ValueError(f"p_convert holds {len(p_convert):,} probabilities for {len(rows):,} rows")
    p_convert = np.asarray(p_convert, dtype=float)

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
    with_sales = rows["with_sales"].fillna(False).to_numpy(dtype=bool) if "with_sales" in rows else None
    decision = decide(gate_table, p_convert, policy_of(p), priority=expected_value, with_sales=with_sales)

    # the rows are put in rank order once, column by column, before the table is assembled (no sort of the table)
    rank = rank_leads(decision["status"], expected_value.round(2))
    order = np.empty(len(rank), dtype=np.intp)
    order[rank - 1] = np.arange(len(rank))  # rank is a permutation of 1..n

    def ranked(values):
        return values.take(order).reset_index(drop=True) if isinstance(values, pd.Series | pd.DataFrame) \
            else np.asarray(values)[order]

    out = pd.DataFrame({"lead_id": ranked(rows["lead_id"].astype(str)),
                        "account_id": ranked(rows["account_id"].astype(str)) if "account_id" in rows else None})
    out["p_convert"] = ranked(p_convert.round(6))
    out["score"] = ranked(np.rint(100 * p_convert).astype(int))
    out["expected_deal_size"] = ranked(deal_size.round(2))
    out["expected_value"] = ranked(expected_value.round(2))
    out["tier"] = ranked(assign_tiers(p_convert, p.tiers))
    out["fit_score"] = ranked(fit_score(rows).to_numpy())
    out["engagement_score"] = ranked(engagement_score(rows).to_numpy())
    territory = parse_assignment(p.assignment).territory_column
    out["territory"] = _ranked_text(rows[territory], order) if territory in rows else pd.NA
    out = out.join(ranked(gate_table)).join(ranked(decision))
    out["rank"] = rank[order]
    out["as_of"] = as_of
    out["model_version"] = model_version
    out["model_run_id"] = run_id
    out["scoring_run_id"] = scoring_run_id
    out["scored_at"] = scored_at
    out["schema_version"] = SCHEMA_VERSION
    ordered = [c for c in OUTPUT_COLUMNS if c in out] + [c for c in out if c not in OUTPUT_COLUMNS]
    return out[ordered]


def _ranked_text(values: pd.Series, order: np.ndarray):
    """`values` as text (pandas' ``str``) in the rows' rank `order`; a categorical of text by its codes."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(dtype.categories.dtype):
        return texts_of(values.cat.codes.to_numpy()[order], list(dtype.categories), "str")
    return values.astype("str").take(order).reset_index(drop=True)


def predict_rows(model, X: pd.DataFrame, on_rows: Callable[[int, int], None] | None = None,
                 chunk_rows: int = PROGRESS_CHUNK_ROWS) -> np.ndarray:
    """P(convert) of each row; with `on_rows`, in chunks of `chunk_rows` rows, reporting after each (the
    probabilities are the same: every model scores row by row)."""
    if on_rows is None or len(X) <= chunk_rows:
        p_convert = np.asarray(model.predict_proba(X)[:, 1], dtype=float)
    else:
        parts = []
        for start in range(0, len(X), chunk_rows):
            parts.append(np.asarray(model.predict_proba(X.iloc[start:start + chunk_rows])[:, 1], dtype=float))
            on_rows(min(start + chunk_rows, len(X)), len(X))
        p_convert = np.concatenate(parts)
    if on_rows is not None:
        on_rows(len(X), len(X))
    return p_convert


def hand_over(scored: pd.DataFrame, rows: pd.DataFrame, model, p: ScoreConfig,
              phrasebook: Phrasebook | None = None) -> pd.DataFrame:
    """Assign SQLs to reps within capacity, queue calls within capacity, and explain exactly those leads.

    `scored` is ranked (score_frame's output); `rows` are the same leads' feature rows. Reasons come from the
    model's per-row contributions, computed only for the assigned SQLs and the call-queue leads within capacity.
    """
    out = scored.copy(deep=False)  # only new columns are set below: none reaches `scored`
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
        columns = [str(c) for c in model.feature_names_in_]
        X = rows.iloc[first_match(out.loc[explain, "lead_id"], rows["lead_id"])][columns]  # each lead's first row
        X.index = out.index[explain]
        # "typical lead" (columns without a sentence of their own) means every scored lead, not the explained few
        unique = first_occurrence(rows["lead_id"])
        phrasebook = (phrasebook or Phrasebook()).with_typical(rows[columns] if unique.all() else rows.loc[unique, columns])
        reasons = top_reasons(model.contributions(X), X, k=p.reasons_top_k, phrasebook=phrasebook)
        out.loc[explain, "reasons_for"] = reasons["reasons_for"].to_numpy()
        out.loc[explain, "reasons_against"] = reasons["reasons_against"].to_numpy()
    return out

