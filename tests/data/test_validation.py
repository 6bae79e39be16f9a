"""Validation with quarantine: one test per rule, exact rows and reasons, both engines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.schema import CONTRACT, TABLE_ORDER
from features.validation import (
    REASON,
    SOURCE_ROW,
    FileContractError,
    ValidationResult,
    build_expectation_suite,
    table_checks,
    table_order,
    validate_tables,
)

EXPORT_DATE = pd.Timestamp("2024-06-30")
ENGINES = ["pandas", "gx"]


def clean_tables() -> dict[str, pd.DataFrame]:
    """A small CRM export that satisfies the contract; every test dirties a copy of it."""
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3"],
            "company_name": ["Acme", "Globex", None],
            "industry": ["Software", "Retail", None],
            "employees": [120, 4500, np.nan],
            "annual_revenue": [1.5e7, 2.0e9, np.nan],
            "country": ["US", "DE", None],
            "founded_year": [2001, 1950, np.nan],
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4"],
            "account_id": ["A1", "A1", "A2", "A2"],
            "created_at": pd.to_datetime(["2024-01-10", "2024-02-01", "2024-03-15", "2024-04-01"]),
            "job_title": ["VP Sales", "CTO", None, "Analyst"],
            "lead_source": ["Referral", "Paid Search", None, "Event"],
            "form_budget": ["$10k-$25k", None, "$100k+", None],
            "call_date": pd.to_datetime(["2024-01-20", None, "2024-03-15", None]),
            "bant_budget_confirmed": [True, None, False, None],
        }
    )
    activities = pd.DataFrame(
        {
            "activity_id": ["X1", "X2", "X3", "X4"],
            "lead_id": ["L1", "L1", "L2", "L3"],
            "occurred_at": pd.to_datetime(
                ["2024-01-11", "2024-01-12 09:30", "2024-02-02", "2024-06-30 18:00"], format="ISO8601"
            ),
            "activity_type": ["email_open", "demo_request", "web_visit", "meeting"],
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2"],
            "lead_id": ["L1", "L3"],
            "account_id": ["A1", None],
            "created_at": pd.to_datetime(["2024-01-25", "2024-03-20"]),
            "closed_at": pd.to_datetime(["2024-03-01", None]),
            "stage": ["closed_won", "open"],
            "amount": [25_000.0, np.nan],
        }
    )
    return {"accounts": accounts, "leads": leads, "activities": activities, "opportunities": opportunities}


def quarantined(result: ValidationResult, table: str) -> list[tuple[int, str]]:
    q = result.quarantine[table]
    return list(zip(q[SOURCE_ROW].tolist(), q[REASON].tolist(), strict=True))


def as_other(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """`df` with every picklist value outside its list replaced by the list's catch-all, as validation keeps it."""
    df = df.copy()
    for col in CONTRACT[table].columns:
        if col.other is not None and col.name in df:
            unknown = df[col.name].notna() & ~df[col.name].isin(col.allowed)
            df[col.name] = df[col.name].mask(unknown, col.other)
    return df


def assert_consistent(result: ValidationResult, tables: dict[str, pd.DataFrame]) -> None:
    """Invariants every result satisfies: counts add up, valid + quarantine partition the input (the valid rows
    with unknown picklist values as the catch-all, the quarantined ones as they came)."""
    for name, df in tables.items():
        counts = result.counts[name]
        valid, quarantine = result.valid[name], result.quarantine[name]
        assert counts == {"rows_in": len(df), "valid": len(valid), "quarantined": len(quarantine)}
        assert counts["rows_in"] == counts["valid"] + counts["quarantined"]
        assert list(valid.columns) == list(df.columns)
        assert list(quarantine.columns) == [*df.columns, SOURCE_ROW, REASON]
        assert valid.index.equals(pd.RangeIndex(len(valid)))
        bad = quarantine[SOURCE_ROW].to_numpy()
        assert len(set(bad)) == len(bad) and all(0 <= r < len(df) for r in bad)
        assert (quarantine[REASON].str.len() > 0).all()
        good = np.setdiff1d(np.arange(len(df)), bad)
        pd.testing.assert_frame_equal(valid, as_other(df, name).iloc[good].reset_index(drop=True))
        pd.testing.assert_frame_equal(
            quarantine.drop(columns=[SOURCE_ROW, REASON]), df.iloc[bad].reset_index(drop=True)
        )
        # every reason part is a failure counted under that check name
        parts = pd.Series([p for r in quarantine[REASON] for p in r.split("; ")]).value_counts().to_dict()
        assert {k: v for k, v in result.failures[name].items() if v} == parts


