"""The training, decision and evaluation settings: the ``train:``, ``score:`` and ``evaluate:`` sections of
params.yaml, defined once (light to import), with the shipped params.yaml's values as defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CALIBRATIONS = ("auto", "isotonic", "sigmoid", "none")  # train.calibration (models.conversion fits each)

TOP_FRACTIONS = (0.05, 0.10, 0.20)


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained: the ``train:`` section of params.yaml (defaults = the shipped params.yaml)."""

    experiment: str = "leadscore-demo"  # MLflow experiment of the run
    registered_model: str = "leadscore-conversion"  # MLflow registered model name
    seed: int = 42
    n_jobs: int = 2
    learning_rate: float = 0.02
    num_leaves: int = 15
    min_child_samples: int = 300
    n_estimators: int = 2000
    early_stopping_rounds: int = 100
    subsample: float = 0.5
    colsample_bytree: float = 0.5
    reg_lambda: float = 5.0
    calibration: str = "auto"  # auto (isotonic or sigmoid by cross-validated log loss), isotonic, sigmoid, none
    exclude_features: tuple[str, ...] = ()
    monotone_increasing: tuple[str, ...] = ()  # features the score may never fall with (LightGBM constraints)
    min_positives: int = 100  # below this many conversions in training: the logistic fallback, reason on the run
    boost_from_logistic: bool = False  # start the booster from a regularised logistic regression's log-odds
    logistic_C: float = 0.1  # L2 strength (inverse) of the logistic part, the baseline and the fallback
    tune: bool = False  # optuna search (extra `tune`) bounded by tune_trials and tune_timeout_seconds
    tune_trials: int = 30
    tune_timeout_seconds: int = 600
    # Size-adaptive fitting: at `large_data_rows` fitted rows or more the booster learns at
    # `large_data_learning_rate` (fewer trees: faster fit and scoring); smaller tables keep `learning_rate`.
    # Flat exports (one row per lead) learn at `flat_fast_learning_rate` from `flat_fast_rows` rows on, and their
    # early stopping waits `early_stopping_rounds` x learning_rate / the rate used (the same patience in step size).
    flat_fast_rows: int = 20_000
    flat_fast_learning_rate: float = 0.05
    large_data_rows: int = 500_000
    large_data_learning_rate: float = 0.1
    large_data_negative_rate: float = 0.3  # ... and keeps every positive but this share of negatives (weight 1/rate)
    baseline_max_rows: int = 300_000  # baselines and the blend's logistic part: at most this many rows (stratified)
    blend_logistic: bool = False  # blend the trees' log-odds with the logistic model's, weight chosen on validation
    feature_set: str = "all"  # all, or foundation (the foundation issue's features only: an ablation)
    refit_full: bool = True  # below large_data_rows: refit model and baselines on every training row once chosen


# how the trees predict (`ScoreConfig.predictor`, `pipeline.compiled.compiled_trees`)
PREDICTORS = ("auto", "lightgbm", "compiled")


@dataclass(frozen=True)
class ScoreConfig:
    """The decision policy and hand-over: the ``score:`` section of params.yaml.

    The defaults are the library's (no gates, no reps); the shipped params.yaml declares the demo's gates and reps.
    """

    threshold: float = 0.10  # p_convert a lead must reach to be an SQL
    unknown_policy: str = "call_queue"  # a gate whose outcome is unknown: fail, or route to a qualification call
    tiers: dict[str, float] = field(default_factory=lambda: {"A": 0.30, "B": 0.15, "C": 0.05})
    default_deal_size: float = 20_000.0  # USD, when no won deal of a comparable size band is known
    gates: dict[str, Any] = field(default_factory=dict)
    sql_rule: str = "threshold"  # or "capacity": the sql_capacity best gate-passing leads are SQLs
    sql_capacity: int | None = None  # hand-over slots for sql_rule capacity (default: the reps' total capacity)
    call_capacity: int = 50  # qualification calls per week: the needs_call leads queued (and explained)
    reasons_top_k: int = 3  # factors for and against per handed-over lead (0 = none)
    assignment: dict[str, Any] = field(default_factory=dict)  # reps, territories, capacities (models/assignment.py)
    # which model scores: champion / challenger (registry aliases), latest (the pipeline's own just-trained model),
    # or an MLflow URI; with the champion, the challenger is scored in shadow beside it
    model: str = "champion"
    # how the trees predict: auto (compiled to machine code once per model and machine when many rows are scored,
    # `pipeline.compiled.compiled_trees`), compiled, or lightgbm; the probabilities are the same
    predictor: str = "auto"


@dataclass(frozen=True)
class EvaluateConfig:
    """The ``evaluate:`` section of params.yaml (defaults = the shipped file)."""

    n_bootstrap: int = 200
    top_fraction: float = 0.10  # lift is reported for this top share of leads
    top_fractions: tuple[float, ...] = TOP_FRACTIONS  # lift and capture (with bootstrap CIs) at each top share
    capacity_k: int = 500  # sales capacity: precision among the K best-scored held-out leads
    cv_folds: int = 0  # > 1: also the k-fold cross-validated ROC AUC of the labelled rows (each fold refitted)
