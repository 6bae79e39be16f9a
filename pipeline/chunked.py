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
from pipeline.io import atomic_path, write_parquet


def refuse_global_rule(p: ScoreConfig) -> None:
    """`sql_rule: capacity` picks the best N leads of the whole table: no batch can decide that on its own."""
    if p.sql_rule != "threshold":
        raise ValueError(f"score.sql_rule {p.sql_rule!r} ranks all leads at once; batch-by-batch scoring "
                         "supports sql_rule 'threshold' only")


def iter_feature_batches(paths: list[Path], batch_rows: int):
    """DataFrames of at most `batch_rows` score rows, read batch by batch (categoricals restored)."""
    for path in paths:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_rows):
            frame = batch.to_pandas()
            if "split" in frame:
                frame = frame[frame["split"] == "score"]
            if len(frame):
                yield frame


def score_in_chunks(
    feature_paths: list[Path], model, accounts: pd.DataFrame, opportunities: pd.DataFrame, p: ScoreConfig,
    out_dir: Path, batch_rows: int = 250_000, model_version: str = "", run_id: str = "",
) -> dict:
    """Score every row of `feature_paths`; write `out_dir/part-*.parquet` and `out_dir/rank.parquet`.

    The parts hold the scored rows (their `rank` column is the rank within the part); `rank.parquet` holds
    the global rank of every lead over all parts (status order first, then expected value, descending).
    """
    refuse_global_rule(p)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
