"""Leakage tests: a feature never sees an event on or after its as-of date; a label never an outcome before it."""

import numpy as np
import pandas as pd
import pytest

from features.build import (
    FeatureConfig,
    Icp,
    build_feature_table,
    decision_population,
    feature_columns,
    prepare_crm,
    snapshot,
    snapshot_dates,
)
from features.engagement import EngagementConfig

AS_OF = pd.Timestamp("2026-03-01")
CONFIG = FeatureConfig(horizon_days=90, engagement=EngagementConfig(), icp=Icp(industries=("Software",)))


def crm_tables():
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2"], "company_name": ["Acme", "Globex"], "industry": ["Software", "Retail"],
        "employees": [500, 20], "annual_revenue": [5e7, 2e6], "country": ["US", "FR"], "founded_year": [2001, 2015],
    })
    leads = pd.DataFrame({
        "lead_id": ["L1", "L2", "L3", "L4", "L5"],
        "account_id": ["A1", "A1", "A2", "A2", "A1"],
        "created_at": pd.to_datetime(["2025-10-01", "2025-11-01", "2025-12-01", "2026-04-01", "2025-09-01"]),
        "job_title": ["VP Sales", "IT Manager", "Intern", "CEO", "CFO"],
        "lead_source": ["Referral", "Event", "Paid Search", "Referral", "Partner"],
        "form_budget": ["$25k-$50k", None, None, None, None],
        "form_timeline": ["This quarter", None, None, None, None],
        "form_use_case": ["Forecasting", None, None, None, None],
        "call_date": pd.to_datetime(["2026-02-01", "2026-03-15", None, None, None]),
        "bant_budget_confirmed": pd.array([True, True, None, None, None], dtype="boolean"),
        "bant_authority_confirmed": pd.array([True, False, None, None, None], dtype="boolean"),
        "bant_need_confirmed": pd.array([True, True, None, None, None], dtype="boolean"),
        "bant_timeline_confirmed": pd.array([False, True, None, None, None], dtype="boolean"),
    })
    activities = pd.DataFrame({
        "activity_id": [f"E{i}" for i in range(6)],
        "lead_id": ["L1", "L1", "L2", "L2", "L3", "L1"],
        "occurred_at": pd.to_datetime(["2026-02-20", "2026-02-27", "2026-01-10", "2026-02-28 23:59", "2025-12-05",
                                       "2026-03-02"], format="ISO8601"),
        "activity_type": ["pricing_page_view", "demo_request", "email_open", "web_visit", "email_open", "meeting"],
    })
    opportunities = pd.DataFrame({
        "opportunity_id": ["O1", "O2", "O3", "O4"],
        "lead_id": ["L1", "L2", "L5", "L3"],
        "account_id": ["A1", "A1", "A1", "A2"],
        "created_at": pd.to_datetime(["2026-02-15", "2026-03-10", "2025-12-01", "2026-05-01"]),
        "closed_at": pd.to_datetime(["2026-04-01", "2026-07-01", "2026-01-15", "2026-06-15"]),
        "stage": ["closed_won", "closed_won", "closed_won", "closed_lost"],
        "amount": [30000.0, 20000.0, 10000.0, 5000.0],
    })
    return accounts, leads, activities, opportunities


def snap(accounts, leads, activities, opportunities, as_of=AS_OF):
    crm = prepare_crm(accounts, leads, activities, opportunities, icp=CONFIG.icp)
    return snapshot(crm, as_of, CONFIG).set_index("lead_id")


def test_eligibility_and_labels():
    s = snap(*crm_tables())
    # L4 is created after the as-of date; L5 already won before it: neither is scored.
    assert sorted(s.index) == ["L1", "L2", "L3"]
    # L1 wins 31 days later (inside the horizon); L2 wins 122 days later (outside); L3 is lost.
    assert s.loc["L1", "label"] == 1 and s.loc["L2", "label"] == 0 and s.loc["L3", "label"] == 0


def test_label_window_is_half_open():
    accounts, leads, activities, opps = crm_tables()
    opps.loc[0, "closed_at"] = AS_OF + pd.Timedelta(days=90)  # exactly at the end: outside [T, T+90)
    assert snap(accounts, leads, activities, opps).loc["L1", "label"] == 0
    opps.loc[0, "closed_at"] = AS_OF  # exactly at T: inside, and not "closed before T"
    assert snap(accounts, leads, activities, opps).loc["L1", "label"] == 1


