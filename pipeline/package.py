"""Stage `package`: the fitted model bundled with the BANT gates and the decision policy into the served MLflow
pyfunc (`models.pyfunc.LeadScoreModel`), logged as one run and registered.

Light on purpose: a change of threshold, gates, unknown policy or tiers reruns this stage (a new registered
version serving the new policy), never training. The first registered version becomes `@champion`, later ones
`@challenger` until `leadscore promote` moves the alias.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.training import categorical_columns
from pipeline import tracking
from pipeline.artifacts import (
    HASHES,
    MODEL_FILE,
    TRAINING_TIME,
    features_variant,
    load_model,
    load_train_metrics,
    write_model_info,
)
from pipeline.io import iter_split_batches, read_json
from pipeline.progress import log

if TYPE_CHECKING:
    from models.pyfunc import LeadScoreModel

EXAMPLE_ROWS = 200  # training rows the input example is chosen from (the five best filled)
BOUNDS_ROWS = 20_000  # training rows the served model's accepted value ranges are taken from
DATASET_SCHEMA_ROWS = 1_000  # training rows the logged dataset's schema is inferred from
HEADLINE_METRICS = ("validation_roc_auc", "validation_pr_auc", "validation_brier")  # on the registered version


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
    # MLflow (which the pyfunc subclasses) is imported here, when a model is bundled, not with the module
    from models.pyfunc import LeadScoreModel, value_bounds

    served = LeadScoreModel(model, score.gates, score.threshold, score.unknown_policy, score.tiers,
                            categorical=categorical_columns(rows))
    served.bounds = value_bounds(rows, served.input_columns, served.categorical)
    rows = rows.head(EXAMPLE_ROWS)
    for col in served.input_columns:  # gate columns that are not features (annual_revenue): unknown in the example
        if col not in rows.columns:
            rows = rows.assign(**{col: np.nan})
    filled = rows.notna().sum(axis=1).sort_values(ascending=False, kind="stable").index[:5]
    return served, served.input_example(rows.loc[filled])


def snapshot_summary(features_path: Path) -> dict:
    """`snapshots.json` beside the feature table (splits' rows and as-of dates), {} without one."""
    path = Path(features_path).parent / "snapshots.json"
    return read_json(path) if path.exists() else {}


def data_date(summary: dict) -> str | None:
    """The export's date: the latest as-of date of the feature table's splits (the scoring date)."""
    dates = [d for split in summary.values() if isinstance(split, dict) for d in split.get("as_of", [])]
    return max(dates) if dates else None


def dataset_digest(version: str) -> str:
    """The 32-hex content digest inside a `data_version` (``dvc:<md5>.dir`` or ``md5:<md5>``)."""
    return version.partition(":")[2].removesuffix(".dir") or version


def feature_set(model, configs: dict[str, Any]) -> dict[str, str]:
    """What the model reads: the params' feature set, the number of feature columns and a digest of their names."""
    columns = [str(c) for c in getattr(model, "feature_names_in_", [])]
    train = configs.get("train")
    chosen = getattr(train, "feature_set", None) or (train.get("feature_set") if isinstance(train, dict) else None)
    return {"feature_set": str(chosen or "all"), "n_features": str(len(columns)),
            "features_sha256": hashlib.sha256("\n".join(columns).encode()).hexdigest()}


def describe_version(metrics: dict, profile: str, date: str | None, n_rows: int, features: dict[str, str],
                     policy, commit: str) -> str:
    """The registered version's description, in words: what was fitted on what, how well, with which policy."""
    auc = metrics.get("validation_roc_auc")
    calibration = f", calibrated {metrics['calibration']}" if metrics.get("calibration") else ""
    return (f"{metrics.get('model_kind', 'model')}{calibration}, trained on the {profile} export"
            + (f" as of {date}" if date else "") + f": {n_rows:,} training rows, {features['n_features']} features "
            f"(feature set {features['feature_set']})"
            + (f"; validation ROC AUC {auc:.4f}" if isinstance(auc, int | float) else "")
            + (f"; fallback: {metrics['fallback_reason']}" if metrics.get("fallback_reason") else "")
            + f". Serves the policy threshold {policy.threshold}, unknown gates -> {policy.unknown_policy}, gates "
            f"{', '.join(policy.gates) or 'none'}. Code {commit[:12]}.")


def run(features_path: Path, models_dir: Path, out_dir: Path, configs: dict[str, Any], source: str,
        experiment: str, registered_model: str | None, tags: dict[str, str] | None = None) -> dict:
    """Bundle, log and register the model in `models_dir`; write `model_info.json` to `out_dir`.

    `configs` are the params sections that made the model and its decisions (logged as ``section.field``, with
    ``input.digest``, the feature table's digest); `configs["score"]` is the policy the served model carries. The
    MLflow run (``train <profile> <data date>``) starts when the train stage started, so it spans the training
    (a model already logged, repackaged for a policy change, gets a run from now, tagged ``leadscore.repackaged_from``).
    """
    features_path = Path(features_path)
    model, _ = load_model(models_dir)
    metrics = load_train_metrics(models_dir)
    example_rows = first_rows(features_path, "train", BOUNDS_ROWS)
    served, example = bundle(model, example_rows, configs["score"])
    summary = snapshot_summary(features_path)
    date = data_date(summary)
    version = data_version(features_path)
    ingest = configs.get("ingest")
    profile = ((tags or {}).get("profile")
               or (ingest.get("profile") if isinstance(ingest, dict) else getattr(ingest, "profile", None))
               or source)
    n_rows = int(summary.get("train", {}).get("rows") or
                 (pd.read_parquet(features_path, columns=["split"])["split"] == "train").sum())
    run_tags = {"source": source, "stage": "train", "variant": features_variant(features_path),
                "features_path": str(features_path), "data_version": version, "profile": profile,
                "model_kind": str(metrics.get("model_kind", type(model).__name__)), **(tags or {})}
    if date:
        run_tags["data_date"] = date
    if metrics.get("fallback_reason"):
        run_tags["fallback_reason"] = metrics["fallback_reason"]
    hashes = metrics.get(HASHES, {})  # checked by load_model above; recorded with the run and in model_info.json
    run_tags.update({f"{tracking.SHA256_TAG}.{name}": digest for name, digest in hashes.items()})
    # a policy change repackages the same fitted model: that run starts now (it did no training), and says so
    earlier = tracking.earlier_run_of(experiment, f"{tracking.SHA256_TAG}.{MODEL_FILE}", hashes.get(MODEL_FILE, ""))
    if earlier:
        run_tags["leadscore.repackaged_from"] = earlier
    features = feature_set(model, configs)
    commit = tracking.git_commit(Path(__file__).parent)
    version_tags = {"git_commit": commit, "data_digest": version, **features, "profile": profile,
                    **({"data_date": date} if date else {}), "model_kind": run_tags["model_kind"],
                    **{k: f"{metrics[k]:.4f}" for k in HEADLINE_METRICS if isinstance(metrics.get(k), int | float)}}
    dataset = tracking.table_dataset(example_rows.head(DATASET_SCHEMA_ROWS), n_rows, str(features_path),
                                     f"{profile}-train", dataset_digest(version), targets="label")
    info = tracking.log_model_run(
        served, example, metrics, {**configs, "input": {"digest": version}}, run_tags, experiment=experiment,
        run_name=tracking.run_name("train", profile, date), registered_model=registered_model,
        artifacts={"train_metrics.json": metrics}, start_time=None if earlier else metrics.get(TRAINING_TIME, {}).get("started"),
        dataset=dataset, version_tags=version_tags,
        description=describe_version(metrics, profile, date, n_rows, features, configs["score"], commit))
    info[HASHES] = hashes
    write_model_info(out_dir, info)
    log(f"logged run {info['run_id']} to experiment {experiment!r}"
        + (f"; registered {info['model_version']} as {info['alias']}" if info.get("alias") else ""))
    return info
