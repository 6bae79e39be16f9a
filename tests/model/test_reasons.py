"""Per-lead reasons: sentences for feature values, top factors for and against, computed only where needed."""

import dataclasses
import re

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
        ("form_budget_min", [0.0, 100_000.0], ["stated budget under $10k", "stated budget of at least $100k"]),
        ("form_timeline_months", [0.0, 2.0, 18.0, 1.0, 4.0, np.nan],
         ["wants to buy now", "plans to buy this quarter", "just researching, no purchase planned yet",
          "plans to buy within 1 month", "plans to buy within 4 months", "no purchase timeline stated"]),
        ("department", ["it", "customer_success", "sales", "other", "unknown", None],
         ["works in IT", "works in customer success", "works in sales", "works in another department",
          "department unclear from the title", "department unknown"]),
        ("lead_source", ["Paid Search", "Event", "Trade_Show", "other", None],
         ["came in via paid search", "came in via an event", "came in via Trade Show", "came in via another source",
          "lead source unknown"]),
        ("form_use_case", ["Lead routing", "Other"], ["wants it for lead routing", "has another use case"]),
        ("company_age", [12.0, 1.0, 0.0, np.nan], ["company founded 12 years ago", "company founded 1 year ago",
                                                   "company founded this year", "company age unknown"]),
        ("activity_age_std", [0.5, 4.0, 20.0, 90.0, np.nan],
         ["all activity within a few days", "activity spread over a few weeks", "activity spread over a few months",
          "activity spread over many months", "no activity yet"]),
        ("engagement_decayed", [42.4, 1.0, 0.2], ["recent engagement of 42 points", "recent engagement of 1 point",
                                                  "no recent engagement"]),
        ("region", ["Europe", "Other"], ["based in Europe", "based in another region"]),
        ("n_demo_request_all", [2, 1, 0], ["2 demo requests since the lead came in",
                                           "1 demo request since the lead came in",
                                           "no demo requests since the lead came in"]),
        ("burst_excess_events", [12.4, 1.0, -3.0], ["12 more actions in their busiest weeks than usual",
                                                    "1 more action in their busiest weeks than usual",
                                                    "no burst above their usual activity"]),
        ("background_events_per_30d", [2.5, 0.046, np.nan], ["usually about 2.5 actions a month",
                                                              "usually less than one action a month",
                                                              "no usual activity yet"]),
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
    rows = pd.DataFrame({"icp_size": [0.0, 1.0, 0.0, 1.0], "log_employees": np.log10([50, 500, 50_000, 200])})
    pb = Phrasebook(icp_min_employees=200, icp_max_employees=10_000)
    expected = ["company of about 50 employees, smaller than your typical customer",
                "company of about 500 employees, in your target size range",
                "company of about 50,000 employees, larger than your typical customer",
                "company of about 200 employees, in your target size range"]  # 10**log10(200) rounds back to 200
    assert describe("icp_size", rows["icp_size"], rows, pb).tolist() == expected
    assert describe("log_employees", rows["log_employees"], rows, pb).tolist() == expected  # the same fact
    # without the employee count the flag alone speaks; without a band the count alone
    assert describe("icp_size", rows["icp_size"], rows[["icp_size"]], pb).tolist()[:2] == [
        "company size outside your target range", "company size in your target range"]
    no_band = Phrasebook(icp_min_employees=0, icp_max_employees=10**9)
    assert describe("log_employees", rows["log_employees"], rows, no_band).tolist()[0] == "company of about 50 employees"
    assert describe("log_employees", pd.Series([np.nan, 0.0]), rows, pb).tolist() == [
        "company size unknown", "company of about 1 employee, smaller than your typical customer"]


