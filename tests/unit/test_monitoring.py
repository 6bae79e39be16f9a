"""Drift (PSI, KS, flags), the SQL funnel and conversion tables on small hand-built populations."""

import numpy as np
import pandas as pd
import pytest

from models import monitoring as mon


@pytest.fixture
def normal_pair():
    rng = np.random.default_rng(0)
    return pd.Series(rng.normal(size=5000)), pd.Series(rng.normal(size=5000))


def test_psi_is_zero_for_identical_populations_and_grows_with_the_shift(normal_pair):
    ref, same = normal_pair
    assert mon.psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    values = [mon.psi(ref, same + shift) for shift in (0.0, 0.2, 0.5, 1.0)]
    assert values[0] < 0.02  # two samples of one distribution: sampling noise only
    assert values == sorted(values)
    assert values[2] > 0.2 and values[3] > 0.6


def test_psi_matches_the_formula_on_hand_counted_categories():
    ref = pd.Series(["a"] * 50 + ["b"] * 50)
    cur = pd.Series(["a"] * 80 + ["b"] * 20)
    expected = (0.8 - 0.5) * np.log(0.8 / 0.5) + (0.2 - 0.5) * np.log(0.2 / 0.5)
    assert mon.psi(ref, cur) == pytest.approx(expected)


def test_a_column_arriving_empty_is_drift():
    ref = pd.Series(np.arange(1000, dtype=float))
    cur = ref.copy()
    cur[:500] = np.nan
    shares = mon.binned_shares(ref, cur)
    assert shares.set_index("bin").loc[mon.MISSING_BIN, "current"] == pytest.approx(0.5)
    assert mon.psi(ref, cur) > 0.25


def test_values_beyond_the_reference_range_land_in_the_outer_bins():
    ref = pd.Series(np.linspace(0, 1, 1000))
    shares = mon.binned_shares(ref, pd.Series([5.0, 6.0, -3.0]), n_bins=10)
    assert shares["current"].iloc[-1] == pytest.approx(2 / 3)
    assert shares["current"].iloc[0] == pytest.approx(1 / 3)


def test_rounding_the_current_values_does_not_look_like_drift():
    # Isotonic scores are a step function: many ties sit exactly on quantile edges. The scored table rounds
    # them to 6 decimals; a naive binning would move every tied value to the next bin (PSI near 1).
    steps = np.array([0.0012853512, 0.0153846154, 0.0247524752, 0.0765306122, 0.31])
    ref = pd.Series(np.repeat(steps, [300, 300, 200, 150, 50]))
    assert mon.psi(ref, ref.round(6)) == pytest.approx(0.0, abs=1e-9)


def test_ks_on_numbers_and_nan_on_categories(normal_pair):
    ref, same = normal_pair
    stat, pvalue = mon.ks(ref, same)
    assert stat < 0.05 and pvalue > 0.01
    stat, pvalue = mon.ks(ref, same + 1.0)
    assert stat > 0.3 and pvalue < 1e-10
    assert np.isnan(mon.ks(pd.Series(list("ab")), pd.Series(list("ba")))[0])


def test_flags_follow_the_thresholds_passed_in():
    t = mon.DriftThresholds(psi_warn=0.1, psi_drift=0.25, ks_alpha=0.01, ks_min_statistic=0.2)
    assert mon.drift_flag(0.05, 0.05, 0.5, t) == mon.OK
    assert mon.drift_flag(0.10, 0.05, 0.5, t) == mon.WARN
    assert mon.drift_flag(0.25, 0.05, 0.5, t) == mon.DRIFT
    assert mon.drift_flag(0.05, 0.25, 1e-6, t) == mon.DRIFT  # large and significant KS shift
    assert mon.drift_flag(0.05, 0.25, 0.5, t) == mon.OK      # large but not significant
    assert mon.drift_flag(0.05, 0.15, 1e-9, t) == mon.OK     # significant but small
    with pytest.raises(ValueError, match="psi_warn <= psi_drift"):
        mon.DriftThresholds(psi_warn=0.3, psi_drift=0.2)


def test_drift_table_flags_only_the_shifted_column_and_puts_it_first():
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"stable": rng.normal(size=3000), "shifted": rng.normal(size=3000),
                        "region": rng.choice(["EU", "US"], 3000)})
    cur = pd.DataFrame({"stable": rng.normal(size=3000), "shifted": rng.normal(1.0, 1.0, size=3000),
                        "region": rng.choice(["EU", "US"], 3000)})
    table = mon.drift_table(ref, cur, ["stable", "shifted", "region"])
    assert table["feature"].iloc[0] == "shifted"
    assert table.set_index("feature")["flag"].to_dict() == {"shifted": "drift", "stable": "ok", "region": "ok"}
    assert table.set_index("feature").loc["region", "kind"] == "categorical"
    with pytest.raises(KeyError, match="nope"):
        mon.drift_table(ref, cur, ["nope"])


def _scored():
    # 8 leads: gates, SQL decision and the outcome that followed.
    return pd.DataFrame({
        "gate_budget":    ["pass", "pass", "pass", "fail", "pass", "unknown", "pass", "fail"],
        "gate_authority": ["pass", "pass", "fail", "pass", "pass", "pass", "unknown", "fail"],
        "is_sql":         [True, True, False, False, False, False, False, False],
        "tier":           ["A", "B", "A", "C", "D", "B", "C", "D"],
        "label":          [1, 0, 1, 1, 0, 0, 1, 0],
    })


def test_sql_funnel_counts_each_step_as_a_subset_of_the_one_before():
    funnel = mon.sql_funnel(_scored(), ["gate_budget", "gate_authority"], label="label").set_index("step")
    assert funnel["n"].to_dict() == {"leads": 8, "budget not failed": 6, "authority not failed": 5,
                                     "every gate passed": 3, "SQL": 2, "SQL and won": 1}
    assert funnel.loc["leads", "n_won"] == 4
    assert funnel.loc["SQL", "conversion"] == pytest.approx(0.5)
    assert funnel.loc["budget not failed", "share_of_winners"] == pytest.approx(0.75)
    no_labels = mon.sql_funnel(_scored().drop(columns="label"), ["gate_budget"])
    assert "n_won" not in no_labels and no_labels["step"].tolist()[-1] == "SQL"


def test_conversion_by_tier_and_by_gate():
    by_tier = mon.conversion_by(_scored(), "tier", order=["A", "B", "C", "D"])
    assert by_tier["group"].tolist() == ["A", "B", "C", "D"]
    assert by_tier["conversion"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert by_tier["share_of_winners"].sum() == pytest.approx(1.0)
    by_gate = mon.conversion_by_gate(_scored(), ["gate_budget", "gate_authority"]).set_index(["gate", "outcome"])
    assert by_gate.loc[("budget", "fail"), "n"] == 2 and by_gate.loc[("budget", "fail"), "n_won"] == 1
    assert by_gate.loc[("authority", "pass"), "conversion"] == pytest.approx(2 / 5)
    with pytest.raises(KeyError, match="'segment'"):
        mon.conversion_by(_scored(), "segment")


def test_gains_table_reaches_every_winner_and_beats_random_for_a_good_score():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(1, 0, 10)
    gains = mon.gains_table(y, p, n_points=10)
    assert gains["share_of_winners"].iloc[1] == 1.0  # the top 20% hold both winners
    assert gains["lift"].iloc[0] == pytest.approx(5.0)
    assert gains["share_of_winners"].iloc[-1] == 1.0
    with pytest.raises(ValueError, match="positive"):
        mon.gains_table(np.zeros(3), np.ones(3))
