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


# ------------------------------------------------------------------ the drift rule: effect size and sample size


def test_psi_noise_is_the_psi_of_two_samples_of_one_distribution():
    rng = np.random.default_rng(2)
    for n_ref, n_cur in ((300, 300), (2000, 500)):
        values = [mon.psi(pd.Series(rng.normal(size=n_ref)), pd.Series(rng.normal(size=n_cur)))
                  for _ in range(150)]
        assert np.mean(values) == pytest.approx(mon.psi_noise(10, n_ref, n_cur), rel=0.15)
    assert mon.psi_noise(10, 200, 200) == pytest.approx(0.09)  # nearly psi_warn at 200 rows a side
    assert mon.psi_noise(10, 50_000, 50_000) < 0.001


def test_small_samples_of_one_distribution_raise_no_alarm():
    rng = np.random.default_rng(3)
    cols = [f"x{i}" for i in range(30)]

    def table(n):
        ref = pd.DataFrame(rng.gamma(2.0, 1.0, size=(n, 30)), columns=cols)
        return mon.drift_table(ref, pd.DataFrame(rng.gamma(2.0, 1.0, size=(n, 30)), columns=cols), cols)

    small = table(250)
    assert small["psi"].mean() == pytest.approx(mon.psi_noise(10, 250, 250), rel=0.2)  # raw PSI: noise ~ 0.07
    assert small["psi_excess"].mean() < 0.02  # the effect size of pure noise is about nothing ...
    assert (small["psi"] >= 0.10).sum() >= 3 and not (small["flag"] == mon.DRIFT).any()  # ... and never drift
    assert (small["psi_excess"] <= small["psi"]).all()
    assert set(table(1000)["flag"]) == {mon.OK}


def test_a_column_is_not_judged_on_too_few_rows():
    rng = np.random.default_rng(4)
    ref, cur = pd.DataFrame({"x": rng.normal(size=150)}), pd.DataFrame({"x": rng.normal(2.0, 1.0, size=150)})
    assert mon.drift_table(ref, cur, ["x"])["flag"].iloc[0] == mon.FEW_ROWS
    assert mon.drift_table(ref, cur, ["x"], mon.DriftThresholds(min_rows=100))["flag"].iloc[0] == mon.DRIFT
    t = mon.DriftThresholds()
    assert mon.drift_flag(5.0, 0.9, 0.0, t, n_reference=150, n_current=5000) == mon.FEW_ROWS


def _accounts(rng, n_accounts: int, leads_per_account: int) -> pd.DataFrame:
    """Leads of accounts: the industry is the account's, so an account's leads are one sample, not many."""
    industry = rng.choice(["Software", "Retail", "Health", "Finance"], n_accounts, p=[0.4, 0.3, 0.2, 0.1])
    size = rng.normal(size=n_accounts)
    idx = np.repeat(np.arange(n_accounts), leads_per_account)
    return pd.DataFrame({"account_id": [f"A{i}" for i in idx], "industry": industry[idx],
                         "log_size": size[idx], "engagement": rng.gamma(2.0, 1.0, len(idx))})


def test_the_leads_of_one_account_count_as_one_sample_when_the_cluster_is_given():
    rng = np.random.default_rng(5)
    ref, cur = _accounts(rng, 60, 50), _accounts(rng, 60, 50)  # 3,000 leads a side, but only 60 accounts
    cur["account_id"] = cur["account_id"] + "_cur"
    cols = ["industry", "log_size", "engagement"]
    naive = mon.drift_table(ref, cur, cols, mon.DriftThresholds(min_rows=50)).set_index("feature")
    robust = mon.drift_table(ref, cur, cols, mon.DriftThresholds(min_rows=50),
                             cluster_column="account_id").set_index("feature")
    assert naive.loc[["industry", "log_size"], "flag"].isin([mon.WARN, mon.DRIFT]).any()  # 60 accounts read as 3,000
    assert robust.loc["log_size", "neff_current"] == pytest.approx(60, rel=0.35)
    assert robust.loc["engagement", "neff_current"] > 1500  # a lead-level column keeps its rows
    assert set(robust["flag"]) <= {mon.OK, mon.FEW_ROWS}
    assert set(mon.drift_table(ref, cur, cols, cluster_column="account_id")["flag"]) <= {mon.OK, mon.FEW_ROWS}