def test_industry_and_country_sentences_speak_of_the_target_industries_and_countries():
    rows = pd.DataFrame({"industry": pd.Categorical(["Software", "Retail", None, "other"]),
                         "icp_industry": [1.0, 0.0, 0.0, 0.0], "icp_country": [1.0, 0.0, 1.0, 0.0],
                         "icp_match_count": [3.0, 0.0, 2.0, 1.0]})
    expected = ["in Software, one of your target industries", "in Retail, outside your target industries",
                "industry unknown", "outside your target industries"]
    assert describe("icp_industry", rows["icp_industry"], rows).tolist() == expected
    assert describe("industry", rows["industry"], rows).tolist() == expected  # the same fact, the same words
    assert describe("industry", rows["industry"], rows[["industry"]]).tolist() == [
        "in the Software industry", "in the Retail industry", "industry unknown", "in another industry"]
    assert describe("icp_industry", rows["icp_industry"], rows[["icp_industry"]]).tolist()[:2] == [
        "in one of your target industries", "outside your target industries"]
    assert describe("icp_country", rows["icp_country"], rows).tolist()[:2] == [
        "in one of your target countries", "outside your target countries"]
    assert describe("icp_match_count", rows["icp_match_count"], rows).tolist() == [
        "fits all 3 of your ideal-customer criteria (industry, size, country)",
        "fits none of your ideal-customer criteria (industry, size, country)",
        "fits 2 of your 3 ideal-customer criteria (industry, size, country)",
        "fits 1 of your 3 ideal-customer criteria (industry, size, country)"]


def test_features_stating_the_same_fact_are_one_reason_with_their_contributions_added():
    features = pd.DataFrame({"icp_size": [0.0], "log_employees": [np.log10(50)], "seniority_level": [5.0],
                             "industry": pd.Categorical(["Retail"]), "icp_industry": [0.0]})
    # apart, each size feature is weaker than the title; together (-0.7) they are the strongest reason against
    contrib = pd.DataFrame({"icp_size": [-0.4], "log_employees": [-0.3], "seniority_level": [0.5],
                            "industry": [0.2], "icp_industry": [-0.5]})
    out = top_reasons(contrib, features, k=3)
    assert out.loc[0, "reasons_against"] == ("company of about 50 employees, smaller than your typical customer; "
                                             "in Retail, outside your target industries")
    assert out.loc[0, "reasons_for"] == "VP-level title"


def test_top_reasons_pick_the_strongest_signed_contributions_in_order():
    features = pd.DataFrame({"seniority_level": [5.0, 1.0], "n_pricing_page_view_7d": [3, 0],
                             "icp_size": [1.0, 0.0], "log_employees": np.log10([500, 50])}, index=[10, 11])
    contrib = pd.DataFrame({"seniority_level": [0.8, -0.4], "n_pricing_page_view_7d": [1.2, -0.1],
                            "icp_size": [0.0, -0.9], "log_employees": [-0.2, 0.05]}, index=[10, 11])
    out = top_reasons(contrib, features, k=3)
    assert out.loc[10, "reasons_for"] == "3 pricing-page visits in the last 7 days; VP-level title"
    # the zero contribution is no reason; icp_size and log_employees state one fact (their sum speaks)
    assert out.loc[10, "reasons_against"] == "company of about 500 employees, in your target size range"
    assert out.loc[11, "reasons_for"] == ""
    assert out.loc[11, "reasons_against"] == ("company of about 50 employees, smaller than your typical customer; "
                                              "individual-contributor title; no pricing-page visits in the last 7 days")


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
        "no pricing-page visits in the last 7 days", "individual-contributor title",
        "company of about 20 employees, smaller than your typical customer"}


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
    lleaves = pytest.importorskip("lleaves", reason="lleaves is not installed")
    from models.compiled import trees_text, with_compiled_trees

    path = tmp_path / "model.txt"
    path.write_text(trees_text(small_model))
    compiled = lleaves.Model(model_file=str(path))
    compiled.compile(cache=str(tmp_path / "model.o"), raw_score=True)
    fast = with_compiled_trees(small_model, compiled, n_jobs=1)
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
    values = pd.Series([117.16489697421622, 1250.0, 0.123456, 3.0, 9.98, float("nan")])
    pb = Phrasebook(typical={"some_new_feature": (2.0, 60.0, 400.0)})
    out = describe("some_new_feature", values, pd.DataFrame(index=values.index), pb).tolist()
    assert out == ["typical some new feature (117)", "high some new feature (1,250; typical lead 60)",
                   "low some new feature (0.12; typical lead 60)", "typical some new feature (3)",
                   "typical some new feature (10)", "some new feature not recorded"]


