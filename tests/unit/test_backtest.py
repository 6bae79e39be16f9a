"""Criteria backtest on a hand-built past snapshot whose outcomes are known."""

import numpy as np
import pandas as pd
import pytest

from models import backtest as bt

GATES = ["gate_budget", "gate_need"]


@pytest.fixture
def past():
    # 10 leads of one past as-of date. Leads 0-3 pass both gates; 4-5 fail budget; 6 fails need; 7-9 unknown.
    return pd.DataFrame({
        "as_of":       pd.to_datetime(["2026-01-01"] * 10),
        "gate_budget": ["pass"] * 4 + ["fail", "fail", "pass", "unknown", "pass", "unknown"],
        "gate_need":   ["pass"] * 4 + ["pass", "fail", "fail", "pass", "unknown", "pass"],
        "p_convert":   [0.50, 0.30, 0.12, 0.05, 0.40, 0.20, 0.30, 0.20, 0.05, 0.02],
        "expected_deal_size": [10_000.0] * 10,
        "is_sql":      [True, True, True, False, False, False, False, False, False, False],
        "label":       [1, 0, 1, 0, 1, 1, 1, 0, 0, 0],
        "won_amount":  [30_000.0, 0, 5_000.0, 0, 20_000.0, 10_000.0, 8_000.0, 0, 0, 0],
    })


def test_precision_recall_and_conversion_of_the_sql_decision(past):
    perf = bt.decision_performance(past)
    assert perf["n_sql"] == 3 and perf["n_won"] == 5 and perf["n_sql_won"] == 2
    assert perf["precision"] == pytest.approx(2 / 3)
    assert perf["recall"] == pytest.approx(2 / 5)
    assert perf["non_sql_conversion"] == pytest.approx(3 / 7)
    assert perf["sql_lift"] == pytest.approx((2 / 3) / (3 / 7))


def test_no_sql_gives_nan_precision_not_an_error(past):
    perf = bt.decision_performance(past.assign(is_sql=False))
    assert np.isnan(perf["precision"]) and perf["recall"] == 0.0


def test_gate_losses_name_the_gate_that_throws_away_most_winners(past):
    losses = bt.gate_losses(past, GATES)
    assert losses["gate"].tolist() == ["budget", "need"]  # budget failed 2 winners, need failed 2 -> tie by name
    by_gate = losses.set_index("gate")
    assert by_gate.loc["budget", "winners_failed"] == 2
    assert by_gate.loc["need", "winners_failed"] == 2
    assert by_gate.loc["budget", "winners_failed_only_here"] == 1  # lead 4 (lead 5 failed both)
    assert by_gate.loc["need", "winners_failed_only_here"] == 1    # lead 6
    assert by_gate.loc["budget", "share_of_winners_failed"] == pytest.approx(0.4)
    more = pd.concat([past, past.iloc[[4]]], ignore_index=True)  # one more budget-only loss
    assert bt.gate_losses(more, GATES)["gate"].iloc[0] == "budget"


def test_threshold_sweep_replays_the_decision_and_nets_the_sales_cost(past):
    sweep = bt.threshold_sweep(past, GATES, cost_per_sql=1_000.0, thresholds=[0.0, 0.1, 0.3, 0.6]).set_index("threshold")
    assert sweep["n_sql"].to_dict() == {0.0: 4, 0.1: 3, 0.3: 2, 0.6: 0}
    assert sweep.loc[0.1, "realised_value"] == 30_000 + 5_000 - 3 * 1_000
    assert sweep.loc[0.3, "realised_value"] == 30_000 - 2 * 1_000
    assert sweep.loc[0.1, "expected_value"] == pytest.approx((0.5 + 0.3 + 0.12) * 10_000 - 3 * 1_000)
    assert sweep.loc[0.1, "recall"] == pytest.approx(2 / 5)
    best = bt.best_row(sweep.reset_index(), prefer_smaller="n_sql")
    assert best["threshold"] == 0.1  # 0.0 adds a non-winner: same wins, one more cost


def test_realised_value_falls_back_to_deal_size_when_amounts_are_unknown(past):
    sweep = bt.threshold_sweep(past.drop(columns="won_amount"), GATES, cost_per_sql=0.0, thresholds=[0.1])
    assert sweep["realised_value"].iloc[0] == 2 * 10_000


def test_capacity_sweep_takes_gate_passing_leads_by_expected_value(past):
    cap = bt.capacity_sweep(past.assign(expected_deal_size=[1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0]),
                            GATES, cost_per_sql=1_000.0)
    assert cap["capacity"].tolist() == [1, 2, 3, 4]  # only the 4 leads passing every gate
    assert cap["n_won"].tolist() == [1, 1, 2, 2]     # order 0.50, 0.30, 0.12, 0.05
    assert cap["realised_value"].tolist() == [29_000.0, 28_000.0, 32_000.0, 31_000.0]
    assert bt.best_row(cap, prefer_smaller="capacity")["capacity"] == 3


def test_ties_go_to_the_cheaper_option():
    sweep = pd.DataFrame({"threshold": [0.1, 0.2, 0.3], "n_sql": [9, 5, 2], "realised_value": [10.0, 12.0, 12.0]})
    assert bt.best_row(sweep, prefer_smaller="n_sql")["threshold"] == 0.3
    assert bt.best_row(sweep.iloc[0:0]) == {}


def test_missing_columns_are_named(past):
    with pytest.raises(KeyError, match="gate_timeline"):
        bt.gate_losses(past, ["gate_timeline"])
    with pytest.raises(KeyError, match="is_sql"):
        bt.decision_performance(past.drop(columns="is_sql"))


def test_performance_by_snapshot_splits_by_as_of(past):
    later = past.assign(as_of=pd.Timestamp("2026-02-01"), is_sql=False)
    table = bt.performance_by_snapshot(pd.concat([past, later]))
    assert table["n_sql"].tolist() == [3, 0]
    assert table["recall"].tolist() == [pytest.approx(0.4), 0.0]
