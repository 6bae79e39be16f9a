"""params.yaml loads into frozen, typed dataclasses; unknown keys and wrong types are rejected. A params file is
read over the packaged defaults (which equal the project's params.yaml), so it may be partial, and a folder
without params.yaml runs on the defaults."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.params import PACKAGED_PARAMS, Params, ParamsError, load_params, params_from_dict

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


def test_packaged_defaults_equal_the_project_params():
    """One set of defaults: the wheel's copy is the project's params.yaml (cp params.yaml pipeline/defaults/)."""
    packaged = yaml.safe_load(PACKAGED_PARAMS.read_text())
    assert packaged == yaml.safe_load((ROOT / "params.yaml").read_text()), (
        "pipeline/defaults/params.yaml differs from params.yaml: cp params.yaml pipeline/defaults/params.yaml "
        "(keeping its header)")


def test_a_folder_without_params_yaml_runs_on_the_packaged_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = load_params()
    assert params == load_params(ROOT / "params.yaml")
    assert params.paths.raw == "data/01_raw"  # relative: below the working folder
    err = " ".join(capsys.readouterr().err.split())  # one line, however the terminal wraps it
    assert f"no params.yaml in {tmp_path}: using the packaged defaults {PACKAGED_PARAMS}" in err


def test_params_yaml_in_the_working_folder_is_read_over_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("score:\n  threshold: 0.3\n")
    params = load_params()
    assert params.score.threshold == 0.3
    assert params.score.gates == load_params(ROOT / "params.yaml").score.gates


def test_a_partial_file_overrides_key_by_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({
        "train": {"n_jobs": 1},
        "featurize": {"icp": {"min_employees": 50}},  # a nested config merges field by field ...
        "score": {"tiers": {"A": 0.5}},  # ... a free mapping replaces the default whole
        "report": None,  # an empty section keeps the defaults
    }))
    base, params = load_params(ROOT / "params.yaml"), load_params(path)
    assert params.train.n_jobs == 1 and params.train.learning_rate == base.train.learning_rate
    assert params.featurize.icp.min_employees == 50
    assert params.featurize.icp.industries == base.featurize.icp.industries
    assert params.score.tiers == {"A": 0.5}
    assert params.report == base.report
    assert dataclasses.replace(params, train=base.train, featurize=base.featurize, score=base.score) == base


def test_a_given_params_file_that_is_missing_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParamsError, match="nope.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")
    result = CliRunner().invoke(app, ["show", "--params", "nope.yaml"])
    assert result.exit_code != 0
    assert "nope.yaml: params file not found" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_key_in_a_partial_file_names_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("score:\n  treshold: 0.3\n")
    with pytest.raises(ParamsError, match=r"mine.yaml: params\.score: unknown key\(s\) \['treshold'\]"):
        load_params(path)


def test_the_packaged_defaults_are_the_code_defaults_except_the_policy_examples():
    """Only the gates and the reps are examples in the YAML alone: the code has no business default for them."""
    packaged = load_params(PACKAGED_PARAMS)
    assert dataclasses.replace(packaged.score, gates={}, assignment={}) == Params().score
    assert dataclasses.replace(packaged, score=Params().score) == Params()


@pytest.mark.parametrize(("section", "key", "value", "named"), [
    ("train", "calibration", "isotonc", "train.calibration: 'isotonc' is not one of"),
    ("train", "feature_set", "everything", "train.feature_set: 'everything' is not one of"),
    ("validate", "engine", "spark", "validate.engine: 'spark' is not one of"),
    ("score", "unknown_policy", "ignore", "score.unknown_policy: 'ignore' is not one of"),
    ("score", "sql_rule", "top", "score.sql_rule: 'top' is not one of"),
    ("score", "threshold", 1.5, "score.threshold: 1.5 is not a probability"),
    ("ingest", "as_of", "last friday", "ingest.as_of: 'last friday' is neither auto nor a date"),
])
def test_a_value_outside_its_choices_is_refused_naming_the_file_and_param(tmp_path, section, key, value, named):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value).startswith(f"{path}: ") and named in str(err.value)


def test_a_bad_param_value_exits_with_the_config_code(tmp_path, monkeypatch):
    from pipeline.cli import EXIT_CONFIG

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"calibration": "isotonc"}}))
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == EXIT_CONFIG
    assert "params.yaml: train.calibration: 'isotonc' is not one of" in result.output