@pytest.mark.parametrize(("column", "words"), [
    ("Total Time Spent on Website", "total time spent on website"), ("TotalVisits", "total visits"),
    ("euribor3m", "euribor 3m"), ("emp.var.rate", "emp var rate"), ("days_since_crm_touch", "days since crm touch"),
    ("How did you hear about X Education", "how did you hear about X education"), ("Get updates on DM Content",
                                                                                  "get updates on DM content"),
])
def test_column_names_without_a_sentence_are_said_in_words(column, words):
    from models.reasons import humanise

    assert humanise(column) == words


def test_flat_export_columns_read_high_or_low_against_typical_leads_not_the_explained_ones():
    """A flat export's columns pass through with their own names: the number is said high / low against the
    leads being scored (`Phrasebook.with_typical`), categories by their value; never a z-score."""
    population = pd.DataFrame({"Total Time Spent on Website": np.arange(0.0, 1000.0, 10.0),
                               "euribor3m": np.linspace(0.6, 5.0, 100)})
    explained = pd.DataFrame({"Total Time Spent on Website": [1200.0, 1500.0, np.nan], "euribor3m": [0.7, 4.9, 2.8],
                              "Lead Origin": pd.Categorical(["Lead Add Form", "API", None]),
                              "Do Not Email": pd.Categorical(["No", "Yes", "No"]),
                              "education": pd.Series(["university.degree", "basic.4y", "high.school"], dtype="string"),
                              "seniority_level": [5.0, 3.0, 1.0]})
    contrib = pd.DataFrame({"Total Time Spent on Website": [0.9, 0.8, -0.1], "euribor3m": [0.5, -0.6, 0.05],
                            "Lead Origin": [0.3, -0.2, 0.0], "Do Not Email": [0.1, -0.4, 0.02],
                            "education": [-0.2, -0.1, 0.03], "seniority_level": [0.0, 0.0, 0.0]})
    pb = Phrasebook().with_typical(population)
    assert pb.typical["Total Time Spent on Website"] == pytest.approx((247.5, 495.0, 742.5))
    out = top_reasons(contrib, explained, k=3, phrasebook=pb)
    assert out.loc[0, "reasons_for"] == ("high total time spent on website (1,200; typical lead 495); "
                                         "low euribor 3m (0.7; typical lead 2.8); lead origin: Lead Add Form")
    assert out.loc[0, "reasons_against"] == "education: university degree"
    assert out.loc[1, "reasons_for"] == "high total time spent on website (1,500; typical lead 495)"
    assert out.loc[1, "reasons_against"] == ("high euribor 3m (4.9; typical lead 2.8); do not email: yes; "
                                             "lead origin: API")
    assert out.loc[2, "reasons_for"].split("; ") == ["typical euribor 3m (2.8)", "education: high school",
                                                     "do not email: no"]
    assert out.loc[2, "reasons_against"] == "total time spent on website not recorded"
    # without typical leads the rows at hand are the reference: 1,200 is then the low one of the three
    alone = top_reasons(contrib, explained, k=1)
    assert alone.loc[0, "reasons_for"] == "low total time spent on website (1,200; typical lead 1,350)"


