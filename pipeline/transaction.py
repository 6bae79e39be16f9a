"""A scoring run is one transaction: every export of a run becomes visible at once, or none does.

The scored folder (``data/05_scored``) holds::

    runs/<UTC time>-<scoring_run_id>/   one folder per run: sql_leads.parquet/.csv, crm/, queues/, changes.csv,
                                        score_summary.json, shadow_challenger.parquet, manifest.json
    current -> runs/<...>               THE pointer: the run every reader sees
    sql_leads.parquet -> current/sql_leads.parquet, crm -> current/crm, ...   (top-level names, through `current`)
    leadscore.db                        the SQLite database (default; or any SQLAlchemy URL)
    .leadscore.lock                     held (fcntl) by the one scorer writing the folder

A run: take the lock (a second scorer waits `LEADSCORE_LOCK_WAIT` seconds, then refuses with a message), finish
or undo a run a kill interrupted (`recover`), check every destination (folder writable, free space for the
estimated output, database reachable and writable), write every file into a hidden staging folder, fsync it and
rename it into ``runs/``, swap the database table (the staged rows wait in the open transaction until the files
are staged; a reader holding the table makes the swap wait `LEADSCORE_DB_WAIT` seconds at most, then it fails),
then switch `current` (one atomic rename of a symlink). The run before stays in ``runs/`` (older ones are removed).

A kill before the database swap leaves everything as it was (the staging folder is removed by the next run); a
kill between the swap and the switch leaves ``pending.json``: the next run (under the lock) sees the database
already holds the pending run and switches `current` to it (roll forward), or discards it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipeline.secrets import hide_password, redact

RUNS = "runs"
CURRENT = "current"
PENDING = "pending.json"
MANIFEST = "manifest.json"
LOCK_FILE = ".leadscore.lock"
STAGING_PREFIX = ".staging-"
NOT_LINKED = (MANIFEST, "score_summary.json")  # in the run folder only (the reports folder has the summary)
LOCK_WAIT_ENV, DB_WAIT_ENV = "LEADSCORE_LOCK_WAIT", "LEADSCORE_DB_WAIT"
LOCK_WAIT_S, DB_WAIT_S = 60.0, 30.0
KILL_AT_ENV = "LEADSCORE_TEST_KILL_AT"  # tests: SIGKILL this process at the named checkpoint
BYTES_PER_CELL = 40  # estimate of the written bytes per cell over Parquet, CSV, CRM files and database
SPACE_MARGIN = 1.5


class ExportError(RuntimeError):
    """A destination of the scoring run refused (or another scorer holds the folder); the message says which.
    Nothing a reader sees was changed."""


class OutputFolderError(ExportError):
    """An output folder cannot take the run: not writable, too little free space, or another scorer holds it."""


class DatabaseExportError(ExportError):
    """The database (or the MLflow store) refused the connection or the write."""


class DatabaseBusyError(DatabaseExportError):
    """The database table is held by another connection longer than the bounded wait."""


def wait_seconds(env: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(env, default)))
    except ValueError:
        return default


def checkpoint(name: str) -> None:
    """Tests kill the scorer here (env LEADSCORE_TEST_KILL_AT=<name>): a kill at any point must leave one run."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------------------------ the lock
_held = threading.local()


