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
                                       {"ingest": {"profile": profile, "input": str(input_path or "data/demo")},
                                        "train": params.train, "featurize": params.featurize, "score": params.score},
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


def champion_project(root: Path, profile: str, export: Path, registered_model: str, experiment: str,
                     source: str, **sections: dict) -> dict:
    """A project folder scored through the CLI: the shipped params.yaml with every path under `root`, `profile`'s
    `export` as ingest.input, one LightGBM thread, `registered_model` in `experiment` (plus `sections`' fields),
    written to root/params.yaml, and the stages run up to `package`: version 1 is the registered champion.
    The caller points MLflow at root (conftest.isolated_store)."""
    import yaml

    from pipeline.params import load_params

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    data["paths"] = {k: str(root / v) for k, v in data["paths"].items()}
    data["ingest"].update(profile=profile, input=str(export))
    data["train"].update(n_jobs=1, registered_model=registered_model, experiment=experiment)
    for section, fields in sections.items():
        data[section].update(fields)
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    stages = run_stages(root, load_params(root / "params.yaml"), profile, export, upto="package", source=source)
    assert stages["package"]["alias"] == "champion"
    return {**stages, "params_file": root / "params.yaml"}
