"""Exports: versioned sql_leads schema, CRM import files, rep queues, CSV formula neutralising, atomic table swaps
(a writer killed mid-write leaves the previous table intact) in SQLite and in a real PostgreSQL server."""

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import isolated_store

from pipeline.export import (
    HUBSPOT_PROPERTIES,
    OUTPUT_COLUMNS,
    PLAIN_NUMBER,
    SALESFORCE_FIELDS,
    SCHEMA_VERSION,
    SchemaError,
    conform,
    contact_table,
    csv_text,
    export_all,
    neutralise_formulas,
    owner_ids,
    write_sql_table,
)

ROOT = Path(__file__).resolve().parents[2]


def scored_table(n: int = 12, run: str = "run-1", seed: int = 0) -> pd.DataFrame:
    """A table in the sql_leads schema, as the score stage hands it to export_all."""
    rng = np.random.default_rng(seed)
    status = np.array(["sql"] * 4 + ["needs_call"] * 2 + ["nurture"] * (n - 8) + ["disqualified"] * 2)
    df = pd.DataFrame({
        "lead_id": [f"L{i:04d}" for i in range(n)], "account_id": [f"A{i % 3}" for i in range(n)],
        "rank": np.arange(1, n + 1), "status": status, "is_sql": status == "sql",
        "score": rng.integers(0, 100, n), "p_convert": rng.uniform(size=n), "expected_value": rng.uniform(0, 1e5, n),
        "expected_deal_size": 20_000.0, "tier": "B", "fit_score": 50.0, "engagement_score": 40.0,
        "gate_budget": "pass", "gate_authority": "pass", "gate_need": "unknown", "gate_timeline": "pass",
        "status_reason": "all gates pass and p_convert clears the threshold",
        "assigned_rep": pd.array(["Ana", "Ben", "Ana", None] + [None] * (n - 4), dtype="string"),
        "queue_position": pd.array([1, 1, 2, None] + [None] * (n - 4), dtype="Int64"),
        "assignment_reason": pd.array(["round-robin"] * 3 + ["every rep is at weekly capacity"] + [None] * (n - 4),
                                      dtype="string"),
        "call_queue_position": pd.array([None] * 4 + [1, 2] + [None] * (n - 6), dtype="Int64"),
        "reasons_for": pd.array(["VP-level title; 3 pricing-page visits in the last 7 days"] * 3 + [None] * (n - 3),
                                dtype="string"),
        "reasons_against": pd.array(["company below the ICP size"] * 3 + [None] * (n - 3), dtype="string"),
        "change": "new_sql", "territory": "Europe",
        "as_of": pd.Timestamp("2026-10-01"), "scored_at": pd.Timestamp("2026-10-02 08:00:00"),
        "model_version": "leadscore-conversion/3", "model_run_id": "abc123", "scoring_run_id": run,
        "schema_version": SCHEMA_VERSION,
    })
    return df[[c for c in df.columns]]


# ----------------------------------------------------------------------------------------------- schema
def test_schema_is_enforced_and_versioned_on_every_row(tmp_path):
    df = scored_table()
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['model_version'\]"):
        conform(df.drop(columns="model_version"))
    with pytest.raises(SchemaError, match=r"undocumented column\(s\) \['debug'\]"):
        conform(df.assign(debug=1))
    export_all(df, tmp_path)
    out = pd.read_parquet(tmp_path / "sql_leads.parquet")
    assert out["schema_version"].eq(SCHEMA_VERSION).all()
    assert out["scoring_run_id"].eq("run-1").all() and out["model_version"].eq("leadscore-conversion/3").all()
    gates = ["gate_budget", "gate_authority", "gate_need", "gate_timeline"]
    assert list(out.columns) == [c for col in OUTPUT_COLUMNS for c in (gates if col == "gate_<name>" else [col])]


