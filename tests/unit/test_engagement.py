"""Engagement features: window counts, decay, recency, trend — and nothing from the as-of date onward."""

import numpy as np
import pandas as pd
import pytest

from features.engagement import EngagementConfig, engagement_features, prepare_events

AS_OF = pd.Timestamp("2026-06-01")
CFG = EngagementConfig(windows_days=(7, 30, 90), half_life_days=14.0, activity_weights={"demo_request": 25.0, "email_open": 1.0})


def events(rows):
    df = pd.DataFrame(rows, columns=["lead_id", "days_before", "activity_type"])
    df["occurred_at"] = AS_OF - pd.to_timedelta(df.pop("days_before"), unit="D")
    return df


def feats(df, lead_ids=("L1", "L2")):
    return engagement_features(prepare_events(df, pd.Index(list(lead_ids))), AS_OF, CFG)


def test_window_counts_respect_boundaries():
    df = events([("L1", 1, "email_open"), ("L1", 6.99, "email_open"), ("L1", 7.0, "email_open"),
                 ("L1", 29, "demo_request"), ("L1", 89, "web_visit"), ("L1", 200, "web_visit")])
    f = feats(df)
    assert f.loc[0, "n_email_open_7d"] == 2  # exactly 7 days old is outside the 7-day window
    assert f.loc[0, "n_email_open_30d"] == 3
    assert f.loc[0, "n_high_intent_30d"] == 1 and f.loc[0, "n_high_intent_7d"] == 0
    assert f.loc[0, "n_total_90d"] == 5
    assert f.loc[0, "n_activities_all"] == 6
    assert f.loc[1, "n_total_90d"] == 0


def test_events_on_or_after_the_as_of_date_are_invisible():
    base = events([("L1", 3, "email_open")])
    future = events([("L1", 0, "demo_request"), ("L1", -5, "meeting"), ("L2", -1, "trial_signup")])
    pd.testing.assert_frame_equal(feats(base), feats(pd.concat([base, future], ignore_index=True)))


def test_decay_halves_after_one_half_life():
    f_now = feats(events([("L1", 0.0001, "demo_request")]))
    f_old = feats(events([("L1", 14, "demo_request")]))
    assert f_now.loc[0, "engagement_decayed"] == pytest.approx(25.0, rel=1e-4)
    assert f_old.loc[0, "engagement_decayed"] == pytest.approx(12.5, rel=1e-4)


def test_recency_and_missing_recency():
    f = feats(events([("L1", 3, "email_open"), ("L1", 10, "demo_request")]))
    assert f.loc[0, "days_since_last_activity"] == pytest.approx(3)
    assert f.loc[0, "days_since_last_high_intent"] == pytest.approx(10)
    assert np.isnan(f.loc[1, "days_since_last_activity"])  # never engaged: unknown, not 0


def test_trend_is_positive_when_engagement_rises():
    rising = feats(events([("L1", 1, "email_open"), ("L1", 2, "email_open"), ("L1", 20, "email_open")]))
    falling = feats(events([("L1", 15, "email_open"), ("L1", 16, "email_open"), ("L1", 2, "email_open")]))
    assert rising.loc[0, "engagement_trend"] > 0 > falling.loc[0, "engagement_trend"]


def test_input_is_not_mutated_and_unknown_leads_are_dropped():
    df = events([("L1", 1, "email_open"), ("LX", 1, "email_open")])
    before = df.copy()
    f = feats(df)
    pd.testing.assert_frame_equal(df, before)
    assert f["n_total_7d"].tolist() == [1, 0]


def test_whole_history_counts_per_type_see_old_events_the_windows_miss():
    f = feats(events([("L1", 200, "demo_request"), ("L1", 150, "demo_request"), ("L1", 2, "email_open"),
                      ("L2", 400, "meeting")]))
    assert f.loc[0, "n_demo_request_90d"] == 0 and f.loc[0, "n_demo_request_all"] == 2
    assert f.loc[0, "n_email_open_all"] == 1 and f.loc[0, "n_high_intent_all"] == 2
    assert f.loc[1, "n_meeting_all"] == 1 and f.loc[1, "n_high_intent_all"] == 1


def test_burst_excess_counts_the_burst_above_the_leads_usual_rate():
    # L1: one email open every 10 days for 300 days (the background), plus a burst of 12 events around day 100.
    background = [("L1", d, "email_open") for d in range(5, 300, 10)]
    burst = [("L1", 100 + 0.5 * k, "pricing_page_view" if k % 3 == 0 else "web_visit") for k in range(12)]
    f = feats(events(background + burst))
    assert f.loc[0, "days_since_burst"] == pytest.approx(100, abs=6)
    # background: 30 events over 300 days; about 4 of them fall inside the burst's 42 days
    off_days = f.loc[0, "days_since_first_activity"] - 42
    near = 12 + sum(1 for d in range(5, 300, 10) if abs(d - f.loc[0, "days_since_burst"]) <= 21)
    rate = (42 - near) / off_days  # events outside the burst window, per day
    assert f.loc[0, "background_events_per_30d"] == pytest.approx(30 * rate)
    assert f.loc[0, "burst_excess_events"] == pytest.approx(near - 42 * rate)
    assert 10 <= f.loc[0, "burst_excess_events"] <= 15
    assert f.loc[0, "burst_high_intent_42d"] == 4
    # a lead that never engaged has no burst and no excess
    assert f.loc[1, "burst_excess_events"] == 0 and f.loc[1, "background_events_per_30d"] == 0


def test_an_other_activity_counts_as_engagement_of_unknown_intent():
    # `other`: a type outside the contract's list, kept by validation; counted, never high intent, no columns
    f = feats(events([("L1", 2, "other"), ("L1", 5, "email_open"), ("L2", 3, "other")]))
    assert not any("other" in col for col in f.columns)  # the feature set does not depend on what a CRM logs
    assert f.loc[0, "n_total_7d"] == 2 and f.loc[0, "n_activities_all"] == 2 and f.loc[0, "n_high_intent_7d"] == 0
    assert f.loc[1, "days_since_last_activity"] == pytest.approx(3) and np.isnan(f.loc[1, "days_since_last_high_intent"])
    assert f.loc[1, "high_intent_share_all"] == 0
    # its points are activity_weights["other"]; like any type the weights do not list, 0 without it
    assert f.loc[1, "engagement_decayed"] == 0
    weighted = EngagementConfig(activity_weights={"other": 1.0})
    g = engagement_features(prepare_events(events([("L2", 14, "other")]), pd.Index(["L2"])), AS_OF, weighted)
    assert g.loc[0, "engagement_decayed"] == pytest.approx(0.5, rel=1e-4)
    assert g.loc[0, "burst_points_14d"] == pytest.approx(1.0)
