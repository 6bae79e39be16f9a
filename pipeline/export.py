"""Exports of the scored table: the versioned `sql_leads` table in a SQL database (atomic swap), Parquet, CSV,
CRM import files (Salesforce, HubSpot), per-rep queues and the change report."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from models.assignment import queue_file_stem
from models.decision import (  # noqa: F401 - the schema is the score core's
    OUTPUT_COLUMNS,
    SCHEMA_VERSION,
    SQL_LEADS_SCHEMA,
    first_match,
)

# The one CSV writer (formulas neutralised, CR/LF fields quoted) and its rule: pipeline/io.py. A cell that is only
# a number in any of its written forms (a phone +49 30 123456, -12.5, (555) 123-4567) cannot run anything and is
# matched on by the CRM: it keeps its + or - (no quote that would break the match).
from pipeline.io import (  # noqa: F401
    FORMULA_PREFIXES,
    PLAIN_NUMBER,
    FastCsv,
    _Unsupported,
    coded_text,
    csv_text,
    neutralise_formulas,
    rows_with,
    write_atomic,
    write_csv,
    write_csv_files,
    write_parquet,
)

SALESFORCE_FIELDS = {  # our column -> Salesforce field API name (custom fields end in __c)
    "lead_id": "Id", "first_name": "FirstName", "last_name": "LastName", "company": "Company", "job_title": "Title",
    "email": "Email", "phone": "Phone", "lead_source": "Leadscore_Lead_Source__c", "score": "Lead_Score__c", "tier": "Lead_Tier__c", "status": "SQL_Status__c",
    "p_convert": "Conversion_Probability__c", "expected_value": "Expected_Value__c",
    "status_reason": "Status_Reason__c", "reasons_for": "Score_Reasons_For__c",
    "reasons_against": "Score_Reasons_Against__c", "assigned_rep": "Assigned_Rep__c",
    "queue_position": "Rep_Queue_Position__c", "fit_score": "Fit_Score__c", "engagement_score": "Engagement_Score__c",
    "scoring_run_id": "Scoring_Run_Id__c", "model_version": "Model_Version__c", "scored_at": "Scored_At__c",
}
HUBSPOT_PROPERTIES = {  # our column -> HubSpot contact property internal name
    "lead_id": "Record ID", "first_name": "firstname", "last_name": "lastname", "company": "company",
    "job_title": "jobtitle", "email": "email", "phone": "phone", "lead_source": "leadscore_lead_source",
    "score": "leadscore_score", "tier": "leadscore_tier", "status": "leadscore_status",
    "p_convert": "leadscore_probability", "expected_value": "leadscore_expected_value",
    "status_reason": "leadscore_status_reason", "reasons_for": "leadscore_reasons_for",
    "reasons_against": "leadscore_reasons_against", "assigned_rep": "leadscore_assigned_rep",
    "queue_position": "leadscore_queue_position", "fit_score": "leadscore_fit_score",
    "engagement_score": "leadscore_engagement_score", "scoring_run_id": "leadscore_scoring_run_id",
    "model_version": "leadscore_model_version", "scored_at": "leadscore_scored_at",
}
# Who to call and how: the lead's contact fields (from the export, `contact_table`), never in sql_leads itself.
CONTACT_FIELDS = ("first_name", "last_name", "company", "job_title", "email", "phone", "lead_source")
OWNER_FIELDS = {"salesforce": "OwnerId", "hubspot": "hubspot_owner_id"}  # the rep's CRM user id (params crm_ids)
GATES = "<gates>"  # stands for the table's gate_<name> columns in the lists below
QUEUE_COLUMNS = ("queue_position", "lead_id", "first_name", "last_name", "company", "job_title", "email", "phone",
                 "lead_source", "account_id", "rank", "tier", "score", "p_convert", "expected_value", "territory",
                 "reasons_for", "reasons_against", GATES, "scoring_run_id", "model_version")
CALL_QUEUE_COLUMNS = ("call_queue_position", "lead_id", "first_name", "last_name", "company", "job_title", "email",
                      "phone", "lead_source", "account_id", "rank", "tier", "score", "p_convert", "expected_value",
                      "status_reason", GATES, "reasons_for", "reasons_against", "scoring_run_id", "model_version")


def _columns(df: pd.DataFrame, wanted: tuple[str, ...]) -> list[str]:
    gates = [c for c in df.columns if c.startswith("gate_")]
    return [c for w in wanted for c in (gates if w == GATES else [w]) if c in df.columns]


def crm_mapping(base: dict[str, str], df: pd.DataFrame, crm: str) -> dict[str, str]:
    """The CRM's field names for the table's columns: the fixed ones, one per gate, and the owner's user id."""
    gates = {c: (f"BANT_{c.removeprefix('gate_').title()}_Gate__c" if crm == "salesforce" else f"leadscore_{c}")
             for c in df.columns if c.startswith("gate_")}
    return {**base, **gates, f"owner_user_id_{crm}": OWNER_FIELDS[crm]}


