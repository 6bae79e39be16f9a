"""A scoring run is one transaction (issue 15, items 2, 3 and 8): every export of the current run shares one
scoring_run_id whatever kills, fails or runs beside it, the previous run stays intact, `dvc repro` keeps the
scored folder, and no password reaches a log line or a file."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_exports import postgres_url, scored_table  # noqa: F401 - postgres_url: a fixture

from pipeline import transaction
from pipeline.cli import EXIT_DATABASE
from pipeline.export import export_all
from pipeline.secrets import hide_password, redact
from pipeline.transaction import CURRENT, PENDING, RUNS, ExportError, scoring_lock

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "salesforce"
NAME = "transaction-test-model"


# ------------------------------------------------------------------------------------------------ helpers
def run_ids(out: Path) -> dict[str, set]:
    """Every export readers see in `out` (top-level names, through `current`) -> the scoring_run_ids in it."""
    seen: dict[str, set] = {}
    visible = [e for e in sorted(out.iterdir()) if e.name not in (RUNS, CURRENT, "quarantine")]
    for path in [f for e in visible for f in (sorted(e.iterdir()) if e.is_dir() else [e])]:
        rel = path.relative_to(out)
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix == ".csv":
            df = pd.read_csv(path, dtype=str)
        else:
            continue
        col = next((c for c in df.columns if "scoring_run_id" in c.lower()), None)
        if col is not None:
            seen[str(rel)] = set(df[col].dropna())
    return seen


def db_run_id(out: Path, db: Path | None = None) -> str:
    with sqlite3.connect(db or out / "leadscore.db") as conn:
        return conn.execute("SELECT DISTINCT scoring_run_id FROM sql_leads").fetchall()


def db_run_id_or_none(out: Path):
    if not (out / "leadscore.db").exists():
        return None
    with sqlite3.connect(out / "leadscore.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return conn.execute("SELECT DISTINCT scoring_run_id FROM sql_leads").fetchall() if "sql_leads" in tables else None


def assert_one_run(out: Path, run: str | None = None) -> str:
    """Every visible export holds one and the same run (the database too, when `run` is the database's)."""
    ids = run_ids(out)
    assert ids and {"sql_leads.parquet", "sql_leads.csv", "crm/salesforce_leads.csv"} <= set(ids)
    union = set().union(*ids.values())
    assert len(union) == 1, ids
    current = (out / CURRENT).resolve()
    manifest = json.loads((current / "manifest.json").read_text())
    assert union == {manifest["scoring_run_id"]}
    if run is not None:
        assert union == {run}
    return union.pop()


def no_leftovers(out: Path) -> None:
    assert not list((out / RUNS).glob(".staging-*"))
    assert not [p for p in out.rglob("*.tmp")]


# -------------------------------------------------------------------------------- export_all: the unit
def test_runs_are_folders_switched_by_one_pointer_and_the_previous_run_is_kept(tmp_path):
    out = tmp_path / "scored"
    for run in ("run-1", "run-2", "run-3"):
        paths = export_all(scored_table(run=run), out)
        assert_one_run(out, run)
        assert db_run_id(out) == [(run,)]
    assert (out / CURRENT).is_symlink() and Path(paths["run"]).resolve() == (out / CURRENT).resolve()
    kept = sorted(p.name for p in (out / RUNS).iterdir())
    assert len(kept) == 2 and kept[0].endswith("run-2") and kept[1].endswith("run-3")  # current + previous
    previous = out / RUNS / kept[0]
    assert set(pd.read_parquet(previous / "sql_leads.parquet")["scoring_run_id"]) == {"run-2"}
    assert json.loads((previous / "manifest.json").read_text())["scoring_run_id"] == "run-2"
    no_leftovers(out)


def test_a_folder_written_by_the_old_exporter_becomes_the_previous_run(tmp_path):
    from pipeline.export import _write_files, conform, with_contacts

    out = tmp_path / "scored"
    old = conform(scored_table(run="old"))
    _write_files(old, out, "sql_leads", None, with_contacts(old, None, None))  # plain files, as before issue 15
    export_all(scored_table(run="new"), out)
    assert_one_run(out, "new")
    (previous,) = [p for p in (out / RUNS).iterdir() if p.resolve() != (out / CURRENT).resolve()]
    assert set(pd.read_csv(previous / "crm" / "hubspot_contacts.csv")["leadscore_scoring_run_id"]) == {"old"}


def test_a_bad_database_url_is_found_before_any_visible_file_changes(tmp_path):
    out = tmp_path / "scored"
    export_all(scored_table(run="run-1"), out)
    before = {p: p.stat().st_mtime_ns for p in (out / CURRENT).resolve().rglob("*")}
    bad = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"
    with pytest.raises(ExportError, match="cannot write.*nothing was written"):
        export_all(scored_table(run="run-2"), out, database_url=bad)
    assert_one_run(out, "run-1")
    assert {p: p.stat().st_mtime_ns for p in (out / CURRENT).resolve().rglob("*")} == before
    assert len(list((out / RUNS).iterdir())) == 1
    no_leftovers(out)


def test_a_failing_file_leaves_the_previous_files_and_table_and_no_temp_files(tmp_path, monkeypatch):
    import pipeline.export as export

    out = tmp_path / "scored"
    export_all(scored_table(run="run-1"), out)
    real = export.write_crm_files

    def disk_full(*args, **kwargs):
        real(*args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "write_crm_files", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_all(scored_table(run="run-2"), out)
    assert_one_run(out, "run-1")
    assert db_run_id(out) == [("run-1",)]  # the table waited for the files and was not swapped
    no_leftovers(out)
    assert len(list((out / RUNS).iterdir())) == 1


def test_too_little_free_space_is_refused_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "scored"
    export_all(scored_table(run="run-1"), out)
    monkeypatch.setattr(transaction.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ExportError, match="MB free, the scoring needs about"):
        export_all(scored_table(run="run-2"), out)
    assert_one_run(out, "run-1")
    assert db_run_id(out) == [("run-1",)]


def test_a_second_scorer_waits_a_bounded_time_then_refuses_with_a_message(tmp_path, monkeypatch):
    out = tmp_path / "scored"
    export_all(scored_table(run="run-1"), out)
    holding, release = threading.Event(), threading.Event()

    def other_scorer():
        with scoring_lock(out):
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=other_scorer)
    thread.start()
    try:
        assert holding.wait(10)
        monkeypatch.setenv("LEADSCORE_LOCK_WAIT", "1")
        start = time.monotonic()
        with pytest.raises(ExportError, match=r"another scoring is writing this folder \(pid \d+"):
            export_all(scored_table(run="run-2"), out)
        assert time.monotonic() - start < 10
    finally:
        release.set()
        thread.join()
    assert_one_run(out, "run-1")
    export_all(scored_table(run="run-3"), out)  # the lock is free again
    assert_one_run(out, "run-3")


def test_a_reader_holding_the_table_makes_the_swap_fail_after_a_bounded_wait(tmp_path, monkeypatch):
    out = tmp_path / "scored"
    export_all(scored_table(run="run-1"), out)
    reader = sqlite3.connect(out / "leadscore.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sql_leads").fetchall()  # a BI tool's open read transaction
    monkeypatch.setenv("LEADSCORE_DB_WAIT", "1")
    start = time.monotonic()
    try:
        with pytest.raises(transaction.DatabaseBusyError, match="held by another connection.*waited 1 s"):
            export_all(scored_table(run="run-2"), out)
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert time.monotonic() - start < 30
    assert_one_run(out, "run-1")
    assert db_run_id(out) == [("run-1",)]
    no_leftovers(out)


def _tables(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


@pytest.mark.parametrize("fork", [True, False])
def test_the_sql_writer_swaps_only_when_told_and_a_forked_one_stores_what_a_thread_stores(tmp_path, fork):
    """SqlWriter: finish(swap=False) leaves the previous table (no staging table left); finish(swap=True) puts the
    new one in; the forked writer's table is row for row and type for type the thread's."""
    from pipeline.export import SqlWriter, conform

    if fork and not sys.platform.startswith("linux"):
        pytest.skip("the forked writer is Linux's")
    old, new = conform(scored_table(run="run-1")), conform(scored_table(run="run-2"))
    db = tmp_path / "x.db"
    SqlWriter(old, f"sqlite:///{db}", "sql_leads", fork=fork).finish(swap=True)
    SqlWriter(new, f"sqlite:///{db}", "sql_leads", fork=fork).finish(swap=False)
    assert db_run_id(tmp_path, db) == [("run-1",)] and _tables(db) == ["sql_leads"]
    SqlWriter(new, f"sqlite:///{db}", "sql_leads", fork=fork).finish(swap=True)
    assert db_run_id(tmp_path, db) == [("run-2",)] and _tables(db) == ["sql_leads"]
    if fork:
        threaded = tmp_path / "thread.db"
        SqlWriter(new, f"sqlite:///{threaded}", "sql_leads", fork=False).finish(swap=True)
        query = "SELECT *, " + ", ".join(f'typeof("{c}")' for c in new.columns) + " FROM sql_leads ORDER BY rowid"
        with sqlite3.connect(db) as a, sqlite3.connect(threaded) as b:
            assert a.execute(query).fetchall() == b.execute(query).fetchall()
            assert a.execute("SELECT sql FROM sqlite_master").fetchall() == \
                b.execute("SELECT sql FROM sqlite_master").fetchall()


def test_the_sql_writer_forks_only_when_python_binds_the_rows(tmp_path, monkeypatch):
    """A table ADBC binds in C (an SQLite file, ROWS_FILE_MIN_ROWS rows or more) is written by a thread: the GIL is
    free and a fork would cost copy-on-write copies; Python-bound rows (fewer rows, PostgreSQL, in memory) fork."""
    from pipeline import export
    from pipeline.export import SqlWriter, binds_in_c, conform

    table = conform(scored_table(run="run-1"))
    monkeypatch.setattr(export, "ROWS_FILE_MIN_ROWS", len(table))
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert binds_in_c(len(table), db) and not binds_in_c(len(table) - 1, db)
    assert not binds_in_c(len(table), "sqlite:///:memory:") and not binds_in_c(len(table), "sqlite://")
    assert not binds_in_c(len(table), "postgresql+psycopg://u:p@localhost:5432/leads")
    threaded = SqlWriter(table, db, "sql_leads")
    assert threaded._process is None
    threaded.finish(swap=True)
    assert db_run_id(tmp_path, tmp_path / "x.db") == [("run-1",)]
    if sys.platform.startswith("linux"):
        forked = SqlWriter(table.head(len(table) - 1), db, "sql_leads")
        assert forked._process is not None
        forked.finish(swap=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked writer is Linux's")
def test_a_forked_sql_writer_whose_parent_is_killed_rolls_back_and_exits(tmp_path):
    """The scorer killed while its forked writer holds the new rows: the writer sees its order pipe close, rolls
    back and exits; the previous table stays and the database is free for the next scorer."""
    db = tmp_path / "x.db"
    pid_file = tmp_path / "writer.pid"
    script = f"""
import os, signal, sys, time
sys.path[:0] = {[str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "pipeline")]!r}
from test_exports import scored_table
from pipeline.export import SqlWriter, conform
url = "sqlite:///{db}"
SqlWriter(conform(scored_table(run="run-1")), url, "sql_leads", fork=True).finish(swap=True)
writer = SqlWriter(conform(scored_table(run="run-2")), url, "sql_leads", fork=True)
open("{pid_file}", "w").write(str(writer._process.pid))
time.sleep(2)  # the writer stages its rows and waits for the order
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)  # still there (or a zombie waiting for init)?
            status = Path(f"/proc/{child}/status").read_text()
            if "State:\tZ" in status:
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the orphaned SQL writer did not exit")
    assert db_run_id(tmp_path, db) == [("run-1",)] and _tables(db) == ["sql_leads"]
    with sqlite3.connect(db, timeout=1) as conn:  # nobody holds a write lock
        conn.execute("CREATE TABLE probe (x)")


LOGGER = """
import json, sys
from pipeline import tracking
train_run, mode = sys.argv[1], sys.argv[2]
logger = tracking.StageRunLogger()
forked = logger.pid is not None
if mode == "close":
    logger.close()
    print(json.dumps({"forked": forked}))
    sys.exit()
if mode == "open":  # never asked to log: only the helper's own start can create the (new) store
    import os, sqlite3, time
    path, tables, deadline = os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"), [], time.time() + 120
    while "experiments" not in tables and time.time() < deadline:
        time.sleep(0.2)
        if os.path.exists(path):
            try:
                tables = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")]
            except sqlite3.Error:
                pass
    logger.close()
    print(json.dumps({"forked": forked, "opened": "experiments" in tables, "mlflow_here": "mlflow" in sys.modules}))
    sys.exit()
try:
    result = logger.log("score", train_run, start_time=1.0, params={"score.threshold": "0.5"},
                        metrics={"n_sql": 3}, data_date="2026-10-01", tags={"scoring_run_id": "s-1"})
except RuntimeError as exc:
    result = "error: " + str(exc)
print(json.dumps({"forked": forked, "result": result, "mlflow_here": "mlflow" in sys.modules}))
"""


def _logger(tmp_path, train_run: str, mode: str = "log") -> dict:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LOGGER, train_run, mode], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_stage_run_is_logged_by_a_helper_process_that_imported_mlflow_meanwhile(tmp_path, monkeypatch):
    """tracking.StageRunLogger: a forked helper imports MLflow while the caller works and logs the run when told;
    the caller never imports MLflow. Its error reaches the caller; a caller that closes it logs nothing."""
    from mlflow import MlflowClient

    from pipeline import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    tracking.configure()
    client = MlflowClient()
    experiment = client.create_experiment("logger")
    train_run = client.create_run(experiment, tags={"profile": "demo"}).info.run_id

    out = _logger(tmp_path, train_run)
    assert out["forked"] and not out["mlflow_here"]
    # the helper opens the store as soon as it starts (a new one: it creates it), before it is asked to log
    (tmp_path / "fresh").mkdir()
    assert _logger(tmp_path / "fresh", "-", "open") == {"forked": True, "opened": True, "mlflow_here": False}
    assert not tracking.StageRunLogger().pid  # MLflow imported here: no helper, the run is logged in-process
    run = client.get_run(out["result"])
    assert run.data.metrics == {"n_sql": 3.0} and run.data.params == {"score.threshold": "0.5"}
    assert run.data.tags["mlflow.parentRunId"] == train_run and run.data.tags["scoring_run_id"] == "s-1"
    assert run.info.status == "FINISHED"

    failed = _logger(tmp_path, "no-such-run")
    assert failed["result"].startswith("error: ") and "no-such-run" in failed["result"]

    before = len(client.search_runs([experiment]))
    assert _logger(tmp_path, train_run, mode="close") == {"forked": True}
    assert len(client.search_runs([experiment])) == before  # closed unused: nothing logged


def test_the_logger_logs_in_this_process_when_mlflow_is_imported_already(monkeypatch):
    import mlflow  # noqa: F401 - imported: no helper is forked

    from pipeline import tracking

    calls = []
    monkeypatch.setattr(tracking, "log_stage_run", lambda *args, **kwargs: calls.append((args, kwargs)) or "run-9")
    with tracking.StageRunLogger() as logger:
        assert logger.pid is None
        assert logger.log("score", "train-1", start_time=0.0, params={}, metrics={}) == "run-9"
    assert calls == [(("score", "train-1"), {"start_time": 0.0, "params": {}, "metrics": {}})]


def test_the_model_libraries_are_imported_ahead_and_mlflow_only_for_a_registered_model():
    code = ("import sys; from pipeline.score import import_model_libraries as f; f(False); "
            "print('lightgbm' in sys.modules, 'sklearn' in sys.modules, 'mlflow' in sys.modules); f(True); "
            "print('mlflow.pyfunc' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["True", "True", "False", "True"], proc.stderr


def test_a_failing_forked_writer_raises_its_error_in_the_scorer(tmp_path):
    """The writer's error (here: the database cannot be opened) is raised by finish(swap=True)."""
    from pipeline.export import SqlWriter, conform

    with pytest.raises(Exception, match="unable to open database"):
        SqlWriter(conform(scored_table(run="run-1")), f"sqlite:///{tmp_path / 'missing' / 'x.db'}", "sql_leads",
                  ).finish(swap=True)


# ------------------------------------------------------------------------------- DVC keeps the folder
def test_dvc_score_stage_persists_the_scored_folder():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = stages["score"]["outs"]
    scored = [o for o in outs if isinstance(o, dict) and "${paths.scored}" in o]
    assert scored, outs
    spec = scored[0]["${paths.scored}"]
    assert spec["persist"] is True and spec["cache"] is False


STAGE_SCRIPT = """
import sys
sys.path[:0] = [{root!r}, {tests!r}, {tests_root!r}]
from test_exports import scored_table
from pipeline.export import export_all
export_all(scored_table(run=sys.argv[1]), "scored")
"""


def _dvc_repro_killed(tmp_path: Path, spec: dict) -> Path:
    """A DVC repo whose stage writes the scored folder with the score stage's out `spec` (from dvc.yaml): run
    once, then run again killed mid-stage. Returns the scored folder."""
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    if dvc is None or shutil.which("git") is None:
        pytest.skip("dvc and git are needed")
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(transaction.KILL_AT_ENV, None)

    def run(*cmd, **extra):
        return subprocess.run(cmd, cwd=repo, env={**env, **extra}, capture_output=True, text=True, timeout=300)

    assert run("git", "init", "-q").returncode == 0
    assert run(dvc, "init", "-q").returncode == 0
    (repo / "stage.py").write_text(STAGE_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests" / "pipeline"),
                                                           tests_root=str(ROOT / "tests")))
    stage = {"cmd": f"{sys.executable} stage.py ${{run}}", "deps": ["stage.py"], "params": ["run"],
             "outs": ["scored" if spec is None else {"scored": spec}]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"score": stage}}))
    (repo / "params.yaml").write_text("run: run-1\n")
    first = run(dvc, "repro", "-q")
    assert first.returncode == 0, first.stdout + first.stderr
    assert_one_run(repo / "scored", "run-1")
    (repo / "params.yaml").write_text("run: run-2\n")
    killed = run(dvc, "repro", "-q", **{transaction.KILL_AT_ENV: "staged"})
    assert killed.returncode != 0
    return repo / "scored"


