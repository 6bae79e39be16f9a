"""Validate the four CRM tables against the data contract and quarantine the rows that fail.

Everything here is generated from ``features.schema``: no column is named in this module. The module is
pure — DataFrames in, a ``ValidationResult`` out; reading files, writing the quarantine and logging
metrics belong to the pipeline stage that calls it.

Two levels of checks:

* file level — a required column is missing, the table has no rows, a column appears twice, a table is
  absent: the file cannot be used at all, so ``FileContractError`` is raised (the message names the table
  and the column);
* row level — each failing row is moved to the quarantine with every check it failed listed in ``reason``
  (``"created_at: not null; lead_source: in allowed set"``); the other rows are ``valid``.

Row checks and their reason strings (``<col>`` is the column):

==========================  =============================================================================
``<col>: not null``         a value is missing in a column that is not nullable
``<col>: type <dtype>``     a value is present but is not a number (int/float; int also needs a whole
                            number), not a parseable date (datetime) or not a boolean token (bool)
``<col>: in range``         a number outside ``[min_value, max_value]``
``<col>: not before 1990-01-01``  a date before ``MIN_PLAUSIBLE_YEAR`` (1900-01-01 placeholders, typos)
``<col>: not in future``    a ``not_in_future`` date after the export date
``<col>: in allowed set``   a value outside ``allowed`` in a column without a catch-all (``other``): the
                            opportunity stage, the form's budget and timeline answers
``duplicate id``            a primary key seen in an earlier row (the first occurrence stays valid)
``<col>: unique``           the same for a unique column that is not the primary key
``<col>: references <tbl>`` a key that is not among the VALID rows of the referenced table
``<later>: not before <earlier>``  an ordered date pair out of order (both dates present)
==========================  =============================================================================

Missing values are only ever reported by ``not null``; every other check ignores them, and a value that
failed ``type`` is treated as missing by the later checks (so ``"abc"`` in a number column gives exactly
``"<col>: type float"``).

Picklists (a column with a catch-all ``other`` in the contract: industry, lead source, use case, activity type)
never quarantine a row: a present value outside ``allowed`` is kept as the catch-all (``Other`` / ``other``) in
the valid table, and ``ValidationResult.other`` counts per column the values so mapped among the valid rows with
the most frequent original values (``TOP_OTHER``); the quarantine keeps the rows as they came in. The check that
finds them (``<col>: known value``, kind ``other``) is evaluated by both engines like the allowed-set check.

Two engines evaluate the same checks, derived from the same contract:

* ``engine="gx"`` — not-null, range, date-bound, allowed-set and date-order checks run as a
  great-expectations 1.x suite (``build_expectation_suite``) with ``result_format="COMPLETE"``; the rows come
  from each result's ``unexpected_index_list``;
* ``engine="pandas"`` — the same checks vectorised in pandas/numpy; several times faster at tens of
  millions of rows, where GX's per-expectation metric machinery dominates.

Type coercion, keep-first uniqueness and cross-table references are plain pandas in both engines (GX's
unique expectation flags every occurrence, and references need the other table's valid rows). Tables are
validated parents first, so a child row pointing at a quarantined parent is quarantined too.

``export_date``: a timestamp with a time of day is the exact cut-off; a date (midnight) means the whole
export day counts as "not in future".
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.config import ValidateConfig
from features.schema import CONTRACT, MIN_PLAUSIBLE_YEAR, TABLE_ORDER, Table

if TYPE_CHECKING:  # great_expectations takes seconds to import: only the gx engine loads it
    import great_expectations as gx

ENGINES: tuple[str, ...] = ("gx", "pandas")
SOURCE_ROW = "source_row"
REASON = "reason"
REASON_SEPARATOR = "; "
DUPLICATE_ID = "duplicate id"
MIN_PLAUSIBLE_DATE = pd.Timestamp(year=MIN_PLAUSIBLE_YEAR, month=1, day=1)
# Spellings accepted as a boolean in a bool column (compared lower-cased and stripped).
BOOL_TOKENS: frozenset[str] = frozenset(
    {"true", "false", "t", "f", "yes", "no", "y", "n", "1", "0", "1.0", "0.0"}
)
# Checks a great-expectations suite evaluates in the gx engine; the other kinds are pandas in both.
GX_KINDS: frozenset[str] = frozenset({"not_null", "between", "in_set", "other", "ordered"})
TOP_OTHER = 10  # the most frequent values mapped to a picklist's catch-all, listed per column


class FileContractError(ValueError):
    """A table cannot be validated row by row: a table or required column is missing, or it is empty."""


class QuarantineLimitError(RuntimeError):
    """Too much of the input failed validation to trust a model trained on the rest."""


@dataclass(frozen=True)
class Check:
    """One row-level check generated from the contract; ``name`` is both the reason text and the key."""

    name: str
    kind: str  # not_null, type, between, in_set, other, unique, references, ordered
    column: str
    other: str | None = None  # ordered: the earlier column; references: "table.column"; other: the catch-all
    min_value: Any = None
    max_value: Any = None
    strict_max: bool = False
    allowed: tuple[str, ...] | None = None
    dtype: str | None = None


@dataclass
class ValidationResult:
    """Per table: rows that passed, quarantined rows with their reasons, counts and per-check failures.

    ``other``: per table and picklist column, ``{"to": catch-all, "mapped": n, "top": [{"value", "count"}, ...]}``
    — the values outside the picklist kept as its catch-all among the valid rows, most frequent first.
    """

    valid: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    counts: dict[str, dict[str, int]]
    failures: dict[str, dict[str, int]]
    other: dict[str, dict[str, dict]] = field(default_factory=dict)
    # valid leads some of whose activities were quarantined: kept (an activity decides neither the label nor the
    # eligibility), their engagement features miss those events; counted so that it is never silent
    leads_missing_activities: int = 0

    def quarantined_share(self) -> float:
        """Quarantined rows over all rows, across all tables (0.0 when there are no rows)."""
        rows_in = sum(c["rows_in"] for c in self.counts.values())
        quarantined = sum(c["quarantined"] for c in self.counts.values())
        return quarantined / rows_in if rows_in else 0.0

    def to_dict(self) -> dict:
        """A JSON-able summary for DVC metrics: counts and per-check failures per table."""
        return {
            "quarantined_share": float(self.quarantined_share()),
            "counts": {t: {k: int(v) for k, v in c.items()} for t, c in self.counts.items()},
            "failures": {t: {k: int(v) for k, v in f.items()} for t, f in self.failures.items()},
            "other": {t: {c: {"to": o["to"], "mapped": int(o["mapped"]),
                              "top": [{"value": str(v["value"]), "count": int(v["count"])} for v in o["top"]]}
                          for c, o in cols.items()} for t, cols in self.other.items()},
            "leads_missing_activities": int(self.leads_missing_activities),
        }


# --------------------------------------------------------------------------------------------------
# Checks generated from the contract


def export_cutoff(export_date: Any) -> tuple[pd.Timestamp, bool]:
    """The "not in future" bound as (value, strict): a midnight date allows the whole export day."""
    if export_date is None:
        raise ValueError("export_date is required to check not_in_future dates")
    ts = _naive_utc(pd.Timestamp(export_date))
    if ts == ts.normalize():
        return ts + pd.Timedelta(days=1), True
    return ts, False


def table_checks(table: Table, export_date: Any, columns: Iterable[str] | None = None) -> list[Check]:
    """The row checks of ``table`` in reason order, restricted to ``columns`` when given."""
    present = set(table.names if columns is None else columns)
    cutoff, strict = export_cutoff(export_date)
    checks: list[Check] = []
    for col in table.columns:
        if col.name not in present:
            continue
        c = col.name
        if not col.nullable:
            # guards: a missing key, date or category where the contract requires a value
            checks.append(Check(f"{c}: not null", "not_null", c))
        if col.dtype in ("int", "float", "datetime", "bool"):
            # guards: text in a number column, an unparseable date string, "maybe" in a yes/no column
            checks.append(Check(f"{c}: type {col.dtype}", "type", c, dtype=col.dtype))
        if col.dtype in ("int", "float") and (col.min_value is not None or col.max_value is not None):
            # guards: negative revenue, zero employees, founded in year 3000
            checks.append(
                Check(f"{c}: in range", "between", c, min_value=col.min_value, max_value=col.max_value)
            )
        if col.dtype == "datetime":
            # guards: 1900-01-01 placeholders and mistyped centuries
            checks.append(
                Check(
                    f"{c}: not before {MIN_PLAUSIBLE_DATE.date()}", "between", c, min_value=MIN_PLAUSIBLE_DATE
                )
            )
            if col.not_in_future:
                # guards: events after the export was taken (clock skew, typed-in future dates)
                checks.append(Check(f"{c}: not in future", "between", c, max_value=cutoff, strict_max=strict))
        if col.allowed is not None and col.other is not None:
            # picklists: a value the list does not know (a CRM's own industries, sources, activity types) is
            # kept as the catch-all and counted; the row is not quarantined
            checks.append(Check(f"{c}: known value", "other", c, other=col.other, allowed=tuple(col.allowed)))
        elif col.allowed is not None:
            # guards: unknown values where an unknown cannot be kept (a stage decides the label; a budget band
            # is parsed into a number)
            checks.append(Check(f"{c}: in allowed set", "in_set", c, allowed=tuple(col.allowed)))
        if col.unique or c == table.primary_key:
            # guards: the same record exported twice; the first occurrence is kept
            name = DUPLICATE_ID if c == table.primary_key else f"{c}: unique"
            checks.append(Check(name, "unique", c))
        if col.references is not None:
            # guards: orphans — a key whose parent is missing or was itself quarantined
            parent = col.references.split(".", 1)[0]
            checks.append(Check(f"{c}: references {parent}", "references", c, other=col.references))
    for later, earlier in table.ordered_dates:
        if later in present and earlier in present:
            # guards: closed before created, a call before the lead existed
            checks.append(Check(f"{later}: not before {earlier}", "ordered", later, other=earlier))
    return checks


def _expectation(check: Check):
    """The great-expectations 1.x expectation for a GX-evaluated check, tagged with the check name."""
    import great_expectations.expectations as gxe

    meta = {"check": check.name}
    if check.kind == "not_null":
        # range/set expectations skip nulls, so missing values need their own expectation
        return gxe.ExpectColumnValuesToNotBeNull(column=check.column, meta=meta)
    if check.kind == "between":
        return gxe.ExpectColumnValuesToBeBetween(
            column=check.column,
            min_value=check.min_value,
            max_value=check.max_value,
            strict_max=check.strict_max,
            meta=meta,
        )
    if check.kind in ("in_set", "other"):
        return gxe.ExpectColumnValuesToBeInSet(column=check.column, value_set=list(check.allowed), meta=meta)
    if check.kind == "ordered":
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=check.column,
            column_B=check.other,
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            meta=meta,
        )
    raise ValueError(f"check {check.name!r} ({check.kind}) is not evaluated by great-expectations")


def build_expectation_suite(
    table: Table, export_date: Any, columns: Iterable[str] | None = None
) -> gx.ExpectationSuite:
    """The GX suite of ``table``'s not-null, range, date, allowed-set and date-order checks.

    Generated from the contract; each expectation's ``meta["check"]`` is the reason text it produces (a
    picklist's ``<col>: known value`` finds the values kept as its catch-all instead: no reason, no quarantine).
    Type coercion, uniqueness (keep first) and references are not in the suite: they run in pandas.
    Pass ``columns`` to leave out expectations on optional columns a file does not have.
    """
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{table.name}_contract")
    for check in table_checks(table, export_date, columns):
        if check.kind in GX_KINDS:
            suite.add_expectation(_expectation(check))
    return suite


# --------------------------------------------------------------------------------------------------
# File-level checks and type coercion


def _check_file(name: str, df: Any, table: Table) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    doubled = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if doubled:
        raise FileContractError(f"{name}: column {', '.join(map(repr, doubled))} appears more than once")
    missing = [c for c in table.required_names if c not in df.columns]
    if missing:
        label = "column" if len(missing) == 1 else "columns"
        raise FileContractError(f"{name}: required {label} {', '.join(map(repr, missing))} missing")
    if len(df) == 0:
        raise FileContractError(f"{name}: table is empty (0 rows)")


def _naive_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _to_datetime(s: pd.Series) -> pd.Series:
    """Datetimes as naive UTC; unparseable values become NaT (offsets are converted, naive values are
    taken as UTC). Already-datetime columns cost nothing; strings are parsed vectorised where possible."""
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format" is expected for messy exports
        out = pd.to_datetime(s, errors="coerce", utc=True)
        # values in another format than the one inferred from the first value: any ISO 8601 variant
        # (vectorised), then element by element (dateutil, month first) for the few that remain
        for fmt in ("ISO8601", "mixed"):
            retry = out.isna() & s.notna()
            if not retry.any():
                break
            out[retry] = pd.to_datetime(s[retry], errors="coerce", utc=True, format=fmt)
    return out.dt.tz_localize(None)


def _coerce(df: pd.DataFrame, table: Table) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The contract columns as checkable values (numbers float64, dates naive datetime64), RangeIndex,
    and per typed column the rows whose value was present but failed to coerce."""
    work: dict[str, pd.Series] = {}
    type_failed: dict[str, np.ndarray] = {}
    for col in table.columns:
        if col.name not in df.columns:
            continue
        s = df[col.name].reset_index(drop=True)
        present = s.notna().to_numpy()
        if col.dtype in ("int", "float"):
            values = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            ok = ~np.isnan(values)
            if col.dtype == "int":
                with np.errstate(invalid="ignore"):
                    ok &= np.isfinite(values) & (np.floor(values) == values)
            type_failed[col.name] = present & ~ok
            values = np.where(ok, values, np.nan)
            s = pd.Series(values, name=col.name)
        elif col.dtype == "datetime":
            s = _to_datetime(s)
            type_failed[col.name] = present & s.isna().to_numpy()
        elif col.dtype == "bool":
            type_failed[col.name] = present & ~_is_bool_like(s)
            s = s.where(~type_failed[col.name])
        work[col.name] = s
    return pd.DataFrame(work), type_failed


