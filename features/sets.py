"""Named feature sets, for ablations such as "what did the point-in-time features add over the foundation's?".

`FOUNDATION` is what the foundation issue asked featurize for: firmographics (size, revenue, industry, region),
engagement counts in time windows, recency of the last activity and seniority parsed from the title, plus the
lead's age and its own open opportunity (kept in the baseline set so that the comparison is conservative).
Everything else in the feature table (form answers, call-confirmed BANT, ICP flags, department, lead source,
account history, buying group, decay, trend, per-type recency, bursts) came with the features issue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from features.config import FEATURE_SETS

FOUNDATION_COLUMNS = frozenset({
    "seniority_level", "log_employees", "log_revenue", "industry", "region", "lead_age_days",
    "has_open_opportunity", "days_since_opportunity_created", "n_activities_all", "days_since_last_activity",
})
_WINDOW_COUNT = re.compile(r"^n_.+_\d+d$")  # n_<activity type | total | high_intent>_<days>d
# Columns that move with the as-of date by construction: ages, days since an event, counts to date. A later
# snapshot of the same leads has larger values even when nothing about the leads changed.
_CALENDAR = re.compile(r"^(lead_age_days|days_since_.+|activity_age_.+|n_.+_all|"
                       r"account_(won|lost)_before|buying_group_leads)$")


def calendar_columns(columns: Iterable[str]) -> list[str]:
    """The columns (in their order) whose values grow with the as-of date by construction: the lead's age, days
    since an event, the age of the lead's activities, all-time counts to date (activities, the account's won and
    lost deals, leads at the account). Drift monitoring compares them with their trend. (`company_age` is left
    out: it steps once a year, which a line through a few monthly snapshots would extrapolate badly.)"""
    return [c for c in columns if _CALENDAR.match(c)]


_AGE = re.compile(r"^(lead_age_days|days_since_.+|activity_age_.+)$")


def age_columns(columns: Iterable[str]) -> list[str]:
    """The calendar columns that are ages (days since an event): when leads keep arriving and stay open, their
    quantiles grow in step with the pool's age span, so drift monitoring projects their quantiles."""
    return [c for c in columns if _AGE.match(c)]


def select_feature_set(columns: Iterable[str], name: str) -> list[str]:
    """The columns of feature set `name`, in their table order; an unknown set name is an error naming the choices."""
    columns = list(columns)
    if name == "all":
        return columns
    if name == "foundation":
        return [c for c in columns if c in FOUNDATION_COLUMNS or _WINDOW_COUNT.match(c)]
    raise ValueError(f"unknown feature set {name!r}: choose one of {list(FEATURE_SETS)}")
