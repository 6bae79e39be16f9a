"""One definition per config, honoured by every driver.

The library configs (`FeaturizeConfig`, `TrainConfig`, `ScoreConfig`, ...) are the params sections themselves, so
the shipped params.yaml and the code's defaults cannot disagree. Every field of the train, featurize and score
sections is set to a non-default value and followed through each driver: the DVC stage commands, `leadscore run`
and the chunked scorer hand the whole section to the stage, and each stage hands it to its core unchanged; the
package stage records every field on the MLflow run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from _synthetic import feature_table
from conftest import isolated_store
from typer.testing import CliRunner

from features.config import FeaturizeConfig, Icp
from models.config import ScoreConfig, TrainConfig
from pipeline import cli, featurize, package, score, train
from pipeline.cli import app
from pipeline.params import Params, load_params, value_choices
from pipeline.sources.profiles import parse_profile

ROOT = Path(__file__).resolve().parents[2]


class Reached(Exception):
    """Raised by a spy: the driver reached the core with these arguments (nothing runs further)."""


def _other(name: str, value: Any) -> Any:
    """A value of the same kind as `value` that differs from it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return round(value * 0.5 + 0.013, 6)
    if isinstance(value, str):
        choices = {key.split(".")[1]: allowed for key, allowed in value_choices().items()}
        if name in choices:  # a setting with fixed values (checked when params are read): another of them
            return next(v for v in choices[name] if v != value)
        return f"{value}-other"
    if isinstance(value, tuple):
        return (*value, 11) if value and not isinstance(value[0], str) else (*value, "n_total_7d")
    if isinstance(value, dict):
        return {**value, "extra_key": 1.5}
    if value is None:
        return 7
    if dataclasses.is_dataclass(value):
        return non_default(value)
    raise TypeError(f"{name}: no other value for {value!r}")


def non_default(config):
    """`config` with every field changed."""
    return dataclasses.replace(config, **{f.name: _other(f.name, getattr(config, f.name))
                                          for f in dataclasses.fields(config)})


def changed_params() -> Params:
    base = load_params(ROOT / "params.yaml")
    return dataclasses.replace(base, train=non_default(base.train), featurize=non_default(base.featurize),
                               score=non_default(base.score))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_params(params: Params, path: Path) -> Path:
    path.write_text(yaml.safe_dump(_plain(params), sort_keys=False))
    return path


# ------------------------------------------------------------------------------------- one definition


def test_the_shipped_params_are_the_code_defaults():
    """Every value in params.yaml equals the config dataclass's default, except the demo's gates and reps (the
    library ships none)."""
    shipped, defaults = load_params(ROOT / "params.yaml"), Params()
    differ = [f"{section.name}.{f.name}" for section in dataclasses.fields(Params)
              for f in dataclasses.fields(getattr(shipped, section.name))
              if getattr(getattr(shipped, section.name), f.name) != getattr(getattr(defaults, section.name), f.name)]
    assert differ == ["score.gates", "score.assignment"]
    assert isinstance(shipped.train, TrainConfig) and isinstance(shipped.featurize, FeaturizeConfig)
    assert isinstance(shipped.featurize.icp, Icp) and isinstance(shipped.score, ScoreConfig)


def test_the_changed_params_round_trip_through_a_params_file(tmp_path):
    params = changed_params()
    assert load_params(write_params(params, tmp_path / "params.yaml")) == params
    for section in ("train", "featurize", "score"):
        base, changed = getattr(Params(), section), getattr(params, section)
        same = [f.name for f in dataclasses.fields(base) if getattr(base, f.name) == getattr(changed, f.name)]
        assert same == [], section


# ---------------------------------------------------------------------- drivers → stage functions


def _capture(monkeypatch, module, name: str = "run") -> dict:
    seen: dict = {}

    def spy(*args, **kwargs):
        seen["args"], seen["kwargs"] = args, kwargs
        raise Reached

    monkeypatch.setattr(module, name, spy)
    monkeypatch.setattr(cli, "_need", lambda path, made_by: Path(path))  # the inputs need not exist: nothing runs
    return seen


@pytest.mark.parametrize("command, module, section, position", [
    ("featurize", featurize, "featurize", 2),
    ("train", train, "train", 3),
    ("score", score, "score", 6),
])
def test_each_stage_command_passes_its_whole_section(tmp_path, monkeypatch, command, module, section, position):
    params = changed_params()
    path = write_params(params, tmp_path / "params.yaml")
    seen = _capture(monkeypatch, module)
    result = CliRunner().invoke(app, [command, "--params", str(path)])
    assert "args" in seen, result.output  # the spy (raising Reached) was called: an unexpected error, exit 1
    assert seen["args"][position] == getattr(params, section)


def test_package_command_logs_every_section_it_serves(tmp_path, monkeypatch):
    params = changed_params()
    path = write_params(params, tmp_path / "params.yaml")
    seen = _capture(monkeypatch, package)
    result = CliRunner().invoke(app, ["package", "--params", str(path)])
    assert "args" in seen, result.output
    configs = seen["args"][3]
    assert configs["train"] == params.train and configs["featurize"] == params.featurize
    assert configs["score"] == params.score


FLAT = {"name": "tiny", "kind": "flat", "id": "Lead ID",
        "label": {"column": "Converted", "positive": ["1"], "negative": ["0"]},
        "numeric": ["Visits"], "categorical": ["Source"]}


def _flat_export(tmp_path: Path, n: int = 200) -> Path:
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.3).astype(int)
    pd.DataFrame({"Lead ID": [f"L{i}" for i in range(n)], "Visits": rng.poisson(2 + 3 * y),
                  "Source": rng.choice(["Web", "Event"], n), "Converted": y}).to_csv(tmp_path / "leads.csv", index=False)
    return tmp_path / "leads.csv"


