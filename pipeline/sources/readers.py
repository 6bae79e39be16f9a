"""Reading real exports robustly: CSV (`,` `;` or tab, UTF-8 with or without BOM, Windows-1252/Latin-1) or Parquet.

Every file-level problem raises ``InputFileError`` with one message naming the file (and the column or line
when there is one): missing file, empty file, header only, duplicated column, ragged rows, an unsupported
delimiter, UTF-16 or binary content, an Excel workbook. CSV cells are read as text (empty cells missing);
profiles parse numbers and dates, so ``007`` stays ``007`` and ``1.200,50`` is not mangled by the reader.

The encoding is decided per file: UTF-8 (with or without BOM) when the whole file decodes; a file with no valid
UTF-8 beyond ASCII that fails is Windows-1252 (else Latin-1); a UTF-8 file with a few lines in another encoding
(one cp-1252 byte pasted in) is decoded line by line, UTF-8 where it decodes and cp-1252 on the other lines, with
a warning naming them (never the whole file as cp-1252: that turns every accent into mojibake). Every row must
have the header's number of fields: a short or long row is refused with its line number (nothing is padded). A
bare CR inside a line of an LF- or CRLF-terminated file is part of its cell, not a row break.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

DELIMITERS = (",", ";", "\t")
SNIFF_BYTES = 1 << 16
# Share of control characters above which decoded text is not text (a wrong or binary encoding).
MAX_CONTROL_SHARE = 0.01


class InputFileError(ValueError):
    """An input file cannot be read as a table; the message names the file and, if known, the column/line."""


def read_export(path: Path | str, allow_empty: bool = False) -> pd.DataFrame:
    """The table in ``path`` (CSV or Parquet, decided by content, not by suffix); ``allow_empty``: a header
    without rows is an empty table (a pipeline's own table), not an error."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: file not found")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a CSV or Parquet file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not raw.strip():
        raise InputFileError(f"{path}: file is empty")
    if raw[:4] == b"PAR1":
        return _read_parquet(path, allow_empty)
    if path.suffix.lower() == ".parquet":
        raise InputFileError(f"{path}: not a Parquet file (no PAR1 magic bytes)")
    if raw[:4] == b"PK\x03\x04":
        raise InputFileError(f"{path}: an Excel workbook or zip archive, not CSV or Parquet; save it as CSV")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise InputFileError(f"{path}: unsupported encoding UTF-16; save it as UTF-8 CSV")
    if b"\x00" in raw[:SNIFF_BYTES]:
        raise InputFileError(f"{path}: binary content, not a CSV or Parquet file")
    text, encoding = decode_per_file(raw, path)
    return _read_csv_text(text, path, encoding, allow_empty)


def _read_parquet(path: Path, allow_empty: bool = False) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InputFileError(f"{path}: unreadable Parquet file ({type(exc).__name__}: {exc})") from None
    _check_columns(list(df.columns), path)
    if len(df) == 0 and not allow_empty:
        raise InputFileError(f"{path}: no data rows (header only)")
    return df


def _is_text(text: str) -> bool:
    sample = text[:SNIFF_BYTES]
    control = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\r\n") or 0x7F <= ord(ch) <= 0x9F)
    return control <= MAX_CONTROL_SHARE * max(len(sample), 1)


MAX_LISTED_LINES = 5  # lines named in the mixed-encoding warning


def decode_per_file(raw: bytes, path: Path | str) -> tuple[str, str]:
    """(text, encoding) of a CSV file's bytes: UTF-8 unless it fails. A file that fails UTF-8 is decoded line by
    line when other lines hold valid non-ASCII UTF-8 (a mixed file: a warning names the other lines, encoding
    ``mixed``); otherwise as Windows-1252, else Latin-1. Raises `InputFileError` for text that is not text."""
    path = Path(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    else:
        if _is_text(text):
            return text, "utf-8"
        raise InputFileError(f"{path}: unreadable encoding (not UTF-8, Windows-1252 or Latin-1 text)")
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    lines = body.split(b"\n")
    utf8_lines, other_lines, decoded = 0, [], []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8"))
            utf8_lines += not line.isascii()
        except UnicodeDecodeError:
            decoded.append(line.decode("cp1252", errors="strict") if _cp1252_ok(line) else line.decode("latin-1"))
            other_lines.append(number)
    if utf8_lines:
        text = "\n".join(decoded)
        if not _is_text(text):
            raise InputFileError(f"{path}: unreadable encoding (not UTF-8, Windows-1252 or Latin-1 text)")
        shown = ", ".join(map(str, other_lines[:MAX_LISTED_LINES])) + (" ..." if len(other_lines) > MAX_LISTED_LINES else "")
        _warn(f"WARNING {path}: mixed encodings: UTF-8, but {len(other_lines)} line(s) are not UTF-8 and were read as "
              f"Windows-1252 (line {shown}); check those rows' accents and re-save the file as UTF-8")
        return text, "mixed"
    for encoding in ("cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _is_text(text):
            return text, encoding
    raise InputFileError(f"{path}: unreadable encoding (not UTF-8, Windows-1252 or Latin-1 text)")


def _cp1252_ok(line: bytes) -> bool:
    try:
        line.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return True


def _warn(message: str) -> None:
    from pipeline.progress import log

    log(message)


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


def _row_breaks(text: str) -> str:
    """The text with one kind of row break: in an LF or CRLF file a bare CR is part of its cell (kept as a
    placeholder the caller restores); in a file of bare CRs (classic Mac) each CR is the row break."""
    if "\n" not in text:
        return text.replace("\r", "\n")
    return text.replace("\r\n", "\n").replace("\r", _CR) if "\r" in text else text


_CR = "\ue000"  # a bare CR inside a line while the rows are split (restored in every cell)


def _read_csv_text(text: str, path: Path, encoding: str, allow_empty: bool = False) -> pd.DataFrame:
    # the placeholder itself occurs: keep the file's bare CRs as row breaks rather than guess
    text = text.replace("\r\n", "\n").replace("\r", "\n") if _CR in text else _row_breaks(text)
    lines = text.split("\n")
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
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long cell is data (titles parse in linear time)
    reader = csv.reader((ln + "\n" for ln in lines), delimiter=delimiter)
    rows: list[list[str]] = []
    fields: list[str] | None = None
    line = 0
    try:
        for row in reader:
            start, line = line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            if fields is None:
                fields = row
                _check_columns(fields, path)
                continue
            if len(row) != len(fields):
                kind = "a short row (nothing is filled in)" if len(row) < len(fields) else "a long row"
                where = f"line {start}" if start == line else f"line {start} (to line {line})"
                raise InputFileError(f"{path}: ragged rows: expected {len(fields)} fields in {where}, saw {len(row)}: "
                                     f"{kind}; the header has {len(fields)} columns (delimiter {delimiter!r})")
            rows.append(row)
    except csv.Error as exc:
        raise InputFileError(f"{path}: not a readable CSV at line {reader.line_num} ({exc}; delimiter "
                             f"{delimiter!r})") from None
    if fields is None:
        raise InputFileError(f"{path}: file is empty")
    if not rows and not allow_empty:
        raise InputFileError(f"{path}: no data rows (header only)")
    columns = [f.replace(_CR, "\r") for f in fields]
    if not rows:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})
    data = {}
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        col = pd.Series(values, dtype=object)
        if _CR in text:
            col = col.str.replace(_CR, "\r", regex=False)
        data[name] = col.where(col != "", None)
    df = pd.DataFrame(data)
    df.attrs["source"] = {"path": str(path), "encoding": encoding, "delimiter": delimiter}
    return df


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
