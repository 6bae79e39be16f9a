"""Reading and writing tables at the edge of the pipeline; every write is atomic."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE_SUFFIXES = (".parquet", ".csv")


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it over `target` only if the block succeeds.

    A crash mid-write leaves the previous file intact and no half-written one in its place.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give the result the usual permissions (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_atomic(target: Path | str, writer: Callable[[Path], Any]) -> Path:
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def write_parquet(df: pd.DataFrame, target: Path | str) -> Path:
    return write_atomic(target, lambda tmp: df.to_parquet(tmp, index=False))


# ------------------------------------------------------------------------------------------ the CSV writer
# Every CSV the project writes goes through `csv_text` / `write_csv`: exports, CRM files, queues, changes,
# quarantines, reports. Two rules make a cell safe to open in a spreadsheet and to re-read as the same table:
# 1. a field holding CR or LF is quoted (Python's csv module quotes only the line terminator's characters, so a
#    bare CR was written unquoted and split the row on reading);
# 2. formulas are neutralised: a text cell, or any line inside it after a CR/LF, that begins with =, +, -, @ or
#    tab gets a leading ' (a cell beginning with CR too); a value that is only a number in one of its written
#    forms (`PLAIN_NUMBER`: a phone +4930123456, an id -0042, -12.5, (555) 123-4567) cannot compute anything
#    and keeps its sign, so the CRM still matches on it.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = r"^[+-]?[0-9][0-9 ().,/-]*$"
_PLAIN = re.compile(PLAIN_NUMBER[:-1] + r"\Z")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
_RISKY = r"^[=+\-@\t\r]|[\r\n][=+\-@\t]"  # a formula prefix at the start of the cell or of a line in it


def _neutralise_cell(text: str) -> str:
    parts = _LINE_BREAK.split(text)  # lines at even positions, their breaks between them
    for i in range(0, len(parts), 2):
        line = parts[i]
        if line.startswith(FORMULA_PREFIXES[:5]) and not _PLAIN.match(line):
            parts[i] = "'" + line
    out = "".join(parts)
    return "'" + out if text.startswith("\r") else out


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Make text cells inert for spreadsheets (CSV injection): a cell, or a line inside it, beginning with =, +,
    -, @ or tab gets a leading quote, and so does a cell beginning with CR. A plain number in any written form
    (`PLAIN_NUMBER`: phones such as +4930123456) is left as it is. Idempotent; the input frame is not changed."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_string_dtype(s) or s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype):
            text = s.astype("string")
            risky = np.flatnonzero(text.str.contains(_RISKY, regex=True).fillna(False).to_numpy(dtype=bool))
            if len(risky):
                fixed = s.astype(object)  # a copy
                fixed.iloc[risky] = [_neutralise_cell(v) for v in text.iloc[risky]]
                keep_type = pd.api.types.is_string_dtype(s) and s.dtype != object
                out[col] = fixed.astype(s.dtype) if keep_type else fixed
    return out


def _has_cr(df: pd.DataFrame) -> np.ndarray:
    """Rows with a bare CR in a text cell (LF alone is quoted by the csv module already)."""
    rows = np.zeros(len(df), dtype=bool)
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_string_dtype(s) or s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype):
            rows |= s.astype("string").str.contains("\r", regex=False).fillna(False).to_numpy(dtype=bool)
    return rows


def csv_text(df: pd.DataFrame, header: bool = True, neutralise: bool = True) -> str:
    """The frame as CSV text ("\\n" between rows, no index): formulas neutralised, every field holding a CR or LF
    quoted, so pandas and Python's csv module read back the same rows and cells."""
    if neutralise:
        df = neutralise_formulas(df)
    cr = _has_cr(df)
    if not cr.any():
        return df.to_csv(index=False, header=header, lineterminator="\n")
    # rows with a CR in a cell: rendered with CRLF as the terminator, which makes the csv module quote CR and LF
    parts = [df.iloc[:0].to_csv(index=False, lineterminator="\n")] if header else []
    cuts = [0, *(np.flatnonzero(cr[1:] != cr[:-1]) + 1).tolist(), len(df)]
    for start, end in zip(cuts[:-1], cuts[1:], strict=True):  # runs of rows with / without a CR
        if not cr[start]:
            parts.append(df.iloc[start:end].to_csv(index=False, header=False, lineterminator="\n"))
        else:
            parts.extend(df.iloc[i:i + 1].to_csv(index=False, header=False, lineterminator="\r\n")[:-2] + "\n"
                         for i in range(start, end))
    return "".join(parts)