def _is_bool_like(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return np.ones(len(s), dtype=bool)
    return s.astype(str).str.strip().str.lower().isin(BOOL_TOKENS).to_numpy()


# --------------------------------------------------------------------------------------------------
# Evaluating checks


def _pandas_masks(work: pd.DataFrame, checks: list[Check]) -> dict[str, np.ndarray]:
    """Failing rows of the GX-kind checks, vectorised; the same semantics as the GX expectations."""
    masks: dict[str, np.ndarray] = {}
    for check in checks:
        s = work[check.column]
        if check.kind == "not_null":
            fail = s.isna()
        elif check.kind == "between":  # comparisons with NaN/NaT are False: missing values pass
            fail = pd.Series(False, index=s.index)
            if check.min_value is not None:
                fail |= s < check.min_value
            if check.max_value is not None:
                fail |= (s >= check.max_value) if check.strict_max else (s > check.max_value)
        elif check.kind in ("in_set", "other"):
            fail = s.notna() & ~s.isin(check.allowed)
        elif check.kind == "ordered":
            fail = s < work[check.other]
        else:
            raise ValueError(f"unknown check kind {check.kind!r}")
        masks[check.name] = fail.to_numpy(dtype=bool)
    return masks


@contextlib.contextmanager
def _quiet_gx() -> Iterator[None]:
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _gx_masks(
    work: pd.DataFrame, checks: list[Check], table: Table, export_date: Any
) -> dict[str, np.ndarray]:
    """Failing rows of the GX-kind checks from a great-expectations 1.x COMPLETE validation."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    with _quiet_gx():
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch_def = (
            context.data_sources.add_pandas(f"{table.name}_source")
            .add_dataframe_asset(table.name)
            .add_batch_definition_whole_dataframe(f"{table.name}_whole")
        )
        suite = context.suites.add(build_expectation_suite(table, export_date, work.columns))
        batch = batch_def.get_batch(batch_parameters={"dataframe": work})
        outcome = batch.validate(suite, result_format={"result_format": "COMPLETE"})

    wanted = {c.name for c in checks}
    masks: dict[str, np.ndarray] = {}
    for res in outcome.results:
        name = (res.expectation_config.meta or {}).get("check")
        if name not in wanted:
            continue
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"{table.name}: great-expectations could not evaluate {name!r}: "
                f"{res.exception_info.get('exception_message')}"
            )
        mask = np.zeros(len(work), dtype=bool)
        index = res.result.get("unexpected_index_list") or []
        if index:
            mask[np.asarray(index, dtype=np.int64)] = True
        masks[name] = mask
    missing = wanted - set(masks)
    if missing:
        raise RuntimeError(f"{table.name}: great-expectations returned no result for {sorted(missing)}")
    return masks


def _unique_mask(s: pd.Series) -> np.ndarray:
    return (s.notna() & s.duplicated(keep="first")).to_numpy(dtype=bool)


def _reference_mask(s: pd.Series, parent_values: pd.Series) -> np.ndarray:
    """Present values not among ``parent_values``. One factorize over both instead of ``Series.isin``,
    which turns a large value set into Python objects first (4x slower at 20M rows vs 1M keys)."""
    codes, uniques = pd.factorize(pd.concat([parent_values, s], ignore_index=True))  # nulls get -1
    known = np.zeros(len(uniques) + 1, dtype=bool)  # the extra last slot is hit by code -1
    parent_codes = codes[: len(parent_values)]
    known[parent_codes[parent_codes >= 0]] = True
    child_codes = codes[len(parent_values) :]
    return (child_codes >= 0) & ~known[child_codes]


# --------------------------------------------------------------------------------------------------
# Tables


def table_order(contract: Mapping[str, Table]) -> list[str]:
    """Parents before children (schema.TABLE_ORDER where it applies); raises on unknown or cyclic references."""
    parents: dict[str, set[str]] = {}
    for name, table in contract.items():
        parents[name] = set()
        for col in table.columns:
            if col.references is None:
                continue
            parent, _, parent_column = col.references.partition(".")
            if (
                parent not in contract
                or parent == name
                or parent_column not in contract[parent].required_names
            ):
                raise ValueError(f"{name}.{col.name} references {col.references!r}, which cannot be checked")
            parents[name].add(parent)
    pending = [n for n in TABLE_ORDER if n in contract] + [n for n in contract if n not in TABLE_ORDER]
    order: list[str] = []
    while pending:
        ready = next((n for n in pending if parents[n] <= set(order)), None)
        if ready is None:
            raise ValueError(f"cyclic references between tables {pending}")
        order.append(ready)
        pending.remove(ready)
    return order


def _reasons(masks: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The "; "-joined names of the failed checks for each of ``rows`` (one string per failure pattern)."""
    names = list(masks)
    matrix = np.column_stack([masks[n][rows] for n in names])
    patterns, inverse = np.unique(np.packbits(matrix, axis=1), axis=0, return_inverse=True)
    flags = np.unpackbits(patterns, axis=1, count=len(names)).astype(bool)
    texts = np.array(
        [REASON_SEPARATOR.join(n for n, f in zip(names, row, strict=True) if f) for row in flags],
        dtype=object,
    )
    return texts[inverse.reshape(-1)]


def _validate_table(
    df: pd.DataFrame, table: Table, export_date: Any, engine: str, valid: Mapping[str, pd.DataFrame]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int], dict[str, dict]]:
    work, type_failed = _coerce(df, table)
    checks = table_checks(table, export_date, work.columns)
    gx_checks = [c for c in checks if c.kind in GX_KINDS]
    evaluated = (
        _gx_masks(work, gx_checks, table, export_date) if engine == "gx" else _pandas_masks(work, gx_checks)
    )

    masks: dict[str, np.ndarray] = {}
    unknown: list[tuple[Check, np.ndarray]] = []  # picklist values to keep as the catch-all
    for check in checks:  # in reason order
        if check.kind == "other":
            unknown.append((check, evaluated[check.name]))
        elif check.kind == "type":
            masks[check.name] = type_failed[check.column]
        elif check.kind == "not_null":
            # a present value that failed its type check is reported as "type", not also as missing
            no_type_failure = ~type_failed[check.column] if check.column in type_failed else True
            masks[check.name] = evaluated[check.name] & no_type_failure
        elif check.kind == "unique":
            masks[check.name] = _unique_mask(work[check.column])
        elif check.kind == "references":
            parent, parent_column = check.other.split(".", 1)
            masks[check.name] = _reference_mask(work[check.column], valid[parent][parent_column])
        else:
            masks[check.name] = evaluated[check.name]

    failed = np.zeros(len(df), dtype=bool)
    for mask in masks.values():
        failed |= mask
    bad = np.flatnonzero(failed)
    kept = np.flatnonzero(~failed)
    good_rows = df.iloc[kept] if len(bad) else df
    good_rows, other = _keep_as_other(good_rows, unknown, kept)
    quarantined = df.iloc[bad].reset_index(drop=True).drop(columns=[SOURCE_ROW, REASON], errors="ignore")
    quarantined[SOURCE_ROW] = pd.Series(bad, dtype="int64")
    reasons = _reasons(masks, bad) if len(bad) else np.array([], dtype=object)
    quarantined[REASON] = pd.Series(reasons, dtype="str")
    failures = {name: int(mask.sum()) for name, mask in masks.items()}
    return good_rows.reset_index(drop=True), quarantined, failures, other


