"""Per-lead reasons: sentences for feature values, top factors for and against, computed only where needed."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from models.config import ScoreConfig
from models.conversion import BoosterConfig, ConversionModel
from models.decision import hand_over, score_frame
from models.reasons import Phrasebook, describe, top_reasons


@pytest.mark.parametrize(
    ("feature", "values", "expected"),
    [
        ("n_pricing_page_view_7d", [3, 1, 0],
         ["3 pricing-page visits in the last 7 days", "1 pricing-page visit in the last 7 days",
          "no pricing-page visits in the last 7 days"]),
        ("n_demo_request_30d", [2], ["2 demo requests in the last 30 days"]),
        ("seniority_level", [5, 6, 4, np.nan],
         ["VP-level title", "C-level title", "director-level title", "job title with no recognisable seniority"]),
        ("bant_budget_confirmed", [1.0, 0.0, np.nan],
         ["budget confirmed on a call", "budget not confirmed on the call", "budget not yet confirmed on a call"]),
        ("form_budget_min", [25_000.0, np.nan], ["stated budget of at least $25k", "no budget stated"]),
        ("days_since_last_activity", [1.0, 12.0, np.nan], ["last activity 1 day ago", "last activity 12 days ago",
                                                           "no activity yet"]),
        ("account_won_before", [2, 0], ["company bought before (2 won deals)", "no earlier won deal with the company"]),
        ("some_new_feature", [1.5], ["some new feature 1.5"]),
        ("n_demo_request_all", [2, 1, 0], ["2 demo requests since the lead came in",
                                           "1 demo request since the lead came in",
                                           "no demo requests since the lead came in"]),
        ("burst_excess_events", [12.4, -3.0], ["12 more actions in the busiest weeks than usual",
                                               "no burst above the usual activity"]),
        ("background_events_per_30d", [2.5, np.nan], ["usually 2.5 actions a month", "no usual activity yet"]),
        ("high_intent_share_all", [0.5, 0.123, np.nan], ["50% of all actions high-intent",
                                                          "12% of all actions high-intent", "no actions yet"]),
        ("buying_group_leads", [110, 1], ["110 contacts from the company in the CRM",
                                          "1 contact from the company in the CRM"]),
        ("buying_group_n_high_intent_90d_others", [3, 0], ["3 high-intent actions by colleagues in the last 90 days",
                                                           "no high-intent actions by colleagues in the last 90 days"]),
        ("buying_group_engagement_decayed_others", [42.4], ["colleagues' recent engagement of 42 points"]),
    ],
)
def test_feature_values_read_as_plain_sentences(feature, values, expected):
    rows = pd.DataFrame({feature: values})
    assert describe(feature, rows[feature], rows).tolist() == expected


def test_company_size_sentences_compare_with_the_icp_band():
    rows = pd.DataFrame({"icp_size": [0.0, 1.0, 0.0], "log_employees": np.log10([50, 500, 50_000])})
    pb = Phrasebook(icp_min_employees=200, icp_max_employees=10_000)
    assert describe("icp_size", rows["icp_size"], rows, pb).tolist() == [
        "company below the ICP size", "company within the ICP size", "company above the ICP size"]


def test_top_reasons_pick_the_strongest_signed_contributions_in_order():
    features = pd.DataFrame({"seniority_level": [5.0, 1.0], "n_pricing_page_view_7d": [3, 0],
                             "icp_size": [1.0, 0.0], "log_employees": np.log10([500, 50])}, index=[10, 11])
    contrib = pd.DataFrame({"seniority_level": [0.8, -0.4], "n_pricing_page_view_7d": [1.2, -0.1],
                            "icp_size": [0.0, -0.9], "log_employees": [-0.2, 0.05]}, index=[10, 11])
    out = top_reasons(contrib, features, k=3)
    assert out.loc[10, "reasons_for"] == "3 pricing-page visits in the last 7 days; VP-level title"
    assert out.loc[10, "reasons_against"] == "company of about 500 employees"  # the zero contribution is no reason
    assert out.loc[11, "reasons_for"] == "company of about 50 employees"
    assert out.loc[11, "reasons_against"] == ("company below the ICP size; individual-contributor title; "
                                              "no pricing-page visits in the last 7 days")


def test_top_reasons_refuse_misaligned_inputs():
    with pytest.raises(ValueError, match="missing column"):
        top_reasons(pd.DataFrame({"a": [1.0]}), pd.DataFrame({"b": [1.0]}))


# --------------------------------------------------------------------------- on a real (small) LightGBM model
def _synthetic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "lead_id": [f"L{seed}-{i:05d}" for i in range(n)],
        "account_id": [f"A{i % 50}" for i in range(n)],
        "as_of": pd.Timestamp("2026-10-01"),
        "n_pricing_page_view_7d": rng.poisson(1.0, n),
        "seniority_level": rng.integers(1, 7, n).astype(float),
        "icp_size": rng.integers(0, 2, n).astype(float),
        "log_employees": rng.uniform(1, 4.5, n),
        "noise": rng.normal(size=n),
        "engagement_decayed": rng.uniform(0, 100, n),
        "icp_industry": 1.0, "icp_country": 1.0,
        "form_budget_min": 50_000.0, "bant_budget_confirmed": np.nan, "region": "Europe",
    })
    logit = -3 + 1.2 * df["n_pricing_page_view_7d"] + 0.6 * (df["seniority_level"] - 3) + 1.0 * df["icp_size"]
    df["label"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


FEATURES = ["n_pricing_page_view_7d", "seniority_level", "icp_size", "log_employees", "noise"]


@pytest.fixture(scope="module")
def small_model():
    train, val = _synthetic(3000, 1), _synthetic(1500, 2)
    cfg = BoosterConfig(n_estimators=80, min_child_samples=20, n_jobs=1, early_stopping_rounds=20)
    return ConversionModel(cfg, calibration="sigmoid").fit(train[FEATURES], train["label"], val[FEATURES], val["label"])


def test_a_hot_lead_is_explained_by_what_made_it_hot(small_model):
    rows = pd.DataFrame({"n_pricing_page_view_7d": [6, 0], "seniority_level": [5.0, 1.0], "icp_size": [1.0, 0.0],
                         "log_employees": [3.0, 1.3], "noise": [0.0, 0.0]})
    out = top_reasons(small_model.contributions(rows), rows, k=3)
    assert out.loc[0, "reasons_for"].split("; ")[:2] == ["6 pricing-page visits in the last 7 days", "VP-level title"]
    # the cold lead: the three factors the synthetic truth penalises, not the noise column
    assert set(out.loc[1, "reasons_against"].split("; ")) == {
        "no pricing-page visits in the last 7 days", "individual-contributor title", "company below the ICP size"}


class CountingModel:
    """The fitted model, counting the rows whose contributions are asked for."""

    def __init__(self, model):
        self.model, self.contribution_rows = model, 0
        self.feature_names_in_ = model.feature_names_in_

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def contributions(self, X):
        self.contribution_rows += len(X)
        return self.model.contributions(X)


def test_reasons_are_computed_only_for_handed_over_and_call_queue_leads(small_model):
    rows = _synthetic(400, 5)
    gates = {"budget": {"any": [{"column": "form_budget_min", "op": ">=", "value": 25_000}],
                        "confirmed": "bant_budget_confirmed"},
             "authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 4}]}}
    p = ScoreConfig(gates=gates, threshold=0.3, call_capacity=5,
                    assignment={"mode": "round_robin", "reps": [{"name": "Ana", "capacity": 4},
                                                                 {"name": "Ben", "capacity": 3}]})
    # a few leads lack a title: authority unknown -> the qualification-call queue
    rows.loc[rows.index[:40], "seniority_level"] = np.nan
    model = CountingModel(small_model)
    scored = score_frame(rows, model, None, None, p, "m/1", "run", pd.Timestamp("2026-10-02"), "score-1")
    assert (scored["status"] == "sql").sum() > 7 and (scored["status"] == "needs_call").sum() > 5
    out = hand_over(scored, rows, model, p)
    explained = out["reasons_for"].notna()
    assert model.contribution_rows == 7 + 5 == explained.sum()
    assert (explained == (out["assigned_rep"].notna() | out["call_queue_position"].notna())).all()
    assert out.loc[explained, "reasons_for"].str.len().gt(0).all()


def test_no_reasons_when_switched_off(small_model):
    rows = _synthetic(100, 6)
    p = ScoreConfig(gates={"authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 1}]}},
                    threshold=0.0, reasons_top_k=0, assignment={"reps": [{"name": "Ana", "capacity": 3}]})
    model = CountingModel(small_model)
    out = hand_over(score_frame(rows, model, None, None, p, "m/1", "r", pd.Timestamp("2026-10-02")), rows, model,
                    dataclasses.replace(p))
    assert model.contribution_rows == 0 and out["reasons_for"].isna().all()
    assert out["assigned_rep"].notna().sum() == 3


@pytest.mark.slow
def test_compiled_trees_give_the_same_probabilities_and_the_same_reasons(small_model, tmp_path):
    lleaves = pytest.importorskip("lleaves", reason="lleaves (extra 'fast') is not installed")
    from models.compiled import CompiledConversionModel

    path = tmp_path / "model.txt"
    path.write_text(small_model.booster_.booster_.model_to_string(num_iteration=small_model.best_iteration_))
    compiled = lleaves.Model(model_file=str(path))
    compiled.compile(cache=str(tmp_path / "model.so"))
    fast = CompiledConversionModel(small_model, compiled, n_jobs=1)
    rows = _synthetic(500, 8)
    assert fast.predict_proba(rows[FEATURES])[:, 1] == pytest.approx(small_model.predict_proba(rows[FEATURES])[:, 1],
                                                                     abs=1e-9)
    p = ScoreConfig(gates={"authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 3}]}},
                    threshold=0.3, assignment={"reps": [{"name": "Ana", "capacity": 5}]})
    a = hand_over(score_frame(rows, fast, None, None, p, "m", "r", pd.Timestamp("2026-10-02")), rows, fast, p)
    b = hand_over(score_frame(rows, small_model, None, None, p, "m", "r", pd.Timestamp("2026-10-02")), rows,
                  small_model, p)
    pd.testing.assert_frame_equal(a, b)


def test_a_second_scoring_reports_what_changed_since_the_first(small_model, tmp_path):
    from pipeline.score import finish

    rows = _synthetic(300, 12)
    gates = {"authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 2}]}}
    reps = {"mode": "round_robin", "reps": [{"name": "Ana", "capacity": 3}]}
    summaries = []
    for run, threshold in (("first", 0.5), ("second", 0.3)):  # a lower bar makes more SQLs the second time
        p = ScoreConfig(gates=gates, threshold=threshold, assignment=reps, call_capacity=0)
        scored = score_frame(rows, small_model, None, None, p, "m/1", "r", pd.Timestamp(f"2026-10-0{len(summaries) + 2}"),
                             run)
        summaries.append(finish(scored, rows, small_model, p, tmp_path / "out", tmp_path / "reports",
                                tmp_path / "reports" / "history", None, None))
    first, second = summaries
    assert first["changes"]["new_sql"] == first["n_sql"] > 0  # nothing before the first run
    assert second["changes"]["new_sql"] == second["n_sql"] - first["n_sql"] > 0
    assert second["changes"]["dropped"] == 0
    table = pd.read_parquet(tmp_path / "out" / "sql_leads.parquet")
    changes = pd.read_csv(tmp_path / "out" / "changes.csv")
    assert (table.loc[table["change"] == "new_sql", "status"] == "sql").all()
    assert changes.loc[changes["change"] == "new_sql", "status_previous"].eq("nurture").all()
    assert len(list((tmp_path / "reports" / "history").glob("*.parquet"))) == 2


def test_fallback_sentences_write_numbers_as_people_do():
    from models.reasons import describe

    values = pd.Series([117.16489697421622, 1250.0, 0.123456, 3.0, float("nan")])
    out = describe("some_new_feature", values, pd.DataFrame(index=values.index)).tolist()
    assert out == ["some new feature 117", "some new feature 1,250", "some new feature 0.12",
                   "some new feature 3", "some new feature missing"]