def test_leadscore_run_hands_every_stage_its_section(tmp_path, monkeypatch):
    from pipeline import run as driver

    params = changed_params()
    params = dataclasses.replace(params, featurize=dataclasses.replace(params.featurize, horizon_days=90))
    seen = _capture(monkeypatch, train)
    with pytest.raises(Reached):
        driver.run(parse_profile(FLAT, "tiny"), _flat_export(tmp_path), tmp_path / "work", params, track=False)
    assert seen["args"][3] == dataclasses.replace(params.train, n_jobs=params.train.n_jobs)
    monkeypatch.undo()
    seen = _capture(monkeypatch, featurize)
    with pytest.raises(Reached):
        driver.run(parse_profile(FLAT, "tiny"), _flat_export(tmp_path), tmp_path / "work2", params, track=False)
    assert seen["args"][2] == params.featurize and seen["kwargs"]["seed"] == params.train.seed


# -------------------------------------------------------------------------- stage functions → cores


def test_train_stage_hands_its_config_to_the_fit(tmp_path, monkeypatch):
    features = tmp_path / "features.parquet"
    feature_table(300).to_parquet(features)
    config = non_default(TrainConfig())
    seen = _capture(monkeypatch, train, "fit")
    with pytest.raises(Reached):
        train.run(features, tmp_path / "models", tmp_path / "reports", config)
    assert seen["args"][1] is config


def test_featurize_stage_hands_its_config_to_the_snapshot_builder(tmp_path, monkeypatch):
    from pipeline.io import write_json

    folder = tmp_path / "validated"
    write_json({"variant": "snapshots", "as_of": "2026-10-01", "profile": "demo"}, folder / "ingest.json")
    for name in ("accounts", "leads", "activities", "opportunities"):
        pd.DataFrame({"x": [1]}).to_parquet(folder / f"{name}.parquet")
    config = non_default(FeaturizeConfig())
    seen = _capture(monkeypatch, featurize, "featurize")
    with pytest.raises(Reached):
        featurize.run(folder, tmp_path / "features", config)
    assert seen["args"][2] is config and seen["args"][1] == pd.Timestamp("2026-10-01")


def test_score_stage_and_chunked_scorer_hand_their_config_to_the_decision(tmp_path, monkeypatch):
    from models.baselines import LogisticBaseline
    from pipeline import chunked
    from pipeline.artifacts import save_model

    table = feature_table(300)
    table.loc[table["split"] == "test", "split"] = "score"
    features = tmp_path / "features" / "features.parquet"
    features.parent.mkdir()
    table.to_parquet(features)
    cols = ["n_high_intent_30d", "seniority_level"]
    save_model(tmp_path / "models", LogisticBaseline().fit(table[cols], table["label"].fillna(0).astype(int)), {}, {})
    validated = tmp_path / "validated"
    validated.mkdir()
    pd.DataFrame({"account_id": ["A0"], "employees": [10.0]}).to_parquet(validated / "accounts.parquet")
    pd.DataFrame({"account_id": ["A0"], "stage": ["open"], "closed_at": [pd.NaT], "amount": [0.0]}).to_parquet(
        validated / "opportunities.parquet")
    config = non_default(ScoreConfig())
    seen = _capture(monkeypatch, score, "score_frame")
    with pytest.raises(Reached):
        score.run(features, tmp_path / "models", None, validated, tmp_path / "scored", tmp_path / "reports", config)
    assert seen["args"][4] is config
    seen = _capture(monkeypatch, chunked, "score_frame")
    threshold_rule = dataclasses.replace(config, sql_rule="threshold")
    with pytest.raises(Reached):
        chunked.score_in_chunks([features], None, None, None, threshold_rule, tmp_path / "chunks")
    assert seen["args"][4] is threshold_rule


@pytest.mark.slow
def test_the_package_stage_records_every_field_on_the_run(tmp_path):
    """The run records the value of every train, featurize and score field (what the fit does not show)."""
    import mlflow

    mp = isolated_store(tmp_path)
    try:
        table = feature_table(400)
        features = tmp_path / "features" / "features.parquet"
        features.parent.mkdir()
        table.to_parquet(features)
        fit_config = TrainConfig(n_jobs=1, n_estimators=60, min_child_samples=20, min_positives=10,
                                 experiment="test-config", registered_model="test-config")
        train.run(features, tmp_path / "models", tmp_path / "reports", fit_config)
        params = changed_params()
        served = dataclasses.replace(params.score, gates={}, tiers={"A": 0.3, "B": 0.1}, unknown_policy="fail")
        info = package.run(features, tmp_path / "models", tmp_path / "package",
                           {"train": params.train, "featurize": params.featurize, "score": served},
                           source="test", experiment="test-config", registered_model=None)
        logged = mlflow.get_run(info["run_id"]).data.params
        for section, config in (("train", params.train), ("featurize", params.featurize), ("score", served)):
            for f in dataclasses.fields(config):
                value = getattr(config, f.name)
                if dataclasses.is_dataclass(value):  # nested: featurize.icp.industries, ...
                    for sub in dataclasses.fields(value):
                        assert logged[f"{section}.{f.name}.{sub.name}"] == str(getattr(value, sub.name))
                else:
                    assert logged[f"{section}.{f.name}"] == str(value)[:6000], (section, f.name)
        assert json.loads((tmp_path / "package" / "model_info.json").read_text())["run_id"] == info["run_id"]
    finally:
        mp.undo()
