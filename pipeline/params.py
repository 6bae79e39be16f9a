"""Typed, frozen views of params.yaml: one dataclass per section, unknown keys rejected.

The sections the library reads are the library's own config dataclasses (`FeaturizeConfig`, `TrainConfig`,
`ScoreConfig`, ...): one definition per setting, so a default here cannot disagree with the code's.

The package ships its defaults (`pipeline/defaults/params.yaml`, a copy of the project's params.yaml), so the CLI
runs outside the checkout: `load_params` reads a params file over them key by key, and a folder without
params.yaml runs on the defaults alone. Relative paths in either file are relative to the working folder.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from features.config import FEATURE_SETS, FeaturizeConfig, ValidateConfig
from models.config import CALIBRATIONS, PREDICTORS, EvaluateConfig, ScoreConfig, TrainConfig
from pipeline.sources.demo_crm import DemoConfig

DEFAULT_PARAMS = Path("params.yaml")  # the project's file, in the working folder (where DVC reads it)
# ships in the wheel (package data); a resource, so it is found in a zip on sys.path too (spark-submit --py-files)
PACKAGED_PARAMS = resources.files("pipeline").joinpath("defaults").joinpath("params.yaml")


class ParamsError(ValueError):
    """params.yaml does not match what the stages expect."""


@dataclass(frozen=True)
class PathsParams:
    truth: str = "data/00_truth"
    raw: str = "data/01_raw"
    validated: str = "data/02_validated"
    features: str = "data/03_features"
    models: str = "data/04_models"
    package: str = "data/04_package"
    scored: str = "data/05_scored"
    reports: str = "data/06_reports"

    def under(self, root: Path) -> PathsParams:
        """The same layout below another folder (tests, `leadscore run --workdir`)."""
        return dataclasses.replace(
            self, **{f.name: str(Path(root) / getattr(self, f.name)) for f in dataclasses.fields(self)}
        )

    def outputs(self) -> list[Path]:
        """Every folder the pipeline writes (and DVC may clear): no input may live inside one."""
        return [Path(getattr(self, f.name)) for f in dataclasses.fields(self)]


@dataclass(frozen=True)
class IngestParams:
    """Which export enters the pipeline, read through which profile, scored as of when."""

    profile: str = "demo"  # demo (generated from `demo:`), salesforce, hubspot, maven_crm, flat, ... or a YAML path
    input: str = "data/demo"  # the export: a folder (four tables) or a file (flat); the demo profile ignores it
    as_of: str = "auto"  # the scoring date: auto = the latest timestamp in the data (its day), or YYYY-MM-DD


@dataclass(frozen=True)
class PromoteParams:
    """The rule a challenger must pass to become champion (`leadscore promote`)."""

    min_auc_gain: float = 0.005  # challenger AUC >= champion AUC + this
    max_ece_increase: float = 0.01  # challenger ECE <= champion ECE + this
    max_p_value: float = 1.0  # paired bootstrap p-value of the AUC gain must be <= this (1.0: not required)
    n_bootstrap: int = 1000


@dataclass(frozen=True)
class ReportParams:
    psi_warn: float = 0.10  # drift flags: see models.monitoring (the rule) and DriftThresholds
    psi_drift: float = 0.25
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.20
    n_bins: int = 10
    min_rows: int = 200  # effective rows a side needs before a column is judged at all
    fail_on_drift: bool = False  # exit non-zero when drift is flagged (for schedulers)
    cost_per_sql: float = 2_500.0  # USD of sales effort per SQL handed over (backtest value)
    shap_sample: int = 1_000
    seed: int = 0


@dataclass(frozen=True)
class Params:
    """params.yaml: one section per stage. The library sections are the library's own config dataclasses."""

    paths: PathsParams = field(default_factory=PathsParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    demo: DemoConfig = field(default_factory=DemoConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    featurize: FeaturizeConfig = field(default_factory=FeaturizeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    promote: PromoteParams = field(default_factory=PromoteParams)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    report: ReportParams = field(default_factory=ReportParams)


def _build(cls: type, data: Any, where: str) -> Any:
    """Recursively build dataclass `cls` from a mapping, rejecting keys it does not declare."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType) or hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    return value


# Settings with a fixed set of values, checked when the file is read so that a typo is an error naming the param
# (exit code config) instead of a failure deep inside a stage. Each tuple is the library's own list of choices.
def value_choices() -> dict[str, tuple[str, ...]]:
    return {
        "validate.engine": ("pandas", "gx"),
        "train.calibration": CALIBRATIONS,
        "train.feature_set": FEATURE_SETS,
        "score.unknown_policy": ("fail", "call_queue"),
        "score.sql_rule": ("threshold", "capacity"),
        "score.predictor": PREDICTORS,
    }


def check_values(params: Params) -> Params:
    """`params` unchanged, or a ParamsError naming the first setting outside its choices (`value_choices`), a scoring
    threshold outside [0, 1] or an `ingest.as_of` that is neither `auto` nor a date."""
    for key, allowed in value_choices().items():
        section, name = key.split(".")
        value = getattr(getattr(params, section), name)
        if value not in allowed:
            raise ParamsError(f"{key}: {value!r} is not one of {list(allowed)}")
    if not 0.0 <= params.score.threshold <= 1.0:
        raise ParamsError(f"score.threshold: {params.score.threshold} is not a probability in [0, 1]")
    if params.ingest.as_of != "auto":
        import pandas as pd

        try:
            pd.Timestamp(params.ingest.as_of)
        except ValueError:
            raise ParamsError(f"ingest.as_of: {params.ingest.as_of!r} is neither auto nor a date YYYY-MM-DD") from None
    return params


def params_from_dict(data: dict[str, Any]) -> Params:
    return check_values(_build(Params, data, "params"))


def merge_params(base: dict[str, Any], override: dict[str, Any], cls: type = Params) -> dict[str, Any]:
    """`override` over `base`, key by key: a section (or a config nested in one, such as `featurize.icp`) merges
    field by field; any other value (a number, a list, a free mapping such as `score.gates`) replaces the base's
    whole. Keys `cls` does not declare are kept, for `params_from_dict` to refuse by name."""
    hints = typing.get_type_hints(cls)
    merged = dict(base)
    for key, value in override.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(merged.get(key), dict) and isinstance(value, dict | None):
            merged[key] = merge_params(merged[key], value or {}, hint)
        else:
            merged[key] = value
    return merged


def _read(path: Path | Traversable) -> dict[str, Any]:
    try:
        with path.open() as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read the params file ({exc.strerror})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of params sections, got {type(data).__name__}")
    return data


def load_params(path: Path | str | None = None) -> Params:
    """The packaged defaults with the params file `path` read over them (`merge_params`), so the file may be partial.

    `path` None: ./params.yaml when there is one, else the packaged defaults alone (said in one log line). A file
    given by path must exist.
    """
    defaults = _read(PACKAGED_PARAMS)
    if path is None:
        if not DEFAULT_PARAMS.exists():
            from pipeline.progress import log

            log(f"no {DEFAULT_PARAMS} in {Path.cwd()}: using the packaged defaults {PACKAGED_PARAMS}")
            try:
                return params_from_dict(defaults)
            except ParamsError as exc:
                raise ParamsError(f"{PACKAGED_PARAMS}: {exc}") from None
        path = DEFAULT_PARAMS
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found" if not path.exists() else f"{path}: not a file")
    data = _read(path)
    try:
        return params_from_dict(merge_params(defaults, data))
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