def _tiny_crm(as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """A small CRM export with every kind of value the features meet: sizes below, inside and above the ICP band,
    target and other industries and countries, unknown values, titles of every seniority, form answers, calls,
    won / lost / open opportunities, and activity from none to a lot."""
    from features.schema import ACTIVITY_TYPES, BUDGET_BANDS, LEAD_SOURCES, TIMELINE_ANSWERS, USE_CASES

    rng = np.random.default_rng(13)
    n_acc, n = 8, 40
    accounts = pd.DataFrame({
        "account_id": [f"A{i}" for i in range(n_acc)],
        "industry": ["Software", "Retail", "Healthcare", "Other", None, "Manufacturing", "Software", "Education"],
        "employees": [5, 50, 250, 1_000, 9_000, 40_000, None, 1],
        "annual_revenue": [2e5, 4e6, 3e7, 1.5e8, 2e9, 9e9, None, 5e4],
        "country": ["US", "DE", "BR", "JP", None, "GB", "ZA", "FR"],
        "founded_year": [1990, 2026, 2025, None, 1880, 2001, 2015, 2020],
    })
    titles = ["VP Sales", "CEO", "Marketing Intern", "IT Manager", "", None, "Director of Finance",
              "Customer Success Lead", "Senior Software Engineer", "Head of HR", "Chief Revenue Officer", "Analyst"]
    pick = lambda values, i: values[i % len(values)]  # noqa: E731
    leads = pd.DataFrame({
        "lead_id": [f"L{i:02d}" for i in range(n)], "account_id": [f"A{i % n_acc}" for i in range(n)],
        "created_at": [as_of - pd.Timedelta(days=float(d)) for d in rng.integers(1, 700, n)],
        "job_title": [pick(titles, i) for i in range(n)],
        "lead_source": [pick([*LEAD_SOURCES, None], i) for i in range(n)],
        "form_budget": [pick([*BUDGET_BANDS, None], i) for i in range(n)],
        "form_timeline": [pick([*TIMELINE_ANSWERS, None], i) for i in range(n)],
        "form_use_case": [pick([*USE_CASES, None], i) for i in range(n)],
    })
    leads["call_date"] = [c + pd.Timedelta(days=1) if i % 3 == 0 else pd.NaT
                          for i, c in enumerate(leads["created_at"])]
    for j, col in enumerate(("bant_budget_confirmed", "bant_authority_confirmed", "bant_need_confirmed",
                             "bant_timeline_confirmed")):
        leads[col] = pd.array([pick([True, False, None], i + j) for i in range(n)], dtype="boolean")
    per_lead = [0, 1, 3, 60] + list(rng.integers(0, 30, n - 4))
    lead_of = np.repeat(leads["lead_id"].to_numpy(), per_lead)
    created = np.repeat(leads["created_at"].to_numpy(), per_lead)
    age = (as_of - pd.to_datetime(created)).total_seconds().to_numpy() / 86_400
    activities = pd.DataFrame({
        "activity_id": [f"E{i}" for i in range(len(lead_of))], "lead_id": lead_of,
        "occurred_at": as_of - pd.to_timedelta(rng.uniform(0, 1, len(lead_of)) * age, unit="D"),
        "activity_type": rng.choice(list(ACTIVITY_TYPES), len(lead_of)),
    })
    opportunities = pd.DataFrame({
        "opportunity_id": ["O1", "O2", "O3", "O4"], "lead_id": ["L08", "L09", "L10", "L11"],
        "account_id": ["A0", "A1", "A2", "A3"],
        "created_at": [as_of - pd.Timedelta(days=d) for d in (30, 200, 300, 40)],
        "closed_at": [pd.NaT, as_of - pd.Timedelta(days=100), as_of - pd.Timedelta(days=150), pd.NaT],
        "stage": ["open", "closed_won", "closed_lost", "open"], "amount": [50_000.0, 80_000.0, 20_000.0, None],
    })
    opportunities["created_at"] = np.maximum(opportunities["created_at"], leads.set_index("lead_id").loc[
        opportunities["lead_id"], "created_at"].to_numpy() + pd.Timedelta(hours=1))
    return {"accounts": accounts, "leads": leads, "activities": activities, "opportunities": opportunities}


@pytest.fixture(scope="module")
def varied_rows() -> pd.DataFrame:
    """Demo-like feature rows of the leads open at the as-of date (every feature featurize makes), plus a row of
    missing values, a row of zeros, and flat-export columns passed through under their own names."""
    from features.build import feature_columns, score_features
    from features.config import FeaturizeConfig

    as_of = pd.Timestamp("2026-10-01")
    rows = score_features(_tiny_crm(as_of), as_of, FeaturizeConfig(float32=False))
    features = feature_columns(rows)
    rows = rows[features].reset_index(drop=True)
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(rows[c].dtype)]
    blank, zeros = rows.iloc[[0]].copy(), rows.iloc[[1]].copy()
    blank[features] = np.nan
    zeros[numeric] = 0.0
    rows = pd.concat([rows, blank, zeros], ignore_index=True)
    rng = np.random.default_rng(5)
    rows["Total Time Spent on Website"] = np.where(rng.random(len(rows)) < 0.1, np.nan,
                                                   rng.gamma(1.5, 300, len(rows)).round())
    rows["euribor3m"] = rng.uniform(0.6, 5.0, len(rows)).round(3)
    rows["Lead Origin"] = pd.Categorical(rng.choice(["API", "Landing Page Submission", "Lead Add Form"], len(rows)))
    rows["Do Not Email"] = pd.Categorical(rng.choice(["Yes", "No"], len(rows)))
    return rows


