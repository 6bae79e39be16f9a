"""Unit tests of BANT gates and the SQL decision: thresholds, unknowns, call overrides, config errors."""

import numpy as np
import pandas as pd
import pytest

from models.gates import FAIL, PASS, UNKNOWN, GateConfigError, evaluate_gates, parse_gates
from models.ranking import (
    DISQUALIFIED,
    NEEDS_CALL,
    NURTURE,
    SQL,
    DecisionPolicy,
    assign_tiers,
    decide,
    rank_leads,
)

BUDGET = {
    "budget": {
        "confirmed": "bant_budget_confirmed",
        "any": [
            {"column": "annual_revenue", "op": ">=", "value": 10_000_000},
            {"column": "form_budget_min", "op": ">=", "value": 25_000},
        ],
    }
}


def frame(**cols):
    return pd.DataFrame(cols)


@pytest.mark.parametrize(
    ("revenue", "expected"),
    [(9_999_999.0, FAIL), (10_000_000.0, PASS), (10_000_001.0, PASS)],
    ids=["just-under", "at", "just-over"],
)
def test_budget_gate_at_under_and_over_threshold(revenue, expected):
    gate = parse_gates(BUDGET)[0]
    df = frame(annual_revenue=[revenue], form_budget_min=[0.0], bant_budget_confirmed=[np.nan])
    assert gate.evaluate(df).tolist() == [expected]


@pytest.mark.parametrize(
    ("level", "expected"), [(3.0, FAIL), (4.0, PASS), (5.0, PASS), (np.nan, UNKNOWN)]
)
def test_authority_gate_by_seniority(level, expected):
    gate = parse_gates({"authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 4}]}})[0]
    assert gate.evaluate(frame(seniority_level=[level])).tolist() == [expected]


def test_missing_inputs_make_the_gate_unknown_not_failed():
    gate = parse_gates(BUDGET)[0]
    df = frame(annual_revenue=[np.nan, np.nan, 5.0], form_budget_min=[np.nan, 0.0, 0.0], bant_budget_confirmed=[np.nan] * 3)
    # all missing -> unknown; one missing and one false -> unknown; all false -> fail
    assert gate.evaluate(df).tolist() == [UNKNOWN, UNKNOWN, FAIL]


def test_call_confirmation_overrides_inferred_outcome_both_ways():
    gate = parse_gates(BUDGET)[0]
    df = frame(
        annual_revenue=[1e9, 1.0, np.nan],
        form_budget_min=[np.nan, np.nan, np.nan],
        bant_budget_confirmed=[0.0, 1.0, 1.0],
    )
    assert gate.evaluate(df).tolist() == [FAIL, PASS, PASS]


def test_in_operator_and_text_columns():
    gate = parse_gates({"need": {"any": [{"column": "use_case", "op": "in", "value": ["Forecasting"]}]}})[0]
    df = frame(use_case=pd.array(["Forecasting", "Other", None], dtype="string"))
    assert gate.evaluate(df).tolist() == [PASS, FAIL, UNKNOWN]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"budget": {"any": [{"column": "annual_revenue", "op": "~=", "value": 1}]}}, "unknown operator '~='"),
        ({"budget": {"any": [{"column": "no_such_column", "op": ">=", "value": 1}]}}, "no_such_column"),
        ({"budget": {"anyy": []}}, "unknown key"),
        ({"budget": {"any": [{"column": "annual_revenue", "op": "in", "value": 3}]}}, "needs a list"),
        ({}, "at least one gate"),
    ],
)
def test_bad_gate_config_is_a_clear_error(config, message):
    with pytest.raises(GateConfigError, match=message):
        parse_gates(config, available_columns=["annual_revenue"])


def test_a_lead_failing_any_gate_is_never_an_sql_whatever_its_probability():
    gates = pd.DataFrame({"gate_budget": [PASS, FAIL, PASS, PASS], "gate_need": [PASS, PASS, UNKNOWN, PASS]})
    p = np.array([0.9, 0.99, 0.9, 0.01])
    decision = decide(gates, p, DecisionPolicy(threshold=0.1, unknown_policy="call_queue"))
    assert decision["status"].tolist() == [SQL, DISQUALIFIED, NEEDS_CALL, NURTURE]
    assert decision["is_sql"].tolist() == [True, False, False, False]
    assert decision["status_reason"][1] == "failed gate: budget"
    assert "need" in decision["status_reason"][2]


def test_unknown_policy_fail_disqualifies_unknown_gates():
    gates = pd.DataFrame({"gate_budget": [UNKNOWN]})
    decision = decide(gates, np.array([0.9]), DecisionPolicy(threshold=0.1, unknown_policy="fail"))
    assert decision["status"].tolist() == [DISQUALIFIED]