class SchemaError(ValueError):
    """The table to export does not match the documented sql_leads schema."""


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """The table in schema order; a documented column missing or an undocumented one present is an error."""
    gate_cols = [c for c in df.columns if c.startswith("gate_")]
    fixed = [c for c in OUTPUT_COLUMNS if c != "gate_<name>"]
    missing = [c for c in fixed if c not in df.columns]
    extra = [c for c in df.columns if c not in fixed and c not in gate_cols]
    if missing or extra:
        raise SchemaError(f"sql_leads schema v{SCHEMA_VERSION}: missing column(s) {missing}, undocumented column(s) "
                          f"{extra}")
    order = []
    for c in OUTPUT_COLUMNS:
        order.extend(gate_cols if c == "gate_<name>" else [c])
    return df[order]


def write_sql_table(df: pd.DataFrame, url: str, table: str = "sql_leads",
                    before_swap: Callable[[], None] | None = None, wait: float | None = None) -> None:
    """Replace `table` in one transaction: readers see the old table or the new one, never half of it.

    The new rows go to a staging table and are swapped in by DROP + RENAME inside the same transaction, so a
    writer killed at any point leaves the previous table as it was. `before_swap` runs after the rows are staged
    and before the swap is committed (tests kill the writer there; `export_all` waits there until the files are
    staged): on SQLite after the DROP + RENAME of the open transaction, on other databases before them.

    A reader holding the table (an open read transaction) makes the swap wait `wait` seconds at most (env
    LEADSCORE_DB_WAIT, 30 by default: SQLite's busy timeout, PostgreSQL's lock_timeout); then it fails with
    `DatabaseBusyError` and the previous table stays as it was.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from pipeline.secrets import hide_password
    from pipeline.transaction import DB_WAIT_ENV, DB_WAIT_S, DatabaseBusyError, sqlite_engine, wait_seconds

    wait = wait_seconds(DB_WAIT_ENV, DB_WAIT_S) if wait is None else wait
    engine = sqlite_engine(url, wait)
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    staging = f"{table}__staging_{uuid.uuid4().hex[:8]}"
    synced = None
    # SQLite: the rows are bound in C into a file of their own, outside the transaction; the transaction copies them
    try:
        with rows_file(df, engine.url.database if engine.dialect.name == "sqlite" else None) as rows, \
                engine.connect() as conn:
            if rows is not None:  # on the driver's connection: ATTACH is refused inside a transaction
                conn.connection.driver_connection.execute(f"ATTACH DATABASE ? AS {ROWS_SCHEMA}", (str(rows),))
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text(f"SET LOCAL lock_timeout = '{int(wait * 1000)}ms'"))
                if engine.dialect.name == "sqlite":
                    _sqlite_insert(df, conn, staging, from_rows_file=rows is not None)
                    # the swap is staged too, so the caller's wait covers the DROP (2 s for 820k rows). No reader
                    # sees it before COMMIT, and readers are held off since the insert anyway: SQLite's writer
                    # holds the file's exclusive lock from the first page it writes to it.
                    _swap(conn, staging, table)
                    synced = _flush_ahead(engine.url.database)
                else:
                    df.to_sql(staging, conn, if_exists="fail", index=False, chunksize=50_000)
                if before_swap is not None:
                    before_swap()
                if engine.dialect.name != "sqlite":  # PostgreSQL's DROP locks readers out: only now
                    _swap(conn, staging, table)
            if rows is not None:
                conn.connection.driver_connection.execute(f"DETACH DATABASE {ROWS_SCHEMA}")
    except OperationalError as exc:
        message = str(getattr(exc, "orig", exc)).lower()
        if "locked" in message or "lock timeout" in message or "busy" in message:
            raise DatabaseBusyError(
                f"database {hide_password(url)}: table {table!r} is held by another connection (a reader's open "
                f"transaction?); waited {wait:.0f} s and gave up, the previous table is unchanged "
                "(LEADSCORE_DB_WAIT sets the wait)") from None
        raise
    finally:
        engine.dispose()
        if synced is not None:  # only now: closing any descriptor of the file drops this process's SQLite locks
            os.close(synced)


def _flush_ahead(database: str | None) -> int | None:
    """fsync the SQLite file's pages written so far (the staged rows), while the transaction is still open and
    its writer waits for the files: the COMMIT then syncs only its last pages. Returns the descriptor, to be
    closed after SQLite's connection is (POSIX locks are per process and file: closing it earlier would drop
    SQLite's); None for an in-memory database or a file that cannot be opened."""
    from pipeline.transaction import is_sqlite_file

    if not is_sqlite_file(database):
        return None
    try:
        fd = os.open(database, os.O_RDONLY)
    except OSError:
        return None
    with contextlib.suppress(OSError):
        os.fsync(fd)
    return fd


def _swap(conn, staging: str, table: str) -> None:
    from sqlalchemy import inspect, text

    if inspect(conn).has_table(table):
        conn.execute(text(f'DROP TABLE "{table}"'))
    conn.execute(text(f'ALTER TABLE "{staging}" RENAME TO "{table}"'))


# SQLAlchemy's SQLite DATETIME storage format: what the generic to_sql path stored, kept byte for byte.
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


