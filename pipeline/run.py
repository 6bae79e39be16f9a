"""`leadscore run`: the pipeline's stages on one export in a work folder, without DVC.

The same stage functions as `dvc repro` (ingest → validate → featurize → train → package → evaluate → score), with
every path below the work folder (`data/01_raw`, ... `data/06_reports`, as `params.yaml` lays them out) and the
profile's overrides applied. Evaluation adds the k-fold cross-validated AUC of the same fit (`--cv-folds`), the
protocol of published results on flat lead data sets. ``WORKDIR/metrics.json`` sums the run up: held-out and
cross-validated AUC, counts, leakage warnings, dropped columns, the MLflow run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from features.validation import QuarantineLimitError  # noqa: F401 - re-exported for the CLI's error handling
from pipeline import evaluate, featurize, ingest, package, score, train, validate
from pipeline.io import write_json
from pipeline.params import Params
from pipeline.progress import log
from pipeline.secrets import hide_password
from pipeline.sources.exports import apply_overrides, available_profiles, load_profile, variant_of  # noqa: F401
from pipeline.sources.profiles import Profile

CV_FOLDS = 5


def tracking_uri(workdir: Path) -> str:
    """Env MLFLOW_TRACKING_URI when set, else a sqlite store in the work folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(workdir) / 'mlflow.db').resolve()}"


def experiment_name(profile: Profile) -> str:
    return f"leadscore-run-{profile.name}"


def run(profile: Profile, input_path: Path, workdir: Path, params: Params, n_jobs: int | None = None,
        cv_folds: int = CV_FOLDS, track: bool = True) -> dict[str, Any]:
    """Run one export through the profile; returns the summary written to ``workdir/metrics.json``.

    With ``track``, the model is logged to MLflow by the package stage: the store of env MLFLOW_TRACKING_URI,
    else ``workdir/mlflow.db``, so a run never writes into a store the caller did not choose.
    """
    start = time.perf_counter()
    params = apply_overrides(params, profile)
    params = dataclasses.replace(
        params,
        train=dataclasses.replace(params.train, n_jobs=params.train.n_jobs if n_jobs is None else n_jobs),
        evaluate=dataclasses.replace(params.evaluate, cv_folds=cv_folds),
    )
    input_path, workdir = Path(input_path), Path(workdir)
    P = {k: Path(v) for k, v in vars(params.paths.under(workdir)).items()}
    features_path = P["features"] / "features.parquet"

    # the CV's workers are forked before any stage (and any OpenMP thread or fit): they then fold the table without
    # importing anything; a run that ends before the folds (an error) dismisses them
    workers = evaluate.CVWorkers.start(min(params.train.n_jobs, cv_folds)) if cv_folds > 1 else None
    folds = None
    try:
        manifest = ingest.run(profile, input_path, P["raw"], P["truth"], params.demo, params.ingest.as_of,
                              outputs=list(P.values()), cv_folds=cv_folds)
        validation = validate.run(P["raw"], P["validated"], P["reports"], params.validate)
        snapshots = featurize.run(P["validated"], P["features"], params.featurize, seed=params.train.seed)
        trained = train.run(features_path, P["models"], P["reports"], params.train, profile.category_shares)
        # the CV folds start now, in the workers, beside the packaging and evaluation
        folds = evaluate.start_cross_validation(features_path, params.train, cv_folds, profile.category_shares,
                                                workers=workers)
        held, scored, info = _package_evaluate_score(profile, input_path, workdir, params, P, track, folds)
    except BaseException:
        if folds is not None:
            folds.cancel()
        raise
    finally:
        if workers is not None:
            workers.close()

    variant = variant_of(profile)
    metrics = {
        **{k: held[k] for k in ("roc_auc", "pr_auc", "brier", "ece", "cv_roc_auc", "cv_roc_auc_std",
                                "cv_roc_auc_folds", "leakage_warnings", "warnings") if k in held},
        "base_rate_test": held["base_rate"],
        "split": snapshots["holdout"],
        "as_of": manifest["as_of"],
        "n_train": int(held["n_train"]), "n_test": int(held["n_test"]),
        "n_features": int(snapshots["n_features"]),
        **{k: trained[k] for k in ("model_kind", "best_iteration", "calibration", "fallback_reason",
                                   "blend_weight_trees", "logistic_C", "n_validation", "validation_roc_auc")
           if k in trained},
        "n_scored": int(scored["n_scored"]), "n_sql": int(scored["n_sql"]), "scored": scored["scored"],
        "rows_read": manifest["rows_read"],
        "validation": validation,
        "dropped_leaky_columns": dict(profile.drop),
        "profile": profile.name, "kind": profile.kind, "variant": variant, "input": str(input_path),
        "n_jobs": params.train.n_jobs, "outputs": {k: str(v) for k, v in P.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    if info is not None:
        metrics["mlflow"] = {"tracking_uri": hide_password(info["tracking_uri"]), "experiment": info["experiment"],
                             "run_id": info["run_id"], "model_uri": info["model_uri"]}
    write_json(metrics, workdir / "metrics.json")
    cv = f", {cv_folds}-fold CV ROC AUC {metrics['cv_roc_auc']:.4f}" if "cv_roc_auc" in metrics else ""
    log(f"{profile.name}: held-out ROC AUC {metrics['roc_auc']:.4f} ({metrics['split']} split){cv}; "
        f"wrote {workdir / 'metrics.json'}")
    return metrics


def _package_evaluate_score(profile: Profile, input_path: Path, workdir: Path, params: Params, P: dict[str, Path],
                            track: bool, folds: evaluate.BackgroundCV | None) -> tuple[dict, dict, dict | None]:
    """The package (with ``track``), evaluate and score stages of `run`: (evaluation, scoring, MLflow info)."""
    features_path = P["features"] / "features.parquet"
    info = None
    if track:
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri(workdir)
        try:
            # the train run spans the training (train records its start), evaluate and score runs nest under it;
            # artifacts live beside the store (`mlruns/`, relative: the work folder can move)
            info = package.run(features_path, P["models"], P["package"],
                               {"ingest": {"profile": profile.name, "input": str(input_path)}, "train": params.train,
                                "featurize": params.featurize, "score": params.score},
                               source=profile.name, experiment=experiment_name(profile), registered_model=None,
                               tags={"profile": profile.name, "input": str(input_path), "driver": "run"})
            held = evaluate.run(features_path, P["models"], P["package"], P["reports"], params.evaluate,
                                params.featurize.horizon_days, P["truth"], P["raw"], params.train,
                                profile.category_shares, background_cv=folds)
            scored = score.run(features_path, P["models"], P["package"], P["validated"], P["scored"], P["reports"],
                               params.score, history_dir=P["reports"] / "score_history", icp=params.featurize.icp,
                               profile=profile.name)
        finally:
            if env_uri is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = env_uri
    else:
        held = evaluate.run(features_path, P["models"], None, P["reports"], params.evaluate,
                            params.featurize.horizon_days, P["truth"], P["raw"], params.train, profile.category_shares,
                            background_cv=folds)
        scored = score.run(features_path, P["models"], None, P["validated"], P["scored"], P["reports"], params.score,
                           history_dir=P["reports"] / "score_history", icp=params.featurize.icp, profile=profile.name)
    return held, scored, info