def run(tables: dict[str, pd.DataFrame], engine: str, export_date=EXPORT_DATE) -> ValidationResult:
    result = validate_tables(tables, export_date, engine=engine)
    assert_consistent(result, tables)
    return result


def only_quarantined(result: ValidationResult, expected: dict[str, list[tuple[int, str]]]) -> None:
    for name in TABLE_ORDER:
        assert quarantined(result, name) == expected.get(name, []), name


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


def test_clean_fixture_passes(engine):
    tables = clean_tables()
    result = run(tables, engine)
    only_quarantined(result, {})
    assert result.quarantined_share() == 0.0
    for name, df in tables.items():
        pd.testing.assert_frame_equal(result.valid[name], df)  # original columns and dtypes
        assert set(result.failures[name].values()) == {0}


def test_null_id(engine):
    tables = clean_tables()
    tables["leads"].loc[3, "lead_id"] = None
    only_quarantined(run(tables, engine), {"leads": [(3, "lead_id: not null")]})


def test_duplicate_id_keeps_first(engine):
    tables = clean_tables()
    acts = tables["activities"]
    tables["activities"] = pd.concat([acts, acts.iloc[[2, 0]]], ignore_index=True)  # X3 and X1 again
    result = run(tables, engine)
    only_quarantined(result, {"activities": [(4, "duplicate id"), (5, "duplicate id")]})
    assert result.valid["activities"]["activity_id"].tolist() == ["X1", "X2", "X3", "X4"]


def test_negative_revenue(engine):
    tables = clean_tables()
    tables["accounts"].loc[2, "annual_revenue"] = -5.0
    only_quarantined(run(tables, engine), {"accounts": [(2, "annual_revenue: in range")]})


def test_unknown_category(engine):
    tables = clean_tables()
    tables["leads"].loc[3, "lead_source"] = "Carrier pigeon"  # a picklist: kept as "Other" (test_picklists.py)
    tables["leads"].loc[2, "form_budget"] = "$1M+"  # parsed into a number: no catch-all
    tables["opportunities"].loc[1, "stage"] = "won"  # decides the label: no catch-all
    result = run(tables, engine)
    only_quarantined(
        result,
        {
            "leads": [(2, "form_budget: in allowed set")],
            "activities": [(3, "lead_id: references leads")],  # X4 -> L3
            "opportunities": [(1, "lead_id: references leads; stage: in allowed set")],
        },
    )
    assert result.valid["leads"]["lead_source"].tolist()[-1] == "Other"


def test_unparseable_date_string(engine):
    tables = clean_tables()
    created = tables["leads"]["created_at"].dt.strftime("%Y-%m-%d").astype(object)
    created[3] = "not a date"
    tables["leads"]["created_at"] = created
    only_quarantined(run(tables, engine), {"leads": [(3, "created_at: type datetime")]})


def test_date_strings_in_mixed_formats_parse(engine):
    tables = clean_tables()
    tables["leads"]["created_at"] = ["2024-01-10", "2024-02-01 08:00", "03/15/2024", "2024-04-01T00:00:00Z"]
    only_quarantined(run(tables, engine), {})


def test_1900_date(engine):
    tables = clean_tables()
    tables["activities"].loc[3, "occurred_at"] = pd.Timestamp("1900-01-01")
    only_quarantined(run(tables, engine), {"activities": [(3, "occurred_at: not before 1990-01-01")]})


