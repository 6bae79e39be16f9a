"""Stage `train`: fit the model of the export's variant and its baselines on the training rows; save them.

The fit is `models.training.fit` (the same for `leadscore run`, the benchmarks and cross-validation). Nothing
here knows the decision policy or MLflow: the `package` stage bundles and logs the fitted model, so a
threshold change never retrains.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from models.config import TrainConfig
from models.training import fit
from pipeline.artifacts import TRAINING_TIME, features_variant, save_model
from pipeline.io import read_rows, write_json
from pipeline.progress import log, progress


class TrainingDataError(ValueError):
    """The feature table cannot support a model: a split without both outcomes."""


def check_outcomes(table: pd.DataFrame, source: Path) -> None:
    """A plain error, before any fitting, when the training or held-out rows lack one of the outcomes."""
    with_sales = int((table["split"] == "with_sales").sum())
    for split in ("train", "test"):
        part = table.loc[table["split"] == split, "label"]
        if len(part) == 0 and with_sales:
            raise TrainingDataError(
                f"{source}: no {split} rows: every labelled lead ({with_sales:,} rows) is already with sales (an "
                f"opportunity open at its date), so none is an SQL candidate; an export of deals, not of leads to "
                f"qualify, has no decision to learn")
        if part.nunique() < 2:
            raise TrainingDataError(
                f"{source}: the {split} rows ({len(part):,}) do not hold both outcomes "
                f"({int(part.sum()) if len(part) else 0} converted); check ingest.as_of and featurize.horizon_days, "
                f"or give the export more history")


def run(features_path: Path, out_dir: Path, reports_dir: Path, p: TrainConfig, category_shares: bool = False) -> dict:
    """Fit on `features.parquet`'s training rows; write the model, baselines and `train_metrics.json`."""
    started = time.time()
    features_path = Path(features_path)
    variant = features_variant(features_path)
    # Only what training reads: the score rows are another stage's business (and at scale most of the memory).
    check_outcomes(pd.read_parquet(features_path, columns=["split", "label"]), features_path)
    table = read_rows(features_path, "split", ["train"])
    with progress("training", p.n_estimators, "rounds") as on_round:
        result = fit(table, p, variant, category_shares=category_shares, log=log, on_round=on_round)
    del table
    save_model(out_dir, result.model, result.baselines,
               {**result.metrics, TRAINING_TIME: {"started": started, "finished": time.time()}})
    write_json(result.metrics, Path(reports_dir) / "train_metrics.json")
    return result.metrics