def _keep_as_other(
    good: pd.DataFrame, unknown: list[tuple[Check, np.ndarray]], kept: np.ndarray
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The valid rows with every picklist value outside its list replaced by the list's catch-all (a new frame;
    the input is not modified), and per column what was replaced: how many values, the most frequent ones."""
    summary: dict[str, dict] = {}
    replaced: dict[str, pd.Series] = {}
    for check, mask in unknown:
        rows = mask[kept]
        col = good[check.column]
        # only the flagged values are touched (an Arrow string column is never converted whole)
        counts = col.iloc[np.flatnonzero(rows)].astype(str).value_counts()
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")  # ties: by value
        summary[check.column] = {
            "to": check.other,
            "mapped": int(rows.sum()),
            "top": [{"value": value, "count": int(n)} for value, n in counts.head(TOP_OTHER).items()],
        }
        if rows.any():
            values = col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col
            replaced[check.column] = values.mask(rows, check.other)
    return (good.assign(**replaced) if replaced else good), summary


def validate_tables(
    tables: Mapping[str, pd.DataFrame],
    export_date: Any,
    contract: Mapping[str, Table] = CONTRACT,
    engine: str = "gx",
) -> ValidationResult:
    """Validate every contract table; rows failing any check go to the quarantine with their reasons.

    ``tables`` maps table name to DataFrame (tables not in the contract are ignored; input frames are
    not modified). Raises ``FileContractError`` for a missing table, a missing required column or an
    empty table, before any row is checked. Input columns named ``source_row``/``reason`` are replaced
    in the quarantine. Picklist values outside their list are kept as the list's catch-all in ``valid`` and
    counted in ``other``. ``engine`` is ``"gx"`` (great-expectations) or ``"pandas"``; both give identical results.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    export_cutoff(export_date)  # fail early on a missing/unparseable export date
    order = table_order(contract)
    for name in order:
        if name not in tables:
            raise FileContractError(f"{name}: table is missing")
        _check_file(name, tables[name], contract[name])

    result = ValidationResult(valid={}, quarantine={}, counts={}, failures={})
    for name in order:
        df = tables[name]
        good, bad, failures, other = _validate_table(df, contract[name], export_date, engine, result.valid)
        result.valid[name] = good
        result.quarantine[name] = bad
        result.failures[name] = failures
        result.other[name] = other
        result.counts[name] = {"rows_in": len(df), "valid": len(good), "quarantined": len(bad)}
    return result