def test_future_date(engine):
    tables = clean_tables()
    tables["activities"].loc[3, "occurred_at"] = pd.Timestamp("2024-07-01")
    tables["leads"].loc[1, "call_date"] = pd.Timestamp("2030-01-01")
    only_quarantined(
        run(tables, engine),
        {
            "leads": [(1, "call_date: not in future")],
            "activities": [(2, "lead_id: references leads"), (3, "occurred_at: not in future")],
        },
    )


def test_export_date_without_time_covers_the_whole_day(engine):
    tables = clean_tables()  # X4 happened on the export day at 18:00
    only_quarantined(run(tables, engine, export_date="2024-06-30"), {})
    result = run(tables, engine, export_date=pd.Timestamp("2024-06-30 12:00"))
    only_quarantined(result, {"activities": [(3, "occurred_at: not in future")]})


def test_closed_before_created(engine):
    tables = clean_tables()
    tables["opportunities"].loc[0, "closed_at"] = pd.Timestamp("2024-01-01")
    tables["leads"].loc[0, "call_date"] = pd.Timestamp("2024-01-09")
    only_quarantined(
        run(tables, engine),
        {
            "leads": [(0, "call_date: not before created_at")],
            # L1 is quarantined, so everything pointing at it is too
            "activities": [(0, "lead_id: references leads"), (1, "lead_id: references leads")],
            "opportunities": [(0, "lead_id: references leads; closed_at: not before created_at")],
        },
    )


def test_orphan_activity(engine):
    tables = clean_tables()
    tables["activities"].loc[3, "lead_id"] = "L999"
    tables["opportunities"].loc[1, "account_id"] = "A999"
    only_quarantined(
        run(tables, engine),
        {
            "activities": [(3, "lead_id: references leads")],
            "opportunities": [(1, "account_id: references accounts")],
        },
    )


def test_activity_whose_lead_was_quarantined(engine):
    tables = clean_tables()
    tables["leads"].loc[1, "created_at"] = pd.Timestamp("1900-01-01")
    only_quarantined(
        run(tables, engine),
        {
            "leads": [(1, "created_at: not before 1990-01-01")],
            "activities": [(2, "lead_id: references leads")],
        },
    )


def test_quarantine_cascades_from_accounts_to_opportunities(engine):
    tables = clean_tables()
    tables["accounts"].loc[1, "founded_year"] = 1700  # A2 -> L3, L4 -> X4, O2
    only_quarantined(
        run(tables, engine),
        {
            "accounts": [(1, "founded_year: in range")],
            "leads": [(2, "account_id: references accounts"), (3, "account_id: references accounts")],
            "activities": [(3, "lead_id: references leads")],
            "opportunities": [(1, "lead_id: references leads")],
        },
    )


def test_numeric_column_with_text(engine):
    tables = clean_tables()
    tables["accounts"]["employees"] = pd.Series([120, 4500, "abc"], dtype=object)
    tables["opportunities"].loc[0, "amount"] = np.inf  # a number, but out of range
    result = run(tables, engine)
    only_quarantined(
        result, {"accounts": [(2, "employees: type int")], "opportunities": [(0, "amount: in range")]}
    )
    assert result.valid["accounts"]["employees"].dtype == object  # original dtype carried through


def test_int_column_with_fraction(engine):
    tables = clean_tables()
    tables["accounts"].loc[2, "employees"] = 12.5
    only_quarantined(run(tables, engine), {"accounts": [(2, "employees: type int")]})


def test_bool_column_with_garbage(engine):
    tables = clean_tables()
    tables["leads"]["bant_budget_confirmed"] = pd.Series(["yes", None, "FALSE", "maybe"], dtype=object)
    only_quarantined(run(tables, engine), {"leads": [(3, "bant_budget_confirmed: type bool")]})