@pytest.mark.parametrize(("p", "is_sql"), [(0.0999, False), (0.1, True), (0.1001, True)])
def test_score_threshold_at_under_and_over(p, is_sql):
    decision = decide(pd.DataFrame({"gate_budget": [PASS]}), np.array([p]), DecisionPolicy(threshold=0.1))
    assert decision["is_sql"].tolist() == [is_sql]


def test_rank_puts_sqls_first_ordered_by_expected_value():
    status = pd.Series([NURTURE, SQL, SQL, DISQUALIFIED, NEEDS_CALL])
    ev = np.array([1e6, 10.0, 500.0, 1e7, 5.0])
    assert rank_leads(status, ev).tolist() == [4, 2, 1, 5, 3]


def test_tiers_follow_probability_bounds():
    tiers = assign_tiers(np.array([0.5, 0.3, 0.2, 0.05, 0.01]), {"A": 0.3, "B": 0.15, "C": 0.05})
    assert tiers.tolist() == ["A", "A", "B", "C", "D"]


def test_evaluate_gates_names_columns():
    gates = parse_gates(BUDGET)
    out = evaluate_gates(frame(annual_revenue=[2e7], form_budget_min=[0.0], bant_budget_confirmed=[np.nan]), gates)
    assert list(out.columns) == ["gate_budget"] and out.iloc[0, 0] == PASS


def test_the_projects_gate_config_names_only_columns_the_score_stage_has():
    from pathlib import Path

    from features.build import CATEGORICAL_FEATURES
    from models.decision import ACCOUNT_COLUMNS
    from pipeline.params import load_params

    p = load_params(Path(__file__).resolve().parents[2] / "params.yaml").score
    known = [*CATEGORICAL_FEATURES, *ACCOUNT_COLUMNS, "seniority_level", "form_budget_min", "form_timeline_months",
             "n_high_intent_7d", "n_high_intent_30d", "bant_budget_confirmed", "bant_authority_confirmed",
             "bant_need_confirmed", "bant_timeline_confirmed"]
    gates = parse_gates(p.gates, known)
    assert [g.name for g in gates] == ["budget", "authority", "need", "timeline"]
    assert all(g.confirmed == f"bant_{g.name}_confirmed" for g in gates)


def test_a_gate_with_only_a_call_answer_is_unknown_until_the_call():
    gate = parse_gates({"need": {"confirmed": "bant_need_confirmed"}})[0]
    df = frame(bant_need_confirmed=[np.nan, 1.0, 0.0])
    assert gate.evaluate(df).tolist() == [UNKNOWN, PASS, FAIL]


@pytest.mark.parametrize("n_keys", [3, 40, 400])
def test_first_match_finds_each_keys_first_row_whichever_side_it_hashes(n_keys):
    """models.decision.first_match: per key, the position of its first occurrence in the lookup (-1: absent), the
    same whether it hashes the lookup (many keys) or the keys (a few keys in a long lookup): repeated keys, keys
    repeated in the lookup, absent keys, numbers compared as text, missing values."""
    from models.decision import FEW_KEYS_FACTOR, first_match

    rng = np.random.default_rng(n_keys)
    lookup = pd.Series(rng.integers(0, 300, 400).astype(str), dtype="string")
    lookup.iloc[[5, 50]] = pd.NA
    keys = pd.Series(rng.integers(0, 330, n_keys).astype(str), dtype="string")
    keys.iloc[0] = keys.iloc[-1]  # a repeated key
    if n_keys > 3:
        keys.iloc[1] = pd.NA
    expected = [next((i for i, v in enumerate(lookup) if (v is pd.NA and k is pd.NA) or
                      (v is not pd.NA and k is not pd.NA and v == k)), -1) for k in keys]
    assert first_match(keys, lookup).tolist() == expected
    assert (n_keys * FEW_KEYS_FACTOR < len(lookup)) == (n_keys < 50)  # both paths are taken
    as_numbers = first_match(pd.Series([int(k) for k in keys.dropna()]), lookup)
    assert as_numbers.tolist() == [e for k, e in zip(keys, expected, strict=True) if k is not pd.NA]
    assert (first_match(keys, lookup) >= 0).any() and (first_match(keys, lookup) == -1).any()


def test_first_occurrence_marks_each_keys_first_row():
    from models.decision import first_occurrence

    ids = pd.Series(["a", "b", "a", None, "c", None, "b"], dtype="string")
    assert first_occurrence(ids).tolist() == [True, True, False, True, True, False, False]
    assert first_occurrence(ids).tolist() == (~ids.duplicated()).tolist()
    assert first_occurrence(pd.Series([3, 1, 2])).all()
    assert first_occurrence(pd.Series([], dtype="string")).tolist() == []