OPTIONAL_TABLES = ("activities",)  # an export without an activity log (a pipeline-only CRM) is still an export


def validate_export(tables: Mapping[str, pd.DataFrame], export_date: Any, c: ValidateConfig) -> ValidationResult:
    """The validate stage's core: `validate_tables` with the engine of `c` on the tables the export has (an
    empty optional table is left out: nothing to check); `check_quarantine_limit` separately."""
    present = {name: table for name, table in CONTRACT.items()
               if name not in OPTIONAL_TABLES or (name in tables and len(tables[name]))}
    result = validate_tables({k: tables[k] for k in present if k in tables}, export_date, contract=present,
                             engine=c.engine)
    result = quarantine_leads_of_quarantined_opportunities(result, tables)
    return count_leads_missing_activities(result)


def count_leads_missing_activities(result: ValidationResult) -> ValidationResult:
    """Set `leads_missing_activities`: the valid leads with at least one quarantined activity."""
    bad = result.quarantine.get("activities")
    leads = result.valid.get("leads")
    if bad is not None and len(bad) and leads is not None and "lead_id" in bad:
        result.leads_missing_activities = int(leads["lead_id"].isin(bad["lead_id"].dropna()).sum())
    return result


OPPORTUNITY_QUARANTINED = "opportunity {} quarantined"  # the lead's reason: its opportunity failed a check


