"""Profiles: how a real CRM export maps onto the data contract (pure: mappings and DataFrames in and out).

A profile is a YAML mapping (loaded by ``pipeline/``; parsed here by ``parse_profile``). Two kinds:

* ``tables`` — a four-table export (Salesforce, HubSpot, Maven): each contract table comes from one or more
  source files; ``columns`` renames source columns to contract columns, ``values`` maps source values onto
  contract values (picklists, stages, countries), ``scale`` multiplies numbers (revenue in millions),
  ``constants`` fills a contract column with one value. The mapped tables then go through the contract's
  validation and the normal point-in-time path.
* ``flat`` — one row per lead with pre-aggregated engagement (X Education, UCI bank, Olist, a spreadsheet):
  the declared ``numeric`` and ``categorical`` columns are the model's features directly; ``label`` says how
  the outcome is formed; ``time`` (optional) orders the rows for a time split.

Both kinds declare ``missing`` (markers meaning "no value", e.g. ``Select``, ``unknown``, ``N/A``),
``decimal`` (``"."``, ``","`` or ``auto``) for numbers such as ``$1,200`` or ``1.200,50``, ``date_formats``
tried in order before ISO 8601, and ``drop``: leaky columns (filled in after the outcome was known), each with
its reason — dropped before anything else looks at the data.

Values that cannot be parsed are *kept as text* in the mapped contract tables, so the validator quarantines
the row with ``<col>: type <dtype>`` instead of the mapping silently blanking it. A picklist label ``values`` does
not map (industry, lead source, use case, activity type) is left as it is: validation keeps it as the list's
catch-all (``Other`` / ``other``) and counts it; an unmapped opportunity stage is quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.schema import CONTRACT, TABLE_ORDER, Table

KINDS = ("tables", "flat")
DEFAULT_MISSING: tuple[str, ...] = ("", "n/a", "na", "null", "none", "-", "--", "#n/a", "nan")
ROW_ID = "row_number"  # flat id when the source has none: the 1-based data row


class ProfileError(ValueError):
    """A profile is malformed, or the export lacks a column the profile maps (the message names both)."""


# --------------------------------------------------------------------------------------------------
# The profile


@dataclass(frozen=True)
class TableSource:
    """Where one contract table comes from: source files, renames, value maps, scales and constants."""

    files: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]]  # contract column -> source column (first present of several names)
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # contract column -> {source: value}
    scale: Mapping[str, float] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)


class LabelValueError(ProfileError):
    """A flat export's label column holds values its profile does not declare (the message lists each with its
    count, naming the file and the column)."""


LABEL_BLANK = ("open", "negative")  # what a profile may declare an empty label cell to mean (else: an error)


@dataclass(frozen=True)
class Label:
    """How a flat export's outcome is formed: a column whose every value is declared positive, negative or open
    (``blank`` says what an empty cell means), or membership in another file (``in_file``: the lead is positive
    when its id appears in that file's ``key`` column, negative otherwise; no open leads)."""

    column: str | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    open: tuple[str, ...] = ()  # open leads: scored, not trained on
    blank: str | None = None  # "open" or "negative"; None: an empty label cell stops the run
    in_file: str | None = None  # the lead is positive when its id appears in this file's `key` column
    key: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str
    description: str = ""
    missing: tuple[str, ...] = DEFAULT_MISSING
    decimal: str = "auto"
    date_formats: tuple[str, ...] = ()
    drop: Mapping[str, str] = field(default_factory=dict)  # leaky source column -> why it leaks
    export_date: str = "auto"  # "auto": the latest date in the export
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # params section -> fields
    # tables
    tables: Mapping[str, TableSource] = field(default_factory=dict)
    # flat
    file: str | None = None
    id: str | None = None
    label: Label | None = None
    time: str | None = None  # a date column, or "row_order" when rows are already in time order
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    job_title: str | None = None  # flat: a title column parsed into seniority_level / department
    time_features: bool = False  # flat: month, weekday and days since the first date of the time column
    # flat: the model also sees each categorical as the share of training rows with its value (models/blend.py);
    # off by default: on a drifting time split (UCI bank months) the shares of the past mislead
    category_shares: bool = False
    gates: Mapping[str, Any] = field(default_factory=dict)  # flat: BANT gates on the flat feature names
    # flat: numeric source column -> (min, max), either None; a value outside goes to the quarantine. Columns
    # not declared get `default_range` (counts, durations and sizes are never negative).
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    # tables: the leads.crm_status values (after the value map) that mean sales already works the lead
    working_statuses: tuple[str, ...] = ()

    def source_columns(self) -> list[str]:
        """Every source column a flat profile reads (id, label, time, features)."""
        cols = [self.id] if self.id else []
        if self.label and self.label.column:
            cols.append(self.label.column)
        if self.time and self.time != "row_order":
            cols.append(self.time)
        cols += [*self.numeric, *self.categorical]
        if self.job_title:
            cols.append(self.job_title)
        return list(dict.fromkeys(cols))


_TOP_KEYS = {
    "tables": {"name", "kind", "description", "missing", "decimal", "date_formats", "drop", "export_date",
               "overrides", "tables", "working_statuses"},
    "flat": {"name", "kind", "description", "missing", "decimal", "date_formats", "drop", "export_date",
             "overrides", "file", "id", "label", "time", "numeric", "categorical", "values", "job_title", "gates",
             "time_features", "category_shares", "ranges"},
}
_TABLE_KEYS = {"file", "columns", "values", "scale", "constants"}


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise ProfileError(f"{where}: expected a list, got {value!r}")
    return tuple(str(v) for v in value)


def _as_mapping(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProfileError(f"{where}: expected a mapping, got {value!r}")
    return dict(value)


def parse_profile(data: Mapping[str, Any], name: str = "profile") -> Profile:
    """A ``Profile`` from a loaded YAML mapping; unknown keys, kinds and contract columns are refused."""
    if not isinstance(data, Mapping):
        raise ProfileError(f"{name}: a profile is a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ProfileError(f"{name}: kind must be one of {list(KINDS)}, got {kind!r}")
    unknown = sorted(set(data) - _TOP_KEYS[kind])
    if unknown:
        raise ProfileError(f"{name}: unknown key(s) {unknown}; known keys are {sorted(_TOP_KEYS[kind])}")
    decimal = str(data.get("decimal", "auto"))
    if decimal not in (".", ",", "auto"):
        raise ProfileError(f"{name}.decimal: use '.', ',' or auto, not {decimal!r}")
    common = {
        "name": str(data.get("name", name)),
        "kind": kind,
        "description": str(data.get("description", "")),
        "missing": tuple(dict.fromkeys(m.strip().lower() for m in (*DEFAULT_MISSING, *_as_tuple(data.get("missing"), f"{name}.missing")))),
        "decimal": decimal,
        "date_formats": _as_tuple(data.get("date_formats"), f"{name}.date_formats"),
        "drop": {str(k): str(v) for k, v in _as_mapping(data.get("drop"), f"{name}.drop").items()},
        "export_date": str(data.get("export_date", "auto")),
        "overrides": {str(k): _as_mapping(v, f"{name}.overrides.{k}")
                      for k, v in _as_mapping(data.get("overrides"), f"{name}.overrides").items()},
    }
    if kind == "tables":
        return Profile(**common, tables=_parse_tables(data.get("tables"), name),
                       working_statuses=_as_tuple(data.get("working_statuses"), f"{name}.working_statuses"))
    return _parse_flat(data, name, common)


def _parse_tables(data: Any, name: str) -> dict[str, TableSource]:
    tables = _as_mapping(data, f"{name}.tables")
    unknown = sorted(set(tables) - set(CONTRACT))
    if unknown:
        raise ProfileError(f"{name}.tables: unknown table(s) {unknown}; the contract has {list(TABLE_ORDER)}")
    for required in ("accounts", "leads", "opportunities"):
        if required not in tables:
            raise ProfileError(f"{name}.tables: table {required!r} is not mapped")
    out = {}
    for tname, spec in tables.items():
        where = f"{name}.tables.{tname}"
        spec = _as_mapping(spec, where)
        bad = sorted(set(spec) - _TABLE_KEYS)
        if bad:
            raise ProfileError(f"{where}: unknown key(s) {bad}; known keys are {sorted(_TABLE_KEYS)}")
        contract = CONTRACT[tname]
        columns = {str(k): _as_tuple(v, f"{where}.columns.{k}")
                   for k, v in _as_mapping(spec.get("columns"), f"{where}.columns").items()}
        constants = _as_mapping(spec.get("constants"), f"{where}.constants")
        values = {str(k): _as_mapping(v, f"{where}.values.{k}")
                  for k, v in _as_mapping(spec.get("values"), f"{where}.values").items()}
        scale = {str(k): float(v) for k, v in _as_mapping(spec.get("scale"), f"{where}.scale").items()}
        for key, mapped in (("columns", columns), ("constants", constants), ("values", values), ("scale", scale)):
            extra = sorted(set(mapped) - set(contract.names))
            if extra:
                raise ProfileError(f"{where}.{key}: {extra} not in the contract table {tname!r} ({contract.names})")
        unmapped = [c for c in contract.required_names if c not in columns and c not in constants]
        if unmapped:
            raise ProfileError(f"{where}: required contract column(s) {unmapped} not mapped")
        files = _as_tuple(spec.get("file"), f"{where}.file")
        if not files:
            raise ProfileError(f"{where}: no source file given (file: ...)")
        out[tname] = TableSource(files=files, columns=columns, values=values, scale=scale, constants=constants)
    return out


def label_key(value: Any) -> str | None:
    """A label cell as the text it is matched on: stripped, lower case, ``1.0`` → ``1`` (a 0/1 column read as
    numbers); None for a missing cell."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return re.sub(r"^([+-]?\d+)\.0*$", r"\1", text)


def _parse_label(value: Any, name: str, id_column: Any) -> Label:
    where = f"{name}.label"
    label = _as_mapping(value, where)
    if not label:
        raise ProfileError(f"{name}: a flat profile needs a label (column + positive + negative [+ open], or "
                           f"in_file + key)")
    bad = sorted(set(label) - {"column", "positive", "negative", "open", "blank", "in_file", "key"})
    if bad:
        raise ProfileError(f"{where}: unknown key(s) {bad}")
    lists = {k: _as_tuple(label.get(k), f"{where}.{k}") for k in ("positive", "negative", "open")}
    blank = label.get("blank")
    if "blank" in label and blank not in LABEL_BLANK:
        raise ProfileError(f"{where}.blank: what an empty label means: one of {list(LABEL_BLANK)}, not {blank!r} "
                           f"(leave it out to stop the run on an empty label)")
    parsed = Label(column=label.get("column"), **lists, blank=blank, in_file=label.get("in_file"), key=label.get("key"))
    if parsed.column:
        if parsed.in_file or parsed.key:
            raise ProfileError(f"{where}: give column + positive + negative, or in_file + key, not both")
        if not parsed.positive or not parsed.negative:
            missing = " and ".join(k for k in ("positive", "negative") if not lists[k])
            raise ProfileError(
                f"{where}: list the {missing} value(s) of {parsed.column!r} under {missing} (and those of open leads "
                f"under open): every value of the label column must be declared, so an open lead never counts as a "
                f"loss")
        seen: dict[str, str] = {}
        for kind, values in lists.items():
            for v in values:
                k = label_key(v)
                if not k:
                    raise ProfileError(f"{where}.{kind}: an empty value; say what an empty label means with "
                                       f"blank: open (or blank: negative)")
                if k in seen and seen[k] != kind:
                    raise ProfileError(f"{where}: value {v!r} is declared both {seen[k]} and {kind}")
                seen[k] = kind
        return parsed
    if not (parsed.in_file and parsed.key and id_column):
        raise ProfileError(f"{where}: give column + positive + negative (+ open), or in_file + key (with an id "
                           f"column)")
    extra = [k for k in ("positive", "negative", "open", "blank") if k in label]
    if extra:
        raise ProfileError(f"{where}: {extra} go with a label column; with in_file a lead is positive when its id "
                           f"is in the file, else negative")
    return parsed


def _parse_flat(data: Mapping[str, Any], name: str, common: dict) -> Profile:
    parsed_label = _parse_label(data.get("label"), name, data.get("id"))
    numeric = _as_tuple(data.get("numeric"), f"{name}.numeric")
    categorical = _as_tuple(data.get("categorical"), f"{name}.categorical")
    if not numeric and not categorical and not data.get("job_title"):
        raise ProfileError(f"{name}: a flat profile needs feature columns (numeric and/or categorical)")
    drop = common["drop"]
    leaky = sorted(set(drop) & {*numeric, *categorical})
    if leaky:
        raise ProfileError(f"{name}: column(s) {leaky} are declared leaky under drop and also used as features")
    return Profile(
        **common,
        file=data.get("file"),
        id=data.get("id"),
        label=parsed_label,
        time=data.get("time"),
        numeric=numeric,
        categorical=categorical,
        values={str(k): _as_mapping(v, f"{name}.values.{k}") for k, v in _as_mapping(data.get("values"), f"{name}.values").items()},
        job_title=data.get("job_title"),
        time_features=bool(data.get("time_features", False)),
        category_shares=bool(data.get("category_shares", False)),
        gates=_as_mapping(data.get("gates"), f"{name}.gates"),
        ranges=_parse_ranges(data.get("ranges"), name, numeric),
    )


def _parse_ranges(value: Any, name: str, numeric: tuple[str, ...]) -> dict[str, tuple[float | None, float | None]]:
    """``ranges: {Employees: [0, 5000000], Score: [null, 100]}``: per numeric column its allowed [min, max]."""
    ranges = {}
    for col, bounds in _as_mapping(value, f"{name}.ranges").items():
        where = f"{name}.ranges.{col}"
        if str(col) not in numeric:
            raise ProfileError(f"{where}: not a numeric column of the profile ({list(numeric)})")
        if not isinstance(bounds, list | tuple) or len(bounds) != 2:
            raise ProfileError(f"{where}: give [min, max] (null for no bound), not {bounds!r}")
        try:
            low, high = (None if b is None else float(b) for b in bounds)
        except (TypeError, ValueError):
            raise ProfileError(f"{where}: bounds must be numbers or null, not {bounds!r}") from None
        if low is not None and high is not None and low > high:
            raise ProfileError(f"{where}: min {low:g} above max {high:g}")
        ranges[str(col)] = (low, high)
    return ranges


# Words in a numeric column's name that make it a count, duration or size: never negative unless the profile's
# `ranges` says otherwise.
NON_NEGATIVE_WORDS = frozenset({
    "count", "counts", "number", "num", "total", "visit", "visits", "view", "views", "page", "pages", "click",
    "clicks", "open", "opens", "email", "emails", "call", "calls", "session", "sessions", "time", "duration",
    "day", "days", "hour", "hours", "minute", "minutes", "second", "seconds", "size", "employees", "revenue", "age",
})


def default_range(column: str) -> tuple[float | None, float | None]:
    """The range of a numeric flat column the profile does not declare: [0, ∞) for a count, duration or size
    (a word of `NON_NEGATIVE_WORDS` in its name), else unbounded."""
    return (0.0, None) if set(feature_name(column).split("_")) & NON_NEGATIVE_WORDS else (None, None)


# --------------------------------------------------------------------------------------------------
# Values: missing markers, numbers, dates


def blank_missing(s: pd.Series, markers: tuple[str, ...]) -> pd.Series:
    """Text cells equal (case- and space-insensitively) to a missing marker become missing."""
    if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
        return s
    text = s.astype("string").str.strip()
    is_marker = text.str.lower().isin(set(markers)).fillna(False).to_numpy(dtype=bool)
    out = s.astype(object).where(~is_marker, None)
    return out.where(pd.notna(out), None)


_CURRENCY = re.compile(r"[\s$€£¥\u00a0\u202f']|USD|EUR|GBP|BRL|R\$")
_THOUSANDS_COMMA = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")
_THOUSANDS_DOT = re.compile(r"^-?\d{1,3}(\.\d{3})+(,\d+)?$")


def parse_number(text: Any, decimal: str = "auto") -> float | None:
    """One cell as a number: ``$1,200`` → 1200, ``1.200,50`` → 1200.5, ``(300)`` → -300, ``12%`` → 12.

    Returns None when the text is not a number. ``decimal`` is the decimal mark; ``auto`` decides per
    value: the last of ``.``/``,`` when both occur, a single ``,`` followed by exactly three digits in
    groups (``1,200``) is a thousands separator, otherwise ``,`` is a decimal comma.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return None
    if isinstance(text, int | float | np.integer | np.floating) and not isinstance(text, bool):
        return float(text)
    s = _CURRENCY.sub("", str(text).strip())
    negative = s.startswith("(") and s.endswith(")")
    s = s.strip("()").rstrip("%")
    if not s:
        return None
    if decimal == ",":
        s = s.replace(".", "").replace(",", ".")
    elif decimal == ".":
        s = s.replace(",", "")
    elif "," in s and "." in s:
        s = s.replace(".", "").replace(",", ".") if s.rfind(",") > s.rfind(".") else s.replace(",", "")
    elif "," in s:
        s = s.replace(",", "") if _THOUSANDS_COMMA.match(s) else s.replace(",", ".")
    elif s.count(".") > 1 and _THOUSANDS_DOT.match(s):
        s = s.replace(".", "")
    try:
        value = float(s)
    except ValueError:
        return None
    if not np.isfinite(value):
        return None
    return -value if negative else value


def parse_numbers(s: pd.Series, decimal: str = "auto", keep_text: bool = True) -> pd.Series:
    """A column of numbers; unparseable text stays as text (``keep_text``) for the validator to report."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(float)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)  # each distinct text parsed once; missing: code -1
    parsed = np.array([parse_number(u, decimal) for u in uniques] + [None], dtype=float)  # None: NaN
    values = pd.Series(parsed[codes], index=s.index)
    bad = s.notna() & values.isna()
    if not bad.any() or not keep_text:
        return values.astype(float)
    return values.astype(object).where(~bad, s)


def parse_dates(s: pd.Series, formats: tuple[str, ...] = (), keep_text: bool = True) -> pd.Series:
    """Dates in any of ``formats`` (tried in order), then ISO 8601; naive UTC.

    Returns datetime64; when some text does not parse and ``keep_text`` is set, an object column of
    Timestamps with that text left in place, so the validator reports ``<col>: type datetime`` for its row.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(s.dtype, pd.DatetimeTZDtype) else s
        return out
    text = s.astype("string").str.strip()
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    for fmt in (*formats, "ISO8601"):
        todo = out.isna() & text.notna()
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce", utc=True)
        out[todo] = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    bad = (out.isna() & text.notna()).to_numpy(dtype=bool)
    if not keep_text or not bad.any():
        return out
    result = out.astype(object).where(out.notna(), None)
    result[bad] = s[bad].to_numpy()
    return result


def per_value(s: pd.Series, transform: Callable[[pd.Series], pd.Series], missing: Any = None) -> pd.Series:
    """``transform(s)`` for a cell-by-cell ``transform``, computed on the distinct values only and spread back
    (a missing cell stays ``missing``): an export's columns repeat a few values over many rows. Object dtype
    (float with ``missing=np.nan``), on ``s``'s index."""
    dtype = object if missing is None else float
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    if 2 * len(uniques) > len(s):  # mostly distinct: nothing to share
        return transform(s).astype(dtype)
    done = transform(pd.Series(uniques))
    values = np.append(done.to_numpy(dtype=dtype), np.array([missing], dtype=dtype))
    return pd.Series(values[codes], index=s.index, dtype=dtype)


def map_values(s: pd.Series, mapping: Mapping[str, Any]) -> pd.Series:
    """Map source values (compared as stripped text, case-insensitively) onto contract values; others stay."""
    if not mapping:
        return s
    lookup = {str(k).strip().lower(): v for k, v in mapping.items()}
    key = s.astype("string").str.strip().str.lower()
    hit = key.isin(list(lookup)).fillna(False).to_numpy(dtype=bool)
    out = s.astype(object).where(s.notna(), None)
    if hit.any():
        out[hit] = key[hit].map(lookup).astype(object).to_numpy()
    return out


def _as_text(s: pd.Series) -> pd.Series:
    """Text cells as Python str (numbers from Parquet too), missing as None."""
    return s.astype("string").astype(object).where(s.notna(), None)


# --------------------------------------------------------------------------------------------------
# Four-table exports


def required_source_columns(profile: Profile, table: str) -> dict[str, tuple[str, ...]]:
    """Contract column -> its candidate source columns, for the contract columns the table requires."""
    spec = profile.tables[table]
    required = set(CONTRACT[table].required_names)
    return {dst: srcs for dst, srcs in spec.columns.items() if dst in required}


def missing_source_column(columns: list[str], profile: Profile, table: str) -> tuple[str, str] | None:
    """(source column, contract column) of the first required mapping none of whose names is in ``columns``."""
    for dst, srcs in required_source_columns(profile, table).items():
        if not any(src in columns for src in srcs):
            return " or ".join(srcs), dst
    return None


def map_table(frames: list[pd.DataFrame], profile: Profile, table: str) -> pd.DataFrame:
    """One contract table from its source frame(s) (concatenated in file order). An optional source column
    that is absent is left out; a missing required one raises ``ProfileError`` naming both names."""
    spec = profile.tables[table]
    contract: Table = CONTRACT[table]
    parts = []
    for i, raw in enumerate(frames):
        raw = raw.drop(columns=[c for c in profile.drop if c in raw.columns])
        fname = spec.files[i] if i < len(spec.files) else spec.files[-1]
        missing = missing_source_column(list(raw.columns), profile, table)
        if missing:
            raise ProfileError(f"{fname}: column {missing[0]!r} (contract {table}.{missing[1]}) missing; "
                               f"the file has {list(raw.columns)[:12]}")
        part = pd.DataFrame(index=raw.index)
        for dst, srcs in spec.columns.items():
            src = next((c for c in srcs if c in raw.columns), None)
            if src is not None:
                part[dst] = raw[src].to_numpy()
        parts.append(part)
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    for dst, value in spec.constants.items():
        df[dst] = value
    for col in contract.columns:
        if col.name not in df:
            continue
        s = blank_missing(df[col.name], profile.missing)
        s = map_values(s, spec.values.get(col.name, {}))
        if col.dtype in ("int", "float"):
            s = parse_numbers(s, profile.decimal)
            if col.name in spec.scale:
                s = s.map(lambda v, k=spec.scale[col.name]: v * k if isinstance(v, float) else v)
        elif col.dtype == "datetime":
            s = parse_dates(s, profile.date_formats)
        elif col.dtype == "string":
            s = _as_text(s)
        df[col.name] = s
    return df[[c for c in contract.names if c in df]]


def with_sales_flag(leads: pd.DataFrame, working_statuses: tuple[str, ...]) -> pd.DataFrame:
    """The leads with `with_sales` derived from the export-time CRM state: converted, or a `crm_status` the
    profile declares as working. A `with_sales` the export maps directly is kept (ORed with the derivation).
    Without any of these columns the leads are returned as they are (the opportunities alone decide)."""
    parts = []
    if "is_converted" in leads:
        parts.append(leads["is_converted"].map(_bool_token).astype("boolean").fillna(False).to_numpy(dtype=bool))
    if "crm_status" in leads and working_statuses:
        status = leads["crm_status"].astype("string").str.strip()
        parts.append(status.isin(list(working_statuses)).fillna(False).to_numpy(dtype=bool))
    if "with_sales" in leads:
        parts.append(leads["with_sales"].map(_bool_token).astype("boolean").fillna(False).to_numpy(dtype=bool))
    if not parts:
        return leads
    return leads.assign(with_sales=np.logical_or.reduce(parts))


def typed_table(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Valid rows with proper dtypes (numbers float, dates datetime64, text str): safe to write as Parquet."""
    out = df.copy()
    for col in CONTRACT[table].columns:
        if col.name not in out:
            continue
        if col.dtype in ("int", "float"):
            out[col.name] = pd.to_numeric(out[col.name], errors="coerce").astype(float)
        elif col.dtype == "datetime":
            out[col.name] = pd.to_datetime(out[col.name], errors="coerce", format="ISO8601")
        elif col.dtype == "bool":
            out[col.name] = out[col.name].map(_bool_token).astype("boolean")
        else:
            out[col.name] = out[col.name].astype("string")
    return out


def _bool_token(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return pd.NA
    if isinstance(v, bool | np.bool_):
        return bool(v)
    return str(v).strip().lower() in ("true", "t", "yes", "y", "1", "1.0")


def empty_table(table: str) -> pd.DataFrame:
    """A contract table with its columns and no rows (for an export without, say, activities)."""
    dtypes = {"string": "string", "int": "float64", "float": "float64", "datetime": "datetime64[ns]", "bool": "boolean"}
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes[c.dtype]) for c in CONTRACT[table].columns})


SPARSE_DAY_SHARE = 0.05  # a day with fewer timestamps than this share of a typical day ends no export


def _dates(df: pd.DataFrame, table: str, not_after: pd.Timestamp | None) -> pd.Series:
    parts = [pd.to_datetime(df[col.name], errors="coerce", format="ISO8601")
             for col in CONTRACT[table].columns if col.dtype == "datetime" and col.name in df]
    if not parts:
        return pd.Series(dtype="datetime64[ns]")
    d = pd.concat(parts, ignore_index=True).dropna()
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    return d[d <= not_after] if not_after is not None else d


def export_as_of(tables: Mapping[str, pd.DataFrame], not_after: pd.Timestamp | None = None) -> pd.Timestamp:
    """The scoring date an export implies: midnight after its latest timestamp, so that everything the export
    holds is known before it.

    Mis-dated rows must not move it: dates after ``not_after`` (today) are ignored, and so are the days at the
    end of the data with fewer timestamps than SPARSE_DAY_SHARE of a typical (median) day, a scatter of typos
    rather than the CRM at work. The validator quarantines those rows as dated after the export.
    """
    parts = [_dates(df, t, not_after) for t, df in tables.items() if t in CONTRACT and len(df)]
    d = pd.to_datetime(pd.concat(parts, ignore_index=True) if parts else pd.Series(dtype="datetime64[ns]"))
    if not len(d):
        raise ProfileError("ingest.as_of auto: the export holds no valid date; set ingest.as_of (YYYY-MM-DD)")
    per_day = d.dt.normalize().value_counts().sort_index()
    floor = max(1.0, SPARSE_DAY_SHARE * float(per_day.median()))
    busy = per_day[per_day >= floor]
    return pd.Timestamp(busy.index.max()) + pd.Timedelta(days=1)


# --------------------------------------------------------------------------------------------------
# Flat exports


def feature_name(source: str) -> str:
    """A model-safe snake_case name for a source column (LightGBM refuses JSON characters in names)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", source).strip("_").lower()
    return name or "column"


@dataclass
class FlatData:
    """A flat export mapped: features (numeric float, categorical ``category``), label, ids, times."""

    X: pd.DataFrame
    y: pd.Series  # 1/0, missing for unlabelled (open) leads
    ids: pd.Series
    time: pd.Series | None  # naive datetimes (or row order) when the profile declares a time column
    dropped: Mapping[str, str]
    # the source rows that failed a row check, as they came in, with `source_row` (0-based) and `reason`
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: dict[str, int] = field(default_factory=dict)  # per check: rows that failed it


MAX_LISTED_LABELS = 20  # undeclared label values listed by name in the error (the most frequent first)


def map_label(s: pd.Series, profile: Profile, source: str = "input") -> pd.Series:
    """A flat export's label column as 1 (positive) / 0 (negative) / missing (open lead), by the profile's
    declared values (compared as ``label_key``s). An empty cell, or one equal to a missing marker that is not
    itself declared, is ``label.blank`` (open or negative). Any other value raises ``LabelValueError`` listing
    every undeclared value with its count: it is never guessed to be a negative."""
    lab = profile.label
    keys = s.reset_index(drop=True).astype("string").str.strip().str.lower().str.replace(
        r"^([+-]?\d+)\.0*$", r"\1", regex=True)
    sets = {kind: {label_key(v) for v in getattr(lab, kind)} for kind in ("positive", "negative", "open")}
    hit = {kind: keys.isin(values).fillna(False).to_numpy(dtype=bool) for kind, values in sets.items()}
    declared = hit["positive"] | hit["negative"] | hit["open"]
    blank = (keys.isna() | keys.isin(set(profile.missing))).fillna(True).to_numpy(dtype=bool) & ~declared
    unmapped = ~declared & (~blank if lab.blank in LABEL_BLANK else np.ones(len(keys), dtype=bool))
    if unmapped.any():
        shown = s.reset_index(drop=True).astype("string").str.strip()[unmapped].fillna("")
        groups = pd.DataFrame({"key": keys[unmapped].fillna("").to_numpy(), "shown": shown.to_numpy()})
        counts = groups.groupby("key", sort=False).agg(n=("shown", "size"), shown=("shown", lambda v: v.mode().iloc[0]))
        counts = counts.sort_values("n", ascending=False, kind="stable")
        listed = ", ".join(f"{'(empty)' if not row.shown else repr(row.shown)} ({row.n:,} row{'s' if row.n != 1 else ''})"
                           for row in counts.head(MAX_LISTED_LABELS).itertuples())
        more = f" and {len(counts) - MAX_LISTED_LABELS} more" if len(counts) > MAX_LISTED_LABELS else ""
        declared_text = "; ".join(f"{kind} {list(getattr(lab, kind)) or 'none'}" for kind in ("positive", "negative", "open"))
        hint = ("; an empty label (or a missing marker) is an error unless the profile says blank: open or "
                "blank: negative") if (blank & unmapped).any() else ""
        raise LabelValueError(
            f"{source}: column {lab.column!r}: {len(counts)} label value(s) the profile {profile.name!r} does not "
            f"declare: {listed}{more}. Declare each under label positive, negative or open (declared: "
            f"{declared_text}){hint}")
    y = pd.Series(pd.array([pd.NA] * len(keys), dtype="Int8"))
    y[hit["positive"]] = 1
    y[hit["negative"]] = 0
    if lab.blank == "negative":
        y[blank] = 0
    return y


FLAT_SOURCE_ROW, FLAT_REASON = "source_row", "reason"  # the quarantine's columns, as for the four tables
MIN_PLAUSIBLE_FLAT_DATE = pd.Timestamp("1990-01-01")  # as the contract's dates (features.schema)


def map_flat(df: pd.DataFrame, profile: Profile, positives: set[str] | None = None, source: str = "input",
             not_after: pd.Timestamp | None = None) -> FlatData:
    """Features, label, ids and times of a flat export. ``positives``: ids in the label file (``in_file``).

    Row checks, as for the four tables: a row with an empty id (``<id>: not null``), a repeated id (``duplicate
    id``, the first occurrence stays), a value that is not a number (``<col>: type float``) or outside its range
    (``<col>: in range``: the profile's ``ranges``, else `default_range`), a time that is not a date (``<col>: type
    datetime``), before 1990 (``<col>: not before 1990-01-01``) or after ``not_after`` (``<col>: not in future``)
    goes to ``quarantine`` with every reason; the other rows are mapped. Label values are file-level: an
    undeclared one stops the run (`map_label`)."""
    df = df.drop(columns=[c for c in profile.drop if c in df.columns]).reset_index(drop=True)
    missing = [c for c in profile.source_columns() if c not in df.columns]
    if missing:
        raise ProfileError(f"{source}: column {missing[0]!r} missing; the file has {list(df.columns)[:12]}")
    if len(df) == 0:
        raise ProfileError(f"{source}: no data rows")
    masks: dict[str, np.ndarray] = {}
    if profile.id:
        ids = df[profile.id].astype("string")
        null = (ids.isna() | (ids.str.strip() == "")).fillna(True).to_numpy(dtype=bool)
        masks[f"{profile.id}: not null"] = null
        masks["duplicate id"] = (~null & ids.duplicated(keep="first").to_numpy(dtype=bool))
    else:
        ids = pd.Series([str(i + 1) for i in range(len(df))], dtype="string")

    X = pd.DataFrame(index=df.index)
    names: dict[str, str] = {}
    for col in profile.numeric:
        # each distinct cell is cleaned and parsed once (`per_value`): an export repeats few values many times
        s = per_value(df[col], lambda u, col=col: map_values(blank_missing(u, profile.missing),
                                                             profile.values.get(col, {})))
        values = parse_numbers(s, profile.decimal, keep_text=False)
        bad = (s.notna() & values.isna()).to_numpy(dtype=bool)
        masks[f"{col}: type float"] = bad
        low, high = profile.ranges.get(col, default_range(col))
        arr = values.to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            out = np.zeros(len(arr), dtype=bool)
            if low is not None:
                out |= arr < low
            if high is not None:
                out |= arr > high
        masks[f"{col}: in range"] = out
        names[col] = feature_name(col)
        X[names[col]] = arr
    for col in profile.categorical:
        s = per_value(df[col], lambda u, col=col: map_values(blank_missing(u, profile.missing),
                                                             profile.values.get(col, {})).map(
            lambda v: None if v is None else str(v)))
        names[col] = feature_name(col)
        X[names[col]] = pd.Categorical(s.astype(object))
    if profile.job_title:
        from features.titles import parse_titles

        titles = parse_titles(blank_missing(df[profile.job_title], profile.missing).astype("string"))
        X["seniority_level"] = titles["seniority_level"].astype(float).to_numpy()
        X["department"] = pd.Categorical(titles["department"].astype(object).to_numpy())
    doubled = [n for n in set(X.columns) if list(X.columns).count(n) > 1]
    if doubled:
        raise ProfileError(f"{profile.name}: feature name {doubled[0]!r} comes from two source columns")

    if profile.label.column:
        y = map_label(df[profile.label.column], profile, source)
    else:
        y = pd.Series(ids.isin(positives or set()).astype(int).to_numpy(), dtype="Int8")

    t = None
    if profile.time and profile.time != "row_order":
        raw_time = blank_missing(df[profile.time], profile.missing)
        t = parse_dates(raw_time, profile.date_formats, keep_text=False)
        masks[f"{profile.time}: type datetime"] = (t.isna() & pd.Series(raw_time).notna()).to_numpy(dtype=bool)
        masks[f"{profile.time}: not before {MIN_PLAUSIBLE_FLAT_DATE.date()}"] = (t < MIN_PLAUSIBLE_FLAT_DATE).to_numpy(dtype=bool)
        if not_after is not None:
            masks[f"{profile.time}: not in future"] = (t > pd.Timestamp(not_after)).to_numpy(dtype=bool)

    failed = np.zeros(len(df), dtype=bool)
    for mask in masks.values():
        failed |= mask
    keep = ~failed
    quarantine = df[failed].reset_index(drop=True)
    quarantine[FLAT_SOURCE_ROW] = pd.Series(np.flatnonzero(failed), dtype="int64")
    quarantine[FLAT_REASON] = pd.Series(
        ["; ".join(n for n, m in masks.items() if m[r]) for r in np.flatnonzero(failed)], dtype="str")
    X, y, ids = X[keep].reset_index(drop=True), y[keep].reset_index(drop=True), ids[keep].reset_index(drop=True)

    time = None
    if profile.time == "row_order":
        time = pd.Series(np.flatnonzero(keep), dtype="int64")  # the rows' places in the file
    elif t is not None:
        time = t[keep].reset_index(drop=True)
        if profile.time_features:
            base = feature_name(profile.time)
            X[f"{base}_month"] = time.dt.month.astype(float).to_numpy()
            X[f"{base}_weekday"] = time.dt.weekday.astype(float).to_numpy()
            X[f"{base}_days"] = ((time - time.min()).dt.total_seconds() / 86_400).astype(float).to_numpy()
    return FlatData(X=X, y=y, ids=ids, time=time, dropped=profile.drop, quarantine=quarantine,
                    failures={n: int(m.sum()) for n, m in masks.items()})


__all__ = [
    "FlatData",
    "Label",
    "LabelValueError",
    "Profile",
    "ProfileError",
    "TableSource",
    "blank_missing",
    "default_range",
    "empty_table",
    "feature_name",
    "export_as_of",
    "label_key",
    "map_flat",
    "map_label",
    "map_table",
    "map_values",
    "per_value",
    "parse_dates",
    "parse_number",
    "parse_numbers",
    "parse_profile",
    "typed_table",
]


# --------------------------------------------------------------------------------------------------
# The contract as documentation


LABEL_RULE = (
    "**How the label is formed.** Four-table exports: for a lead in the snapshot of as-of date T (created before "
    "T, no opportunity closed before T) the label is 1 when one of its opportunities has `stage` = `closed_won` "
    "and `closed_at` in [T, T + `featurize.horizon_days`), else 0. Flat exports: the profile's `label` — one "
    "column whose every value is declared `positive` (1), `negative` (0) or `open` (an open lead: scored, not "
    "trained on), an empty cell counting only as the profile's `blank` says (any other value stops the run), or "
    "the lead's id appearing in another file (`in_file`: 1, else 0)."
)


def _checks_text(col, table: Table) -> str:
    parts = []
    if col.name == table.primary_key or col.unique:
        parts.append("unique")
    if col.min_value is not None or col.max_value is not None:
        lo = "" if col.min_value is None else f"{col.min_value:g}"
        hi = "" if col.max_value is None else f"{col.max_value:g}"
        parts.append(f"range [{lo}, {hi}]")
    if col.dtype == "datetime":
        parts.append("not before 1990-01-01")
    if col.not_in_future:
        parts.append("not after the export date")
    if col.allowed is not None:
        shown = ", ".join(f"`{a}`" for a in col.allowed[:6])
        parts.append(f"one of {shown}{', …' if len(col.allowed) > 6 else ''}")
        if col.other is not None:
            parts.append(f"any other value kept as `{col.other}` (counted)")
    if col.references:
        parts.append(f"→ `{col.references}`")
    for later, earlier in table.ordered_dates:
        if col.name == later:
            parts.append(f"≥ `{earlier}`")
    return "; ".join(parts)


def contract_markdown(contract: Mapping[str, Table] = CONTRACT) -> str:
    """The data contract as Markdown tables, generated from ``features.schema`` (``leadscore contract``)."""
    lines = []
    for name in TABLE_ORDER:
        table = contract[name]
        lines += [f"#### `{name}` — {table.description} Key: `{table.primary_key}`", "",
                  "| column | type | required | nullable | checks | meaning |", "|---|---|---|---|---|---|"]
        for col in table.columns:
            lines.append(f"| `{col.name}` | {col.dtype} | {'yes' if col.required else 'no'} | "
                         f"{'yes' if col.nullable else 'no'} | {_checks_text(col, table)} | {col.description} |")
        lines.append("")
    lines.append(LABEL_RULE)
    return "\n".join(lines) + "\n"
