"""Stage `package`: the fitted model bundled with the BANT gates and the decision policy into the served MLflow
pyfunc (`models.pyfunc.LeadScoreModel`), logged as one run and registered.

Light on purpose: a change of threshold, gates, unknown policy or tiers reruns this stage (a new registered
version serving the new policy), never training. The first registered version becomes `@champion`, later ones
`@challenger` until `leadscore promote` moves the alias.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.pyfunc import LeadScoreModel, value_bounds
from models.training import categorical_columns
from pipeline import tracking
from pipeline.artifacts import HASHES, features_variant, load_model, load_train_metrics, write_model_info
from pipeline.io import iter_split_batches
from pipeline.progress import log

EXAMPLE_ROWS = 200  # training rows the input example is chosen from (the five best filled)
BOUNDS_ROWS = 20_000  # training rows the served model's accepted value ranges are taken from


def data_version(features_path: Path, lock_path: Path = Path("dvc.lock")) -> str:
    """The DVC hash of the features output (dvc.lock), else the md5 of the features file itself."""
    features_path = Path(features_path)
    if lock_path.exists():
        import yaml

        lock = yaml.safe_load(lock_path.read_text()) or {}
        for out in (lock.get("stages", {}).get("featurize", {}) or {}).get("outs", []) or []:
            if Path(out.get("path", "")).resolve() in (features_path.parent.resolve(), features_path.resolve()):
                return f"dvc:{out.get('md5', 'unknown')}"
    digest = hashlib.md5()  # noqa: S324 - a content fingerprint, not security
    with features_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return f"md5:{digest.hexdigest()}"


def first_rows(features_path: Path, split: str, n: int) -> pd.DataFrame:
    """The first `n` rows of a split, read batch by batch: never the whole (million-row) training table."""
    parts, have = [], 0
    for frame in iter_split_batches([features_path], n, split):
        parts.append(frame)
        have += len(frame)
        if have >= n:
            break
    return pd.concat(parts, ignore_index=True).head(n)


def bundle(model, rows: pd.DataFrame, score) -> tuple[LeadScoreModel, pd.DataFrame]:
    """(the served pyfunc, an input example of five well-filled rows with their lead_id) for a model and its policy
    `score`; the value ranges the served model accepts come from all of `rows` (training rows)."""
    served = LeadScoreModel(model, score.gates, score.threshold, score.unknown_policy, score.tiers,
                            categorical=categorical_columns(rows))
    served.bounds = value_bounds(rows, served.input_columns, served.categorical)
    rows = rows.head(EXAMPLE_ROWS)
    for col in served.input_columns:  # gate columns that are not features (annual_revenue): unknown in the example
        if col not in rows.columns:
            rows = rows.assign(**{col: np.nan})
    filled = rows.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:5]
    return served, served.input_example(rows.loc[filled])


def run(features_path: Path, models_dir: Path, out_dir: Path, configs: dict[str, Any], source: str,
        experiment: str, registered_model: str | None, tags: dict[str, str] | None = None,
        artifact_location: str | None = None) -> dict:
    """Bundle, log and register the model in `models_dir`; write `model_info.json` to `out_dir`.

    `configs` are the params sections that made the model and its decisions (logged as ``section.field``);
    `configs["score"]` is the policy the served model carries.
    """
    features_path = Path(features_path)
    model, _ = load_model(models_dir)
    metrics = load_train_metrics(models_dir)
    example_rows = first_rows(features_path, "train", BOUNDS_ROWS)
    served, example = bundle(model, example_rows, configs["score"])
    run_tags = {"source": source, "stage": "train", "variant": features_variant(features_path),
                "features_path": str(features_path), "data_version": data_version(features_path),
                "model_kind": str(metrics.get("model_kind", type(model).__name__)), **(tags or {})}
    if metrics.get("fallback_reason"):
        run_tags["fallback_reason"] = metrics["fallback_reason"]
    hashes = metrics.get(HASHES, {})  # checked by load_model above; recorded with the run and in model_info.json
    run_tags.update({f"{tracking.SHA256_TAG}.{name}": digest for name, digest in hashes.items()})
    info = tracking.log_model_run(served, example, metrics, configs, run_tags, experiment=experiment,
                                  run_name=f"train-{source}", registered_model=registered_model,
                                  artifacts={"train_metrics.json": metrics}, artifact_location=artifact_location)
    info[HASHES] = hashes
    write_model_info(out_dir, info)
    log(f"logged run {info['run_id']} to experiment {experiment!r}"
        + (f"; registered {info['model_version']} as {info['alias']}" if info.get("alias") else ""))
    return info
