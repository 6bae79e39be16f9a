"""Engagement features from activity events, as of a date: windowed counts, decay, recency, trend.

Vectorised with integer codes and `np.bincount`: one pass over the events per as-of date, no per-lead loops.
Only events strictly before the as-of date are seen.

An activity of a type outside the contract's list reaches here as `other` (validation keeps it as the catch-all):
it counts as engagement of unknown intent everywhere a type is not named — the totals, recency, trend, bursts, the
buying group — never as high intent, and has no per-type columns of its own (the feature set does not depend on
what a CRM logs). Its points in `engagement_decayed` and the bursts are `featurize.activity_weights.other` (1, an
email open's, in the shipped params); as for every type, a type the weights do not list weighs 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import ACTIVITY_TYPE_VALUES, ACTIVITY_TYPES, HIGH_INTENT_ACTIVITIES

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
    type_code: np.ndarray  # position of the event's type in ACTIVITY_TYPE_VALUES (the known types, then other)
    ts_ns: np.ndarray  # event time, int64 nanoseconds since the epoch
    n_leads: int


def prepare_events(activities: pd.DataFrame, lead_ids: pd.Index) -> Events:
    """Encode activities once; events of unknown leads or types are dropped (validation quarantines orphans and
    keeps a type outside the contract's list as `other`, so neither reaches here from a validated table)."""
    lead_code = _positions(activities["lead_id"], lead_ids)
    type_code = _positions(activities["activity_type"], pd.Index(ACTIVITY_TYPE_VALUES))
    ts = pd.to_datetime(activities["occurred_at"]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    keep = (lead_code >= 0) & (type_code >= 0) & (ts != np.iinfo(np.int64).min)
    lead_code, type_code, ts = lead_code[keep].astype(np.int64), type_code[keep].astype(np.int64), ts[keep]
    order = np.lexsort((ts, lead_code))  # by lead, then time: per-lead runs for the burst features
    return Events(lead_code=lead_code[order], type_code=type_code[order], ts_ns=ts[order], n_leads=len(lead_ids))


def _positions(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each value in `index` (-1 when absent or missing), hashing each distinct value once.

    Ids repeat about 20 times among the activities: factorising first (Arrow's dictionary encode for Arrow
    strings) and looking up only the distinct values is several times faster than `get_indexer` on 20M rows.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(index.get_indexer(uniques), -1)[codes]  # code -1 (missing) takes the trailing -1


def _as_ns(as_of: pd.Timestamp) -> int:
    return int(pd.Timestamp(as_of).as_unit("ns").value)


def engagement_features(events: Events, as_of: pd.Timestamp, config: EngagementConfig) -> pd.DataFrame:
    """One row per lead of the index (in index order) with engagement as known just before `as_of`."""
    n, n_types = events.n_leads, len(ACTIVITY_TYPE_VALUES)  # the known types first: positions agree
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
    del bucket, flat  # memory: at 20M events every temporary array is 160 MB
    within = np.cumsum(counts, axis=2, out=counts)  # within[:, t, k] = events of type t with days < edges[k]

    out: dict[str, np.ndarray] = {}
    high = np.array([t in HIGH_INTENT_ACTIVITIES for t in ACTIVITY_TYPE_VALUES])
    for w in config.windows_days:
        k = int(np.searchsorted(edges, w))
        for t, name in enumerate(ACTIVITY_TYPES):
            out[f"n_{name}_{w}d"] = within[:, t, k]
        out[f"n_total_{w}d"] = within[:, :, k].sum(axis=1)
        out[f"n_high_intent_{w}d"] = within[:, high, k].sum(axis=1)
    out["n_activities_all"] = within[:, :, -1].sum(axis=1)
    for t, name in enumerate(ACTIVITY_TYPES):  # the lead's whole history: an old burst is gone from 90 days
        out[f"n_{name}_all"] = within[:, t, -1]
    out["n_high_intent_all"] = within[:, high, -1].sum(axis=1)

    k14 = int(np.searchsorted(edges, TREND_DAYS))
    k28 = int(np.searchsorted(edges, 2 * TREND_DAYS))
    last14 = within[:, :, k14].sum(axis=1)
    prev14 = within[:, :, k28].sum(axis=1) - last14
    # log ratio with +1 smoothing: positive when engagement is rising, 0 when flat or absent
    out["engagement_trend"] = np.log1p(last14) - np.log1p(prev14)

    weights_map = config.activity_weights or {t: 1.0 for t in ACTIVITY_TYPE_VALUES}
    weights = np.array([float(weights_map.get(t, 0.0)) for t in ACTIVITY_TYPE_VALUES])
    decay = np.exp(-np.log(2.0) * days / config.half_life_days)
    out["engagement_decayed"] = np.bincount(lead, weights=weights[kind] * decay, minlength=n)
    del decay

    out["days_since_last_activity"] = _min_per_lead(lead, days, n)
    is_high = high[kind]
    out["days_since_last_high_intent"] = _min_per_lead(lead[is_high], days[is_high], n)

    # Recency per high-intent type, the first event, and the share of high-intent events over the lead's life.
    for t, name in enumerate(ACTIVITY_TYPES):
        if high[t]:
            of_type = kind == t
            out[f"days_since_{name}"] = _min_per_lead(lead[of_type], days[of_type], n)
    out["days_since_first_activity"] = _max_per_lead(lead, days, n)
    n_all = out["n_activities_all"].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["high_intent_share_all"] = np.where(n_all > 0, within[:, high, -1].sum(axis=1) / n_all, np.nan)
    out.update(burst_features(lead, days, is_high, n, weights[kind]))
    out.update(burst_excess(lead, days, is_high, n, out["days_since_burst"], out["n_activities_all"],
                            out["days_since_first_activity"]))
    return pd.DataFrame(out)


BURST_HALF_WIDTH_DAYS = 7.0  # a burst is the busiest window of +-7 days around one of the lead's events


def burst_features(lead: np.ndarray, days: np.ndarray, is_high: np.ndarray, n: int,
                   points: np.ndarray) -> dict[str, np.ndarray]:
    """Where and how strong the lead's busiest stretch of engagement was (interest comes in bursts).

    `lead` must be sorted ascending and, within a lead, `days` descending (events in time order), as
    `prepare_events` leaves them. For every event, the events of the same lead within +-7 days are counted
    with two binary searches on a (lead, time) key; per lead the maximum is the burst size and its event's
    age is the burst's recency. Vectorised; O(E log E).
    """
    out: dict[str, np.ndarray] = {}
    span = float(days.max()) + 2 * BURST_HALF_WIDTH_DAYS + 1.0 if len(days) else 1.0
    key = lead * span - days  # ascending: leads in order, time ascending within a lead
    lo = np.searchsorted(key, key - BURST_HALF_WIDTH_DAYS, side="left")
    hi = np.searchsorted(key, key + BURST_HALF_WIDTH_DAYS, side="right")
    del key  # memory: these per-event arrays are 160 MB each at 20M events; free each when done
    cum_pts = np.concatenate([[0.0], np.cumsum(points)])
    burst_pts = cum_pts[hi] - cum_pts[lo]
    del cum_pts
    cum_high = np.concatenate([[0], np.cumsum(is_high)])
    burst_high = (cum_high[hi] - cum_high[lo]).astype(float)
    del cum_high
    size = (hi - lo).astype(float)
    del lo, hi
    best = np.zeros(n)
    np.maximum.at(best, lead, burst_pts)
    at_best = burst_pts >= best[lead] - 1e-9
    out["burst_points_14d"] = best
    out["burst_events_14d"] = _fill(_max_per_lead(lead[at_best], size[at_best], n), 0.0)
    out["burst_high_intent_14d"] = _fill(_max_per_lead(lead[at_best], burst_high[at_best], n), 0.0)
    out["days_since_burst"] = _min_per_lead(lead[at_best], days[at_best], n)
    # Centre and spread of the lead's engagement in time (mean and standard deviation of event ages).
    count = np.bincount(lead, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(lead, weights=days, minlength=n) / count
        var = np.bincount(lead, weights=days**2, minlength=n) / count - mean**2
        out["activity_age_mean"] = mean
        out["activity_age_std"] = np.sqrt(np.clip(var, 0.0, None))
    return out


BURST_SPAN_DAYS = 21.0  # events within +-21 days of the burst's centre belong to it (an interest bump is ~8 days wide)


def burst_excess(lead: np.ndarray, days: np.ndarray, is_high: np.ndarray, n: int, burst_age: np.ndarray,
                 n_all: np.ndarray, first_age: np.ndarray) -> dict[str, np.ndarray]:
    """How far the burst rises above the lead's usual activity: interest, with the chatty leads' noise removed.

    A lead's events are a background (newsletter opens, visits) plus, when interest comes, a bump. The events
    outside +-21 days of the burst give the lead's own background rate; the burst's excess is its events minus
    what that rate would have produced in the same 42 days. `burst_age` is `days_since_burst` (NaN: no event).
    """
    centre = np.nan_to_num(burst_age, nan=-1e9)[lead]
    near = np.abs(days - centre) <= BURST_SPAN_DAYS
    n_near = np.bincount(lead[near], minlength=n).astype(float)
    n_high_near = np.bincount(lead[near & is_high], minlength=n).astype(float)
    span = 2 * BURST_SPAN_DAYS
    # days of the lead's history outside the burst window (at least two weeks, so a young lead's rate is tame)
    off_days = np.maximum(np.nan_to_num(first_age, nan=0.0) - span, 14.0)
    off_rate = (np.asarray(n_all, dtype=float) - n_near) / off_days
    return {
        "burst_excess_events": n_near - off_rate * span,
        "burst_high_intent_42d": n_high_near,
        "background_events_per_30d": 30.0 * off_rate,
    }


def _fill(values: np.ndarray, value: float) -> np.ndarray:
    values[np.isnan(values)] = value
    return values


def _max_per_lead(lead: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    result = np.full(n, -np.inf)
    np.maximum.at(result, lead, values)
    result[np.isinf(result)] = np.nan
    return result


def _min_per_lead(lead: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    result = np.full(n, np.inf)
    np.minimum.at(result, lead, values)
    result[np.isinf(result)] = np.nan  # no event yet: recency is unknown, not zero
    return result
