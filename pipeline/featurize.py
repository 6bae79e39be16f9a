"""Stage `featurize`: point-in-time feature snapshots with labels (train / test / score splits)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.build import FeatureConfig, Icp, build_feature_table, prepare_crm, snapshot_dates
from features.engagement import EngagementConfig
from features.schema import TABLE_ORDER
from pipeline.io import read_tables, write_json, write_parquet
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


def run(validated_dir: Path, out_dir: Path, export_date: str, p: FeaturizeParams) -> dict:
    tables = read_tables(validated_dir, TABLE_ORDER)
    config = feature_config(p)
    crm = prepare_crm(**tables, icp=config.icp)
    dates = snapshot_dates(pd.Timestamp(export_date), p.horizon_days, p.snapshot_every_days, p.n_train_snapshots)
    table = build_feature_table(crm, dates, config)
    write_parquet(table, Path(out_dir) / "features.parquet")
    summary = {
        split: {
            "as_of": [str(d.date()) for d in dates[split]],
            "rows": int((table["split"] == split).sum()),
            "positives": int(table.loc[table["split"] == split, "label"].fillna(0).sum()),
        }
        for split in dates
    }
    summary["n_features"] = int(table.shape[1] - 5)
    write_json(summary, Path(out_dir) / "snapshots.json")
    for split, s in summary.items():
        if isinstance(s, dict):
            log(f"{split}: {s['rows']:,} rows, {s['positives']:,} positives, as of {', '.join(s['as_of'])}")
    return summary
