"""Engagement features from activity events, as of a date: windowed counts, decay, recency, trend.

Vectorised with integer codes and `np.bincount`: one pass over the events per as-of date, no per-lead loops.
Only events strictly before the as-of date are seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import ACTIVITY_TYPES, HIGH_INTENT_ACTIVITIES

NS_PER_DAY = 86_400 * 10**9
TREND_DAYS = 14  # the trend compares the last 14 days with the 14 before


@dataclass(frozen=True)
class EngagementConfig:
    windows_days: tuple[int, ...] = (7, 30, 90)
    half_life_days: float = 14.0
    activity_weights: Mapping[str, float] | None = None


@dataclass(frozen=True)
class Events:
    """Activity events reduced to integer arrays aligned to a lead index."""

    lead_code: np.ndarray  # position of the event's lead in the lead index
    type_code: np.ndarray  # position of the event's type in ACTIVITY_TYPES
    ts_ns: np.ndarray  # event time, int64 nanoseconds since the epoch
    n_leads: int


def prepare_events(activities: pd.DataFrame, lead_ids: pd.Index) -> Events:
    """Encode activities once; events of unknown leads or types are dropped (validation quarantines them)."""
    lead_code = lead_ids.get_indexer(activities["lead_id"])
    type_code = pd.Categorical(activities["activity_type"], categories=list(ACTIVITY_TYPES)).codes
    ts = pd.to_datetime(activities["occurred_at"]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    keep = (lead_code >= 0) & (type_code >= 0) & (ts != np.iinfo(np.int64).min)
    return Events(
        lead_code=lead_code[keep].astype(np.int64),
        type_code=type_code[keep].astype(np.int64),
        ts_ns=ts[keep],
        n_leads=len(lead_ids),
    )


def _as_ns(as_of: pd.Timestamp) -> int:
    return int(pd.Timestamp(as_of).as_unit("ns").value)


def engagement_features(events: Events, as_of: pd.Timestamp, config: EngagementConfig) -> pd.DataFrame:
    """One row per lead of the index (in index order) with engagement as known just before `as_of`."""
    n, n_types = events.n_leads, len(ACTIVITY_TYPES)
    seen = events.ts_ns < _as_ns(as_of)
    lead = events.lead_code[seen]
    kind = events.type_code[seen]
    days = (_as_ns(as_of) - events.ts_ns[seen]) / NS_PER_DAY

    # Bucket every event by the smallest window that contains it; cumulative sums give the window counts.
    edges = np.array(sorted(set(config.windows_days) | {TREND_DAYS, 2 * TREND_DAYS}), dtype=float)
    n_buckets = len(edges) + 1
    bucket = np.searchsorted(edges, days, side="right")
    flat = (lead * n_types + kind) * n_buckets + bucket
    counts = np.bincount(flat, minlength=n * n_types * n_buckets).reshape(n, n_types, n_buckets)
    within = counts.cumsum(axis=2)  # within[:, t, k] = events of type t with days < edges[k]

    out: dict[str, np.ndarray] = {}
    high = np.array([t in HIGH_INTENT_ACTIVITIES for t in ACTIVITY_TYPES])
    for w in config.windows_days:
        k = int(np.searchsorted(edges, w))
        for t, name in enumerate(ACTIVITY_TYPES):
            out[f"n_{name}_{w}d"] = within[:, t, k]
        out[f"n_total_{w}d"] = within[:, :, k].sum(axis=1)
        out[f"n_high_intent_{w}d"] = within[:, high, k].sum(axis=1)
    out["n_activities_all"] = within[:, :, -1].sum(axis=1)

    k14 = int(np.searchsorted(edges, TREND_DAYS))
    k28 = int(np.searchsorted(edges, 2 * TREND_DAYS))
    last14 = within[:, :, k14].sum(axis=1)
    prev14 = within[:, :, k28].sum(axis=1) - last14
    # log ratio with +1 smoothing: positive when engagement is rising, 0 when flat or absent
    out["engagement_trend"] = np.log1p(last14) - np.log1p(prev14)

    weights_map = config.activity_weights or {t: 1.0 for t in ACTIVITY_TYPES}
    weights = np.array([float(weights_map.get(t, 0.0)) for t in ACTIVITY_TYPES])
    decay = np.exp(-np.log(2.0) * days / config.half_life_days)
    out["engagement_decayed"] = np.bincount(lead, weights=weights[kind] * decay, minlength=n)

    out["days_since_last_activity"] = _min_per_lead(lead, days, n)
    is_high = high[kind]
    out["days_since_last_high_intent"] = _min_per_lead(lead[is_high], days[is_high], n)
    return pd.DataFrame(out)


def _min_per_lead(lead: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    result = np.full(n, np.inf)
    np.minimum.at(result, lead, values)
    result[np.isinf(result)] = np.nan  # no event yet: recency is unknown, not zero
    return result