def test_docs_document_every_column_of_the_current_schema_version():
    readme = (ROOT / "docs" / "outputs.md").read_text()
    assert f"schema version {SCHEMA_VERSION}" in readme
    undocumented = [c for c in OUTPUT_COLUMNS if f"`{c}`" not in readme]
    assert undocumented == []


# ------------------------------------------------------------------------------------------ CSV injection
def test_a_formula_in_a_categorical_column_is_neutralised_not_lost():
    df = pd.DataFrame({"source": pd.Categorical(["=1+1", "web", None, "@SUM(A1)"]), "n": [1, 2, 3, 4]})
    out = neutralise_formulas(df)
    assert out["source"].tolist()[:2] == ["'=1+1", "web"] and out["source"].iloc[3] == "'@SUM(A1)"
    assert pd.isna(out["source"].iloc[2])  # a missing cell stays missing
    assert csv_text(df).splitlines()[1:] == ["'=1+1,1", "web,2", ",3", "'@SUM(A1),4"]
    assert isinstance(df["source"].dtype, pd.CategoricalDtype)  # the input frame is not changed


def test_csv_exports_neutralise_spreadsheet_formulas(tmp_path):
    df = scored_table(n=10)
    evil = ["=HYPERLINK(\"http://x\",\"click\")", "+1+1", "-2+3", "@SUM(A1:A9)", "\tcmd", "-A1"]
    df.loc[: len(evil) - 1, "reasons_for"] = evil
    df.loc[0, "lead_id"] = "=cmd|' /C calc'!A0"
    paths = export_all(df, tmp_path)
    for path in (paths["csv"], paths["salesforce"], paths["hubspot"], tmp_path / "queues" / "ana.csv"):
        cells = pd.read_csv(path, dtype=str, keep_default_na=False).to_numpy().ravel()
        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.match(PLAIN_NUMBER, c)]
        assert risky == [], path
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    assert csv.loc[0, "lead_id"] == "'=cmd|' /C calc'!A0"
    assert csv["reasons_for"].tolist()[:6] == ["'" + e for e in evil]
    assert csv.loc[6, "reasons_for"] == ""  # untouched when harmless
    # numbers stay numbers: only text cells are quoted; Parquet and the database keep the raw value
    assert pd.read_csv(paths["csv"])["p_convert"].dtype == float
    assert pd.read_parquet(paths["parquet"])["lead_id"][0] == "=cmd|' /C calc'!A0"


def test_neutralise_quotes_every_risky_prefix_and_leaves_the_input_frame_alone():
    df = pd.DataFrame({"a": ["=1", "+1+A1", "-A1", "@x", "\tx", "\rx", "ok", None], "n": [-1.0] * 8})
    out = neutralise_formulas(df)
    assert out["a"].tolist()[:7] == ["'=1", "'+1+A1", "'-A1", "'@x", "'\tx", "'\rx", "ok"] and pd.isna(out["a"][7])
    assert out["n"].tolist() == [-1.0] * 8  # a negative number is not a formula
    assert df["a"][0] == "=1"


def test_plain_numbers_keep_their_sign_so_the_crm_still_matches_them():
    """A phone or id that is only a number in written form runs nothing: no quote that breaks CRM matching."""
    df = pd.DataFrame({"phone": ["+4930123456", "+1 (555) 123-4567", "-12.5", "+1+1", "-2+3", "+1 555 0100 =1"]})
    out = neutralise_formulas(df)["phone"].tolist()
    assert out[:3] == ["+4930123456", "+1 (555) 123-4567", "-12.5"]
    assert out[3:] == ["'+1+1", "'-2+3", "'+1 555 0100 =1"]