def _aging_pool(rng, as_ofs, start="2024-01-01", per_day=12, rate=0.3) -> pd.DataFrame:
    """Open leads created at a steady rate since `start`: at each as-of date their age spans [0, as_of - start],
    and a count to date grows with the age. Nothing about the leads changes; only the calendar moves."""
    parts = []
    for as_of in pd.to_datetime(as_ofs):
        span = (as_of - pd.Timestamp(start)).days
        age = rng.uniform(0, span, per_day * span // 10)
        parts.append(pd.DataFrame({"as_of": as_of, "lead_age_days": age, "n_activities_all": rng.poisson(rate * age / 30),
                                   "engagement": rng.gamma(2.0, 1.0, len(age))}))
    return pd.concat(parts, ignore_index=True)


def test_calendar_columns_are_compared_with_their_trend_not_the_pooled_past():
    rng = np.random.default_rng(6)
    train_dates = pd.date_range("2025-09-01", periods=8, freq="30D")
    ref, cur = _aging_pool(rng, train_dates), _aging_pool(rng, ["2026-10-01"])
    cols, calendar = ["lead_age_days", "n_activities_all", "engagement"], ["lead_age_days", "n_activities_all"]
    pooled = mon.drift_table(ref, cur, cols).set_index("feature")
    assert (pooled.loc[calendar, "flag"] == mon.DRIFT).all()  # the old comparison: the calendar looks like drift
    trend = mon.drift_table(ref, cur, cols, trend_columns=calendar, age_columns=["lead_age_days"]).set_index("feature")
    assert trend["flag"].to_dict() == {"lead_age_days": "ok", "n_activities_all": "ok", "engagement": "ok"}
    assert (trend.loc[calendar, "basis"] == "trend").all() and trend.loc["engagement", "basis"] == "pooled"
    assert trend.loc["lead_age_days", "reference_mean"] == pytest.approx(cur["lead_age_days"].mean(), rel=0.05)
    # A real shift on top of the calendar still shows: the pool half again as old as the trend says (an import of
    # old leads), or twice the activities to date (a second tracking source).
    shifted = cur.assign(lead_age_days=cur["lead_age_days"] * 1.5, n_activities_all=cur["n_activities_all"] * 2)
    table = mon.drift_table(ref, shifted, cols, trend_columns=calendar, age_columns=["lead_age_days"])
    assert table.set_index("feature")["flag"].to_dict() == {"lead_age_days": "drift", "n_activities_all": "drift",
                                                            "engagement": "ok"}
    # Without dates to fit a trend on, a calendar column is compared with the pooled reference.
    one_date = mon.drift_table(ref.drop(columns="as_of"), cur, cols, trend_columns=calendar)
    assert set(one_date["basis"]) == {"pooled"}


def test_an_injected_shift_raises_exactly_that_column():
    rng = np.random.default_rng(7)
    n = 4000
    source = ["Organic Search", "Paid Search", "Event", "Referral", "Partner"]

    def frame(p_source):
        return pd.DataFrame({"lead_source": rng.choice(source, n, p=p_source),
                             "engagement": rng.gamma(2.0, 1.0, n), "seniority": rng.integers(0, 7, n),
                             "budget": np.where(rng.random(n) < 0.5, rng.choice([1e4, 2.5e4, 5e4, 1e5], n), np.nan)})

    mix = [0.35, 0.25, 0.15, 0.15, 0.10]
    ref, same = frame(mix), frame(mix)
    cols = ["lead_source", "engagement", "seniority", "budget"]
    assert set(mon.drift_table(ref, same, cols)["flag"]) == {mon.OK}
    moved = frame([0.10, 0.25, 0.40, 0.15, 0.10])  # a campaign season: events replace organic search
    table = mon.drift_table(ref, moved, cols).set_index("feature")
    assert table.index[table["flag"] == mon.DRIFT].tolist() == ["lead_source"]
    assert not (table["flag"] == mon.WARN).any()
    scaled = same.assign(engagement=same["engagement"] * 2)
    table = mon.drift_table(ref, scaled, cols).set_index("feature")
    assert table.index[table["flag"] != mon.OK].tolist() == ["engagement"]
    assert table.loc["engagement", "flag"] == mon.DRIFT


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
