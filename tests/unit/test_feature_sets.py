"""Named feature sets for ablations: the foundation's features vs all of them."""

import pytest
from test_point_in_time import crm_tables, snap

from features.build import feature_columns
from features.sets import FOUNDATION_COLUMNS, select_feature_set


def test_foundation_set_is_firmographics_window_counts_recency_and_seniority_in_table_order():
    columns = feature_columns(snap(*crm_tables()).reset_index())
    chosen = select_feature_set(columns, "foundation")
    assert chosen == [c for c in columns if c in chosen]  # table order kept
    assert {"seniority_level", "log_employees", "n_demo_request_7d", "n_total_90d", "n_high_intent_30d",
            "days_since_last_activity"} <= set(chosen)
    # the features issue's additions are not in it
    assert not {"engagement_decayed", "form_budget_min", "bant_budget_confirmed", "icp_match_count", "department",
                "lead_source", "account_won_before", "days_since_burst"} & set(chosen)
    assert set(chosen) < set(columns)
    assert select_feature_set(columns, "all") == columns


def test_every_named_foundation_column_exists_in_the_feature_table():
    assert set(feature_columns(snap(*crm_tables()).reset_index())) >= FOUNDATION_COLUMNS


def test_an_unknown_feature_set_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match=r"unknown feature set 'best'.*\['all', 'foundation'\]"):
        select_feature_set(["a"], "best")
