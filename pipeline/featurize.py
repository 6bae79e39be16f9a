"""Stage `featurize`: the feature table with labels and a train / test / score split.

Four-table exports get point-in-time snapshots (`features.build.featurize`); a flat export's declared columns
pass through (`features.build.flat_features`), split by `models.training.flat_split`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.build import feature_columns, featurize, flat_features
from features.config import FeaturizeConfig
from features.schema import FLAT, TABLE_ORDER
from features.split import RANDOM_HOLDOUT, TIME_HOLDOUT, flat_split, has_time
from pipeline.io import atomic_path, read_json, read_tables, write_json
from pipeline.progress import log

MANIFEST = "ingest.json"


def write_parts(parts, target: Path) -> dict[str, dict]:
    """Stream feature snapshots into one Parquet file (a row group per snapshot), atomically.

    Only one snapshot is in memory at a time; returns rows and positives per split. The label is nullable Int8
    in every part (the score split has none), so all parts share one schema.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts: dict[str, dict] = {}
    with atomic_path(target) as tmp:
        writer = None
        try:
            for part in parts:
                part = part.assign(label=part["label"].astype("Int8"))
                if writer is None:
                    schema = pa.Schema.from_pandas(part, preserve_index=False)
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
                for split, rows in part.groupby("split", sort=False, observed=True):
                    c = counts.setdefault(str(split), {"rows": 0, "positives": 0})
                    c["rows"] += len(rows)
                    c["positives"] += int(rows["label"].fillna(0).sum())
                n_features = len(feature_columns(part))
                del part
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"{target}: no snapshot to write")
    counts["_features"] = n_features
    return counts


def run(validated_dir: Path, out_dir: Path, p: FeaturizeConfig, seed: int = 42) -> dict:
    """Write `features.parquet` and `snapshots.json` (rows and positives per split); `seed` draws a flat export's
    random hold-out (params train.seed)."""
    validated_dir = Path(validated_dir)
    manifest = read_json(validated_dir / MANIFEST)
    as_of = pd.Timestamp(manifest["as_of"])
    if manifest["variant"] == FLAT:
        flat = pd.read_parquet(validated_dir / "flat.parquet")
        table = flat_features(flat, as_of, flat_split(flat, seed))
        holdout = TIME_HOLDOUT if has_time(flat) else RANDOM_HOLDOUT
        dates = {split: [as_of] for split in ("train", "test", "score")}
        parts = iter([table])
    else:
        holdout = TIME_HOLDOUT  # the test snapshot follows the training ones
        dates, parts = featurize(read_tables(validated_dir, TABLE_ORDER), as_of, p)
    counts = write_parts(parts, Path(out_dir) / "features.parquet")
    summary = {
        split: {
            "as_of": [str(d.date()) for d in dates[split]],
            "rows": counts.get(split, {}).get("rows", 0),
            "positives": counts.get(split, {}).get("positives", 0),
        }
        for split in dates
    }
    summary["n_features"] = int(counts["_features"])
    summary["variant"] = manifest["variant"]
    summary["holdout"] = holdout
    write_json(summary, Path(out_dir) / "snapshots.json")
    for split, s in summary.items():
        if isinstance(s, dict):
            log(f"{split}: {s['rows']:,} rows, {s['positives']:,} positives, as of {', '.join(s['as_of'])}")
    return summary