# ------------------------------------------------------------------------------------ CRM files and queues
def test_crm_import_files_carry_ids_scores_run_and_model(tmp_path):
    df = scored_table()
    paths = export_all(df, tmp_path)
    sf = pd.read_csv(paths["salesforce"])
    hs = pd.read_csv(paths["hubspot"])
    assert sf.columns[0] == "Id" and hs.columns[0] == "Record ID"
    # without contact fields or rep user ids, those columns are left out; one column per gate
    have = set(df.columns)
    assert list(sf.columns) == [v for k, v in SALESFORCE_FIELDS.items() if k in have] + [
        "BANT_Budget_Gate__c", "BANT_Authority_Gate__c", "BANT_Need_Gate__c", "BANT_Timeline_Gate__c"]
    assert list(hs.columns) == [v for k, v in HUBSPOT_PROPERTIES.items() if k in have] + [
        "leadscore_gate_budget", "leadscore_gate_authority", "leadscore_gate_need", "leadscore_gate_timeline"]
    assert sf["BANT_Need_Gate__c"].eq("unknown").all()
    assert sf["Id"].tolist() == df["lead_id"].tolist() == hs["Record ID"].tolist()
    assert sf["Lead_Score__c"].tolist() == df["score"].tolist()
    assert hs["leadscore_tier"].tolist() == df["tier"].tolist()
    for frame, run, model in ((sf, "Scoring_Run_Id__c", "Model_Version__c"),
                              (hs, "leadscore_scoring_run_id", "leadscore_model_version")):
        assert frame[run].eq("run-1").all() and frame[model].eq("leadscore-conversion/3").all()


def test_hand_over_files_carry_contact_fields_and_the_reps_crm_user_id(tmp_path):
    """Reps act on the files as handed over: who to call (name, company, title, email, phone, source) and, in the
    CRM import files, the owner as the CRM names users (Salesforce OwnerId, HubSpot hubspot_owner_id)."""
    df = scored_table()
    leads = pd.DataFrame({"lead_id": df["lead_id"], "account_id": df["account_id"],
                          "first_name": "Nina", "last_name": [f"Walsh{i}" for i in range(len(df))],
                          "email": "nina@acme.example.com", "phone": "+4930123456", "job_title": "VP Sales",
                          "lead_source": "Referral"})
    accounts = pd.DataFrame({"account_id": ["A0", "A1", "A2"], "company_name": ["Acme", "=Globex", "Initech"]})
    assignment = {"mode": "round_robin", "reps": [
        {"name": "Ana", "capacity": 5, "crm_ids": {"salesforce": "0055e000001ANAA", "hubspot": "901"}},
        {"name": "Ben", "capacity": 5, "crm_ids": {"salesforce": "0055e000001BENB"}}]}
    paths = export_all(df, tmp_path, contacts=contact_table(leads, accounts), owners=owner_ids(assignment))
    sf = pd.read_csv(paths["salesforce"], dtype=str)
    hs = pd.read_csv(paths["hubspot"], dtype=str)
    assert sf.loc[:2, "OwnerId"].tolist() == ["0055e000001ANAA", "0055e000001BENB", "0055e000001ANAA"]
    assert sf["OwnerId"].iloc[3:].isna().all()  # not handed over this week: the owner is left as it is
    assert hs.loc[:2, "hubspot_owner_id"].tolist() == ["901", np.nan, "901"]  # Ben has no HubSpot user id
    assert sf.loc[1, "LastName"] == "Walsh1" and sf.loc[1, "Company"] == "'=Globex" and sf.loc[0, "Title"] == "VP Sales"
    assert sf["Phone"].eq("+4930123456").all() and hs["phone"].eq("+4930123456").all()  # no quote: still matches
    ana = pd.read_csv(tmp_path / "queues" / "ana.csv", dtype=str)
    assert ana[["first_name", "last_name", "company", "email", "phone", "lead_source"]].iloc[0].tolist() == [
        "Nina", "Walsh0", "Acme", "nina@acme.example.com", "+4930123456", "Referral"]
    assert {"gate_budget", "gate_need", "reasons_for", "tier", "score"} <= set(ana.columns)
    calls = pd.read_csv(tmp_path / "queues" / "_qualification_calls.csv", dtype=str)
    assert calls["last_name"].tolist() == ["Walsh4", "Walsh5"] and "gate_need" in calls
    # the database table keeps its documented schema: no contact fields there
    assert "email" not in pd.read_parquet(paths["parquet"]).columns


