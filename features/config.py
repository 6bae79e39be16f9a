"""The featurize and validate settings: the ``featurize:`` and ``validate:`` sections of params.yaml.

Kept apart from the code that uses them (light to import): params, the stages and the served model share one
definition, with the shipped params.yaml's values as defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

FEATURE_SETS = ("all", "foundation")  # train.feature_set (features.sets selects the columns of each)


@dataclass(frozen=True)
class Icp:
    """The ideal customer profile the fit flags compare against."""

    industries: tuple[str, ...] = ()
    min_employees: int = 0
    max_employees: int = 10**9
    countries: tuple[str, ...] = ()


# The shipped params.yaml's ideal customer profile and engagement points (the demo's; yours go in params.yaml).
DEFAULT_ICP = Icp(industries=("Software", "Financial Services", "Healthcare", "Telecommunications"),
                  min_employees=200, max_employees=10_000, countries=("US", "GB", "DE", "CA", "AU", "NL", "SE"))
DEFAULT_ACTIVITY_WEIGHTS = {"email_open": 1.0, "email_click": 3.0, "web_visit": 2.0, "content_download": 5.0,
                            "webinar_attended": 8.0, "pricing_page_view": 10.0, "demo_request": 25.0,
                            "trial_signup": 25.0, "meeting": 30.0,
                            "other": 1.0}  # a type outside the contract's list: counted like an email open


@dataclass(frozen=True)
class FeaturizeConfig:
    """How features and labels are built: the ``featurize:`` section of params.yaml (defaults = the shipped file)."""

    horizon_days: int = 90  # label: closed-won within this many days after the as-of date
    snapshot_every_days: int = 30  # training examples come from monthly as-of dates ...
    n_train_snapshots: int = 8  # ... this many of them, all of whose labels close before the test period
    windows_days: tuple[int, ...] = (7, 30, 90)
    half_life_days: float = 14.0  # time decay of engagement
    activity_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTIVITY_WEIGHTS))
    icp: Icp = DEFAULT_ICP
    float32: bool = True  # numeric features as float32, the table written snapshot by snapshot (memory)

    def dates(self, as_of: pd.Timestamp) -> dict[str, list[pd.Timestamp]]:
        """The train / test / score as-of dates for a scoring date (see `snapshot_dates`)."""
        return snapshot_dates(as_of, self.horizon_days, self.snapshot_every_days, self.n_train_snapshots)


def snapshot_dates(
    export_date: pd.Timestamp, horizon_days: int, every_days: int, n_train: int
) -> dict[str, list[pd.Timestamp]]:
    """As-of dates: the test date's labels end at the export date; training labels end before the test date.

    Training snapshots are placed so that their label windows close before the test snapshot begins: a
    model never learns from an outcome that happened inside the held-out period.
    """
    export_date = pd.Timestamp(export_date).normalize()
    horizon = pd.Timedelta(days=horizon_days)
    test = export_date - horizon
    last_train = test - horizon
    train = [last_train - pd.Timedelta(days=every_days * k) for k in range(n_train)][::-1]
    return {"train": train, "test": [test], "score": [export_date]}


@dataclass(frozen=True)
class ValidateConfig:
    """The ``validate:`` section of params.yaml (defaults = the shipped file)."""

    engine: str = "pandas"  # gx (great-expectations 1.x) or pandas (same checks, vectorised)
    max_quarantine_share: float = 0.05  # the stage fails when more of the input than this is quarantined
