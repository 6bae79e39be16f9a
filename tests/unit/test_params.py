"""params.yaml loads into frozen, typed dataclasses; unknown keys and wrong types are rejected."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from pipeline.params import ParamsError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[2]


def test_project_params_load_and_are_frozen():
    params = load_params(ROOT / "params.yaml")
    assert params.featurize.horizon_days == 90
    assert params.featurize.icp.min_employees == 200
    assert set(params.score.gates) == {"budget", "authority", "need", "timeline"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.train.seed = 1  # type: ignore[misc]


def test_unknown_key_is_rejected_with_its_path():
    with pytest.raises(ParamsError, match=r"params\.train: unknown key\(s\) \['learning_rat'\]"):
        params_from_dict({"train": {"learning_rat": 0.1}})


def test_wrong_type_is_rejected():
    with pytest.raises(ParamsError, match="featurize.horizon_days: expected an integer"):
        params_from_dict({"featurize": {"horizon_days": "ninety"}})


def test_every_dvc_params_section_exists():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = load_params(ROOT / "params.yaml")
    for stage in dvc["stages"].values():
        for ref in stage.get("params", []):
            section = ref.split(".")[0]
            assert hasattr(params, section), ref