def test_contacts_built_for_the_scored_ids_write_the_same_hand_over_files(tmp_path):
    df = scored_table()
    n = len(df)
    # the export's leads in another order, one scored lead missing, a duplicate row (the first one counts), and a
    # lead that was not scored
    leads = pd.DataFrame({"lead_id": df["lead_id"], "account_id": df["account_id"],
                          "first_name": "Nina", "last_name": [f"Walsh{i}" for i in range(n)],
                          "email": "nina@acme.example.com", "phone": "+4930123456", "job_title": "VP Sales",
                          "lead_source": "Referral"}).iloc[::-1]
    leads = pd.concat([leads.iloc[1:], leads.iloc[[3]].assign(last_name="Duplicate"),
                       leads.iloc[[0]].assign(lead_id="L-unscored")], ignore_index=True)
    leads = leads.astype({"lead_id": "str", "account_id": "str"})
    accounts = pd.DataFrame({"account_id": ["A0", "A1", "A2"], "company_name": ["Acme", "=Globex", "Initech"]},
                            dtype="str")
    whole = export_all(df, tmp_path / "whole", contacts=contact_table(leads, accounts))
    scoped = export_all(df, tmp_path / "scoped", contacts=lambda ids: contact_table(leads, accounts, ids))
    for key in ("salesforce", "hubspot", "csv"):
        assert Path(scoped[key]).read_bytes() == Path(whole[key]).read_bytes(), key
    table = contact_table(leads, accounts, df["lead_id"].astype("str"))
    assert table["lead_id"].tolist() == df["lead_id"].tolist()  # row for row with the scored ids
    missing = df["lead_id"].iloc[n - 1]  # the lead without a row in the export: no contact fields
    assert table.loc[table["lead_id"] == missing, ["last_name", "company"]].isna().all(axis=None)
    first = leads[leads["lead_id"] == leads["lead_id"].iloc[-2]]["last_name"].iloc[0]
    assert table.loc[table["lead_id"] == leads["lead_id"].iloc[-2], "last_name"].item() == first  # not "Duplicate"
    expected = df["account_id"].map({"A0": "Acme", "A1": "=Globex", "A2": "Initech"})
    assert table["company"].iloc[: n - 1].tolist() == expected.iloc[: n - 1].tolist()


def test_per_rep_queues_and_the_call_queue_are_in_call_order(tmp_path):
    export_all(scored_table(), tmp_path)
    queues = tmp_path / "queues"
    assert sorted(p.name for p in queues.glob("*.csv")) == ["_qualification_calls.csv", "ana.csv", "ben.csv"]
    ana = pd.read_csv(queues / "ana.csv")
    assert ana["lead_id"].tolist() == ["L0000", "L0002"] and ana["queue_position"].tolist() == [1, 2]
    assert ana["rep"].eq("Ana").all() and ana["scoring_run_id"].eq("run-1").all()
    calls = pd.read_csv(queues / "_qualification_calls.csv")
    assert calls["lead_id"].tolist() == ["L0004", "L0005"]
    # next week Ben is gone from the team: his old queue must not linger
    df = scored_table(run="run-2")
    df["assigned_rep"] = pd.array(["Ana", "Ana", "Ana", None] + [None] * 8, dtype="string")
    df["queue_position"] = pd.array([1, 2, 3, None] + [None] * 8, dtype="Int64")
    export_all(df, tmp_path)
    assert sorted(p.name for p in queues.glob("*.csv")) == ["_qualification_calls.csv", "ana.csv"]


