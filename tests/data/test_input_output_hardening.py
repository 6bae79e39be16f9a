"""Issue 15: one CSV writer, one reader, row-level checks on flat exports, leads of quarantined opportunities."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.validation import QuarantineLimitError, validate_export
from pipeline import ingest, validate
from pipeline.io import csv_text, read_table, write_csv
from pipeline.params import Params, load_params
from pipeline.sources.exports import ingest_export, load_profile
from pipeline.sources.profiles import ProfileError, parse_profile
from pipeline.sources.readers import InputFileError, read_export

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LIVE = re.compile(r"(?:^|[\r\n])[=+\-@\t]")  # a formula prefix at a cell start or after a line break
PLAIN = re.compile(r"^[+-]?[0-9][0-9 ().,/-]*$")


def live_formulas(cells) -> list[str]:
    """Cells with a live formula at their start or after a line break (plain numbers are inert)."""
    out = []
    for cell in cells:
        for line in re.split(r"\r\n|\r|\n", str(cell)):
            if line[:1] in ("=", "+", "-", "@", "\t") and not PLAIN.match(line):
                out.append(cell)
    return out


EVIL = ["L5\r=1+1", "a\nb", '=HYPERLINK("http://evil.example","click")', "+4930123456", "x\r\n@SUM(A1)",
        "plain", None]


# --------------------------------------------------------------------------------------------- the CSV writer
def test_one_writer_quotes_line_breaks_and_neutralises_formulas_after_them(tmp_path):
    df = pd.DataFrame({"lead_id": EVIL, "note": ["n"] * len(EVIL), "score": range(len(EVIL))})
    path = write_csv(df, tmp_path / "t.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert len(back) == len(rows) - 1 == len(df)  # no row split by a CR or LF
    assert back["score"].tolist() == [str(i) for i in range(len(EVIL))]
    assert [r[0] for r in rows[1:]] == back["lead_id"].tolist()
    assert back["lead_id"].tolist() == ["L5\r'=1+1", "a\nb", "'" + EVIL[2], "+4930123456", "x\r\n'@SUM(A1)",
                                        "plain", ""]
    assert live_formulas(back["lead_id"]) == [] and live_formulas(r[0] for r in rows[1:]) == []
    assert df["lead_id"][0] == "L5\r=1+1"  # the input frame is untouched


def test_writer_keeps_ids_and_numbers_that_only_look_like_formulas():
    df = pd.DataFrame({"phone": ["+4930123456", "-0042", "+1 (555) 123-4567", "=1", "+1+1"]})
    back = pd.read_csv(io.StringIO(csv_text(df)), dtype=str)
    assert back["phone"].tolist() == ["+4930123456", "-0042", "+1 (555) 123-4567", "'=1", "'+1+1"]
    assert csv_text(pd.DataFrame({"a": [1, 2]})) == "a\n1\n2\n"  # clean tables: bytes as before


def test_quarantine_csvs_are_neutralised(tmp_path):
    folder = flat_export(tmp_path, extra_rows=["=1+1,,10,Web,yes,2026-01-01", "L99,=cmd|' /C calc'!A0,-5,Web,no,2026-01-02"])
    raw, out, reports = tmp_path / "raw", tmp_path / "val", tmp_path / "rep"
    ingest.run(parse_profile(FLAT, "crm"), folder, raw, tmp_path / "truth")
    validate.run(raw, out, reports, PERMISSIVE.validate)
    text = (out / "quarantine" / "flat.csv").read_text()
    assert "'=cmd|" in text and live_formulas(pd.read_csv(out / "quarantine" / "flat.csv", dtype=str)
                                              .fillna("").to_numpy().ravel()) == []


# ------------------------------------------------------------------------------------------------ one reader
def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_short_and_long_rows_are_refused_with_their_line_numbers(tmp_path):
    short = write(tmp_path, "short.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(InputFileError, match=r"short\.csv: ragged rows: expected 3 fields in line 3, saw 2: a short row"):
        read_export(short)
    long = write(tmp_path, "long.csv", b"a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n")
    with pytest.raises(InputFileError, match=r"long\.csv: ragged rows: expected 3 fields in line 4, saw 4: a long row"):
        read_export(long)
    with pytest.raises(InputFileError, match=r"short\.csv: ragged rows: expected 3 fields in line 3"):
        read_table(short)  # the DVC validate stage and `score --input` read through the same reader


def test_a_bare_cr_inside_a_line_stays_in_its_cell(tmp_path):
    path = write(tmp_path, "cr.csv", b"id,title\nL1,VP\rSales\nL2,\"CTO\r=1+1\"\n")
    df = read_export(path)
    assert df["title"].tolist() == ["VP\rSales", "CTO\r=1+1"] and len(df) == 2


def test_cp1252_file_is_read_as_cp1252(tmp_path):
    path = write(tmp_path, "cp.csv", "id,name\nA1,Société Générale\nA2,Müller\n".encode("cp1252"))
    df = read_export(path)
    assert df["name"].tolist() == ["Société Générale", "Müller"] and df.attrs["source"]["encoding"] == "cp1252"


def test_utf8_file_with_one_cp1252_line_is_decoded_per_line_with_a_warning(tmp_path, capsys):
    content = "id,name\nA1,Société Générale\n".encode() + "A2,Müller\n".encode("cp1252") + "A3,Ørsted\n".encode()
    df = read_export(write(tmp_path, "mixed.csv", content))
    assert df["name"].tolist() == ["Société Générale", "Müller", "Ørsted"]  # no mojibake anywhere
    assert df.attrs["source"]["encoding"] == "mixed"
    assert re.search(r"mixed encodings.*\(line 3\)", " ".join(capsys.readouterr().err.split()))


def test_os_and_arrow_errors_are_input_file_errors(tmp_path):
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(InputFileError, match="is a folder"):
        read_export(folder)
    bad = write(tmp_path, "t.parquet", b"PAR1" + b"\x00junk" * 10)
    with pytest.raises(InputFileError, match=r"t\.parquet: unreadable Parquet file"):
        read_table(bad)


def test_read_table_keeps_ids_as_text(tmp_path):
    path = write(tmp_path, "leads.csv", b"lead_id,account_id,n,phone\n0000106,007,1,+4930123456\n0000107,008,2,\n")
    df = read_table(path)
    assert df["lead_id"].tolist() == ["0000106", "0000107"] and df["account_id"].tolist() == ["007", "008"]
    assert df["phone"][0] == "+4930123456" and df["n"].dtype == "int64"


@pytest.mark.slow
def test_leading_zero_lead_id_survives_to_the_crm_import_file(tmp_path):
    """`0000106` (not `106`) in crm/salesforce_leads.csv after `leadscore run` on a copy of the fixture."""
    from pipeline.run import run

    src = tmp_path / "export"
    shutil.copytree(FIXTURES / "salesforce", src)
    for name in ("Lead.csv", "Task.csv", "Event.csv", "Opportunity.csv"):
        path = src / name
        path.write_bytes(path.read_bytes().replace(b"L0", b"0"))  # L0000106 -> 0000106
    shipped = load_params(Path(__file__).parents[2] / "params.yaml")  # the shipped gates and decision policy
    params = dataclasses.replace(shipped, train=dataclasses.replace(shipped.train, n_jobs=1))
    run(load_profile("salesforce"), src, tmp_path / "work", params, n_jobs=1, cv_folds=0, track=False)
    scored = tmp_path / "work" / "data" / "05_scored"
    crm = pd.read_csv(next(scored.rglob("salesforce_leads.csv")), dtype=str)
    assert len(crm) > 100 and crm["Id"].str.fullmatch(r"0\d{6}").all()
    assert set(crm["Id"]) <= {f"{i:07d}" for i in range(1, 1201)}


# --------------------------------------------------------------------------------------- flat row checks
FLAT = {
    "kind": "flat", "file": "leads.csv", "id": "Lead ID", "time": "Created Date",
    "label": {"column": "Converted", "positive": ["yes"], "negative": ["no"], "open": ["open"]},
    "numeric": ["Company", "Web Visits"], "categorical": ["Source"],
}
PERMISSIVE = dataclasses.replace(Params(), validate=dataclasses.replace(Params().validate, max_quarantine_share=1.0))


def flat_export(tmp_path: Path, extra_rows: list[str] = (), n: int = 40) -> Path:
    folder = tmp_path / "flat_export"
    folder.mkdir(exist_ok=True)
    rows = [f"L{i},{i * 10},{i % 7},{'Web' if i % 2 else 'Event'},{['yes', 'no', 'open'][i % 3]},2026-01-{i % 28 + 1:02d}"
            for i in range(n)]
    text = "Lead ID,Company,Web Visits,Source,Converted,Created Date\n" + "\n".join(rows + list(extra_rows)) + "\n"
    (folder / "leads.csv").write_text(text)
    return folder


BAD_ROWS = [
    ",5,1,Web,yes,2026-01-03",              # empty id
    "L1,5,1,Web,no,2026-01-03",             # duplicate id (L1 is in the clean rows)
    "L50,abc,1,Web,no,2026-01-03",          # not a number
    "L51,5,-3,Web,no,2026-01-03",           # a negative count (default range)
    "L52,5,1,Web,no,2099-01-01",            # after the export date
    "L53,5,1,Web,no,not a date",            # not a date
]


def test_flat_bad_rows_go_to_the_quarantine_with_reasons_and_the_counts_add_up(tmp_path):
    folder = flat_export(tmp_path, BAD_ROWS)
    raw, out, reports = tmp_path / "raw", tmp_path / "val", tmp_path / "rep"
    ingest.run(parse_profile(FLAT, "crm"), folder, raw, tmp_path / "truth", as_of="2026-02-01")
    metrics = validate.run(raw, out, reports, PERMISSIVE.validate)
    assert metrics["counts"]["flat"] == {"rows_in": 46, "valid": 40, "quarantined": 6}
    q = pd.read_csv(out / "quarantine" / "flat.csv", dtype=str)
    assert q["reason"].tolist() == ["Lead ID: not null", "duplicate id", "Company: type float",
                                    "Web Visits: in range", "Created Date: not in future",
                                    "Created Date: type datetime"]
    assert q["source_row"].tolist() == [str(i) for i in range(40, 46)]
    assert len(pd.read_parquet(out / "flat.parquet")) == 40
    assert metrics["failures"]["flat"]["duplicate id"] == 1


def test_flat_quarantine_above_the_limit_stops_the_run(tmp_path):
    folder = flat_export(tmp_path, BAD_ROWS)
    raw = tmp_path / "raw"
    ingest.run(parse_profile(FLAT, "crm"), folder, raw, tmp_path / "truth", as_of="2026-02-01")
    with pytest.raises(QuarantineLimitError, match=r"13\.0% of rows quarantined"):
        validate.run(raw, tmp_path / "val", tmp_path / "rep", Params().validate)
    assert (tmp_path / "val" / "quarantine" / "flat.csv").exists()  # the evidence is kept


def test_flat_profile_declares_ranges(tmp_path):
    profile = parse_profile({**FLAT, "ranges": {"Company": [0, 400], "Web Visits": [None, None]}}, "crm")
    folder = flat_export(tmp_path, ["L60,401,1,Web,no,2026-01-03", "L61,5,-3,Web,no,2026-01-03"])
    data = ingest_export(profile, folder, as_of="2026-02-01")
    assert data.flat_quarantine["reason"].tolist() == ["Company: in range"]  # -3 visits allowed by the profile
    assert len(data.flat) == 41
    with pytest.raises(ProfileError, match=r"ranges\.Source: not a numeric column"):
        parse_profile({**FLAT, "ranges": {"Source": [0, 1]}}, "crm")


def test_flat_dates_after_today_are_refused_without_a_declared_date(tmp_path):
    data = ingest_export(parse_profile(FLAT, "crm"), flat_export(tmp_path, ["L70,5,1,Web,no,2099-01-01"]))
    assert data.flat_quarantine["reason"].tolist() == ["Created Date: not in future"]
    assert data.as_of < pd.Timestamp("2099-01-01")


# ------------------------------------------------------------------------ quarantined opportunity -> its lead
def test_a_lead_whose_opportunity_is_quarantined_is_quarantined_too(tmp_path):
    from tests.data.test_bad_inputs import BASE, export
    from tests.data.test_bad_inputs import PERMISSIVE as TABLES_PERMISSIVE

    bad = BASE["Opportunity.csv"].replace('"$40,000.00"', "forty thousand")  # O1 (L1's closed-won) unparsable
    data = ingest_export(load_profile("salesforce"), export(tmp_path, Opportunity_csv=bad))
    result = validate_export(data.tables, data.as_of, TABLES_PERMISSIVE.validate)
    q = result.quarantine["opportunities"]
    assert q["opportunity_id"].tolist() == ["O1"]
    leads = result.quarantine["leads"]
    assert leads[["lead_id", "source_row", "reason"]].values.tolist() == [["L1", 0, "opportunity O1 quarantined"]]
    assert "L1" not in set(result.valid["leads"]["lead_id"])  # never scored as an open lead
    assert set(result.quarantine["activities"]["lead_id"]) == {"L1"}  # its activities follow it
    for name, c in result.counts.items():
        assert c["rows_in"] == c["valid"] + c["quarantined"] == len(result.valid[name]) + len(result.quarantine[name])


def test_a_lead_with_a_quarantined_activity_is_kept_and_counted_never_silently(tmp_path):
    """An activity decides neither the label nor the eligibility: its lead is kept, and validation.json counts the
    leads whose engagement misses quarantined events."""
    from tests.data.test_bad_inputs import BASE, export
    from tests.data.test_bad_inputs import PERMISSIVE as TABLES_PERMISSIVE

    bad = BASE["Event.csv"].replace("02/10/2026 11:00 AM", "not a date")  # E1, L3's meeting
    data = ingest_export(load_profile("salesforce"), export(tmp_path, Event_csv=bad))
    result = validate_export(data.tables, data.as_of, TABLES_PERMISSIVE.validate)
    assert result.quarantine["activities"]["activity_id"].tolist() == ["E1"]
    assert "L3" in set(result.valid["leads"]["lead_id"])  # the lead stays, its label and eligibility untouched
    assert result.leads_missing_activities == 1 and result.to_dict()["leads_missing_activities"] == 1