def test_changing_or_deleting_any_event_after_the_as_of_date_changes_no_feature():
    accounts, leads, activities, opps = crm_tables()
    base = snap(accounts, leads, activities, opps).drop(columns="label")

    later = activities["occurred_at"] >= AS_OF
    assert later.any()
    changed = activities.copy()
    changed.loc[later, "activity_type"] = "trial_signup"
    extra = pd.DataFrame({"activity_id": ["X1", "X2"], "lead_id": ["L2", "L3"],
                          "occurred_at": [AS_OF, AS_OF + pd.Timedelta(days=3)], "activity_type": ["meeting", "demo_request"]})
    changed = pd.concat([changed, extra], ignore_index=True)
    deleted = activities[~later]

    # Outcomes after the date change too: L2's call answers (call after T), opportunity dates and stages after T.
    leads2 = leads.copy()
    leads2.loc[1, ["bant_budget_confirmed", "bant_authority_confirmed"]] = [False, True]
    opps2 = opps.copy()
    opps2.loc[1, "stage"] = "closed_lost"
    opps2.loc[3, "amount"] = 1e6
    opps2 = pd.concat([opps2, pd.DataFrame({"opportunity_id": ["O9"], "lead_id": ["L3"], "account_id": ["A2"],
                                            "created_at": [AS_OF + pd.Timedelta(days=1)],
                                            "closed_at": [pd.NaT], "stage": ["open"], "amount": [1.0]})])

    for variant in (
        snap(accounts, leads, changed, opps),
        snap(accounts, leads, deleted, opps),
        snap(accounts, leads2, activities, opps2),
    ):
        pd.testing.assert_frame_equal(variant.drop(columns="label"), base)


def test_call_answers_appear_only_after_the_call():
    s = snap(*crm_tables())
    assert s.loc["L1", "bant_timeline_confirmed"] == 0.0 and s.loc["L1", "had_qualification_call"] == 1.0
    assert np.isnan(s.loc["L2", "bant_budget_confirmed"]) and s.loc["L2", "had_qualification_call"] == 0.0


def test_account_history_and_open_opportunity_only_from_before():
    s = snap(*crm_tables())
    assert s.loc["L1", "account_won_before"] == 1  # L5's win in January, same account
    assert s.loc["L3", "account_won_before"] == 0
    assert s.loc["L1", "has_open_opportunity"] == 1 and s.loc["L1", "days_since_opportunity_created"] == pytest.approx(14)
    assert s.loc["L2", "has_open_opportunity"] == 0  # its opportunity opens after the as-of date


def test_training_labels_close_before_the_test_period_begins():
    dates = snapshot_dates(pd.Timestamp("2026-10-01"), horizon_days=90, every_days=30, n_train=4)
    test_start = dates["test"][0]
    assert dates["score"] == [pd.Timestamp("2026-10-01")]
    assert test_start + pd.Timedelta(days=90) == pd.Timestamp("2026-10-01")
    for d in dates["train"]:
        assert d + pd.Timedelta(days=90) <= test_start
    assert dates["train"] == sorted(dates["train"])


def test_feature_table_splits_and_score_rows_have_no_label():
    accounts, leads, activities, opps = crm_tables()
    crm = prepare_crm(accounts, leads, activities, opps, icp=CONFIG.icp)
    table = build_feature_table(crm, {"train": [AS_OF], "score": [pd.Timestamp("2026-08-01")]}, CONFIG)
    # L1's opportunity is open on the training date: sales works it, so its labelled row is not a training row
    assert set(table["split"]) == {"train", "score", "with_sales"}
    assert table.loc[table["split"] == "with_sales", "lead_id"].tolist() == ["L1"]
    assert table.loc[table["split"] == "score", "label"].isna().all()
    assert table.loc[table["split"] != "score", "label"].notna().all()
    assert isinstance(table["industry"].dtype, pd.CategoricalDtype)