def quarantine_leads_of_quarantined_opportunities(result: ValidationResult,
                                                  tables: Mapping[str, pd.DataFrame]) -> ValidationResult:
    """A lead whose opportunity was quarantined is quarantined too (reason ``opportunity <id> quarantined``), and
    with it its other activities and opportunities (``lead_id: references leads``): the opportunity decides the
    lead's label and whether sales already works it, so without it a won customer would be scored as an open lead.
    The quarantined leads are the rows as they came in; counts and failures follow. Modifies and returns
    ``result``."""
    if not {"leads", "opportunities"} <= set(result.counts):
        return result
    bad_opps = result.quarantine["opportunities"]
    if not len(bad_opps) or "lead_id" not in bad_opps:
        return result
    leads = result.valid["leads"]
    hit = bad_opps[bad_opps["lead_id"].notna() & bad_opps["lead_id"].isin(leads["lead_id"])]
    if not len(hit):
        return result
    first_opp = hit.drop_duplicates("lead_id").set_index("lead_id")["opportunity_id"].astype(str)
    moving = leads["lead_id"].isin(first_opp.index).to_numpy()
    original = tables["leads"]
    q_rows = result.quarantine["leads"][SOURCE_ROW].to_numpy()
    positions = np.setdiff1d(np.arange(len(original)), q_rows)[moving]  # the valid rows' places in the input
    moved = original.iloc[positions].reset_index(drop=True).drop(columns=[SOURCE_ROW, REASON], errors="ignore")
    moved[SOURCE_ROW] = pd.Series(positions, dtype="int64")
    moved[REASON] = pd.Series(
        [OPPORTUNITY_QUARANTINED.format(first_opp[k]) for k in leads.loc[moving, "lead_id"]], dtype="str")
    gone = set(leads.loc[moving, "lead_id"])
    result.valid["leads"] = leads[~moving].reset_index(drop=True)
    result.quarantine["leads"] = (pd.concat([result.quarantine["leads"], moved], ignore_index=True)
                                  .sort_values(SOURCE_ROW, kind="stable").reset_index(drop=True))
    result.failures["leads"]["opportunity quarantined"] = int(moving.sum())
    for child in ("activities", "opportunities"):  # their lead is no longer valid: orphans, as for any lead
        if child not in result.counts:
            continue
        valid = result.valid[child]
        orphan = valid["lead_id"].isin(gone).to_numpy()
        if not orphan.any():
            continue
        original = tables[child]
        q_rows = result.quarantine[child][SOURCE_ROW].to_numpy()
        positions = np.setdiff1d(np.arange(len(original)), q_rows)[orphan]
        rows = original.iloc[positions].reset_index(drop=True).drop(columns=[SOURCE_ROW, REASON], errors="ignore")
        rows[SOURCE_ROW] = pd.Series(positions, dtype="int64")
        rows[REASON] = pd.Series(["lead_id: references leads"] * len(rows), dtype="str")
        result.valid[child] = valid[~orphan].reset_index(drop=True)
        result.quarantine[child] = (pd.concat([result.quarantine[child], rows], ignore_index=True)
                                    .sort_values(SOURCE_ROW, kind="stable").reset_index(drop=True))
        failures = result.failures[child]
        failures["lead_id: references leads"] = failures.get("lead_id: references leads", 0) + int(orphan.sum())
    for name in ("leads", "activities", "opportunities"):
        if name in result.counts:
            result.counts[name] = {"rows_in": result.counts[name]["rows_in"], "valid": len(result.valid[name]),
                                   "quarantined": len(result.quarantine[name])}
    return result