def write_csv(df: pd.DataFrame, target: Path | str, neutralise: bool = True) -> Path:
    """`csv_text` written atomically (UTF-8)."""
    text = csv_text(df, neutralise=neutralise)
    return write_atomic(target, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def write_json(data: Any, target: Path | str) -> Path:
    def _write(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")

    return write_atomic(target, _write)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def iter_split_batches(paths: list[Path], batch_rows: int, split: str | None = None) -> Iterator[pd.DataFrame]:
    """A feature table's rows of one `split` (all rows when None or without a split column) as DataFrames of at
    most `batch_rows` rows, read batch by batch, never the whole file (categoricals restored)."""
    import pyarrow.parquet as pq

    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            frame = batch.to_pandas()
            if split is not None and "split" in frame:
                frame = frame[frame["split"] == split]
            if len(frame):
                yield frame


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text())


def find_table(folder: Path | str, name: str) -> Path:
    """The file holding table `name` in `folder` (Parquet preferred over CSV)."""
    folder = Path(folder)
    for suffix in TABLE_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{folder}: no {name}.parquet or {name}.csv found")


# pandas' default missing markers, for the columns read_table types (ids and other text keep them as text)
_NA_TOKENS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def text_columns() -> frozenset[str]:
    """Columns read_table keeps as text: every text column of the data contract (ids, phones, titles, ...)."""
    from features.schema import CONTRACT

    return frozenset(c.name for t in CONTRACT.values() for c in t.columns if c.dtype == "string")


def _infer(s: pd.Series) -> pd.Series:
    """A text column as numbers or booleans when every present value is one (as pandas' CSV reader infers),
    else as it is."""
    present = s.dropna()
    text = present.astype(str)
    missing = s.isna() | s.isin(_NA_TOKENS)
    if not len(present) or missing.all():
        return pd.Series(np.nan, index=s.index) if missing.all() and len(s) else s
    values = s.where(~missing)
    lowered = values.dropna().astype(str).str.lower()
    if lowered.isin({"true", "false"}).all():
        flags = values.map(lambda v: None if v is None or v is np.nan else str(v).lower() == "true")
        return flags.astype(bool) if not missing.any() else flags
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers[~missing].notna().all():
        whole = not missing.any() and text.str.fullmatch(r"[+-]?\d+").all()
        return numbers.astype("int64") if whole else numbers.astype("float64")
    return s


def read_table(path: Path | str) -> pd.DataFrame:
    """A table file (Parquet, or CSV through the input reader: encoding per file, ragged rows refused, every error
    an `InputFileError` naming the file). CSV columns in `text_columns` (ids) stay text, so ``0000106`` stays
    ``0000106``; the others are typed as numbers or booleans when every value is one."""
    from pipeline.sources.readers import InputFileError, read_export

    path = Path(path)
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyarrow and the OS raise several types
            raise InputFileError(f"{path}: unreadable Parquet file ({type(exc).__name__}: {exc})") from None
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    df = read_export(path, allow_empty=True)
    keep = text_columns()
    typed = {c: _infer(df[c]) for c in df.columns if c not in keep and not str(c).endswith("_id")}
    return df.assign(**typed) if typed else df


def read_tables(folder: Path | str, names: tuple[str, ...] | list[str]) -> dict[str, pd.DataFrame]:
    return {name: read_table(find_table(folder, name)) for name in names}