@contextlib.contextmanager
def scoring_lock(folder: Path | str, wait: float | None = None) -> Iterator[None]:
    """Hold the scored folder's lock (reentrant within a thread). Another holder: poll for `wait` seconds
    (env LEADSCORE_LOCK_WAIT, 60 by default), then raise `ExportError` naming the holder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFolderError(f"{folder}: cannot create the scored folder ({exc.strerror or exc})") from None
    key = str(folder.resolve())
    held = getattr(_held, "folders", None)
    if held is None:
        held = _held.folders = {}
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    wait = wait_seconds(LOCK_WAIT_ENV, LOCK_WAIT_S) if wait is None else wait
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputFolderError(f"{folder}: not writable ({exc.strerror or exc}); nothing was written") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "unknown"
                    raise OutputFolderError(
                        f"{folder}: another scoring is writing this folder ({holder}); waited {wait:.0f} s, "
                        f"nothing was written. Rerun when it has finished ({LOCK_WAIT_ENV} sets the wait)") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                      .encode(), 0)
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- destination checks
def estimate_bytes(n_rows: int, n_columns: int) -> int:
    return int(n_rows * n_columns * BYTES_PER_CELL) + (1 << 20)


def _existing(folder: Path) -> Path:
    """`folder`, or its nearest existing ancestor (where it would be created)."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def check_folder(folder: Path | str, needed_bytes: int = 0) -> None:
    """`folder` (or the ancestor it would be created in: no trace is left) takes a file and has `needed_bytes`
    × 1.5 free."""
    requested = Path(folder)
    folder = _existing(requested)
    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        probe = folder / f".write-check-{uuid.uuid4().hex[:8]}.tmp"
        with open(probe, "wb") as fh:
            fh.write(b"x")
            fh.flush()
            os.fsync(fh.fileno())
        probe.unlink()
    except OSError as exc:
        raise OutputFolderError(f"{requested}: not writable ({exc.strerror or exc}); nothing was written") from None
    if needed_bytes:
        free = shutil.disk_usage(folder).free
        if free < needed_bytes * SPACE_MARGIN:
            raise OutputFolderError(f"{requested}: {free / 1e6:,.0f} MB free, the scoring needs about "
                              f"{needed_bytes * SPACE_MARGIN / 1e6:,.0f} MB; nothing was written")


def sqlite_engine(url: str, wait: float | None = None):
    """An engine whose SQLite connections wait at most `wait` seconds for a lock (busy timeout)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    wait = wait_seconds(DB_WAIT_ENV, DB_WAIT_S) if wait is None else wait
    if make_url(url).get_backend_name() == "sqlite":
        return create_engine(url, connect_args={"timeout": wait})
    return create_engine(url)


def check_database(url: str, wait: float | None = None) -> None:
    """The database answers and lets us create a table (created and dropped in a transaction rolled back)."""
    from sqlalchemy import text

    try:
        engine = sqlite_engine(url, wait)
    except Exception as exc:  # noqa: BLE001 - a malformed URL, an unknown driver
        raise DatabaseExportError(f"database {hide_password(url)}: {redact(_first_line(exc))}; nothing was written") from None
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:" and not Path(database).exists():
        engine.dispose()  # a new SQLite file: connecting would create it; its folder must take it instead
        parent = Path(database).parent
        if not parent.is_dir():
            raise DatabaseExportError(f"database {hide_password(url)}: cannot write (unable to open database file: "
                              f"{parent} does not exist); nothing was written")
        check_folder(parent)
        return
    if engine.dialect.name == "sqlite":
        from pipeline.export import _transactional_ddl

        _transactional_ddl(engine)  # the probe table lives in a transaction that is rolled back, never committed
    probe = f"leadscore_write_check_{uuid.uuid4().hex[:8]}"
    try:
        with engine.connect() as conn:
            trans = conn.begin()
            try:
                conn.execute(text(f'CREATE TABLE "{probe}" (x INTEGER)'))
                conn.execute(text(f'DROP TABLE "{probe}"'))
            finally:
                trans.rollback()
    except Exception as exc:  # noqa: BLE001 - every driver error: name the database, hide the password
        raise DatabaseExportError(f"database {hide_password(url)}: cannot write ({redact(_first_line(exc))}); "
                          "nothing was written") from None
    finally:
        engine.dispose()


def check_mlflow_store(uri: str | None) -> None:
    """The MLflow tracking store answers: a SQLite store is opened and read, a server's /health is asked."""
    if not uri:
        return
    try:
        if uri.startswith("sqlite:"):
            from sqlalchemy import text
            from sqlalchemy.engine import make_url

            database = make_url(uri).database
            if database and not Path(database).exists():
                return  # no store yet: opening it would create one (the model load names what is missing)

            engine = sqlite_engine(uri, wait_seconds(DB_WAIT_ENV, DB_WAIT_S))
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT count(*) FROM sqlite_master")).all()
            finally:
                engine.dispose()
        elif uri.startswith(("http://", "https://")):
            import base64
            import urllib.parse
            import urllib.request

            parts = urllib.parse.urlsplit(uri)
            bare = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
            request = urllib.request.Request(urllib.parse.urlunsplit(bare).rstrip("/") + "/health")
            if parts.username:
                token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the user's own store
                pass
    except Exception as exc:  # noqa: BLE001
        raise DatabaseExportError(f"MLflow store {hide_password(uri)}: not reachable ({redact(_first_line(exc))}); "
                          "nothing was written") from None