def test_every_feature_featurize_makes_has_a_sentence_of_its_own(varied_rows):
    from models.reasons import has_phrase

    flat = {"Total Time Spent on Website", "euribor3m", "Lead Origin", "Do Not Email"}
    assert len(varied_rows.columns) > 90
    assert [c for c in varied_rows.columns if c not in flat and not has_phrase(c)] == []


_NOT_SAID = re.compile(r"\(std\)|\bstd\b|standard dev|z-?score|sigma|\blog\b|\bnan\b|\bNone\b|<NA>|\bmissing\b|"
                       r"\binf\b|ICP\b|_")
_SIGNED_NUMBER = re.compile(r"(?<![\w$])[-+]\d")  # a z-score (or a log-odds) would show as a signed number


def test_no_reason_shows_a_column_name_a_transformed_value_or_a_z_score(varied_rows):
    from models.decision import phrasebook_for

    rows = varied_rows
    rng = np.random.default_rng(7)
    contrib = pd.DataFrame(rng.normal(size=rows.shape), columns=rows.columns, index=rows.index)
    pb = phrasebook_for().with_typical(rows)
    out = top_reasons(contrib, rows, k=len(rows.columns), phrasebook=pb)  # every factor of every row is a reason
    phrases = {p for col in out for text in out[col] for p in text.split("; ") if text}
    for c in rows.columns:  # and every feature over every value directly (those a same-fact partner speaks for)
        phrases.update(describe(c, rows[c], rows, pb))
    assert len(phrases) > 500
    raw_names = [c for c in rows.columns if not (c.isalpha() and c.islower())]  # names that are not plain words
    bad = sorted(p for p in phrases if not p or _NOT_SAID.search(p) or _SIGNED_NUMBER.search(p)
                 or any(c in p for c in raw_names))
    assert bad == []
    said = " | ".join(sorted(phrases))
    for expected in ("smaller than your typical customer", "larger than your typical customer",
                     "in your target size range", "one of your target industries", "outside your target industries",
                     "outside your target countries", "in one of your target countries",
                     "high total time spent on website", "low total time spent on website",
                     "total time spent on website not recorded", "euribor 3m", "lead origin: API", "do not email: yes"):
        assert expected in said, expected