# ---------------------------------------------------------------------------------------- atomic swaps
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np, pandas as pd
    from pipeline.export import write_sql_table
    url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = pd.DataFrame({"lead_id": [f"NEW{i}" for i in range(n)], "rank": np.arange(n), "x": np.random.rand(n)})
    def hang():
        print("staged", flush=True)
        time.sleep(120)
    print("writing", flush=True)
    write_sql_table(df, url, "sql_leads", before_swap=hang if mode == "hang" else None)
    print("done", flush=True)
""")


def _start_writer(url: str, mode: str, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, url, mode, str(n)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for(proc: subprocess.Popen, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == word:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"writer exited ({proc.returncode}) before printing {word!r}")
    raise AssertionError(f"writer did not print {word!r} within {timeout}s")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _previous(url: str) -> pd.DataFrame:
    df = pd.DataFrame({"lead_id": ["OLD1", "OLD2", "OLD3"], "rank": [1, 2, 3], "x": [0.5, 0.25, 0.125]})
    write_sql_table(df, url, "sql_leads")
    return df


def _read(url: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            return pd.read_sql('SELECT * FROM "sql_leads" ORDER BY "rank"', conn).assign(_tables=", ".join(sorted(tables)))
    finally:
        engine.dispose()


def _assert_previous_intact(url: str, previous: pd.DataFrame) -> None:
    now = _read(url)
    assert now["_tables"].iloc[0] == "sql_leads"  # no staging table left behind
    pd.testing.assert_frame_equal(now.drop(columns="_tables"), previous)


def test_sqlite_writer_killed_after_staging_leaves_the_previous_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'leadscore.db'}"
    previous = _previous(url)
    proc = _start_writer(url, "hang", 50_000)
    _wait_for(proc, "staged")
    _kill(proc)
    _assert_previous_intact(url, previous)
    # and an uninterrupted writer swaps the new table in completely
    proc = _start_writer(url, "run", 1_000)
    assert proc.wait(timeout=60) == 0
    now = _read(url)
    assert len(now) == 1_000 and now["lead_id"].str.startswith("NEW").all()


def test_sqlite_writer_killed_in_the_middle_of_inserting_leaves_the_previous_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'leadscore.db'}"
    previous = _previous(url)
    proc = _start_writer(url, "run", 3_000_000)  # several seconds of inserts
    _wait_for(proc, "writing")
    journal = tmp_path / "leadscore.db-journal"
    deadline = time.monotonic() + 60
    while not journal.exists() and time.monotonic() < deadline:  # the transaction has begun writing pages
        time.sleep(0.01)
    assert journal.exists() and proc.poll() is None
    _kill(proc)
    _assert_previous_intact(url, previous)
    with sqlite3.connect(tmp_path / "leadscore.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# --------------------------------------------------------------------------------- a real PostgreSQL
def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on a free localhost port (as user postgres when the tests run as root)."""
    pytest.importorskip("psycopg", reason="psycopg (dev extra) is needed to talk to PostgreSQL")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql; .ci/run does this)")
    root = Path(tempfile.mkdtemp(prefix="leadscore-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an unprivileged user")
        shutil.chown(root, "postgres")
        prefix = [runuser, "-u", "postgres", "--"]
    os.chmod(root, 0o755)
    port = _free_port()
    data = root / "data"
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "leadscore"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not start PostgreSQL from {bindir}: {detail.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql+psycopg://leadscore@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_postgres_round_trip_of_the_full_export(tmp_path, postgres_url):
    df = scored_table(n=30)
    export_all(df, tmp_path, database_url=postgres_url)
    back = _read(postgres_url).drop(columns="_tables")
    assert back["lead_id"].tolist() == df["lead_id"].tolist()
    assert back["schema_version"].eq(SCHEMA_VERSION).all() and back["scoring_run_id"].eq("run-1").all()
    assert back["p_convert"].to_numpy() == pytest.approx(df["p_convert"].to_numpy())
    assert back["queue_position"].tolist()[:3] == [1, 1, 2]
    # the next scoring replaces it whole
    export_all(scored_table(n=9, run="run-2"), tmp_path, database_url=postgres_url)
    back = _read(postgres_url)
    assert len(back) == 9 and back["scoring_run_id"].eq("run-2").all() and back["_tables"].iloc[0] == "sql_leads"


@pytest.mark.slow
def test_postgres_writer_killed_mid_write_leaves_the_previous_table(postgres_url):
    previous = _previous(postgres_url)
    proc = _start_writer(postgres_url, "hang", 50_000)
    _wait_for(proc, "staged")
    # while the writer holds its transaction open, readers still see the previous table
    pd.testing.assert_frame_equal(_read(postgres_url).drop(columns="_tables"), previous)
    _kill(proc)
    time.sleep(0.5)  # the server notices the dropped connection and rolls back
    _assert_previous_intact(postgres_url, previous)


# ------------------------------------------------------------- scoring new data with a registered model
GATES = {"budget": {"any": [{"column": "form_budget_min", "op": ">=", "value": 25_000}],
                    "confirmed": "bant_budget_confirmed"},
         "authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 4}]}}
MODEL_FEATURES = ["n_pricing_page_view_7d", "seniority_level", "icp_size", "log_employees", "noise"]


def feature_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "lead_id": [f"L{seed}-{i:05d}" for i in range(n)], "account_id": [f"A{i % 40}" for i in range(n)],
        "as_of": pd.Timestamp("2026-10-01"),
        "n_pricing_page_view_7d": rng.poisson(1.0, n), "seniority_level": rng.integers(1, 7, n).astype(float),
        "icp_size": rng.integers(0, 2, n).astype(float), "log_employees": rng.uniform(1, 4.5, n),
        "noise": rng.normal(size=n), "engagement_decayed": rng.uniform(0, 100, n), "icp_industry": 1.0,
        "icp_country": 1.0, "form_budget_min": rng.choice([np.nan, 10_000.0, 50_000.0], n),
        "bant_budget_confirmed": rng.choice([np.nan, 0.0, 1.0], n, p=[0.8, 0.1, 0.1]),
        "region": rng.choice(["Europe", "North America"], n),
    })
    logit = -2.5 + 1.2 * df["n_pricing_page_view_7d"] + 0.6 * (df["seniority_level"] - 3) + df["icp_size"]
    df["label"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    """A leadscore pyfunc (models/pyfunc.py) registered as lc-test@champion in a fresh MLflow store."""
    pyfunc = pytest.importorskip("models.pyfunc", reason="models/pyfunc.py (the served bundle) is not there yet")
    store = tmp_path_factory.mktemp("mlflow")
    mp = isolated_store(store)
    import mlflow
    from mlflow.tracking import MlflowClient

    from models.conversion import BoosterConfig, ConversionModel
    from pipeline import tracking

    tracking.configure()
    train, val = feature_rows(2000, 1), feature_rows(1000, 2)
    model = ConversionModel(BoosterConfig(n_estimators=60, min_child_samples=20, n_jobs=1, early_stopping_rounds=20),
                            calibration="sigmoid").fit(train[MODEL_FEATURES], train["label"], val[MODEL_FEATURES],
                                                       val["label"])
    bundle = pyfunc.LeadScoreModel(model, GATES, threshold=0.3, unknown_policy="call_queue")
    mlflow.set_experiment("test-exports")
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=bundle, registered_model_name="lc-test",
                                       code_paths=tracking.model_code_paths(),
                                       pip_requirements=tracking.model_requirements())
    # A model is code: the loader refuses one whose files were not hashed when it was logged.
    tracking.record_model_hashes(info.model_uri, run.info.run_id, "lc-test", info.registered_model_version)
    MlflowClient().set_registered_model_alias("lc-test", "champion", info.registered_model_version)
    yield {"uri": "models:/lc-test@champion", "bundle": bundle, "version": info.registered_model_version}
    mp.undo()


@pytest.mark.slow
def test_score_new_data_with_the_champion_agrees_with_the_bundle(champion, tmp_path):
    from features.config import FeaturizeConfig, ValidateConfig
    from models.config import ScoreConfig
    from pipeline.score import score_new_export

    rows = feature_rows(300, 9)
    rows.to_parquet(tmp_path / "new_leads.parquet")
    p = ScoreConfig(gates={"budget": {"any": [{"column": "noise", "op": ">", "value": 99}]}},  # overridden by the bundle
                    call_capacity=5, assignment={"mode": "round_robin", "reps": [{"name": "Ana", "capacity": 6}]})
    summary = score_new_export(champion["uri"], tmp_path / "new_leads.parquet", tmp_path / "out",
                               tmp_path / "reports", p, "2026-10-01", FeaturizeConfig(), ValidateConfig(),
                               history_dir=tmp_path / "reports" / "history")
    table = pd.read_parquet(tmp_path / "out" / "sql_leads.parquet")
    assert len(table) == 300 and summary["n_scored"] == 300
    assert table["model_version"].eq(f"lc-test/{champion['version']}").all()
    assert table["scoring_run_id"].nunique() == 1 and table["scoring_run_id"].iloc[0] == summary["scoring_run_id"]
    served = champion["bundle"].score(rows).set_index("lead_id")
    mine = table.set_index("lead_id").loc[served.index]
    assert mine["status"].tolist() == served["status"].tolist()  # the bundle's gates and policy, not params'
    assert mine["gate_budget"].tolist() == served["gate_budget"].tolist()
    assert mine["p_convert"].to_numpy() == pytest.approx(served["p_convert"].to_numpy(), abs=1e-6)
    assert summary["n_assigned"] == min(6, summary["n_sql"]) and summary["n_explained"] > 0


@pytest.mark.slow
def test_score_refuses_a_feature_schema_mismatch_naming_the_columns(champion, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import EXIT_INPUT, app

    feature_rows(50, 3).drop(columns=["noise", "icp_size"]).to_csv(tmp_path / "bad.csv", index=False)
    result = CliRunner().invoke(app, ["score", "--params", str(ROOT / "params.yaml"), "--model", champion["uri"],
                                      "--input", str(tmp_path / "bad.csv")])
    assert result.exit_code == EXIT_INPUT
    message = " ".join(result.output.split())
    assert "feature schema mismatch" in message and "['icp_size', 'noise']" in message
    assert not Path("data/05_scored/sql_leads.parquet").exists()  # params paths are relative to the store folder


@pytest.mark.slow
def test_served_model_answers_json_rows_and_rejects_malformed_json(champion, tmp_path):
    import json
    import urllib.error
    import urllib.request

    mlflow_bin = Path(sys.executable).with_name("mlflow")
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes to it until the finally below
    proc = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", champion["uri"], "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT),  # uvicorn is found beside mlflow
                                 "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def post(body: bytes) -> tuple[int, dict]:
        req = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, {}

    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "model server did not come up in 180 s"
            time.sleep(0.5)
        rows = feature_rows(4, 11)
        rows.loc[0, ["form_budget_min", "bant_budget_confirmed"]] = [np.nan, 0.0]  # budget fails on the call
        payload = champion["bundle"].input_example(rows).assign(lead_id=rows["lead_id"])
        records = json.loads(payload.to_json(orient="records"))
        status, answer = post(json.dumps({"dataframe_records": records}).encode())
        assert status == 200
        preds = pd.DataFrame(answer["predictions"])
        expected = champion["bundle"].score(rows)
        assert preds["lead_id"].tolist() == rows["lead_id"].tolist()
        assert preds["p_convert"].to_numpy() == pytest.approx(expected["p_convert"].to_numpy(), abs=1e-6)
        assert preds["status"].tolist() == expected["status"].tolist()
        assert preds.loc[0, "gate_budget"] == "fail" and preds.loc[0, "status"] == "disqualified"
        assert {"gate_authority", "tier", "score", "status_reason"} <= set(preds.columns)
        for bad in (b"{not json", b'{"dataframe_records": [', b'{"unknown_key": []}'):
            code, _ = post(bad)
            assert 400 <= code < 500, (bad, code)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_a_crm_export_folder_is_validated_and_featurized_before_the_schema_check(champion, tmp_path):
    import dataclasses

    from features.config import FeaturizeConfig, ValidateConfig
    from models.config import ScoreConfig
    from models.decision import FeatureSchemaError
    from pipeline import ingest
    from pipeline.score import score_new_export
    from pipeline.sources.demo_crm import DemoConfig
    from pipeline.sources.exports import load_profile

    params = dataclasses.replace(DemoConfig(), n_leads=400, seed=3)
    ingest.run(load_profile("demo"), tmp_path, tmp_path / "crm", tmp_path / "truth", params)  # the contract tables
    # The featurized CRM has the real feature columns; the test champion was trained on a synthetic 'noise' one.
    with pytest.raises(FeatureSchemaError, match=r"missing column\(s\) the model needs: \['noise'\]"):
        score_new_export(champion["uri"], tmp_path / "crm", tmp_path / "out", tmp_path / "reports",
                         ScoreConfig(gates=GATES), params.export_date, FeaturizeConfig(), ValidateConfig())
    assert not (tmp_path / "out").exists()


def test_reps_in_any_script_each_get_their_whole_queue_file(tmp_path):
    """Names whose ASCII slug would collide (any two Cyrillic names) lost hand-overs: each rep has their own file."""
    df = scored_table(n=12)
    names = ["Анна Ли", "Иван Петров", "Ann Lee", "Zoë Ådahl"]
    df["assigned_rep"] = pd.array(names * 2 + [None] * 4, dtype="string")
    df["queue_position"] = pd.array([1, 1, 1, 1, 2, 2, 2, 2] + [None] * 4, dtype="Int64")
    export_all(df, tmp_path)
    files = sorted(p.name for p in (tmp_path / "queues").glob("*.csv") if not p.name.startswith("_"))
    assert files == sorted(["анна_ли.csv", "иван_петров.csv", "ann_lee.csv", "zoë_ådahl.csv"])
    handed = pd.concat([pd.read_csv(tmp_path / "queues" / f, dtype=str) for f in files])
    assert len(handed) == 8 and set(handed["lead_id"]) == set(df["lead_id"].iloc[:8])


def test_crm_files_with_owner_ids_read_back_whole_even_with_line_breaks_in_cells(tmp_path):
    """The shared body plus each CRM's owner column: the same rows and cells as rendering the file in one go."""
    df = scored_table()
    df.loc[0, "reasons_for"] = "VP-level title\n=evil()"
    df.loc[1, "reasons_for"] = "line one\r\nline two"
    owners = owner_ids({"mode": "round_robin", "reps": [{"name": "Ana", "capacity": 5, "crm_ids": {"salesforce": "005A"}},
                                                        {"name": "Ben", "capacity": 5, "crm_ids": {"hubspot": "77"}}]})
    for rows in (df, df.iloc[2:]):  # with quoted line breaks (one render) and without (shared body)
        paths = export_all(rows.reset_index(drop=True), tmp_path / str(len(rows)), owners=owners)
        sf = pd.read_csv(paths["salesforce"], dtype=str, keep_default_na=False)
        hs = pd.read_csv(paths["hubspot"], dtype=str, keep_default_na=False)
        assert len(sf) == len(hs) == len(rows) and sf["Id"].tolist() == rows["lead_id"].tolist()
        expected_sf = rows["assigned_rep"].map({"Ana": "005A"}).fillna("").tolist()
        assert sf["OwnerId"].tolist() == expected_sf
        assert hs["hubspot_owner_id"].tolist() == rows["assigned_rep"].map({"Ben": "77"}).fillna("").tolist()
    assert sf.columns[-1] == "OwnerId"