def check_destinations(out_dir: Path | str, database_url: str | None, reports_dir: Path | str | None = None,
                       mlflow_uri: str | None = None, needed_bytes: int = 0) -> None:
    """Every destination of a scoring run, before any work: the folders, the database, the MLflow store."""
    check_folder(out_dir, needed_bytes)
    if reports_dir is not None:
        check_folder(reports_dir)
    default = Path(out_dir) / "leadscore.db"
    if database_url or default.exists():  # the default SQLite file is created in the scored folder checked above
        check_database(database_url or default_database_url(out_dir))
    check_mlflow_store(mlflow_uri)


def default_database_url(out_dir: Path | str) -> str:
    return f"sqlite:///{(Path(out_dir) / 'leadscore.db').resolve()}"


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy: the driver's own message, without the SQL and the link
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------- the run folder
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file and folder below `root` (and `root`) on disk."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


class ScoringRun:
    """One run's folder: staged hidden, sealed (fsync, manifest, rename into runs/), switched to by `current`."""

    def __init__(self, out_dir: Path | str, scoring_run_id: str):
        self.out_dir = Path(out_dir)
        self.runs = self.out_dir / RUNS
        self.scoring_run_id = str(scoring_run_id)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.scoring_run_id)[:64] or "run"
        self.name = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{safe}"
        while (self.runs / self.name).exists():
            self.name += "x"
        self.staging = self.runs / f"{STAGING_PREFIX}{self.name}-{uuid.uuid4().hex[:6]}"
        self.staging.mkdir(parents=True)
        self.folder = self.runs / self.name
        self.sealed = False

    def seal(self, extra: dict | None = None) -> None:
        manifest = {"scoring_run_id": self.scoring_run_id, "folder": f"{RUNS}/{self.name}",
                    "sealed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "files": sorted(str(p.relative_to(self.staging)) for p in self.staging.rglob("*") if p.is_file()),
                    **(extra or {})}
        (self.staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        fsync_tree(self.staging)
        os.rename(self.staging, self.folder)
        _fsync(self.runs)
        self.sealed = True

    def mark_pending(self) -> None:
        """Written before the database swap: a kill after it tells the next run what to finish."""
        _write_small(self.out_dir / PENDING, {"scoring_run_id": self.scoring_run_id, "folder": f"{RUNS}/{self.name}"})

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self.sealed and current_folder(self.out_dir) != self.folder.resolve():
            shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            if json.loads((self.out_dir / PENDING).read_text()).get("folder") == f"{RUNS}/{self.name}":
                (self.out_dir / PENDING).unlink()

    def switch(self) -> None:
        switch_to(self.out_dir, self.folder)


def _write_small(target: Path, data: dict) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:6]}.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    _fsync(target.parent)


def current_folder(out_dir: Path | str) -> Path | None:
    link = Path(out_dir) / CURRENT
    return link.resolve() if link.is_symlink() and link.exists() else None


