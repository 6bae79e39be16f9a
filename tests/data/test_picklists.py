"""Picklists that fit real CRMs: a value outside the contract's list is kept as the catch-all, counted, reported.

Industry, lead source, use case and activity type keep an unknown value as `Other` (`other` for the snake_case
activity types) and count it, with the most frequent values, in validation.json and the report; only a value that
cannot be parsed (a non-date, a budget band the form never offered) or an unknown opportunity stage (it decides
the label) still quarantines its row. Both validation engines agree.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _stages import run_stages
from test_validation import EXPORT_DATE, assert_consistent, clean_tables, quarantined

from features.build import CATEGORICAL_FEATURES, with_categories
from features.schema import CONTRACT, OTHER, OTHER_ACTIVITY
from features.validation import TOP_OTHER, validate_tables
from pipeline import report
from pipeline.io import read_json
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
ENGINES = ["pandas", "gx"]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


def with_unknown_values() -> dict[str, pd.DataFrame]:
    tables = clean_tables()
    tables["accounts"].loc[[1, 2], "industry"] = ["Construction", "Construction"]  # A3's industry was missing
    tables["leads"].loc[3, "lead_source"] = "Carrier pigeon"
    tables["leads"]["form_use_case"] = ["Churn reduction", None, "Forecasting", "Other"]
    tables["activities"].loc[[0, 2], "activity_type"] = ["linkedin_inmail", "chat_started"]
    return tables


def test_unknown_picklist_values_are_kept_as_other_and_counted(engine):
    tables = with_unknown_values()
    before = {name: df.copy() for name, df in tables.items()}
    result = validate_tables(tables, EXPORT_DATE, engine=engine)
    assert_consistent(result, tables)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, before[name])  # the input is not modified
        assert result.counts[name]["quarantined"] == 0, name
    assert result.valid["accounts"]["industry"].tolist()[:2] == ["Software", OTHER]
    assert result.valid["accounts"]["industry"].tolist()[2] == OTHER
    assert result.valid["leads"]["lead_source"].tolist()[3] == OTHER
    assert result.valid["leads"]["form_use_case"].tolist()[:1] == [OTHER]
    assert result.valid["activities"]["activity_type"].tolist() == [OTHER_ACTIVITY, "demo_request", OTHER_ACTIVITY,
                                                                    "meeting"]
    other = result.to_dict()["other"]
    assert other["accounts"] == {"industry": {"to": "Other", "mapped": 2,
                                              "top": [{"value": "Construction", "count": 2}]}}
    assert other["leads"]["lead_source"] == {"to": "Other", "mapped": 1,
                                             "top": [{"value": "Carrier pigeon", "count": 1}]}
    # "Other" chosen on the form is a known answer: only the answer the list does not know is counted
    assert other["leads"]["form_use_case"] == {"to": "Other", "mapped": 1,
                                               "top": [{"value": "Churn reduction", "count": 1}]}
    assert other["activities"]["activity_type"] == {
        "to": "other", "mapped": 2,
        "top": [{"value": "chat_started", "count": 1}, {"value": "linkedin_inmail", "count": 1}]}
    # the budget and timeline answers are parsed into numbers: no catch-all, so nothing is counted for them
    assert set(other["leads"]) == {"lead_source", "form_use_case"}
    assert not any(result.failures[name].get(f"{col}: in allowed set") for name, col in
                   [("accounts", "industry"), ("leads", "lead_source"), ("activities", "activity_type")])


def test_engines_agree_on_what_becomes_other():
    tables = with_unknown_values()
    tables["opportunities"].loc[1, "stage"] = "won"
    tables["leads"].loc[0, "created_at"] = pd.Timestamp("1900-01-01")  # L1 and its rows go; its unknowns too
    pandas_result, gx_result = (validate_tables(tables, EXPORT_DATE, engine=e) for e in ENGINES)
    assert pandas_result.to_dict() == gx_result.to_dict()
    for name in tables:
        pd.testing.assert_frame_equal(pandas_result.valid[name], gx_result.valid[name])
        pd.testing.assert_frame_equal(pandas_result.quarantine[name], gx_result.quarantine[name])


def test_values_of_quarantined_rows_are_not_counted_and_stay_as_they_came(engine):
    tables = with_unknown_values()
    created = tables["leads"]["created_at"].dt.strftime("%Y-%m-%d").astype(object)
    created[3] = "not a date"  # L4 also has the unknown lead source
    tables["leads"]["created_at"] = created
    result = validate_tables(tables, EXPORT_DATE, engine=engine)
    assert_consistent(result, tables)
    assert quarantined(result, "leads") == [(3, "created_at: type datetime")]  # unparseable: still quarantined
    assert result.quarantine["leads"]["lead_source"].tolist() == ["Carrier pigeon"]
    assert result.to_dict()["other"]["leads"]["lead_source"] == {"to": "Other", "mapped": 0, "top": []}


@pytest.mark.parametrize(("table", "row", "column", "value", "reason"), [
    ("opportunities", 1, "stage", "Verbal yes", "stage: in allowed set"),  # decides the label: never guessed
    ("leads", 1, "form_budget", "$1M+", "form_budget: in allowed set"),  # a band that cannot become a number
    ("leads", 1, "form_timeline", "Someday", "form_timeline: in allowed set"),
    ("activities", 1, "occurred_at", "yesterday-ish", "occurred_at: type datetime"),
])
def test_what_cannot_be_parsed_is_still_quarantined(engine, table, row, column, value, reason):
    tables = clean_tables()
    tables["leads"]["form_timeline"] = None
    frame = tables[table]
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    result = validate_tables(tables, EXPORT_DATE, engine=engine)
    assert_consistent(result, tables)
    assert quarantined(result, table) == [(row, reason)]


def test_top_values_are_the_most_frequent_ten():
    tables = clean_tables()
    acts = tables["activities"]
    kinds = [f"type_{i:02d}" for i in range(12) for _ in range(i + 1)]  # type_11 12 times ... type_00 once
    extra = pd.DataFrame({"activity_id": [f"Y{i}" for i in range(len(kinds))], "lead_id": "L1",
                          "occurred_at": pd.Timestamp("2024-02-01"), "activity_type": kinds})
    tables["activities"] = pd.concat([acts, extra], ignore_index=True)
    result = validate_tables(tables, EXPORT_DATE, engine="pandas")
    assert_consistent(result, tables)
    other = result.other["activities"]["activity_type"]
    assert other["mapped"] == len(kinds) and len(other["top"]) == TOP_OTHER == 10
    assert [(v["value"], v["count"]) for v in other["top"]] == [(f"type_{i:02d}", i + 1) for i in range(11, 1, -1)]


def test_other_is_a_category_of_the_picklist_features():
    frame = pd.DataFrame({"industry": ["Other", "Software"], "lead_source": ["Other", None],
                          "form_use_case": ["Other", "Forecasting"], "split": "score"})
    encoded = with_categories(frame)
    for col in ("industry", "lead_source", "form_use_case"):
        assert OTHER in CATEGORICAL_FEATURES[col]
        assert encoded[col].iloc[0] == OTHER  # a category, not a missing value


# --------------------------------------------------------------------------------------------------
# The Salesforce scenario: 43 of 300 accounts in industries the contract does not list

NEW_INDUSTRIES = ("Construction", "Hospitality")


def salesforce_copy(folder: Path, new_industries: bool) -> tuple[Path, list[str]]:
    """The Salesforce fixture copied to `folder`; with `new_industries`, every 7th account (43 of 300) set to
    Construction or Hospitality in turn. Returns the folder and the changed account ids."""
    shutil.copytree(FIXTURES / "salesforce", folder)
    if not new_industries:
        return folder, []
    path = folder / "Account.csv"
    text = path.read_bytes().decode("latin-1")  # byte for byte, whatever the fixture's encoding
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    changed = []
    for k, i in enumerate(range(0, len(body), 7)):
        body[i][header.index("Industry")] = NEW_INDUSTRIES[k % 2]
        changed.append(body[i][header.index("Id")])
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    path.write_bytes(out.getvalue().encode("latin-1"))
    return folder, changed


@pytest.fixture(scope="module")
def salesforce_runs(tmp_path_factory):
    """ingest → validate → featurize on the fixture as shipped and with 43 accounts in new industries."""
    params = load_params(ROOT / "params.yaml")
    runs = {}
    for name, new in (("shipped", False), ("new_industries", True)):
        tmp = tmp_path_factory.mktemp(name)
        export, changed = salesforce_copy(tmp / "export", new)
        runs[name] = run_stages(tmp / "work", params, profile="salesforce", input_path=export, upto="featurize")
        runs[name]["changed"] = changed
    return runs


def test_salesforce_accounts_in_new_industries_keep_every_row(salesforce_runs):
    shipped, scenario = salesforce_runs["shipped"], salesforce_runs["new_industries"]
    changed = scenario["changed"]
    assert len(changed) == 43
    # nothing more is quarantined than in the export as shipped: every row of the 43 accounts' leads,
    # activities and opportunities is kept
    assert scenario["validate"]["counts"] == shipped["validate"]["counts"]
    assert scenario["validate"]["quarantined_share"] == shipped["validate"]["quarantined_share"] <= 0.05
    for table in CONTRACT:
        quarantine = pd.read_csv(scenario["paths"]["validated"] / "quarantine" / f"{table}.csv")
        assert not quarantine["reason"].str.contains("industry").any(), table
    accounts = pd.read_parquet(scenario["paths"]["validated"] / "accounts.parquet").set_index("account_id")
    assert set(changed) <= set(accounts.index)
    assert (accounts.loc[changed, "industry"] == OTHER).all()
    leads = pd.read_parquet(scenario["paths"]["validated"] / "leads.parquet")
    assert leads["account_id"].isin(changed).sum() > 0  # their leads are there


def test_salesforce_new_industries_are_counted_with_their_top_values(salesforce_runs):
    scenario = salesforce_runs["new_industries"]
    on_disk = read_json(scenario["paths"]["reports"] / "validation.json")
    assert on_disk["other"] == scenario["validate"]["other"]
    assert on_disk["other"]["accounts"]["industry"] == {
        "to": "Other", "mapped": 43, "top": [{"value": "Construction", "count": 22},
                                             {"value": "Hospitality", "count": 21}]}
    # the shipped fixture's picklist values are all mapped by the profile: counted columns, nothing in them
    shipped = read_json(salesforce_runs["shipped"]["paths"]["reports"] / "validation.json")["other"]
    assert {(t, c) for t, cols in shipped.items() for c in cols} == {
        ("accounts", "industry"), ("leads", "lead_source"), ("leads", "form_use_case"),
        ("activities", "activity_type")}
    assert all(o["mapped"] == 0 for cols in shipped.values() for o in cols.values())


def test_salesforce_features_carry_other_as_a_category(salesforce_runs):
    features = pd.read_parquet(salesforce_runs["new_industries"]["paths"]["features"] / "features.parquet")
    industry = features["industry"]
    assert isinstance(industry.dtype, pd.CategoricalDtype) and OTHER in industry.cat.categories
    assert (industry == OTHER).sum() > 0
    shipped = pd.read_parquet(salesforce_runs["shipped"]["paths"]["features"] / "features.parquet")
    assert features["lead_id"].tolist() == shipped["lead_id"].tolist()  # the same leads in every snapshot
    in_changed = features["account_id"].isin(salesforce_runs["new_industries"]["changed"]).to_numpy()
    assert (industry[in_changed] == OTHER).all()  # a value, not a missing one
    pd.testing.assert_series_equal(industry[~in_changed].astype(str), shipped["industry"][~in_changed].astype(str))


def test_the_report_shows_the_counts(salesforce_runs):
    reports = salesforce_runs["new_industries"]["paths"]["reports"]
    validation = report.read_validation(reports)
    table = report.picklist_table(validation).set_index("column")
    assert table.loc["accounts.industry", "values"] == 43
    assert table.loc["accounts.industry", "top_values"] == "Construction (22), Hospitality (21)"
    page = report.with_picklist_section("<main><section>…</section><footer>f</footer></main>", validation)
    section = page[page.index("Picklist values outside the contract"):page.index("<footer>")]
    assert "accounts.industry" in section and "<td>43</td>" in section and "Construction (22)" in section
    assert "leads.lead_source" not in section  # only the columns with values kept as Other are listed
    shipped = report.read_validation(salesforce_runs["shipped"]["paths"]["reports"])
    assert "nothing was kept as Other" in report.picklist_section(shipped)
    assert report.picklist_section(None) == "" and report.picklist_section({"other": {}}) == ""
