"""What changed since the previous scoring: new SQLs, upgraded, downgraded, dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.ranking import SQL, STATUS_ORDER

NEW_SQL, UPGRADED, DOWNGRADED, DROPPED, UNCHANGED, NEW_LEAD = (
    "new_sql", "upgraded", "downgraded", "dropped", "unchanged", "new_lead")
CHANGE_KINDS = (NEW_SQL, UPGRADED, DOWNGRADED, DROPPED, UNCHANGED, NEW_LEAD)
KEY_COLUMNS = ("lead_id", "status", "tier", "rank")


def _level(status: pd.Series, tier: pd.Series) -> np.ndarray:
    """A comparable grade: status first (SQL best), then tier (A best)."""
    s = status.map(STATUS_ORDER).astype(float).fillna(len(STATUS_ORDER)).to_numpy()
    t = tier.astype("string").fillna("Z").str.slice(0, 1).map(ord).astype(float).to_numpy()
    return s * 1000 + t


def diff_scorings(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    """One row per lead in either scoring with its change kind.

    new_sql: an SQL now that was not one before (or was not scored); dropped: an SQL before that is not one now
    (or is no longer scored); upgraded / downgraded: a better / worse status or tier otherwise; new_lead: first
    scored now and not an SQL; unchanged: same status and tier.
    """
    for name, frame in (("current", current), ("previous", previous)):
        if frame is None:
            continue
        missing = [c for c in KEY_COLUMNS if c not in frame]
        if missing:
            raise ValueError(f"{name} scoring is missing column(s) {missing}")
    cur, prev = _keys(previous, current)
    fast = _diff_unique_ids(cur, prev)
    return fast if fast is not None else diff_by_merge(previous, current)


def _keys(previous: pd.DataFrame | None, current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The key columns of both scorings (no previous scoring: an empty one of the same types)."""
    cur = current.loc[:, list(KEY_COLUMNS)]
    if previous is None:
        return cur, pd.DataFrame({c: pd.Series(dtype=cur[c].dtype) for c in KEY_COLUMNS})
    return cur, previous.loc[:, list(KEY_COLUMNS)]


