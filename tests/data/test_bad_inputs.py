"""The bad-input corpus: each broken export and the exact outcome it must produce.

File-level problems raise one error naming the file and the column (or line); row-level problems send the
row to the quarantine with the failed check(s) as its reason, and the counts add up. The corpus is built
from a small valid Salesforce-shaped export (below) with one defect injected per case.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from features.validation import SOURCE_ROW, QuarantineLimitError, validate_export
from pipeline.params import Params
from pipeline.run import run
from pipeline.sources.exports import ingest_export, load_profile
from pipeline.sources.profiles import ProfileError, parse_profile
from pipeline.sources.readers import InputFileError, read_export

# A small, valid Salesforce export: 2 accounts, 4 leads, 4 tasks, 1 event, 2 opportunities.
BASE = {
    "Account.csv": (
        "Id,Name,Industry,NumberOfEmployees,AnnualRevenue,BillingCountry,YearStarted\n"
        'A1,Acme,Technology,"1,200","$12,000,000.00",United States,1999\n'
        "A2,Globex,Finance,45,,Germany,\n"
    ),
    "Lead.csv": (
        "Id,ConvertedAccountId,CreatedDate,Title,LeadSource,Budget__c\n"
        "L1,A1,01/05/2026 09:00 AM,VP Sales,Web,$25k-$50k\n"
        "L2,A1,01/06/2026 10:30 AM,Analyst,Trade Show,\n"
        "L3,A2,02/01/2026 02:15 PM,CTO,Partner,--None--\n"
        "L4,A2,03/01/2026 08:00 AM,Marketing Manager,Other,\n"
    ),
    "Task.csv": (
        "Id,WhoId,ActivityDate,Type\n"
        "T1,L1,01/07/2026 09:00 AM,Email Opened\n"
        "T2,L1,01/08/2026 09:00 AM,Pricing Page View\n"
        "T3,L2,01/09/2026 09:00 AM,Web Visit\n"
        "T4,L3,02/03/2026 09:00 AM,Demo Request\n"
    ),
    "Event.csv": "Id,WhoId,StartDateTime,Type\nE1,L3,02/10/2026 11:00 AM,Meeting\n",
    "Opportunity.csv": (
        "Id,Lead__c,AccountId,CreatedDate,CloseDate,StageName,Amount\n"
        'O1,L1,A1,01/20/2026 09:00 AM,03/01/2026,Closed Won,"$40,000.00"\n'
        "O2,L3,A2,02/15/2026 09:00 AM,,Negotiation/Review,\n"
    ),
}
PERMISSIVE = dataclasses.replace(Params(), validate=dataclasses.replace(Params().validate, max_quarantine_share=1.0))


def export(tmp_path: Path, **changes: str | bytes | None) -> Path:
    """The base export with files replaced (text or bytes) or removed (None)."""
    folder = tmp_path / "export"
    folder.mkdir()
    for name, content in {**BASE, **{k.replace("_", "."): v for k, v in changes.items()}}.items():
        if content is None:
            continue
        target = folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return folder


def with_row(name: str, row: str) -> dict[str, str]:
    return {name.replace(".", "_"): BASE[name] + row + "\n"}


def validate_folder(folder: Path, params: Params = PERMISSIVE):
    """(mapped tables, scoring date, validated tables, result): the ingest and validate cores on an export."""
    data = ingest_export(load_profile("salesforce"), folder)
    result = validate_export(data.tables, data.as_of, params.validate)
    return data.tables, data.as_of, list(result.counts), result


def validate(tmp_path: Path, **changes):
    return validate_folder(export(tmp_path, **changes))


def quarantined(result, table: str) -> list[tuple[int, str]]:
    q = result.quarantine[table]
    return list(zip(q[SOURCE_ROW].tolist(), q["reason"].tolist(), strict=True))


def assert_counts_add_up(result) -> None:
    for name, c in result.counts.items():
        assert c["rows_in"] == c["valid"] + c["quarantined"], name
        assert c["valid"] == len(result.valid[name]) and c["quarantined"] == len(result.quarantine[name])


# --------------------------------------------------------------------------------------------------
# The base export is clean


def test_base_export_is_fully_valid(tmp_path):
    mapped, export_date, present, result = validate(tmp_path)
    assert {n: c["quarantined"] for n, c in result.counts.items()} == dict.fromkeys(present, 0)
    assert export_date == pd.Timestamp("2026-03-02")  # midnight after the latest date in the export
    assert len(result.valid["activities"]) == 5  # tasks + events
    # accepted formats: "$12,000,000.00", "1,200", "--None--" as missing
    acc = result.valid["accounts"].set_index("account_id")
    assert acc.loc["A1", "annual_revenue"] == 12_000_000.0 and acc.loc["A1", "employees"] == 1200.0
    assert acc.loc["A1", "industry"] == "Software" and acc.loc["A2", "country"] == "DE"
    assert pd.isna(result.valid["leads"].set_index("lead_id").loc["L3", "form_budget"])


# --------------------------------------------------------------------------------------------------
# File level: one clear error naming the file (and column or line)

FILE_CASES = {
    "missing file": ({"Opportunity_csv": None}, InputFileError, r"Opportunity\.csv: file not found"),
    "empty file": ({"Lead_csv": ""}, InputFileError, r"Lead\.csv: file is empty"),
    "whitespace only": ({"Lead_csv": "\n\n  \n"}, InputFileError, r"Lead\.csv: file is empty"),
    "header only": ({"Task_csv": "Id,WhoId,ActivityDate,Type\n"}, InputFileError,
                    r"Task\.csv: no data rows \(header only\)"),
    "required column missing": ({"Lead_csv": BASE["Lead.csv"].replace("CreatedDate", "Created")}, ProfileError,
                                r"Lead\.csv: column 'CreatedDate' \(contract leads\.created_at\) missing"),
    "pipe delimiter": ({"Account_csv": BASE["Account.csv"].replace(",", "|")}, InputFileError,
                       r"Account\.csv: '\|'-separated; use ',' or ';'"),
    "header and rows disagree on delimiter": (
        {"Event_csv": "Id,WhoId,StartDateTime,Type\nE1;L3;02/10/2026 11:00 AM;Meeting\n"}, InputFileError,
        r"Event\.csv: the header is ','-separated but the rows are ';'-separated \(line 2\)"),
    "utf-16": ({"Lead_csv": BASE["Lead.csv"].encode("utf-16")}, InputFileError,
               r"Lead\.csv: unsupported encoding UTF-16"),
    "binary file": ({"Lead_csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))}, InputFileError,
                    r"Lead\.csv: binary content, not a CSV or Parquet file"),
    "excel workbook": ({"Lead_csv": b"PK\x03\x04\x14\x00\x06\x00" + b"x" * 100}, InputFileError,
                       r"Lead\.csv: an Excel workbook or zip archive, not CSV or Parquet"),
    "corrupt parquet": ({"Lead_csv": b"PAR1" + b"\x00garbage" * 20}, InputFileError,
                        r"Lead\.csv: unreadable Parquet file"),
    "duplicated header column": ({"Task_csv": "Id,WhoId,Id,Type\nT1,L1,x,Email Opened\n"}, InputFileError,
                                 r"Task\.csv: column 'Id' appears more than once in the header"),
    "ragged rows": ({"Task_csv": BASE["Task.csv"] + "T9,L1,01/07/2026 09:00 AM,Web Visit,extra,more\n"},
                    InputFileError, r"Task\.csv: ragged rows: expected 4 fields in line 6, saw 6"),
    "unnamed header column": ({"Event_csv": "Id,WhoId,,Type\nE1,L3,x,Meeting\n"}, InputFileError,
                              r"Event\.csv: column 3 has no name in the header"),
    "control characters (wrong encoding)": ({"Lead_csv": b"Id,Title\n" + bytes([1, 2, 3, 4, 5, 6, 7, 8] * 40) + b"\n"},
                                            InputFileError, r"Lead\.csv: unreadable encoding"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_file_level_error(tmp_path, case):
    changes, error, message = FILE_CASES[case]
    with pytest.raises(error, match=message):
        validate(tmp_path, **changes)


def test_file_error_writes_nothing(tmp_path):
    workdir = tmp_path / "work"
    with pytest.raises(InputFileError):
        run(load_profile("salesforce"), export(tmp_path, Lead_csv=""), workdir, PERMISSIVE)
    assert not workdir.exists()


def test_parquet_suffix_with_csv_content(tmp_path):
    path = tmp_path / "leads.parquet"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match=r"leads\.parquet: not a Parquet file \(no PAR1 magic bytes\)"):
        read_export(path)


def test_folder_expected_for_four_tables(tmp_path):
    folder = export(tmp_path)
    with pytest.raises(InputFileError, match=r"Lead\.csv: a four-table profile needs the export folder"):
        validate_folder(folder / "Lead.csv")


def test_unknown_profile_lists_the_shipped_ones():
    with pytest.raises(ProfileError, match=r"profile 'zoho' not found; shipped profiles: .*salesforce"):
        load_profile("zoho")


def test_profile_with_unknown_key_and_unmapped_column():
    with pytest.raises(ProfileError, match=r"p: unknown key\(s\) \['colums'\]"):
        parse_profile({"kind": "flat", "colums": []}, "p")
    tables = {"accounts": {"file": "a.csv", "columns": {"account_id": "Id"}},
              "leads": {"file": "l.csv", "columns": {"lead_id": "Id"}},
              "opportunities": {"file": "o.csv", "columns": {}}}
    with pytest.raises(ProfileError, match=r"p\.tables\.accounts: required contract column\(s\) \['industry'"):
        parse_profile({"kind": "tables", "tables": tables}, "p")


# --------------------------------------------------------------------------------------------------
# Row level: the row goes to the quarantine with the failed check(s) as its reason

ROW_CASES = {
    # case: (changes, table, [(source_row, reason)])
    "duplicate id": (with_row("Lead.csv", "L2,A2,01/10/2026 10:00 AM,Intern,Web,"), "leads", [(4, "duplicate id")]),
    "null id": (with_row("Lead.csv", ",A2,01/10/2026 10:00 AM,Intern,Web,"), "leads", [(4, "lead_id: not null")]),
    "orphan activity": (with_row("Task.csv", "T5,L99,01/07/2026 09:00 AM,Web Visit"), "activities",
                        [(4, "lead_id: references leads")]),
    "orphan lead (unknown account)": (with_row("Lead.csv", "L5,A9,01/10/2026 10:00 AM,Intern,Web,"), "leads",
                                      [(4, "account_id: references accounts")]),
    "mixed types in a number column": (with_row("Account.csv", "A3,Initech,Technology,lots,,France,"), "accounts",
                                       [(2, "employees: type int")]),
    "fractional employee count": (with_row("Account.csv", "A3,Initech,Technology,12.5,,France,"), "accounts",
                                  [(2, "employees: type int")]),
    "unparseable date": (with_row("Lead.csv", "L5,A1,31/31/2026,Intern,Web,"), "leads",
                         [(4, "created_at: type datetime")]),
    "future date": (with_row("Lead.csv", "L5,A1,01/01/2099 09:00 AM,Intern,Web,"), "leads",
                    [(4, "created_at: not in future")]),
    "absurdly old date": (with_row("Lead.csv", "L5,A1,01/01/1900 09:00 AM,Intern,Web,"), "leads",
                          [(4, "created_at: not before 1990-01-01")]),
    "closed before created": (with_row("Opportunity.csv", "O3,L2,A1,02/20/2026 09:00 AM,02/01/2026,Closed Lost,"),
                              "opportunities", [(2, "closed_at: not before created_at")]),
    "unknown budget band": (with_row("Lead.csv", "L5,A1,01/10/2026 10:00 AM,Intern,Web,$1M+"), "leads",
                            [(4, "form_budget: in allowed set")]),
    "unknown opportunity stage": (with_row("Opportunity.csv", "O3,L2,A1,02/20/2026 09:00 AM,,Verbal Yes,"),
                                  "opportunities", [(2, "stage: in allowed set")]),
    "negative revenue": (with_row("Account.csv", "A3,Initech,Technology,10,($5.00),France,"), "accounts",
                         [(2, "annual_revenue: in range")]),
    "several failures on one row": (with_row("Lead.csv", "L5,,01/01/2099 09:00 AM,Intern,Carrier Pigeon,$1M+"),
                                    "leads", [(4, "account_id: not null; created_at: not in future; "
                                                  "form_budget: in allowed set")]),
    "missing required value": (with_row("Opportunity.csv", "O3,L2,A1,,,Closed Lost,"), "opportunities",
                               [(2, "created_at: not null")]),
}


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_row_quarantined_with_reason(tmp_path, case):
    changes, table, expected = ROW_CASES[case]
    _, _, _, result = validate(tmp_path, **changes)
    assert quarantined(result, table) == expected
    others = {n: c["quarantined"] for n, c in result.counts.items() if n != table}
    if table == "opportunities":  # issue 15: the opportunity's lead (L2) and its activity (T3) follow it
        opp = result.quarantine["opportunities"]["opportunity_id"].iloc[0]
        assert quarantined(result, "leads") == [(1, f"opportunity {opp} quarantined")]
        assert quarantined(result, "activities") == [(2, "lead_id: references leads")]
        others = {n: k for n, k in others.items() if n not in ("leads", "activities")}
    assert others == dict.fromkeys(others, 0)
    assert_counts_add_up(result)


def test_unknown_picklist_value_is_kept_as_other(tmp_path):
    _, _, _, result = validate(tmp_path, **with_row("Lead.csv", "L5,A1,01/10/2026 10:00 AM,Intern,Carrier Pigeon,"))
    assert result.counts["leads"] == {"rows_in": 5, "valid": 5, "quarantined": 0}
    assert result.valid["leads"].set_index("lead_id").loc["L5", "lead_source"] == "Other"
    assert result.other["leads"]["lead_source"]["top"] == [{"value": "Carrier Pigeon", "count": 1}]
    assert_counts_add_up(result)


def test_activity_of_a_quarantined_lead_is_quarantined_too(tmp_path):
    changes = {"Lead_csv": BASE["Lead.csv"].replace("L2,A1,01/06/2026 10:30 AM", "L2,A1,01/06/2099 10:30 AM")}
    _, _, _, result = validate(tmp_path, **changes)
    assert quarantined(result, "leads") == [(1, "created_at: not in future")]
    assert quarantined(result, "activities") == [(2, "lead_id: references leads")]  # T3 belongs to L2
    assert_counts_add_up(result)


@pytest.mark.parametrize("value", [
    "=HYPERLINK(\"http://evil.example\",\"click\")",  # spreadsheet formula: kept verbatim, neutralised on export
    "Directeur Général des Ventes — Europe 🚀",  # unicode title
    "Chief " + "Revenue " * 20_000 + "Officer",  # a 160k-character title
])
def test_odd_but_valid_text_is_kept(tmp_path, value):
    _, _, _, result = validate(tmp_path, **with_row("Lead.csv", f'L5,A1,01/10/2026 10:00 AM,"{value.replace(chr(34), 2 * chr(34))}",Web,'))
    assert result.counts["leads"] == {"rows_in": 5, "valid": 5, "quarantined": 0}
    assert result.valid["leads"].set_index("lead_id").loc["L5", "job_title"] == value


def test_latin1_bom_and_semicolon_files_are_read(tmp_path):
    changes = {
        "Account_csv": BASE["Account.csv"].replace("Acme", "Société Générale").encode("cp1252"),
        "Lead_csv": "\ufeff".encode() + BASE["Lead.csv"].replace(",", ";").replace("$25k-$50k", "$25k-$50k").encode(),
    }
    _, _, _, result = validate(tmp_path, **changes)
    assert result.valid["accounts"].set_index("account_id").loc["A1", "company_name"] == "Société Générale"
    assert result.counts["leads"] == {"rows_in": 4, "valid": 4, "quarantined": 0}


def test_quarantine_over_the_limit_fails_naming_the_worst_checks(tmp_path):
    rows = "".join(f"T{i},L99,01/07/2026 09:00 AM,Web Visit\n" for i in range(10, 14))
    folder = export(tmp_path, Task_csv=BASE["Task.csv"] + rows)
    workdir = tmp_path / "work"
    # 4 of 17 rows quarantined (23.5%) > 5% (the default)
    with pytest.raises(QuarantineLimitError, match=r"23\.5% of rows quarantined, above the limit of 5\.0% "
                       r"\(validate\.max_quarantine_share\)\. Most failed checks: activities\.lead_id: references "
                       r"leads: 4 rows\."):
        run(load_profile("salesforce"), folder, workdir, Params(), n_jobs=1, track=False)
    quarantine = workdir / "data" / "02_validated" / "quarantine" / "activities.csv"
    assert len(pd.read_csv(quarantine)) == 4  # the evidence is kept
