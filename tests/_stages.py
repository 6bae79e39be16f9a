"""The pipeline's stages chained in a temporary folder, as `dvc repro` runs them (for tests that need outputs)."""

from __future__ import annotations

from pathlib import Path

from pipeline import evaluate, featurize, ingest, package, report, score, train, validate
from pipeline.params import Params
from pipeline.sources.exports import apply_overrides, load_profile

STAGES = ("ingest", "validate", "featurize", "train", "package", "evaluate", "score", "report")


def stage_paths(root: Path, params: Params) -> dict[str, Path]:
    return {k: Path(v) for k, v in vars(params.paths.under(root)).items()}


def run_stages(root: Path, params: Params, profile: str = "demo", input_path: Path | None = None,
               upto: str = "score", source: str = "test") -> dict:
    """Run ingest → ... → `upto` below `root` with `params` (the profile's overrides applied); returns each
    stage's result by name, plus "paths" and "params"."""
    prof = load_profile(profile)
    params = apply_overrides(params, prof)
    P = stage_paths(root, params)
    features = P["features"] / "features.parquet"
    out: dict = {"paths": P, "params": params}
    steps = {
        "ingest": lambda: ingest.run(prof, input_path or Path("data/demo"), P["raw"], P["truth"], params.demo,
                                     params.ingest.as_of, outputs=list(P.values())),
        "validate": lambda: validate.run(P["raw"], P["validated"], P["reports"], params.validate),
        "featurize": lambda: featurize.run(P["validated"], P["features"], params.featurize, seed=params.train.seed),
        "train": lambda: train.run(features, P["models"], P["reports"], params.train, prof.category_shares),
        "package": lambda: package.run(features, P["models"], P["package"],
                                       {"train": params.train, "featurize": params.featurize, "score": params.score},
                                       source=source, experiment=params.train.experiment,
                                       registered_model=params.train.registered_model),
        "evaluate": lambda: evaluate.run(features, P["models"], P["package"], P["reports"], params.evaluate,
                                         params.featurize.horizon_days, P["truth"], P["raw"], params.train,
                                         prof.category_shares),
        "score": lambda: score.run(features, P["models"], P["package"], P["validated"], P["scored"], P["reports"],
                                   params.score, history_dir=P["reports"] / "score_history",
                                   icp=params.featurize.icp),
        "report": lambda: report.run(features, P["models"], P["package"], P["validated"], P["scored"], P["reports"],
                                     params.report, params.score, params.featurize.horizon_days,
                                     params.evaluate.top_fraction),
    }
    for name in STAGES[: STAGES.index(upto) + 1]:
        out[name] = steps[name]()
    return out
