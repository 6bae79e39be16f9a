"""Decision, priority and change report: status reasons (vectorised), capacity rule, deal size, tiers, changes."""

import numpy as np
import pandas as pd
import pytest

from models.changes import (
    DOWNGRADED,
    DROPPED,
    NEW_LEAD,
    NEW_SQL,
    UNCHANGED,
    UPGRADED,
    change_counts,
    diff_scorings,
)
from models.gates import FAIL, PASS, UNKNOWN
from models.ranking import (
    DISQUALIFIED,
    NEEDS_CALL,
    NURTURE,
    SQL,
    DecisionPolicy,
    decide,
    fit_deal_size,
    rank_leads,
)


def test_status_reasons_name_every_failed_or_unknown_gate_in_config_order():
    gates = pd.DataFrame({
        "gate_budget": [FAIL, FAIL, UNKNOWN, PASS, PASS, UNKNOWN],
        "gate_authority": [PASS, FAIL, PASS, UNKNOWN, PASS, UNKNOWN],
        "gate_need": [PASS, PASS, UNKNOWN, PASS, PASS, FAIL],
    })
    p = np.array([0.9, 0.9, 0.5, 0.5, 0.05, 0.9])
    d = decide(gates, p, DecisionPolicy(threshold=0.1))
    assert d["status"].tolist() == [DISQUALIFIED, DISQUALIFIED, NEEDS_CALL, NEEDS_CALL, NURTURE, DISQUALIFIED]
    assert d["status_reason"].tolist() == [
        "failed gate: budget",
        "failed gate: budget, authority",
        "confirm on a call: budget, need",
        "confirm on a call: authority",
        "p_convert 0.050 below threshold 0.100",
        "failed gate: need",
    ]


def test_unknown_gates_below_threshold_are_nurtured_with_the_probability_as_reason():
    d = decide(pd.DataFrame({"gate_need": [UNKNOWN]}), np.array([0.02]), DecisionPolicy(threshold=0.1))
    assert d["status"].tolist() == [NURTURE]
    assert d["status_reason"].tolist() == ["p_convert 0.020 below threshold 0.100"]


def test_vectorised_reasons_agree_with_a_row_by_row_reference_on_random_gates():
    rng = np.random.default_rng(3)
    names = ["budget", "authority", "need", "timeline"]
    gates = pd.DataFrame({f"gate_{n}": rng.choice([PASS, FAIL, UNKNOWN], 2000, p=[0.6, 0.2, 0.2]) for n in names})
    p = rng.uniform(0, 0.3, 2000)
    d = decide(gates, p, DecisionPolicy(threshold=0.1))
    for i in range(0, 2000, 7):
        row = gates.iloc[i].to_numpy()
        failed = [n for n, v in zip(names, row, strict=True) if v == FAIL]
        unknown = [n for n, v in zip(names, row, strict=True) if v == UNKNOWN]
        if failed:
            expected = "failed gate: " + ", ".join(failed)
        elif unknown and p[i] >= 0.1:
            expected = "confirm on a call: " + ", ".join(unknown)
        elif p[i] < 0.1:
            expected = f"p_convert {p[i]:.3f} below threshold 0.100"
        else:
            expected = "all gates pass and p_convert clears the threshold"
        assert d["status_reason"].iloc[i] == expected


def test_capacity_rule_makes_the_best_gate_passing_leads_sqls_and_never_a_failed_one():
    gates = pd.DataFrame({"gate_budget": [PASS, PASS, FAIL, PASS, PASS, UNKNOWN]})
    p = np.array([0.01, 0.02, 0.99, 0.03, 0.04, 0.9])
    value = np.array([100.0, 500.0, 1e9, 300.0, 50.0, 1e9])
    d = decide(gates, p, DecisionPolicy(threshold=0.5, sql_rule="capacity", capacity=2), priority=value)
    # rows 1 and 3 have the highest expected value among the gate-passing ones; row 2 fails a gate
    assert d["status"].tolist() == [NURTURE, SQL, DISQUALIFIED, SQL, NURTURE, NEEDS_CALL]
    assert d["status_reason"][0] == "all gates pass but beyond the hand-over capacity of 2"
    assert d["status_reason"][1] == "all gates pass and within the hand-over capacity of 2"


def test_capacity_rule_needs_a_capacity():
    with pytest.raises(ValueError, match="needs a capacity"):
        DecisionPolicy(sql_rule="capacity")
    with pytest.raises(ValueError, match="sql_rule"):
        DecisionPolicy(sql_rule="vibes")


def test_deal_size_is_the_median_win_per_size_band_with_a_default_for_thin_bands():
    employees = pd.Series([300] * 5 + [20] * 2)
    amounts = pd.Series([10, 20, 30, 40, 50, 999, 999], dtype=float)
    model = fit_deal_size(amounts, employees, default=7.0, min_deals=5)
    assert model.predict(pd.Series([250.0, 30.0, np.nan])).tolist() == [30.0, 7.0, 7.0]


def test_expected_value_not_probability_orders_the_sqls():
    status = pd.Series([SQL, SQL])
    # the less likely lead is worth more: it ranks first
    assert rank_leads(status, np.array([0.5 * 1_000, 0.2 * 10_000])).tolist() == [2, 1]


def _scoring(rows):
    return pd.DataFrame(rows, columns=["lead_id", "status", "tier", "rank"])


def test_changes_since_the_previous_scoring():
    previous = _scoring([("a", SQL, "A", 1), ("b", NURTURE, "C", 3), ("c", SQL, "B", 2), ("d", NEEDS_CALL, "B", 4),
                         ("e", NURTURE, "D", 5), ("h", NURTURE, "D", 6), ("gone", NURTURE, "D", 7)])
    current = _scoring([("a", SQL, "B", 2), ("b", SQL, "A", 1), ("d", NURTURE, "B", 4), ("f", SQL, "A", 3),
                        ("g", NURTURE, "D", 5), ("e", NURTURE, "C", 6), ("h", NURTURE, "D", 7)])
    changes = diff_scorings(previous, current).set_index("lead_id")["change"].to_dict()
    assert changes == {"b": NEW_SQL, "f": NEW_SQL, "c": DROPPED, "a": DOWNGRADED, "d": DOWNGRADED, "e": UPGRADED,
                       "g": NEW_LEAD, "h": UNCHANGED}  # "gone" was not an SQL: leaving is not news
    counts = change_counts(diff_scorings(previous, current))
    assert counts == {"new_sql": 2, "upgraded": 1, "downgraded": 2, "dropped": 1, "unchanged": 1, "new_lead": 1}


def test_first_scoring_reports_every_sql_as_new():
    current = _scoring([("a", SQL, "A", 1), ("b", NURTURE, "D", 2)])
    assert diff_scorings(None, current)["change"].tolist() == [NEW_SQL, NEW_LEAD]