SQLITE_INSERT_ROWS = 50_000  # rows bound per executemany: the Python values of one batch only are held
SQLITE_ROWS_PER_STATEMENT = 40
SQLITE_MAX_PARAMETERS = 999  # SQLite's bound-parameter limit before 3.32 (32,766 since)


# The rows file: the table's rows bound by ADBC's SQLite driver (C, from Arrow columns) into a private SQLite file
# beside the database, attached to the writer's connection and copied into the staging table by one INSERT ... SELECT
# inside the transaction. At 820k rows x 31 columns: 4 s + 1.7 s, against 9.1 s for binding the same values from
# Python (sqlite3). Never opened by both SQLite libraries at once: ADBC writes and closes it before sqlite3 attaches it.
ROWS_SCHEMA = "leadscore_rows"
ROWS_TABLE = "rows"
ROWS_FILE_MIN_ROWS = 10_000  # below this, binding from Python is as quick and needs no second file


def binds_in_c(n_rows: int, url: str) -> bool:
    """Whether `write_sql_table` will have ADBC bind `n_rows` rows for the database at `url` (`rows_file`)."""
    from pipeline.transaction import sqlite_file

    return _adbc_binds(n_rows, sqlite_file(url))


def _adbc_binds(n_rows: int, database: str | None) -> bool:
    """The rows file's condition: an SQLite file (`database`, a URL's database part), `ROWS_FILE_MIN_ROWS` rows or
    more, the ADBC SQLite driver installed."""
    import importlib.util

    from pipeline.transaction import is_sqlite_file

    return (n_rows >= ROWS_FILE_MIN_ROWS and is_sqlite_file(database)
            and importlib.util.find_spec("adbc_driver_sqlite") is not None)


@contextlib.contextmanager
def rows_file(df: pd.DataFrame, database: str | None) -> Iterator[Path | None]:
    """The rows of `df` written into a new SQLite file beside `database` (as `arrow_rows` gives them), held and
    removed on exit; None (the caller binds the rows itself) for a small table, an in-memory database, a column
    `arrow_rows` cannot carry, or without the ADBC SQLite driver. A failed write (a full disk) leaves no file and
    gives None too: the Python binder then stores the same values, or reports the error itself."""
    from pipeline.transaction import hold, rows_file_pattern

    rows = None
    if _adbc_binds(len(df), database):
        import adbc_driver_sqlite.dbapi as adbc

        rows = arrow_rows(df)
    if rows is None:
        yield None
        return
    path = Path(database).parent / rows_file_pattern(database).replace("*", uuid.uuid4().hex[:12])
    held = hold(path)  # a killed writer's file is removed by the next scoring's `recover`, a live one's never
    try:
        written = _write_rows(adbc, rows, path)
        yield path if written else None
    finally:
        path.unlink(missing_ok=True)
        os.close(held)


def _write_rows(adbc, rows, path: Path) -> bool:
    try:
        with adbc.connect(str(path), autocommit=True) as conn:
            cursor = conn.cursor()
            try:
                for pragma in ("journal_mode = OFF", "synchronous = OFF"):  # a scratch file: no crash safety needed
                    cursor.execute(f"PRAGMA {pragma}")
                    cursor.fetchall()
                cursor.adbc_ingest(ROWS_TABLE, rows, mode="create")
            finally:
                cursor.close()
    except Exception:  # noqa: BLE001 - a failed fast path: the Python binder writes the same rows
        return False
    return True


def arrow_rows(df: pd.DataFrame):
    """`df` as an Arrow table (columns c0, c1, ...) whose values, bound to SQLite, store exactly what pandas'
    to_sql stores for `df` through sqlite3: missing values (NaN, NA, NaT) as NULL, booleans as 0 / 1, datetimes as
    SQLAlchemy's SQLite DATETIME text; None when a column is of another kind (object columns of mixed types,
    categoricals, unsigned integers past int64, time spans)."""
    import pyarrow as pa

    arrays = []
    for _, ser in df.items():
        array = _arrow_column(ser)
        if array is None:
            return None
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])


def _arrow_column(ser: pd.Series):
    import pyarrow as pa

    values = ser.array
    dtype = ser.dtype
    if dtype.kind == "M" and isinstance(values, pd.arrays.DatetimeArray):
        codes, uniques = _datetime_texts(values)
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32(), mask=codes < 0),
                                              pa.array(uniques, pa.string())).dictionary_decode()
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f":
            return pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)  # NaN -> null
        if dtype.kind == "b":
            return pa.array(np.asarray(values), pa.bool_())
        if dtype.kind in "iu":
            arr = np.asarray(values)
            if dtype.kind == "u" and len(arr) and arr.max() >= 2 ** 63:
                return None
            return pa.array(arr.astype(np.int64, copy=False))
        if dtype.kind == "O":
            try:
                return pa.array(values, pa.string(), from_pandas=True)  # text only (NaN / None -> null)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return None
        return None
    if isinstance(values, pd.arrays.IntegerArray):
        return pa.array(values._data.astype(np.int64, copy=False), mask=values._mask)
    if isinstance(values, pd.arrays.BooleanArray):
        return pa.array(values._data, pa.bool_(), mask=values._mask)
    if isinstance(dtype, pd.StringDtype) or (isinstance(values, pd.arrays.ArrowExtensionArray)
                                             and pa.types.is_string(values.dtype.pyarrow_dtype)):
        array = pa.array(values)
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        return array if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) else None
    return None