def test_with_sales_sees_open_opportunities_as_of_and_the_crm_state_only_when_scoring():
    accounts, leads, activities, opps = crm_tables()
    # the export says L3 is worked by sales now (a working status, converted): known at the export, not before
    leads = leads.assign(with_sales=pd.array([False, False, True, False, False], dtype="boolean"))
    crm = prepare_crm(accounts, leads, activities, opps, icp=CONFIG.icp)
    past = snapshot(crm, AS_OF, CONFIG).set_index("lead_id")["with_sales"]
    assert past.to_dict() == {"L1": True, "L2": False, "L3": False}  # L2's opportunity opens on 03-10: later
    later = snapshot(crm, pd.Timestamp("2026-03-11"), CONFIG).set_index("lead_id")["with_sales"]
    assert later["L2"] and not later["L3"]
    now = snapshot(crm, pd.Timestamp("2026-03-11"), CONFIG, with_label=False).set_index("lead_id")["with_sales"]
    assert now["L3"] and now["L2"] and now["L1"]
    table = build_feature_table(crm, {"train": [pd.Timestamp("2026-03-11")], "score": [pd.Timestamp("2026-03-11")]},
                                CONFIG)
    train = table[table["split"] == "train"]
    assert set(train["lead_id"]) == {"L3"} and not train["with_sales"].any()
    assert "with_sales" not in feature_columns(table)
    assert decision_population(table[table["split"] == "score"])["lead_id"].tolist() == []


def test_featurizing_does_not_mutate_inputs():
    tables = crm_tables()
    copies = [t.copy() for t in tables]
    snap(*tables)
    for before, after in zip(copies, tables, strict=True):
        pd.testing.assert_frame_equal(before, after)


# --- feature families added for model quality: bursts, per-type recency, buying-group engagement ----------------

def test_burst_recency_and_per_type_features_see_only_the_past():
    accounts, leads, activities, opps = crm_tables()
    s = snap(accounts, leads, activities, opps)
    # L1 before the date: pricing 2026-02-20 (9 days ago, 10 points), demo 2026-02-27 (2 days ago, 1 point each
    # with the default unit weights); the meeting on 2026-03-02 is after the date and invisible.
    assert s.loc["L1", "days_since_pricing_page_view"] == pytest.approx(9)
    assert s.loc["L1", "days_since_demo_request"] == pytest.approx(2)
    assert np.isnan(s.loc["L1", "days_since_meeting"])
    assert s.loc["L1", "days_since_first_activity"] == pytest.approx(9)
    assert s.loc["L1", "burst_events_14d"] == 2 and s.loc["L1", "days_since_burst"] == pytest.approx(2)
    assert s.loc["L1", "high_intent_share_all"] == 1.0
    assert s.loc["L1", "activity_age_mean"] == pytest.approx(5.5) and s.loc["L1", "activity_age_std"] == pytest.approx(3.5)
    # L2: 2026-01-10 and 2026-02-28 23:59 are 49 days apart: two bursts of one event, the latest one counts.
    assert s.loc["L2", "burst_events_14d"] == 1
    assert s.loc["L2", "days_since_burst"] == pytest.approx(1 / 1440)
    # Adding a burst of events after the date changes none of it.
    later = pd.DataFrame({"activity_id": [f"Z{i}" for i in range(5)], "lead_id": ["L2"] * 5,
                          "occurred_at": [AS_OF + pd.Timedelta(hours=h) for h in range(5)],
                          "activity_type": ["demo_request"] * 5})
    s2 = snap(accounts, leads, pd.concat([activities, later], ignore_index=True), opps)
    pd.testing.assert_frame_equal(s2.drop(columns="label"), s.drop(columns="label"))


def test_buying_group_engagement_counts_the_other_contacts_before_the_date():
    accounts, leads, activities, opps = crm_tables()
    s = snap(accounts, leads, activities, opps)
    # A1's scored contacts are L1 and L2 (L5 already won but still existed: its engagement counts for the group).
    own = s["engagement_decayed"]
    assert s.loc["L1", "buying_group_engagement_decayed_others"] == pytest.approx(own["L2"])
    assert s.loc["L2", "buying_group_engagement_decayed_others"] == pytest.approx(own["L1"])
    assert s.loc["L1", "buying_group_n_high_intent_90d_others"] == 0  # L2 had no high-intent event
    assert s.loc["L2", "buying_group_n_high_intent_90d_others"] == 2  # L1's pricing view and demo request
    assert s.loc["L3", "buying_group_leads"] == 1  # L4 (same account) is created after the date