def diff_by_merge(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    """diff_scorings by pandas' outer merge on lead ids: for any ids (repeated, numeric), and the reference the
    id-lookup path is tested against."""
    cur, prev = _keys(previous, current)
    merged = cur.merge(prev, on="lead_id", how="outer", suffixes=("", "_previous"), indicator=True)
    now_sql = merged["status"].eq(SQL).fillna(False).to_numpy(dtype=bool)
    was_sql = merged["status_previous"].eq(SQL).fillna(False).to_numpy(dtype=bool)
    both = (merged["_merge"] == "both").to_numpy()
    only_new = (merged["_merge"] == "left_only").to_numpy()
    now = _level(merged["status"], merged["tier"])
    before = _level(merged["status_previous"], merged["tier_previous"])
    change = np.select(
        [now_sql & ~was_sql, was_sql & ~now_sql, only_new, both & (now < before), both & (now > before)],
        [NEW_SQL, DROPPED, NEW_LEAD, UPGRADED, DOWNGRADED],
        default=UNCHANGED,
    )
    # A lead that left the scoring and was not an SQL before is simply gone: not a change anyone acts on.
    gone_quietly = (merged["_merge"] == "right_only").to_numpy() & ~was_sql
    out = merged.loc[~gone_quietly, ["lead_id", "status_previous", "status", "tier_previous", "tier",
                                     "rank_previous", "rank"]].copy()
    out.insert(1, "change", change[~gone_quietly])
    out[["rank_previous", "rank"]] = out[["rank_previous", "rank"]].astype("Int64")
    order = out["change"].map({k: i for i, k in enumerate(CHANGE_KINDS)})
    return out.assign(_o=order).sort_values(["_o", "rank"], na_position="last").drop(columns="_o").reset_index(drop=True)


def _text_ids(frame: pd.DataFrame):
    """The lead ids as one Arrow array, when they are text, present and unique (else None)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = frame["lead_id"]
    if not isinstance(column.dtype, pd.StringDtype) or column.isna().any():
        return None
    arr = pa.array(column.array)
    arr = (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).cast(pa.large_string())
    return arr if pc.count_distinct(arr).as_py() == len(arr) else None


def _per_code(values: pd.Series, of_value, missing) -> tuple[np.ndarray, np.ndarray]:
    """(each row's code, -1 when missing; the value of `of_value` for each code, `missing` at the end for -1)."""
    codes, uniques = pd.factorize(values)
    return codes, np.array([*(of_value(v) for v in uniques), missing], dtype=float)


def _diff_unique_ids(cur: pd.DataFrame, prev: pd.DataFrame) -> pd.DataFrame | None:
    """diff_scorings' table for scorings whose lead ids are unique text (a scoring's are), without the outer merge
    (seconds at a million leads): leads are matched by Arrow hash lookups, the grades compared on codes, and every
    output column taken once, in the final order. The rows and their order are the merge's: change kind, rank
    (missing last), then lead id, as the outer merge sorts ids. None when the ids are not such text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    c, p = _text_ids(cur), _text_ids(prev)
    if c is None or p is None or cur["lead_id"].dtype != prev["lead_id"].dtype:
        return None
    where_prev = pc.index_in(c, value_set=p).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
    gone = np.flatnonzero(~pc.is_in(p, value_set=c).to_numpy(zero_copy_only=False))
    where_cur = np.concatenate([np.arange(len(c)), np.full(len(gone), -1)])
    where_prev = np.concatenate([where_prev, gone])
    in_cur, in_prev = where_cur >= 0, where_prev >= 0

    def grade(frame: pd.DataFrame, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is an SQL, `_level`) of each row, from `frame`'s row `where` (-1: none)."""
        s_codes, s_level = _per_code(frame["status"], lambda v: STATUS_ORDER.get(v, len(STATUS_ORDER)),
                                     len(STATUS_ORDER))
        _, s_sql = _per_code(frame["status"], lambda v: v == SQL, 0.0)
        t_codes, t_level = _per_code(frame["tier"], lambda v: ord(str(v)[:1]), ord("Z"))
        s, t = np.append(s_codes, -1)[where], np.append(t_codes, -1)[where]  # where -1: the missing slot
        return s_sql[s] > 0, s_level[s] * 1000 + t_level[t]

    now_sql, now = grade(cur, where_cur)
    was_sql, before = grade(prev, where_prev)
    both = in_cur & in_prev
    kinds = [CHANGE_KINDS.index(k) for k in (NEW_SQL, DROPPED, NEW_LEAD, UPGRADED, DOWNGRADED)]
    kind = np.select([now_sql & ~was_sql, was_sql & ~now_sql, in_cur & ~in_prev, both & (now < before),
                      both & (now > before)], kinds, default=CHANGE_KINDS.index(UNCHANGED))
    keep = np.flatnonzero(in_cur | was_sql)  # a lead gone from the scoring that was no SQL is not a change
    ranks = {name: pd.array(frame["rank"]).astype("Int64") for name, frame in (("cur", cur), ("prev", prev))}
    rank_key = np.append(ranks["cur"].to_numpy(dtype=float, na_value=np.inf), np.inf)[where_cur][keep]
    kind = kind[keep]
    order = np.lexsort((rank_key, kind))
    # rows of one change kind and rank (a missing rank: dropped leads) keep the merge's order: their ids sorted
    k, r = kind[order], rank_key[order]
    tied = np.zeros(len(order), dtype=bool)
    same = (k[1:] == k[:-1]) & (r[1:] == r[:-1])
    tied[1:] |= same
    tied[:-1] |= same
    ids = pa.concat_arrays([c, p.take(pa.array(gone))])
    if tied.any():
        rows = keep[order[tied]]
        by_id = np.empty(len(rows), dtype=np.int64)
        by_id[pc.sort_indices(ids.take(pa.array(rows))).to_numpy()] = np.arange(len(rows))
        tiebreak = np.zeros(len(order), dtype=np.int64)
        tiebreak[tied] = by_id
        order = order[np.lexsort((tiebreak, r, k))]
    rows = keep[order]
    fc, fp = where_cur[rows], where_prev[rows]

    out = pd.DataFrame({"lead_id": pd.array(ids.take(pa.array(rows)), dtype=cur["lead_id"].dtype)})
    out.insert(1, "change", np.array(CHANGE_KINDS)[kind[order]])
    for col in ("status", "tier"):
        out[f"{col}_previous"] = prev[col].array.take(fp, allow_fill=True)
        out[col] = cur[col].array.take(fc, allow_fill=True)
    out["rank_previous"] = ranks["prev"].take(fp, allow_fill=True)
    out["rank"] = ranks["cur"].take(fc, allow_fill=True)
    return out[["lead_id", "change", "status_previous", "status", "tier_previous", "tier", "rank_previous", "rank"]]


def first_scoring_changes(table: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.Series | None]:
    """`diff_scorings(None, table)` (no previous scoring: every lead is new) and each row's change,
    without the outer merge on lead ids diff_scorings makes (seconds at 820k leads), or (None, None) when the
    table is not one this shortcut gives the same answer for (a lead id missing or repeated, ranks repeated or
    missing): diff_scorings then does it."""
    if any(c not in table for c in KEY_COLUMNS) or not len(table):
        return None, None
    rank = table["rank"]
    if rank.isna().any() or not pd.api.types.is_integer_dtype(rank.dtype) or table["lead_id"].isna().any():
        return None, None
    if not table["lead_id"].astype(str).is_unique:
        return None, None
    is_sql = table["status"].eq(SQL).fillna(False).to_numpy(dtype=bool)
    kind_order = np.where(is_sql, CHANGE_KINDS.index(NEW_SQL), CHANGE_KINDS.index(NEW_LEAD))
    ranks = rank.to_numpy(dtype=np.int64)
    order = np.lexsort((ranks, kind_order))
    if len(order) > 1 and ((np.diff(kind_order[order]) == 0) & (np.diff(ranks[order]) == 0)).any():
        return None, None  # ties: their order would be the merge's (lead ids), leave it to diff_scorings
    cur = table[["lead_id", "status", "tier"]].iloc[order].reset_index(drop=True)
    none = np.full(len(table), -1)
    changes = pd.DataFrame({
        "lead_id": cur["lead_id"], "change": np.where(is_sql[order], NEW_SQL, NEW_LEAD),
        "status_previous": cur["status"].array.take(none, allow_fill=True), "status": cur["status"],
        "tier_previous": cur["tier"].array.take(none, allow_fill=True), "tier": cur["tier"],
        "rank_previous": pd.arrays.IntegerArray(np.zeros(len(table), dtype=np.int64), np.ones(len(table), dtype=bool)),
        "rank": pd.array(ranks[order], dtype="Int64")})
    return changes, pd.Series(changes["change"].array.take(np.argsort(order)), index=table.index)


def change_counts(changes: pd.DataFrame) -> dict[str, int]:
    counts = changes["change"].value_counts()
    return {k: int(counts.get(k, 0)) for k in CHANGE_KINDS}
