"""Typed, frozen views of params.yaml: one dataclass per stage section, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml does not match what the stages expect."""


@dataclass(frozen=True)
class PathsParams:
    raw: str = "data/01_raw"
    truth: str = "data/00_truth"
    validated: str = "data/02_validated"
    features: str = "data/03_features"
    models: str = "data/04_models"
    scored: str = "data/05_scored"
    reports: str = "data/06_reports"

    def under(self, root: Path) -> PathsParams:
        """The same layout below another folder (tests, `leadscore run --workdir`)."""
        return dataclasses.replace(
            self, **{f.name: str(Path(root) / getattr(self, f.name)) for f in dataclasses.fields(self)}
        )


@dataclass(frozen=True)
class DemoDataParams:
    n_leads: int = 20_000
    seed: int = 42
    export_date: str = "2026-10-01"
    history_days: int = 540
    activities_per_lead: float = 20.0
    dirty_share: float = 0.01


@dataclass(frozen=True)
class ValidateParams:
    engine: str = "pandas"
    max_quarantine_share: float = 0.05


@dataclass(frozen=True)
class IcpParams:
    industries: tuple[str, ...] = ("Software", "Financial Services", "Healthcare", "Telecommunications")
    min_employees: int = 200
    max_employees: int = 10_000
    countries: tuple[str, ...] = ("US", "GB", "DE", "CA", "AU", "NL", "SE")


@dataclass(frozen=True)
class FeaturizeParams:
    horizon_days: int = 90
    snapshot_every_days: int = 30
    n_train_snapshots: int = 8
    windows_days: tuple[int, ...] = (7, 30, 90)
    half_life_days: float = 14.0
    activity_weights: dict[str, float] = field(
        default_factory=lambda: {
            "email_open": 1.0,
            "email_click": 3.0,
            "web_visit": 2.0,
            "content_download": 5.0,
            "webinar_attended": 8.0,
            "pricing_page_view": 10.0,
            "demo_request": 25.0,
            "trial_signup": 25.0,
            "meeting": 30.0,
        }
    )
    icp: IcpParams = field(default_factory=IcpParams)
    float32: bool = True  # training table: numeric features as float32, written snapshot by snapshot (memory)


@dataclass(frozen=True)
class TrainParams:
    experiment: str = "leadscore-demo"
    registered_model: str = "leadscore-conversion"
    seed: int = 42
    n_jobs: int = 2
    learning_rate: float = 0.03
    num_leaves: int = 31
    min_child_samples: int = 100
    n_estimators: int = 2000
    early_stopping_rounds: int = 100
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    calibration: str = "isotonic"
    exclude_features: tuple[str, ...] = ()
    monotone_increasing: tuple[str, ...] = ()  # features the score may never fall with (LightGBM constraints)
    min_positives: int = 100  # below this many conversions in training: the logistic fallback, reason on the run
    boost_from_logistic: bool = False  # start the booster from a regularised logistic regression's log-odds
    logistic_C: float = 0.1  # L2 strength (inverse) of the logistic part, the baseline and the fallback
    tune: bool = False  # optuna search (extra `tune`) bounded by tune_trials and tune_timeout_seconds
    tune_trials: int = 30
    tune_timeout_seconds: int = 600
    # Size-adaptive fitting (issue 8): at `large_data_rows` fitted rows or more the booster learns at
    # `large_data_learning_rate` (fewer trees: faster fit and scoring); smaller tables keep `learning_rate`.
    large_data_rows: int = 500_000
    large_data_learning_rate: float = 0.1
    large_data_negative_rate: float = 0.3  # ... and keeps every positive but this share of negatives (weight 1/rate)
    baseline_max_rows: int = 300_000  # baselines and the blend's logistic part: at most this many rows (stratified)
    blend_logistic: bool = False  # blend the trees' log-odds with the logistic model's, weight chosen on validation
    feature_set: str = "all"  # all, or foundation (the foundation issue's features only: an ablation)
    refit_full: bool = True  # below large_data_rows: refit model and baselines on every training row once chosen


@dataclass(frozen=True)
class EvaluateParams:
    n_bootstrap: int = 200
    top_fraction: float = 0.10
    top_fractions: tuple[float, ...] = (0.05, 0.10, 0.20)  # lift and capture at each of these top shares
    capacity_k: int = 500  # sales capacity: precision among the K best-scored leads of the held-out period


@dataclass(frozen=True)
class PromoteParams:
    """The rule a challenger must pass to become champion (`leadscore promote`)."""

    min_auc_gain: float = 0.005  # challenger AUC >= champion AUC + this
    max_ece_increase: float = 0.01  # challenger ECE <= champion ECE + this
    max_p_value: float = 1.0  # paired bootstrap p-value of the AUC gain must be <= this (1.0: not required)
    n_bootstrap: int = 1000


@dataclass(frozen=True)
class ScoreParams:
    threshold: float = 0.10
    unknown_policy: str = "call_queue"
    tiers: dict[str, float] = field(default_factory=lambda: {"A": 0.30, "B": 0.15, "C": 0.05})
    default_deal_size: float = 20_000.0
    gates: dict[str, Any] = field(default_factory=dict)
    sql_rule: str = "threshold"  # or "capacity": the sql_capacity best gate-passing leads are SQLs
    sql_capacity: int | None = None  # hand-over slots for sql_rule capacity (default: the reps' total capacity)
    call_capacity: int = 50  # qualification calls per week: the needs_call leads queued (and explained)
    reasons_top_k: int = 3  # factors for and against per handed-over lead (0 = none)
    assignment: dict[str, Any] = field(default_factory=dict)  # reps, territories, capacities (models/assignment.py)


@dataclass(frozen=True)
class ReportParams:
    psi_warn: float = 0.10  # drift flags: see models.monitoring.DriftThresholds
    psi_drift: float = 0.25
    ks_alpha: float = 0.01
    ks_min_statistic: float = 0.10
    n_bins: int = 10
    fail_on_drift: bool = False  # exit non-zero when drift is flagged (for schedulers)
    cost_per_sql: float = 2_500.0  # USD of sales effort per SQL handed over (backtest value)
    shap_sample: int = 1_000
    seed: int = 0


@dataclass(frozen=True)
class Params:
    paths: PathsParams = field(default_factory=PathsParams)
    demo_data: DemoDataParams = field(default_factory=DemoDataParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    featurize: FeaturizeParams = field(default_factory=FeaturizeParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    promote: PromoteParams = field(default_factory=PromoteParams)
    score: ScoreParams = field(default_factory=ScoreParams)
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


def params_from_dict(data: dict[str, Any]) -> Params:
    return _build(Params, data, "params")


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: params file not found")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    try:
        return params_from_dict(data)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