def test_all_failed_checks_are_listed_in_contract_order(engine):
    tables = clean_tables()
    tables["leads"].loc[3, "created_at"] = pd.NaT
    tables["leads"].loc[3, "form_budget"] = "TV"
    tables["leads"].loc[3, "account_id"] = "A999"
    result = run(tables, engine)
    only_quarantined(
        result,
        {
            "leads": [
                (3, "account_id: references accounts; created_at: not null; form_budget: in allowed set")
            ]
        },
    )
    assert result.failures["leads"]["created_at: not null"] == 1
    assert result.failures["leads"]["created_at: type datetime"] == 0


def test_missing_required_column_raises(engine):
    tables = clean_tables()
    tables["leads"] = tables["leads"].drop(columns="created_at")
    with pytest.raises(FileContractError, match=r"leads.*'created_at'"):
        validate_tables(tables, EXPORT_DATE, engine=engine)


def test_missing_table_raises(engine):
    tables = clean_tables()
    del tables["opportunities"]
    with pytest.raises(FileContractError, match="opportunities"):
        validate_tables(tables, EXPORT_DATE, engine=engine)


def test_empty_table_raises(engine):
    tables = clean_tables()
    tables["activities"] = tables["activities"].iloc[:0]
    with pytest.raises(FileContractError, match=r"activities.*empty"):
        validate_tables(tables, EXPORT_DATE, engine=engine)


def test_optional_column_may_be_absent_and_extra_columns_are_carried(engine):
    tables = clean_tables()
    tables["leads"] = tables["leads"].drop(columns=["call_date", "form_budget"])
    tables["leads"]["utm_campaign"] = ["spring", None, "spring", "fall"]
    tables["leads"].loc[2, "created_at"] = pd.NaT
    result = run(tables, engine)
    only_quarantined(
        result,
        {
            "leads": [(2, "created_at: not null")],
            "activities": [(3, "lead_id: references leads")],  # X4 -> L3
            "opportunities": [(1, "lead_id: references leads")],  # O2 -> L3
        },
    )
    assert result.valid["leads"]["utm_campaign"].fillna("-").tolist() == ["spring", "-", "fall"]
    assert result.quarantine["leads"]["utm_campaign"].tolist() == ["spring"]
    assert not any(k.startswith("call_date") for k in result.failures["leads"])


def test_source_row_is_position_not_index_label(engine):
    tables = clean_tables()
    tables["accounts"].index = [10, 20, 30]
    tables["accounts"].loc[30, "annual_revenue"] = -1.0
    only_quarantined(run(tables, engine), {"accounts": [(2, "annual_revenue: in range")]})


def dirty_tables() -> dict[str, pd.DataFrame]:
    """Every rule broken at least once, some rows broken more than once; A1, A2, L1 stay valid (A1's unknown
    industry kept as "Other")."""
    tables = clean_tables()
    acc = tables["accounts"]
    acc["employees"] = pd.Series([120, 4500, "abc"], dtype=object)
    acc.loc[0, "industry"] = "Crypto"
    acc.loc[2, "annual_revenue"] = -1.0
    extra = pd.DataFrame({"account_id": [None, "A6"], "employees": [np.nan, 3.5]})
    tables["accounts"] = pd.concat([acc, acc.iloc[[0]].assign(founded_year=1700), extra], ignore_index=True)
    leads = tables["leads"]
    leads["created_at"] = ["2024-01-10", "1900-01-01", "garbage", "2024-04-01"]
    leads.loc[3, "form_budget"] = "Fax"
    leads.loc[3, "call_date"] = pd.Timestamp("2024-03-01")  # before created_at
    l5 = leads.iloc[[3]].assign(
        lead_id="L5", form_budget=None, call_date=pd.NaT, bant_budget_confirmed="perhaps"
    )
    tables["leads"] = pd.concat([leads, l5], ignore_index=True)
    acts = tables["activities"]
    acts.loc[0, "occurred_at"] = pd.Timestamp("2031-01-01")
    acts.loc[3, "activity_type"] = None
    more = pd.DataFrame(
        {
            "activity_id": ["X9", "X9"],
            "lead_id": ["L1", "nobody"],
            "occurred_at": pd.to_datetime(["2024-05-01", "2024-05-02"]),
            "activity_type": ["meeting", "fax"],
        }
    )
    tables["activities"] = pd.concat([acts, more], ignore_index=True)
    opps = tables["opportunities"]
    opps.loc[0, "closed_at"] = pd.Timestamp("2023-12-31")
    opps.loc[1, "amount"] = -10.0
    opps.loc[1, "lead_id"] = "L1"
    return tables


