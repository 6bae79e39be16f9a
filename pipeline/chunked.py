"""Score a feature table too large for memory: Parquet row batches in, scored Parquet parts out, one global rank.

Each batch goes through the same `score_frame` as the in-memory stage, so gates, decisions and tiers cannot
drift. Only three small columns per lead (lead_id, status order, expected value) stay in memory to rank all
leads at the end, so peak memory is bounded by the batch size, not by the number of leads.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.config import ScoreConfig
from models.decision import score_frame
from models.ranking import STATUS_ORDER
from pipeline.io import atomic_path, iter_split_batches, write_parquet


def refuse_global_rule(p: ScoreConfig) -> None:
    """`sql_rule: capacity` picks the best N leads of the whole table: no batch can decide that on its own."""
    if p.sql_rule != "threshold":
        raise ValueError(f"score.sql_rule {p.sql_rule!r} ranks all leads at once; batch-by-batch scoring "
                         "supports sql_rule 'threshold' only")


def iter_feature_batches(paths: list[Path], batch_rows: int):
    """DataFrames of at most `batch_rows` score rows, read batch by batch (categoricals restored)."""
    yield from iter_split_batches(paths, batch_rows, "score")


def score_in_chunks(
    feature_paths: list[Path], model, accounts: pd.DataFrame, opportunities: pd.DataFrame, p: ScoreConfig,
    out_dir: Path, batch_rows: int = 250_000, model_version: str = "", run_id: str = "",
) -> dict:
    """Score every row of `feature_paths`; write `out_dir/part-*.parquet` and `out_dir/rank.parquet` (an earlier
    run's parts and rank in `out_dir` are removed first).

    The parts hold the scored rows (their `rank` column is the rank within the part); `rank.parquet` holds
    the global rank of every lead over all parts (status order first, then expected value, descending).
    """
    refuse_global_rule(p)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # An earlier scoring's parts and rank would be read as this one's (`hand_over_chunks` takes every part): gone
    # first, the rank before the parts, so a run that stops half-way leaves parts without a rank, never a mix.
    (out_dir / "rank.parquet").unlink(missing_ok=True)
    for stale in out_dir.glob("part-*.parquet"):
        stale.unlink()
    scored_at = pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    ids, order_keys, values = [], [], []
    n_parts = n_rows = 0
    start = time.perf_counter()
    for frame in iter_feature_batches(list(feature_paths), batch_rows):
        scored = score_frame(frame, model, accounts, opportunities, p, model_version, run_id, scored_at)
        write_parquet(scored, out_dir / f"part-{n_parts:05d}.parquet")
        ids.append(scored["lead_id"].to_numpy(dtype=object))
        order_keys.append(scored["status"].map(STATUS_ORDER).to_numpy(dtype=np.int8))
        values.append(scored["expected_value"].to_numpy(dtype=float))
        n_parts += 1
        n_rows += len(scored)
    key = np.concatenate(order_keys) if order_keys else np.empty(0, dtype=np.int8)
    ev = np.concatenate(values) if values else np.empty(0)
    order = np.lexsort((-ev, key))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    table = pa.table({"lead_id": pa.array(np.concatenate(ids) if ids else [], type=pa.string()), "rank": rank})
    with atomic_path(out_dir / "rank.parquet") as tmp:
        pq.write_table(table, tmp)
    return {"rows": n_rows, "parts": n_parts, "batch_rows": batch_rows,
            "seconds": round(time.perf_counter() - start, 2)}


HAND_OVER_COLUMNS = ("assigned_rep", "queue_position", "assignment_reason", "call_queue_position", "reasons_for",
                     "reasons_against")


def hand_over_chunks(parts_dir: Path, feature_paths: list[Path], model, p: ScoreConfig, target: Path,
                     batch_rows: int = 250_000, phrasebook=None, timings: dict | None = None) -> pd.DataFrame:
    """The score stage's hand-over on `score_in_chunks`' output: the SQL and needs-call leads (few) ranked globally
    get reps, call-queue places and reasons (`models.decision.hand_over`, their feature rows read batch by batch);
    then every part, with its global rank and the hand-over columns, is streamed into one ranked `target` Parquet
    file. Returns the handed-over rows; `timings` (optional) receives handover_reasons_s and write_sql_leads_s."""
    from models.decision import hand_over
    from models.ranking import NEEDS_CALL, SQL
    from pipeline.export import conform

    timings = timings if timings is not None else {}
    start = time.perf_counter()
    parts = sorted(Path(parts_dir).glob("part-*.parquet"))
    rank_of = pd.read_parquet(Path(parts_dir) / "rank.parquet").set_index("lead_id")["rank"]
    hot = pd.concat([pd.read_parquet(part, filters=[("status", "in", [SQL, NEEDS_CALL])]) for part in parts],
                    ignore_index=True)
    hot["rank"] = rank_of.loc[hot["lead_id"].to_numpy()].to_numpy()
    hot = hot.sort_values("rank").reset_index(drop=True)
    hot_ids = set(hot["lead_id"])
    rows = [frame[frame["lead_id"].astype(str).isin(hot_ids)]
            for frame in iter_feature_batches(list(feature_paths), batch_rows)]
    handed = hand_over(hot, pd.concat(rows, ignore_index=True), model, p, phrasebook).set_index("lead_id")
    timings["handover_reasons_s"] = round(time.perf_counter() - start, 2)

    start = time.perf_counter()
    writer = None
    with atomic_path(target) as tmp:
        try:
            for path in parts:
                part = pd.read_parquet(path)
                part["rank"] = rank_of.loc[part["lead_id"].to_numpy()].to_numpy()
                joined = handed[list(HAND_OVER_COLUMNS)].reindex(part["lead_id"].to_numpy())
                for col in HAND_OVER_COLUMNS:
                    part[col] = joined[col].to_numpy()
                    part[col] = part[col].astype(handed[col].dtype)
                part["change"] = "new_lead"  # no previous scoring to compare with
                part.loc[part["status"] == SQL, "change"] = "new_sql"
                table = pa.Table.from_pandas(conform(part.sort_values("rank")), preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
    timings["write_sql_leads_s"] = round(time.perf_counter() - start, 2)
    return handed.reset_index()