def _sqlite_insert(df: pd.DataFrame, conn, table: str, from_rows_file: bool = False) -> None:
    """Create `table` as pandas' to_sql creates it (same DDL) and insert the rows inside the open transaction:
    `from_rows_file`, copied from the attached rows file (`rows_file`); otherwise with sqlite3 executemany,
    batch by batch.

    pandas' generic insert converts the whole table to Python objects through SQLAlchemy's compiled statements
    (most of the export time at a million rows); this binds the same values straight to sqlite3: NaN / NA ->
    NULL, numpy scalars -> Python int / float / bool, datetimes as SQLAlchemy's SQLite DATETIME text. The stored
    rows are identical to the generic path's (tests/model/test_large_data.py)."""
    from pandas.io.sql import SQLDatabase

    SQLDatabase(conn).prep_table(frame=df, name=table, if_exists="fail", index=False)
    keys = [str(c) for c in df.columns]
    names = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
    if from_rows_file:
        copied = ", ".join(f"c{i}" for i in range(len(keys)))
        conn.exec_driver_sql(f'INSERT INTO "{table.replace(chr(34), chr(34) * 2)}" ({names}) '
                             f"SELECT {copied} FROM {ROWS_SCHEMA}.{ROWS_TABLE} ORDER BY rowid")
        return
    prepared = [_sqlite_column(ser) for _, ser in df.items()]
    # a column with one value on every row (run id, model version, as-of, schema version) is written as a literal of
    # the statement: the same stored value, without binding it 820k times
    marks = "(" + ", ".join(values if isinstance(values, str) else "?" for values in prepared) + ")"
    bound = [values for values in prepared if not isinstance(values, str)]
    into = f'INSERT INTO "{table.replace(chr(34), chr(34) * 2)}" ({names}) VALUES '
    # several rows per statement (one VALUES list of `per` rows): a third less time than one row per statement;
    # within SQLite's oldest bound-parameter limit (999)
    per = max(1, min(SQLITE_ROWS_PER_STATEMENT, SQLITE_MAX_PARAMETERS // max(len(bound), 1)))
    width = len(bound)
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(df), SQLITE_INSERT_ROWS):
            stop = min(start + SQLITE_INSERT_ROWS, len(df))
            if not bound:
                cursor.executemany(into + marks, [()] * (stop - start))
                continue
            flat: list = [None] * ((stop - start) * width)  # row-major: row i's values at [i * width, (i+1) * width)
            for j, values in enumerate(bound):
                flat[j::width] = values(start, stop)
            whole = (stop - start) // per * per
            if whole:
                step = per * width
                cursor.executemany(into + ", ".join([marks] * per),
                                   (flat[i:i + step] for i in range(0, whole * width, step)))
            if whole < stop - start:
                cursor.executemany(into + marks,
                                   (flat[i:i + width] for i in range(whole * width, len(flat), width)))
    finally:
        cursor.close()


def _datetime_texts(values) -> tuple[np.ndarray, list[str]]:
    """(code per row, -1 for NaT; the distinct datetimes as SQLAlchemy's SQLite DATETIME text): a scoring has one
    or two distinct timestamps, formatted once each."""
    codes, uniques = pd.factorize(values)
    return codes, [u.strftime(SQLITE_DATETIME_FORMAT) for u in uniques]


def _sql_literal(value) -> str | None:
    """`value` as an SQLite literal storing exactly what binding it stores (text, integer), else None."""
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value)) if -(2 ** 63) <= int(value) < 2 ** 63 else None
    if isinstance(value, str) and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def _sqlite_column(ser: pd.Series) -> Callable[[int, int], list] | str:
    """The column's values for sqlite3 as pandas' to_sql binds them, per slice of rows: a function (start, stop)
    -> list of Python values (None for missing); or, for a column of one text / integer value, its SQL literal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = ser.array
    dtype = ser.dtype
    if ser.dtype.kind == "M" and isinstance(values, pd.arrays.DatetimeArray):
        codes, uniques = _datetime_texts(values)
        text = np.array([*uniques, None], dtype=object)
        codes = np.where(codes < 0, len(uniques), codes)
        if len(uniques) == 1 and (codes == 0).all() and _sql_literal(text[0]) is not None:
            return _sql_literal(text[0])
        return lambda a, b: text[codes[a:b]].tolist()
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        arr = np.asarray(values)
        return _with_nulls(arr, np.isnan(arr))
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        arr = np.asarray(values)
        if len(arr) and (arr == arr[0]).all():
            return _sql_literal(arr[0].item())
        return lambda a, b: arr[a:b].tolist()
    if isinstance(dtype, pd.StringDtype) or (isinstance(values, pd.arrays.ArrowExtensionArray)
                                             and pa.types.is_string(values.dtype.pyarrow_dtype)):
        arrow = pa.array(values)
        arrow = arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow
        if len(arrow) and not arrow.null_count and pc.count_distinct(arrow).as_py() == 1:
            literal = _sql_literal(arrow[0].as_py())
            if literal is not None:
                return literal
        coded = coded_text(arrow, SQLITE_INSERT_ROWS)
        if coded is not None:  # few distinct values: one Python str each, shared by the rows
            distinct = np.array([*coded[0].to_pylist(), None], dtype=object)
            return lambda a, b: distinct[coded[1][a:b]].tolist()
        return lambda a, b: arrow.slice(a, b - a).to_pylist()
    if isinstance(values, pd.arrays.IntegerArray | pd.arrays.BooleanArray):
        return _with_nulls(values._data, values._mask)

    def generic(a: int, b: int) -> list:  # pandas' own conversion (SQLTable.insert_data)
        d = ser.iloc[a:b]._values.astype(object)
        d = np.asarray(d, dtype=object)
        if ser._can_hold_na:
            d[pd.isna(d)] = None
        return d.tolist()

    return generic


def _with_nulls(data: np.ndarray, missing: np.ndarray) -> Callable[[int, int], list]:
    """(start, stop) -> the Python values of `data` in those rows, None where `missing`."""
    def values(a: int, b: int) -> list:
        out = data[a:b].tolist()
        for i in np.flatnonzero(missing[a:b]).tolist():
            out[i] = None
        return out

    return values


def _transactional_ddl(engine) -> None:
    """Make SQLite's CREATE / DROP / ALTER part of the transaction.

    Python's sqlite3 driver commits before DDL on its own, which would make the swap non-atomic (a kill between
    DROP and RENAME would lose the table). SQLAlchemy's documented remedy: let the driver do nothing and emit
    BEGIN ourselves.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN")