def test_gx_and_pandas_engines_agree_on_dirty_fixture():
    tables = dirty_tables()
    by_engine = {engine: run(tables, engine) for engine in ENGINES}
    gx_result, pd_result = by_engine["gx"], by_engine["pandas"]
    assert gx_result.counts == pd_result.counts
    assert gx_result.failures == pd_result.failures
    for name in TABLE_ORDER:
        pd.testing.assert_frame_equal(gx_result.valid[name], pd_result.valid[name])
        pd.testing.assert_frame_equal(gx_result.quarantine[name], pd_result.quarantine[name])
    assert gx_result.to_dict() == pd_result.to_dict()
    assert pd_result.other["accounts"]["industry"]["mapped"] == 1  # A1; its quarantined duplicate is not counted
    assert pd_result.other["activities"]["activity_type"]["mapped"] == 0  # "fax" is in a quarantined row
    # and the dirty fixture really exercises the checks
    only_quarantined(
        pd_result,
        {
            "accounts": [
                (2, "employees: type int; annual_revenue: in range"),
                (3, "duplicate id; founded_year: in range"),
                (4, "account_id: not null"),
                (5, "employees: type int"),
            ],
            "leads": [
                (1, "created_at: not before 1990-01-01"),
                (2, "created_at: type datetime"),
                (3, "form_budget: in allowed set; call_date: not before created_at"),
                (4, "bant_budget_confirmed: type bool"),
            ],
            "activities": [
                (0, "occurred_at: not in future"),
                (2, "lead_id: references leads"),
                (3, "lead_id: references leads; activity_type: not null"),
                (5, "duplicate id; lead_id: references leads"),  # its unknown type is not the reason
            ],
            "opportunities": [
                (0, "closed_at: not before created_at"),
                (1, "amount: in range"),
            ],
        },
    )


def test_inputs_not_mutated(engine):
    tables = dirty_tables()
    tables["leads"].index = [5, 6, 7, 8, 9]
    before = {name: df.copy(deep=True) for name, df in tables.items()}
    validate_tables(tables, EXPORT_DATE, engine=engine)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, before[name])


def test_summary_is_json_and_share_is_over_all_tables():
    result = run(dirty_tables(), "pandas")
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["counts"] == result.counts
    assert summary["failures"]["activities"]["duplicate id"] == 1
    rows_in = sum(c["rows_in"] for c in result.counts.values())
    assert rows_in == 19
    assert result.quarantined_share() == pytest.approx(14 / 19)
    assert summary["quarantined_share"] == pytest.approx(result.quarantined_share())


def test_suite_is_generated_from_the_contract():
    for table in CONTRACT.values():
        suite = build_expectation_suite(table, EXPORT_DATE)
        names = [e.meta["check"] for e in suite.expectations]
        gx_kinds = {"not_null", "between", "in_set", "other", "ordered"}
        assert names == [c.name for c in table_checks(table, EXPORT_DATE) if c.kind in gx_kinds]
        assert len(names) == len(set(names))
    activities = build_expectation_suite(CONTRACT["activities"], EXPORT_DATE)
    assert sorted(type(e).__name__ for e in activities.expectations) == sorted(
        ["ExpectColumnValuesToNotBeNull"] * 4
        + ["ExpectColumnValuesToBeBetween"] * 2
        + ["ExpectColumnValuesToBeInSet"]
    )


def test_tables_are_validated_parents_first():
    assert table_order(CONTRACT) == list(TABLE_ORDER)


def test_unknown_engine_rejected():
    with pytest.raises(ValueError, match="engine"):
        validate_tables(clean_tables(), EXPORT_DATE, engine="spark")
