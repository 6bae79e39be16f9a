"""Reading real exports robustly: CSV (`,` `;` or tab, UTF-8 with or without BOM, Windows-1252/Latin-1) or Parquet.

Every file-level problem raises ``InputFileError`` with one message naming the file (and the column or line
when there is one): missing file, empty file, header only, duplicated column, ragged rows, an unsupported
delimiter, UTF-16 or binary content, an Excel workbook. CSV cells are read as text (empty cells missing);
profiles parse numbers and dates, so ``007`` stays ``007`` and ``1.200,50`` is not mangled by the reader.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pandas as pd

DELIMITERS = (",", ";", "\t")
SNIFF_BYTES = 1 << 16
# Share of control characters above which decoded text is not text (a wrong or binary encoding).
MAX_CONTROL_SHARE = 0.01


class InputFileError(ValueError):
    """An input file cannot be read as a table; the message names the file and, if known, the column/line."""


def read_export(path: Path | str) -> pd.DataFrame:
    """The table in ``path`` (CSV or Parquet, decided by content, not by suffix)."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a CSV or Parquet file")
    raw = path.read_bytes()
    if not raw.strip():
        raise InputFileError(f"{path}: file is empty")
    if raw[:4] == b"PAR1":
        return _read_parquet(path)
    if path.suffix.lower() == ".parquet":
        raise InputFileError(f"{path}: not a Parquet file (no PAR1 magic bytes)")
    if raw[:4] == b"PK\x03\x04":
        raise InputFileError(f"{path}: an Excel workbook or zip archive, not CSV or Parquet; save it as CSV")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputFileError(f"{path}: unsupported encoding UTF-16; save it as UTF-8 CSV")
    if b"\x00" in raw[:SNIFF_BYTES]:
        raise InputFileError(f"{path}: binary content, not a CSV or Parquet file")
    text, encoding = _decode(raw, path)
    return _read_csv_text(text, path, encoding)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputFileError(f"{path}: unreadable Parquet file ({type(exc).__name__}: {exc})") from None
    _check_columns(list(df.columns), path)
    if len(df) == 0:
        raise InputFileError(f"{path}: no data rows (header only)")
    return df


def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        sample = text[:SNIFF_BYTES]
        control = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\r\n") or 0x7F <= ord(ch) <= 0x9F)
        if control <= MAX_CONTROL_SHARE * max(len(sample), 1):
            return text, encoding
    raise InputFileError(f"{path}: unreadable encoding (not UTF-8, Windows-1252 or Latin-1 text)")


def sniff_delimiter(header: str) -> str | None:
    """The delimiter of a header line: the most frequent of `,` `;` tab outside quotes (None when absent)."""
    counts: Counter[str] = Counter()
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in DELIMITERS:
            counts[ch] += 1
    return counts.most_common(1)[0][0] if counts else None


def _read_csv_text(text: str, path: Path, encoding: str) -> pd.DataFrame:
    lines = text.splitlines()
    header = next((ln for ln in lines if ln.strip()), "")
    delimiter = sniff_delimiter(header)
    if delimiter is None:
        if "|" in header:
            raise InputFileError(f"{path}: '|'-separated; use ',' or ';' as the delimiter")
        delimiter = ","  # a one-column file
    first_row = next((ln for ln in lines[lines.index(header) + 1:] if ln.strip()), "")
    row_delimiter = sniff_delimiter(first_row)
    if first_row and row_delimiter is not None and row_delimiter != delimiter and delimiter not in first_row:
        raise InputFileError(f"{path}: the header is {delimiter!r}-separated but the rows are "
                             f"{row_delimiter!r}-separated (line 2); use one delimiter")
    fields = next(csv.reader([header], delimiter=delimiter))
    _check_columns(fields, path)
    try:
        df = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_values=[""],
                         skip_blank_lines=True, engine="c")
    except pd.errors.ParserError as exc:
        raise InputFileError(f"{path}: {_ragged_message(exc, len(fields))} (delimiter {delimiter!r})") from None
    if len(df) == 0:
        raise InputFileError(f"{path}: no data rows (header only)")
    df.attrs["source"] = {"path": str(path), "encoding": encoding, "delimiter": delimiter}
    return df


def _ragged_message(exc: Exception, n_fields: int) -> str:
    msg = str(exc).strip()
    # pandas: "Error tokenizing data. C error: Expected 3 fields in line 5, saw 4"
    if "Expected" in msg and "line" in msg:
        tail = msg.split("Expected", 1)[1]
        return f"ragged rows: expected{tail.rstrip('.')} (the header has {n_fields} columns)"
    return f"not a readable CSV ({msg})"


def _check_columns(columns: list, path: Path) -> None:
    names = [str(c).strip() for c in columns]
    blank = [i for i, n in enumerate(names) if not n or n.startswith("Unnamed:")]
    if blank and len(names) > 1:
        raise InputFileError(f"{path}: column {blank[0] + 1} has no name in the header")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise InputFileError(f"{path}: column {n!r} appears more than once in the header")
        seen.add(n)


def wrong_delimiter_hint(df: pd.DataFrame, expected: str) -> str:
    """A hint when the expected column hides inside a header split on the wrong delimiter."""
    for col in df.columns:
        for d in (*DELIMITERS, "|"):
            if d in str(col) and expected in [p.strip().strip('"') for p in str(col).split(d)]:
                return f"; the header looks {d!r}-separated"
    return ""