def _symlink_over(target: str, path: Path) -> None:
    """`path` becomes a symlink to `target` in one rename (readers see the old entry or the new, never none)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def switch_to(out_dir: Path | str, folder: Path) -> None:
    """Point `current` at `folder`, the top-level names through it; keep the previous run, remove older ones."""
    out_dir = Path(out_dir)
    previous = current_folder(out_dir)
    if previous is None:
        previous = _adopt_legacy(out_dir, folder)
    names = [p.name for p in folder.iterdir() if p.name not in NOT_LINKED]
    for name in names:  # the top-level names first: they resolve through `current`, so nothing changes yet
        entry = out_dir / name
        if not (entry.is_symlink() and os.readlink(entry) == f"{CURRENT}/{name}"):
            _symlink_over(f"{CURRENT}/{name}", entry)
    checkpoint("switch")
    _symlink_over(os.path.relpath(folder, out_dir), out_dir / CURRENT)  # THE switch
    _fsync(out_dir)
    checkpoint("switched")
    for entry in out_dir.iterdir():  # names the new run does not have (a changes.csv, a shadow file)
        if entry.is_symlink() and os.readlink(entry).startswith(f"{CURRENT}/") and not entry.exists():
            entry.unlink()
    with contextlib.suppress(FileNotFoundError):
        (out_dir / PENDING).unlink()
    keep = {folder.resolve(), *([previous.resolve()] if previous is not None else [])}
    for run in (out_dir / RUNS).iterdir():
        if run.is_dir() and not run.name.startswith(".") and run.resolve() not in keep:
            shutil.rmtree(run, ignore_errors=True)


def _adopt_legacy(out_dir: Path, folder: Path) -> Path | None:
    """The first transactional run over a folder written by an older version: its top-level files become the
    previous run (``runs/<time>-previous``), so that run is kept as any other."""
    legacy = [p for p in out_dir.iterdir() if not p.is_symlink() and p.name in {q.name for q in folder.iterdir()}]
    if not legacy:
        return None
    target = out_dir / RUNS / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-previous"
    target.mkdir(parents=True, exist_ok=True)
    for entry in legacy:
        if entry.is_dir():
            os.rename(entry, target / entry.name)  # a folder cannot be replaced by a symlink in one rename
        else:
            os.link(entry, target / entry.name)  # replaced by its symlink in switch_to
    return target


def is_sqlite_file(database: str | None) -> bool:
    """`database` (an SQLite URL's database part) is a file on disk: not empty, in memory or a `file:` URI."""
    return bool(database) and database != ":memory:" and not database.startswith("file:")


def rows_file_pattern(database: str | Path) -> str:
    """The glob of the rows files (`pipeline.export.rows_file`) beside the SQLite file `database`: a writer
    removes its own; one killed leaves it, and `recover` removes it."""
    return f".{Path(database).name}.rows-*.tmp"


def recover(out_dir: Path | str, database_url: str | None, table: str = "sql_leads") -> str | None:
    """Under the lock: finish or undo what a killed run left. Returns what was done (None: nothing to do).

    ``pending.json`` (a kill between the database swap and the switch): when the database holds the pending
    run, `current` is switched to it (roll forward); otherwise the pending folder is removed. Staging folders and
    temporary files of killed writers are removed."""
    out_dir = Path(out_dir)
    done = None
    pending_file = out_dir / PENDING
    if pending_file.exists():
        try:
            pending = json.loads(pending_file.read_text())
            folder = out_dir / pending["folder"]
        except (ValueError, KeyError, OSError):
            pending, folder = {}, None
        in_db = folder is not None and folder.is_dir() and \
            database_run_id(database_url or default_database_url(out_dir), table) == pending.get("scoring_run_id")
        if in_db:
            switch_to(out_dir, folder)
            done = f"rolled forward to {pending['folder']} (the database already held it)"
        else:
            if folder is not None and folder.is_dir() and folder.resolve() != current_folder(out_dir):
                shutil.rmtree(folder, ignore_errors=True)
            pending_file.unlink(missing_ok=True)
            done = f"discarded the unfinished run {pending.get('folder')}"
    runs = out_dir / RUNS
    if runs.is_dir():
        for stale in runs.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
    rows_files = _rows_files(database_url or default_database_url(out_dir))
    for stale in out_dir.glob(".*.tmp"):
        if stale not in rows_files:  # a rows file may be another scored folder's writer's, at work
            with contextlib.suppress(OSError):
                stale.unlink()
    for stale in rows_files:
        remove_unless_held(stale)
    return done


def _rows_files(url: str) -> set[Path]:
    database = sqlite_file(url)
    return set() if database is None else set(Path(database).parent.glob(rows_file_pattern(database)))


def hold(path: Path) -> int:
    """Create `path` and hold it (an exclusive flock, released when the returned descriptor is closed), so that
    `remove_unless_held` leaves it to its writer."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def remove_unless_held(path: Path) -> bool:
    """Remove `path` unless a live writer holds it (`hold`). True when it was removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    try:
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def sqlite_file(url: str) -> str | None:
    """The file of an SQLite URL (None: another database, in memory, or a malformed URL)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        return None
    database = parsed.database
    return database if parsed.get_backend_name() == "sqlite" and is_sqlite_file(database) else None


def database_run_id(url: str, table: str = "sql_leads") -> str | None:
    """The scoring_run_id of the table in the database (None: no table, no rows, or no database)."""
    from sqlalchemy import inspect, text

    try:
        engine = sqlite_engine(url)
    except Exception:  # noqa: BLE001
        return None
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(table):
                return None
            row = conn.execute(text(f'SELECT scoring_run_id FROM "{table}" LIMIT 1')).first()
            return None if row is None else str(row[0])
    except Exception:  # noqa: BLE001 - an unreadable database: nothing to roll forward to
        return None
    finally:
        engine.dispose()
