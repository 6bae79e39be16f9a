"""Stage `featurize`: point-in-time feature snapshots with labels (train / test / score splits)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.build import FeatureConfig, Icp, feature_parts, prepare_crm, snapshot_dates
from features.engagement import EngagementConfig
from features.schema import TABLE_ORDER
from pipeline.io import atomic_path, read_tables, write_json
from pipeline.params import FeaturizeParams
from pipeline.progress import log


def feature_config(p: FeaturizeParams) -> FeatureConfig:
    return FeatureConfig(
        horizon_days=p.horizon_days,
        engagement=EngagementConfig(
            windows_days=tuple(p.windows_days), half_life_days=p.half_life_days, activity_weights=p.activity_weights
        ),
        icp=Icp(
            industries=tuple(p.icp.industries),
            min_employees=p.icp.min_employees,
            max_employees=p.icp.max_employees,
            countries=tuple(p.icp.countries),
        ),
    )


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
                split = str(part["split"].iloc[0]) if len(part) else "empty"
                c = counts.setdefault(split, {"rows": 0, "positives": 0})
                c["rows"] += len(part)
                c["positives"] += int(part["label"].fillna(0).sum())
                n_columns = part.shape[1]
                del part
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"{target}: no snapshot to write")
    counts["_columns"] = n_columns
    return counts


def run(validated_dir: Path, out_dir: Path, export_date: str, p: FeaturizeParams) -> dict:
    tables = read_tables(validated_dir, TABLE_ORDER)
    config = feature_config(p)
    crm = prepare_crm(**tables, icp=config.icp)
    del tables
    dates = snapshot_dates(pd.Timestamp(export_date), p.horizon_days, p.snapshot_every_days, p.n_train_snapshots)
    counts = write_parts(feature_parts(crm, dates, config, float32=p.float32), Path(out_dir) / "features.parquet")
    summary = {
        split: {
            "as_of": [str(d.date()) for d in dates[split]],
            "rows": counts.get(split, {}).get("rows", 0),
            "positives": counts.get(split, {}).get("positives", 0),
        }
        for split in dates
    }
    summary["n_features"] = int(counts["_columns"] - 5)
    write_json(summary, Path(out_dir) / "snapshots.json")
    for split, s in summary.items():
        if isinstance(s, dict):
            log(f"{split}: {s['rows']:,} rows, {s['positives']:,} positives, as of {', '.join(s['as_of'])}")
    return summary