@pytest.mark.slow
def test_dvc_repro_killed_in_the_score_stage_keeps_the_previous_run_and_table(tmp_path):
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (spec,) = [o["${paths.scored}"] for o in stages["score"]["outs"] if isinstance(o, dict) and "${paths.scored}" in o]
    out = _dvc_repro_killed(tmp_path / "persisted", spec)
    assert assert_one_run(out) == "run-1" and db_run_id(out) == [("run-1",)]
    # the out as it was (`- ${paths.scored}`): DVC deletes the folder, the database included, before the stage runs
    out = _dvc_repro_killed(tmp_path / "plain", None)
    assert not (out / "sql_leads.parquet").exists() and db_run_id_or_none(out) is None


# ---------------------------------------------------------------------------------------- secrets
def test_hide_password_covers_database_urls_http_uris_and_free_text():
    assert hide_password("postgresql+psycopg://u:s3cr3t@db:5432/leads") == "postgresql+psycopg://u:***@db:5432/leads"
    assert hide_password("https://bob:s3cr3t@mlflow.example/api?x=1") == "https://bob:***@mlflow.example/api?x=1"
    assert hide_password("mssql+pyodbc://u@h/db?password=s3cr3t") == "mssql+pyodbc://u@h/db?password=***"
    assert hide_password("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert hide_password(None) is None
    assert "s3cr3t" not in redact("could not reach https://a:s3cr3t@h and postgresql://b:s3cr3t@h/d")


def test_an_unreachable_mlflow_store_is_named_without_its_password():
    with pytest.raises(ExportError, match=r"MLflow store https://bob:\*\*\*@127.0.0.1:1: not reachable") as caught:
        transaction.check_mlflow_store("https://bob:s3cr3t@127.0.0.1:1")
    assert "s3cr3t" not in str(caught.value)


# ------------------------------------------------------------------- score as a whole, in subprocesses
@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with a registered champion (salesforce fixture, trained up to package)."""
    from _stages import champion_project
    from conftest import isolated_store

    root = tmp_path_factory.mktemp("txproject")
    mp = isolated_store(root)
    stages = champion_project(root, "salesforce", FIXTURE, NAME, "transaction-test", "transaction")
    yield {"root": root, "params": root / "params.yaml", "paths": stages["paths"],
           "store": f"sqlite:///{root / 'mlflow.db'}"}
    mp.undo()


def _score(project, out: Path, day: int, kill_at: str | None = None, database_url: str | None = None,
           env: dict | None = None, wait: bool = True):
    """`leadscore score --input FIXTURE` as a subprocess; each `day` scores as of another date (another run)."""
    cmd = [sys.executable, "-c", "from pipeline.cli import app; app()", "score", "--params", str(project["params"]),
           "--profile", "salesforce", "--input", str(FIXTURE), "--out", str(out), "--as-of", f"2026-10-{day:02d}"]
    if database_url:
        cmd += ["--database-url", database_url]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": project["store"], **(env or {})}
    full_env.pop(transaction.KILL_AT_ENV, None)
    if kill_at:
        full_env[transaction.KILL_AT_ENV] = kill_at
    proc = subprocess.Popen(cmd, cwd=project["root"], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    if not wait:
        return proc
    output, _ = proc.communicate(timeout=600)
    return proc.returncode, output


@pytest.mark.slow
def test_score_killed_at_every_step_leaves_one_run_and_the_previous_run_intact(project, tmp_path):
    out = tmp_path / "scored"
    code, output = _score(project, out, 2)
    assert code == 0, output
    first = assert_one_run(out)
    assert db_run_id(out) == [(first,)]
    first_folder = (out / CURRENT).resolve()
    first_files = {p: p.read_bytes() for p in first_folder.rglob("*") if p.is_file()}

    # killed after the files are staged (the table's rows are in an open transaction): nothing visible changed
    code, _ = _score(project, out, 3, kill_at="staged")
    assert code == -9
    assert assert_one_run(out) == first and db_run_id(out) == [(first,)]
    assert {p: p.read_bytes() for p in first_folder.rglob("*") if p.is_file()} == first_files

    # killed after the database swap, before the pointer switch: the files still show the previous run, and
    # pending.json tells the next run to roll forward (the database already holds the new run)
    for point, day in (("database", 4), ("switch", 5)):
        code, _ = _score(project, out, day, kill_at=point)
        assert code == -9
        assert assert_one_run(out) == first
        pending = json.loads((out / PENDING).read_text())
        assert db_run_id(out) == [(pending["scoring_run_id"],)] and pending["scoring_run_id"] != first
        assert {p: p.read_bytes() for p in first_folder.rglob("*") if p.is_file()} == first_files
        from pipeline.transaction import recover

        with scoring_lock(out):
            assert "rolled forward" in recover(out, None)
        assert assert_one_run(out) == pending["scoring_run_id"]
        assert not (out / PENDING).exists()
        first = pending["scoring_run_id"]
        first_folder = (out / CURRENT).resolve()
        first_files = {p: p.read_bytes() for p in first_folder.rglob("*") if p.is_file()}

    # killed right after the switch (before cleaning up): the new run is whole, the previous run kept
    code, _ = _score(project, out, 6, kill_at="switched")
    assert code == -9
    now = assert_one_run(out)
    assert now != first and db_run_id(out) == [(now,)]
    assert {p: p.read_bytes() for p in first_folder.rglob("*") if p.is_file()} == first_files

    # and the next scoring finishes the job: one run, no staging folders, no temp files, summary copy in the run
    code, output = _score(project, out, 7)
    assert code == 0, output
    last = assert_one_run(out)
    assert db_run_id(out) == [(last,)] and not (out / PENDING).exists()
    summary = json.loads(((out / CURRENT) / "score_summary.json").read_text())
    assert summary["scoring_run_id"] == last
    reports = json.loads((project["paths"]["reports"] / "score_summary.json").read_text())
    assert reports["scoring_run_id"] == last
    no_leftovers(out)
    assert len(list((out / RUNS).iterdir())) == 2


@pytest.mark.slow
def test_two_scorers_on_one_folder_give_one_whole_run_and_keep_the_other(project, tmp_path):
    out = tmp_path / "scored"
    procs = [_score(project, out, day, wait=False) for day in (8, 9)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    now = assert_one_run(out)
    assert db_run_id(out) == [(now,)]
    runs = [p for p in (out / RUNS).iterdir()]
    assert len(runs) == 2
    (other,) = [p for p in runs if p.resolve() != (out / CURRENT).resolve()]
    other_id = json.loads((other / "manifest.json").read_text())["scoring_run_id"]
    assert other_id != now
    for path in other.rglob("*.csv"):  # the previous run intact: all of it the other scorer's
        df = pd.read_csv(path, dtype=str)
        col = next((c for c in df.columns if "scoring_run_id" in c.lower()), None)
        if col is not None and len(df):
            assert set(df[col]) == {other_id}, path
    no_leftovers(out)


@pytest.mark.slow
def test_no_password_in_any_output_file_or_log_line(project, postgres_url, tmp_path):  # noqa: F811 - the fixture
    secret = "Kn0wn-S3cret-pw"
    url = postgres_url.replace("leadscore@", f"leadscore:{secret}@")  # trust auth: any password opens it
    out = tmp_path / "scored"
    code, output = _score(project, out, 10, env={"LEADSCORE_DATABASE_URL": url})
    assert code == 0, output
    assert "leadscore:***@" in output and secret not in output  # the log names the database without it
    # a database the password does not open: the error names the URL, never the password
    code, output = _score(project, out, 11, database_url=url.replace("127.0.0.1", "127.0.0.1:1"))
    assert code == EXIT_DATABASE and secret not in output and "***" in output
    # an MLflow store behind a password: named without it
    code, output = _score(project, out, 12, env={"MLFLOW_TRACKING_URI": f"https://bob:{secret}@127.0.0.1:1"})
    assert code == EXIT_DATABASE and secret not in output and "bob:***@" in output
    for folder in (out, project["paths"]["reports"], project["paths"]["package"]):
        for path in Path(folder).rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_a_scorer_that_cannot_fork_writes_the_table_from_a_thread(tmp_path, monkeypatch):
    """Forking can fail (strict memory overcommit, a process limit): the writer falls back to a thread, same table."""
    import multiprocessing.context

    from pipeline.export import SqlWriter, conform

    def no_fork(self):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(multiprocessing.context.ForkProcess, "start", no_fork, raising=False)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_fork)
    db = tmp_path / "x.db"
    writer = SqlWriter(conform(scored_table(run="run-1")), f"sqlite:///{db}", "sql_leads", fork=True)
    assert writer._process is None
    writer.finish(swap=True)
    assert db_run_id(tmp_path, db) == [("run-1",)] and _tables(db) == ["sql_leads"]