def flat_result(flat: pd.DataFrame, quarantine: pd.DataFrame, failures: Mapping[str, int]) -> ValidationResult:
    """A flat export's row checks (made when it was mapped: empty and duplicate ids, numbers, ranges, dates) as a
    validation result for `check_quarantine_limit` and the metrics: rows in = valid + quarantined."""
    return ValidationResult(valid={"flat": flat}, quarantine={"flat": quarantine},
                            counts={"flat": {"rows_in": len(flat) + len(quarantine), "valid": len(flat),
                                             "quarantined": len(quarantine)}},
                            failures={"flat": {k: int(v) for k, v in failures.items()}})

def check_quarantine_limit(result: ValidationResult, c: ValidateConfig, quarantine_dir: Any = None) -> None:
    """Raise `QuarantineLimitError` naming the checks that failed most when more than
    `c.max_quarantine_share` of all rows were quarantined (`quarantine_dir`: where the user finds them)."""
    share = result.quarantined_share()
    if share <= c.max_quarantine_share:
        return
    worst = sorted(((n, check, k) for n, f in result.failures.items() for check, k in f.items() if k),
                   key=lambda t: -t[2])[:5]
    detail = "; ".join(f"{n}.{check}: {k:,} rows" for n, check, k in worst)
    where = f" See {quarantine_dir}." if quarantine_dir is not None else ""
    raise QuarantineLimitError(
        f"{share:.1%} of rows quarantined, above the limit of {c.max_quarantine_share:.1%} "
        f"(validate.max_quarantine_share). Most failed checks: {detail}.{where}")


__all__ = [
    "QuarantineLimitError",
    "ValidateConfig",
    "check_quarantine_limit",
    "flat_result",
    "validate_export",
    "BOOL_TOKENS",
    "DUPLICATE_ID",
    "ENGINES",
    "MIN_PLAUSIBLE_DATE",
    "REASON",
    "SOURCE_ROW",
    "TOP_OTHER",
    "Check",
    "FileContractError",
    "ValidationResult",
    "build_expectation_suite",
    "export_cutoff",
    "table_checks",
    "table_order",
    "validate_tables",
]