OPTIONAL_SUBSCORES = ("fit_score", "engagement_score")  # null when the export lacks their inputs (flat exports)


def crm_columns(df: pd.DataFrame, mapping: dict[str, str]) -> list[str]:
    """The columns of `mapping` the table has; a sub-score that is null on every row (the export has none of its
    inputs) is left out, so that an import never writes an empty score into the CRM field."""
    return [c for c in mapping if c in df.columns and not (c in OPTIONAL_SUBSCORES and df[c].isna().all())]


def crm_file(df: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """The columns of `mapping` renamed to the CRM's field names (rows with a lead id only)."""
    cols = crm_columns(df, mapping)
    return df.loc[df["lead_id"].notna(), cols].rename(columns=mapping)


OWNER_PREFIX = "owner_user_id_"  # with_contacts' per-CRM owner columns: the one column the CRM files differ in


def write_crm_files(df: pd.DataFrame, files: dict[str, tuple[dict[str, str], Path]],
                    table_csv: tuple[Path, list[str]] | None = None) -> dict[str, str]:
    """Each CRM import file, written atomically. Salesforce and HubSpot take the same columns under other names,
    except the owner's user id: the files are rendered together (`pipeline.io.write_csv_files`: a column they
    share is rendered once; the rows are the cost, 820k of them at a million leads), each file byte for byte
    what rendering its shared columns and appending its owner column to every line wrote before.

    `table_csv` (target, columns): the table's own CSV (`write_csv(df[columns])`), rendered in the same pass when
    every row has a lead id (its columns are mostly the CRM files' ones); its path under the key ``csv``.
    """
    rows = df.loc[df["lead_id"].notna()]
    fast = FastCsv.of(rows)
    specs = crm_specs(rows, files, fast)
    wanted = {target: spec for target, spec in specs.values()}
    together = table_csv is not None and len(rows) == len(df)
    if together:
        wanted[Path(table_csv[0])] = (list(table_csv[1]), None)
    written = write_csv_files(rows, wanted, fast=fast)
    paths = {key: str(written[target]) for key, (target, _) in specs.items()}
    if table_csv is not None:
        paths["csv"] = str(written[Path(table_csv[0])] if together else write_csv(df[list(table_csv[1])],
                                                                                  table_csv[0]))
    return paths


def crm_specs(rows: pd.DataFrame, files: dict[str, tuple[dict[str, str], Path]],
              fast: FastCsv | None) -> dict[str, tuple[Path, tuple]]:
    """key -> (target, `write_csv_files` spec) of each CRM file: its columns (the shared ones, then the owner's
    user id), their CRM names, the owner id column rendered on its own, and the chunking of the old writer."""
    out = {}
    for key, (mapping, target) in files.items():
        cols = crm_columns(rows, mapping)
        owner = [c for c in cols if c.startswith(OWNER_PREFIX)]
        common = [c for c in cols if c not in owner]
        ordered = [*common, *owner]
        # a text cell holding LF: the lines of the shared columns and of the owner id did not pair up, so the old
        # writer rendered the file's columns together (pandas' chunks of the whole file, no lone owner column)
        try:
            broken = any(fast.rows_holding([c], "\n").any() for c in ordered) if fast is not None else \
                rows_with(rows[ordered], "\n").any()
        except _Unsupported:
            broken = rows_with(rows[ordered], "\n").any()
        alone = tuple(owner) if len(owner) == 1 and not broken else ()
        out[key] = (Path(target), (ordered, [mapping[c] for c in ordered], alone,
                                   len(ordered) if broken else len(common)))
    return out


def _slug(name: str) -> str:
    return queue_file_stem(name)


def rep_queues(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One queue per assigned rep, in call order."""
    if "assigned_rep" not in df:
        return {}
    handed = df[df["assigned_rep"].notna()]
    cols = _columns(handed, QUEUE_COLUMNS)
    return {str(rep): part.sort_values("queue_position")[cols].reset_index(drop=True)
            for rep, part in handed.groupby("assigned_rep", sort=True)}


def contact_table(leads: pd.DataFrame | None, accounts: pd.DataFrame | None,
                  lead_ids: pd.Series | None = None) -> pd.DataFrame | None:
    """Lead id + the `CONTACT_FIELDS` the export has (the company's name from its account). With `lead_ids` (the
    scored table's), one row per id in their order, each the id's first lead row (fields missing for an id without
    one): `with_contacts` then takes the fields as they are, and only the scored leads are looked up (820k of a
    million: the account lookup and the copies shrink with them, the second id lookup goes)."""
    if leads is None or "lead_id" not in leads:
        return None
    fields = ["lead_id", *[c for c in CONTACT_FIELDS if c in leads.columns]]
    if lead_ids is None:
        out = leads[fields].copy()
        ids_to_accounts = leads.get("account_id")
    else:
        where = first_match(lead_ids, leads["lead_id"])
        out = pd.DataFrame({c: leads[c].array.take(where, allow_fill=True) for c in fields[1:]})
        out.insert(0, "lead_id", lead_ids.array)
        ids_to_accounts = pd.Series(leads["account_id"].array.take(where, allow_fill=True)) \
            if "account_id" in leads else None
    if accounts is not None and {"account_id", "company_name"} <= set(accounts.columns) and ids_to_accounts is not None:
        if isinstance(ids_to_accounts.dtype, pd.StringDtype) and \
                isinstance(accounts["account_id"].dtype, pd.StringDtype):  # text ids: one hash lookup in Arrow
            found = first_match(ids_to_accounts, accounts["account_id"])
            out["company"] = accounts["company_name"].array.take(found, allow_fill=True)
        else:
            names = accounts.drop_duplicates("account_id").set_index("account_id")["company_name"]
            out["company"] = names.reindex(ids_to_accounts.to_numpy()).to_numpy()
    return out


def owner_ids(assignment) -> dict[str, dict[str, str]]:
    """CRM -> rep name -> the rep's user id there, from `score.assignment` (reps' `crm_ids`)."""
    from models.assignment import CRMS, parse_assignment

    policy = parse_assignment(assignment)
    return {crm: policy.owner_ids(crm) for crm in CRMS}


def with_contacts(df: pd.DataFrame, contacts: pd.DataFrame | None,
                  owners: dict[str, dict[str, str]] | None = None) -> pd.DataFrame:
    """The scored rows with what a rep needs to act: the lead's contact fields (`contacts`, by lead id) and, per
    CRM, the assigned rep's user id there (`owners`: CRM -> rep name -> id; column ``owner_user_id_<crm>``)."""
    out = df
    if contacts is not None and len(contacts):
        fields = [c for c in CONTACT_FIELDS if c in contacts.columns and c not in df.columns]
        if fields and _aligned(df["lead_id"], contacts["lead_id"]):  # `contact_table` of these ids: row for row
            out = out.assign(**{c: contacts[c].array for c in fields})
        elif fields:
            where = first_match(df["lead_id"], contacts["lead_id"])  # each row's contact (the first), -1: none
            out = out.assign(**{c: contacts[c].array.take(where, allow_fill=True) for c in fields})
    for crm, ids in (owners or {}).items():
        if ids:
            reps = df["assigned_rep"]
            codes, names = pd.factorize(reps)  # a handful of reps: map the names, not the 820k rows
            mapped = pd.array([ids.get(n, pd.NA) for n in names] + [pd.NA], dtype="string")
            out = out.assign(**{f"owner_user_id_{crm}": mapped.take(np.where(codes < 0, len(names), codes))})
    return out


def _aligned(ids: pd.Series, other: pd.Series) -> bool:
    """Whether `other` holds `ids` row for row (same values and dtype; missing matches missing)."""
    return len(ids) == len(other) and ids.reset_index(drop=True).equals(other.reset_index(drop=True))


class SqlWriter:
    """Writes the scoring's SQL table beside the files: the rows are staged at once, the table is swapped only when
    `finish(swap=True)` says the files are staged, and `finish(swap=False)` rolls it back (`write_sql_table`).

    When the rows are bound from Python (PostgreSQL; SQLite below `ROWS_FILE_MIN_ROWS` or without ADBC), on Linux
    the writer is a forked child process, so converting rows to Python values (seconds of CPU that hold the GIL at
    820k rows) runs on its own core while this process renders the CSV files; the child shares the table's memory
    copy-on-write and needs no imports. Elsewhere (or with ``fork=False``) it is a thread, and so it is when ADBC
    binds the rows in C (`binds_in_c`): the GIL is then free for most of the write, and a fork would only cost the
    copy-on-write copies of every page this process touches while the child lives (scoring 1M leads: 0.96x the
    wall and 0.94x the CPU time of the forked writer, paired). The child
    takes its orders through a pipe: if this process dies, the pipe closes and the child rolls its transaction back
    and exits, so a killed scorer never leaves a new table nor a writer holding the database."""

    def __init__(self, df: pd.DataFrame, url: str, name: str, fork: bool | None = None):
        self._errors: list[BaseException] = []
        self._process = None
        self.child_memory: dict[str, int] = {}  # the forked writer's memory (`_own_memory`), once it is done
        if fork is None:
            fork = SQL_WRITER_FORK and sys.platform.startswith("linux") and not binds_in_c(len(df), url)
        if fork:
            import multiprocessing
            import warnings

            import sqlalchemy.dialects.sqlite  # noqa: F401

            # everything the child runs is imported here first: a child forked while another thread of this process
            # held a module's import lock would wait for it forever
            from pandas.io.sql import SQLDatabase  # noqa: F401
            from sqlalchemy import event, inspect, text  # noqa: F401
            from sqlalchemy.exc import OperationalError  # noqa: F401

            from pipeline import secrets, transaction  # noqa: F401

            ctx = multiprocessing.get_context("fork")
            self._orders, child_end = ctx.Pipe()
            try:
                with warnings.catch_warnings():  # Python 3.12+ warns on forking a threaded process; the child
                    warnings.simplefilter("ignore", DeprecationWarning)  # only runs sqlite3 and numpy
                    self._process = ctx.Process(target=_sql_child, args=(df, url, name, child_end, self._orders),
                                                name=f"{name}-sql-writer", daemon=True)
                    self._process.start()
                return
            except OSError:  # no fork (e.g. strict memory overcommit and a large process): a thread does the same
                self._process = None
                self._orders.close()
            finally:
                child_end.close()
        self._decided = threading.Event()
        self._order = "abort"

        def order() -> str:
            self._decided.wait()
            return self._order

        def write() -> None:
            try:
                _write_on_order(df, url, name, order)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread by finish()
                self._errors.append(exc)

        self._thread = threading.Thread(target=write, name=f"{name}-sql-writer")
        self._thread.start()

    def finish(self, swap: bool) -> None:
        """Tell the writer whether to swap the table in, wait for it, and raise its error (with `swap` only: when
        the files failed, their error is the one that counts)."""
        if self._process is None:
            self._order = "swap" if swap else "abort"
            self._decided.set()
            self._thread.join()
        else:
            with contextlib.suppress(OSError):  # the child is gone already (its error, if any, waits in the pipe)
                self._orders.send("swap" if swap else "abort")
            try:
                outcome, self.child_memory = self._orders.recv()
            except EOFError:
                self._process.join()
                outcome = RuntimeError(f"the SQL table writer died (exit code {self._process.exitcode}); the "
                                       "previous table is unchanged")
            self._process.join()
            self._orders.close()
            if outcome is not None:
                self._errors.append(outcome)
        if swap and self._errors:
            raise self._errors[0]


SQL_WRITER_FORK = True  # the SQL table is written by a forked process where the platform forks safely (Linux)


def _write_on_order(df: pd.DataFrame, url: str, name: str, order: Callable[[], str]) -> None:
    """`write_sql_table`, the staged rows swapped in only when `order()` (asked once they are staged) is "swap"."""
    def before_swap() -> None:
        if order() != "swap":
            raise RuntimeError("the files failed: the table is not swapped")

    write_sql_table(df, url, name, before_swap=before_swap)


def _sql_child(df: pd.DataFrame, url: str, name: str, orders, parents_end) -> None:
    """The forked SQL writer: stage the rows, wait for the parent's order, swap or roll back, report the outcome."""
    parents_end.close()

    def order() -> str:
        try:
            return orders.recv()
        except EOFError:  # the parent died: roll back
            return "abort"

    try:
        _write_on_order(df, url, name, order)
        outcome = None
    except BaseException as exc:  # noqa: BLE001 - sent to the parent
        outcome = _pickled(exc)
    with contextlib.suppress(OSError):
        orders.send((outcome, _own_memory()))


def _own_memory() -> dict[str, int]:
    """This process's peak resident memory and the part of it not shared with its parent (bytes; Linux): what a
    forked writer adds to the scorer's memory."""
    import resource

    out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
        out["private_bytes"] = sum(int(fields[k].split()[0]) * 1024 for k in ("Private_Clean", "Private_Dirty"))
    except (OSError, KeyError, ValueError):
        pass
    return out


def _pickled(exc: BaseException):
    """`exc` as the parent can raise it: itself when it pickles, else a RuntimeError with its type and message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - e.g. an exception class with required constructor arguments
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def export_all(df: pd.DataFrame, out_dir: Path, database_url: str | None = None, name: str = "sql_leads",
               changes: pd.DataFrame | None = None,
               contacts: pd.DataFrame | Callable[[pd.Series], pd.DataFrame | None] | None = None,
               owners: dict[str, dict[str, str]] | None = None,
               extra_files: dict[str, Callable[[Path], object]] | None = None) -> dict[str, str]:
    """Every export of one scoring, as one transaction (`pipeline.transaction`): under the scored folder's lock,
    after every destination is checked, the files are written into a staging folder (`extra_files`: name ->
    writer of further files of the run, e.g. the summary), fsynced and sealed as ``runs/<run>``; the SQL table is
    swapped; then `current` is switched to the run, the previous run kept. Any failure before the switch leaves
    what readers see unchanged and removes the staged files.

    `contacts` (lead id + `CONTACT_FIELDS`, or a function of the table's lead ids that builds them, called once the
    SQL writer runs: `contact_table(leads, accounts, ids)`) and
    `owners` (CRM -> rep name -> user id) go into the hand-over files (queues, CRM import files) only: `sql_leads`
    keeps its documented schema.

    The SQL rows are written by a `SqlWriter` (a forked process on Linux, else a thread) while the files are
    staged; the writer holds its transaction open until the files are staged and swaps the table only then, so a
    failed file never meets a new table. Returned paths are the top-level ones (they resolve through `current`), plus
    ``run`` (the run folder).
    """
    from pipeline.transaction import (
        ScoringRun,
        check_destinations,
        checkpoint,
        default_database_url,
        estimate_bytes,
        recover,
        scoring_lock,
    )

    out_dir = Path(out_dir)
    df = conform(df)
    url = database_url or default_database_url(out_dir)
    run_id = str(df["scoring_run_id"].iloc[0]) if len(df) else "empty"
    with scoring_lock(out_dir):
        recover(out_dir, url, name)
        check_destinations(out_dir, database_url, needed_bytes=estimate_bytes(len(df), df.shape[1]))
        run = ScoringRun(out_dir, run_id)
        sql = SqlWriter(df, url, name)
        try:
            try:
                contacts = contacts(df["lead_id"]) if callable(contacts) else contacts
                paths = _write_files(df, run.staging, name, changes, with_contacts(df, contacts, owners))
                for file_name, writer in (extra_files or {}).items():
                    writer(run.staging / file_name)
                run.seal()
                checkpoint("staged")
                run.mark_pending()
            except BaseException:
                sql.finish(swap=False)
                raise
            sql.finish(swap=True)
            checkpoint("database")
            run.switch()
        except BaseException:
            run.abort()
            raise
    top = {k: str(out_dir / Path(v).relative_to(run.staging)) for k, v in paths.items()}
    return {"database": url, **top, "run": str(run.folder)}


def _write_files(df: pd.DataFrame, out_dir: Path, name: str, changes: pd.DataFrame | None,
                 hand: pd.DataFrame) -> dict[str, str]:
    """`hand`: the rows with contact fields and owner ids, for the hand-over files."""
    paths = {"parquet": str(write_parquet(df, out_dir / f"{name}.parquet"))}
    crm = out_dir / "crm"
    crm_files = {"salesforce": (crm_mapping(SALESFORCE_FIELDS, hand, "salesforce"), crm / "salesforce_leads.csv"),
                 "hubspot": (crm_mapping(HUBSPOT_PROPERTIES, hand, "hubspot"), crm / "hubspot_contacts.csv")}
    # `hand` is `with_contacts(df)`: df's columns as they are, plus contact and owner columns; then the table's CSV
    # is rendered with the CRM files, in one pass over the rows (write_csv neutralises formulas either way)
    target = out_dir / f"{name}.csv"
    if len(hand) == len(df) and hand.index.equals(df.index) and set(df.columns) <= set(hand.columns):
        paths.update(write_crm_files(hand, crm_files, table_csv=(target, list(df.columns))))
    else:
        paths["csv"] = str(write_csv(df, target))
        paths.update(write_crm_files(hand, crm_files))
    queues = out_dir / "queues"
    written = set()
    df = hand
    for rep, queue in rep_queues(df).items():
        target = queues / f"{_slug(rep)}.csv"
        write_csv(queue.assign(rep=rep), target)
        written.add(target.name)
    if "call_queue_position" in df:
        calls = df[df["call_queue_position"].notna()].sort_values("call_queue_position")
        target = queues / "_qualification_calls.csv"
        write_csv(calls[_columns(calls, CALL_QUEUE_COLUMNS)], target)
        written.add(target.name)
    if queues.exists():
        for stale in queues.glob("*.csv"):  # a rep no longer configured must not keep last week's queue
            if stale.name not in written:
                stale.unlink()
    paths["queues"] = str(queues)
    if changes is not None:
        paths["changes"] = str(write_csv(changes, out_dir / "changes.csv"))
    return paths
