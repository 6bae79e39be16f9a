"""Reading and writing tables at the edge of the pipeline; every write is atomic."""

from __future__ import annotations

import collections
import contextlib
import itertools
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


def read_rows(path: Path | str, column: str, values) -> pd.DataFrame:
    """The rows of a Parquet file whose `column` holds one of `values`: what ``pd.read_parquet(path,
    filters=[(column, "in", values)])`` gives, the same frame. Where the file's statistics show that each row group
    holds one value of `column` only (a scoring file of score rows; the feature table, written snapshot by
    snapshot), the row groups are read whole or skipped instead: Arrow's filter copies every column of every row
    it keeps (820k score rows of 102 columns: 0.7-1.7 s filtered, 0.4-0.6 s read whole)."""
    import pyarrow.parquet as pq

    wanted = list(values)
    with pq.ParquetFile(path) as parquet:  # the footer is read once, for the statistics and the read
        keep = _whole_row_groups(parquet.metadata, column, set(wanted))
        if keep is not None:
            return parquet.read_row_groups(keep).to_pandas()
    return pd.read_parquet(path, filters=[(column, "in", wanted)])


def _whole_row_groups(metadata, column: str, wanted: set) -> list[int] | None:
    """The row groups whose `column` holds one value, of `wanted` (min = max by their statistics, no missing
    value); None when a row group might hold other values beside wanted ones (no statistics, a range) or when
    none is wanted (the filtered read then gives the empty frame its own way)."""
    leaf = next((j for j in range(metadata.num_columns) if metadata.schema.column(j).path == column), None)
    if leaf is None:
        return None
    keep = []
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(leaf).statistics
        if stats is None or not stats.has_min_max or not stats.has_null_count or stats.null_count \
                or stats.min != stats.max:
            return None
        if stats.min in wanted:
            keep.append(group)
    return keep or None


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
                # a string column keeps its type; a categorical one becomes text (its categories lack the fixed
                # values: casting back would turn every neutralised cell into a missing one)
                keep_type = pd.api.types.is_string_dtype(s) and s.dtype != object \
                    and not isinstance(s.dtype, pd.CategoricalDtype)
                out[col] = fixed.astype(s.dtype) if keep_type else fixed
    return out


def rows_with(df: pd.DataFrame, char: str) -> np.ndarray:
    """Rows with `char` in a text cell (CR: pandas' writer renders them alone; LF alone is quoted by the csv module
    already)."""
    rows = np.zeros(len(df), dtype=bool)
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_string_dtype(s) or s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype):
            rows |= s.astype("string").str.contains(char, regex=False).fillna(False).to_numpy(dtype=bool)
    return rows


def _csv_text_pandas(df: pd.DataFrame, header: bool = True, neutralise: bool = True) -> str:
    """`csv_text` through pandas' writer (the reference the fast writer reproduces byte for byte)."""
    if neutralise:
        df = neutralise_formulas(df)
    cr = rows_with(df, "\r")
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


def csv_text(df: pd.DataFrame, header: bool = True, neutralise: bool = True) -> str:
    """The frame as CSV text ("\\n" between rows, no index): formulas neutralised, every field holding a CR or LF
    quoted, so pandas and Python's csv module read back the same rows and cells."""
    fast = FastCsv.of(df)
    if fast is not None:
        try:
            return b"".join(fast.blocks(list(df.columns), header=header, neutralise=neutralise)).decode("utf-8")
        except _Unsupported:
            pass
    return _csv_text_pandas(df, header, neutralise)


def write_csv(df: pd.DataFrame, target: Path | str, neutralise: bool = True) -> Path:
    """`csv_text` written atomically (UTF-8), streamed block by block (the text of the whole table is never held)."""
    return write_csv_files(df, {target: (list(df.columns), None)}, neutralise)[Path(target)]


def write_csv_files(df: pd.DataFrame, files: dict[Path | str, tuple], neutralise: bool = True,
                    chunk_columns: int | None = None, fast: FastCsv | None = None) -> dict[Path, Path]:
    """Several CSV files of columns of one frame, each written atomically: target -> (its columns, its header
    names or None for the column names[, columns rendered on their own]). Each file is byte for byte
    `csv_text(df[columns])` with the header renamed; a column two files share is rendered once. A column rendered
    on its own (the CRM files' owner id, appended to lines rendered without it) writes an empty cell as "" (what
    the csv module writes for a row of one empty field). `chunk_columns`: the column count pandas' writer would
    have chunked the rows by (its datetime format is decided per chunk of 100,000 // columns rows)."""
    targets = {Path(t): (spec[0], spec[1], tuple(spec[2]) if len(spec) > 2 else (),
                         spec[3] if len(spec) > 3 and spec[3] else chunk_columns) for t, spec in files.items()}
    fast = FastCsv.of(df) if fast is None else fast
    if fast is not None:
        try:
            with contextlib.ExitStack() as stack:
                tmps = {t: stack.enter_context(atomic_path(t)) for t in targets}
                handles = {t: stack.enter_context(open(tmps[t], "wb")) for t in targets}
                for t, (cols, names, _, _) in targets.items():
                    head = fast.header(names if names is not None else cols)
                    handles[t].write(head)
                lone = {t: alone for t, (_, _, alone, _) in targets.items()}
                widths = {t: width for t, (_, _, _, width) in targets.items()}
                for block in fast.render({t: cols for t, (cols, _, _, _) in targets.items()}, neutralise, lone,
                                         widths):
                    for t, data in block.items():
                        handles[t].write(data)
                for handle in handles.values():
                    handle.close()
            return {t: t for t in targets}
        except _Unsupported:
            pass  # a value the fast writer does not render (atomic: nothing was replaced); pandas' writer then
    for t, (cols, names, alone, _) in targets.items():
        frame = df[list(cols)]
        if names is not None:
            frame = frame.set_axis(list(names), axis=1)
        text = _csv_text_pandas(frame, True, neutralise)
        if alone:  # the lines of the other columns, each lone column's own rendering appended
            rest = [c for c in cols if c not in alone]
            parts = [_csv_text_pandas(df[rest], False, neutralise).split("\n")[:-1],
                     *(_csv_text_pandas(df[[c]], False, neutralise).split("\n")[:-1] for c in alone)]
            if all(len(part) == len(df) for part in parts):
                head = text.split("\n", 1)[0] + "\n"
                text = head + "".join(",".join(cells) + "\n" for cells in zip(*parts, strict=True))
        write_atomic(t, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8", newline=""))
    return {t: t for t in targets}


# ----------------------------------------------------------------------------- the fast (Arrow) CSV writer
# pandas' `to_csv` hands every cell to Python's csv module (~60 s for the 820k-row exports of a million leads).
# `FastCsv` renders each column once to Arrow text exactly as pandas would (floats as numpy's repr, ints, True /
# False, datetimes per pandas' chunk, missing as empty), neutralises formulas and quotes as the csv module does
# (QUOTE_MINIMAL: a field holding , " CR or LF is quoted, " doubled), and joins the columns in Arrow, block by
# block. Anything it does not know how to render (object columns of non-text, nested types) goes to pandas.
# Rows rendered per block. 16,384 rather than 65,536: each block's intermediate texts (tens of MB per column at
# 65,536 rows of the CRM files' reasons) come from fresh memory the kernel must zero, a sixth of the scorer's CPU
# at a million leads; smaller blocks reuse it (scoring 1M leads: 0.98x the wall, 0.97x the CPU, 0.90x the peak
# memory, paired)
FAST_CSV_BLOCK_ROWS = 16_384
CODED_SAMPLE_ROWS = 65_536  # a text column with few distinct values among its first this many rows is coded
_PANDAS_CHUNK_CELLS = 100_000  # pandas.io.formats.csvs._DEFAULT_CHUNKSIZE_CELLS


def usable_cpus() -> int:
    """The processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1


def render_threads() -> int:
    """Threads rendering CSV blocks at once: the processors this process may use, at most 2 (Arrow's kernels
    release the interpreter; a second thread takes a core the SQL writer or LightGBM leaves free)."""
    return max(1, min(2, usable_cpus()))


def ordered_map(fn: Callable[[Any], Any], items, threads: int) -> Iterator[Any]:
    """`fn` of each item, in the items' order, computed by `threads` threads with at most 2 × `threads` results
    waiting (memory stays bounded by a few blocks). The first item is done alone, so that what `fn` builds once
    and caches (a column's distinct texts) is built before threads share it. An error of `fn` is raised here."""
    items = iter(items)
    first = next(items, _END)
    if first is _END:
        return
    yield fn(first)
    if threads <= 1:
        for item in items:
            yield fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="csv") as pool:
        pending = collections.deque(pool.submit(fn, item) for item in itertools.islice(items, 2 * threads))
        try:
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(items, 1):
                    pending.append(pool.submit(fn, item))
                yield result
        finally:
            for future in pending:  # a consumer that stops early (an error) does not wait for the rest
                future.cancel()


_END = object()


class _Unsupported(Exception):
    """A column or value the fast writer does not render: pandas' writer takes the table."""


def _pa():
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc


def _text_array(values) -> Any:
    """An Arrow string array (nulls kept) of a text column's values."""
    pa, _ = _pa()
    try:
        arr = pa.array(values, from_pandas=True) if not isinstance(values, np.ndarray) else \
            pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise _Unsupported(str(exc)) from None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    if not pa.types.is_string(arr.type):
        raise _Unsupported(f"text column of Arrow type {arr.type}")
    return arr


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a cell beginning with one of these may be neutralised


def _safe_text(arr, neutralise: bool):
    """Text cells as the writer puts them in the file: neutralised (when asked), quoted when they hold , " CR or
    LF, missing as empty."""
    pa, pc = _pa()
    if not len(arr):
        return pc.fill_null(arr, "")
    breaks = pc.or_(pc.match_substring(arr, "\n"), pc.match_substring(arr, "\r"))
    any_break = pc.any(breaks).as_py()
    if neutralise:
        risky = pc.is_in(pc.utf8_slice_codeunits(arr, 0, 1), value_set=pa.array(_FORMULA_STARTS))
        if any_break:  # a formula after a line break inside the cell
            risky = pc.or_(risky, pc.and_(breaks, pc.match_substring_regex(arr, _RISKY)))
        risky = pc.fill_null(risky, False)
        if pc.any(risky).as_py():
            # a cell of one line is neutralised by a leading ' unless it is a plain number (phones +4930...: most
            # risky cells), in Arrow; a cell with line breaks goes line by line through `_neutralise_cell`
            one_line = risky if not any_break else pc.and_(risky, pc.invert(pc.fill_null(breaks, False)))
            quote = pc.and_(one_line, pc.invert(pc.match_substring_regex(arr, PLAIN_NUMBER)))
            if pc.any(quote).as_py():
                arr = pc.if_else(quote, pc.utf8_replace_slice(arr, 0, 0, "'"), arr)
            if any_break:
                risky = pc.and_(risky, pc.fill_null(breaks, False))
                if pc.any(risky).as_py():
                    cells = arr.filter(risky).to_pylist()
                    arr = pc.replace_with_mask(arr, risky, pa.array([_neutralise_cell(v) for v in cells],
                                                                    type=pa.string()))
    arr = pc.fill_null(arr, "")
    need = pc.or_(pc.match_substring(arr, ","), pc.match_substring(arr, '"'))
    if any_break:
        need = pc.or_(need, pc.fill_null(breaks, False))
    if pc.any(need).as_py():
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
        arr = pc.if_else(need, quoted, arr)
    return arr


def coded_text(arr, sample_rows: int = CODED_SAMPLE_ROWS) -> tuple[Any, np.ndarray] | None:
    """(distinct values, code per row; missing -> len(distinct)) of an Arrow text column with few distinct values
    in its first `sample_rows` rows (statuses, tiers, gates, run ids: converted once per value), else None."""
    _, pc = _pa()
    sample = arr.slice(0, sample_rows)
    if len(arr) < 1_000 or pc.count_distinct(sample, mode="all").as_py() > len(sample) // 20:
        return None
    encoded = pc.dictionary_encode(arr)
    codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False).astype(np.int64)
    return encoded.dictionary, codes


def _float_text(values: np.ndarray):
    """float64 as pandas writes it (numpy's `astype(str)`: Python's repr), missing as empty."""
    pa, pc = _pa()
    arr = pa.array(values)
    text = arr.cast(pa.string())  # Arrow's shortest round-trip digits; format differs outside [1e-4, 1e16)
    with np.errstate(invalid="ignore"):
        absval = np.abs(values)
        own = np.isfinite(values) & ((absval >= 1e-4) | (values == 0)) & (absval < 1e16)
    own &= ~pc.match_substring(text, "e").to_numpy(zero_copy_only=False)
    whole = ~pc.match_substring(text, ".").to_numpy(zero_copy_only=False)
    text = pc.if_else(pa.array(whole & own), pc.binary_join_element_wise(text, ".0", ""), text)
    other = np.flatnonzero(~own)
    if len(other):  # exponents, inf, nan: numpy's own formatting (few cells)
        repl = values[other].astype(str).astype(object)
        repl[np.isnan(values[other])] = ""
        mask = np.zeros(len(values), dtype=bool)
        mask[other] = True
        text = pc.replace_with_mask(text, pa.array(mask), pa.array(repl, type=pa.string()))
    return text


class _Column:
    """One column's renderer: `text(start, stop)` is the Arrow text (no nulls) of those rows as the file has it."""

    def __init__(self, kind: str, data, codes: np.ndarray | None = None):
        self.kind, self.data, self.codes = kind, data, codes
        self._cache: dict[bool, Any] = {}

    def text(self, start: int, stop: int, neutralise: bool):
        pa, pc = _pa()
        if self.kind == "coded":  # texts of distinct values (already final) and a code per row
            return self.data.take(pa.array(self.codes[start:stop]))
        if self.kind == "coded_text":  # text of few distinct values: each rendered once per neutralise setting
            if neutralise not in self._cache:
                self._cache[neutralise] = pa.concat_arrays([_safe_text(self.data, neutralise),
                                                            pa.array([""], type=pa.string())])
            return self._cache[neutralise].take(pa.array(self.codes[start:stop]))
        if self.kind == "text":
            return _safe_text(self.data.slice(start, stop - start), neutralise)
        if self.kind == "float":
            return _float_text(self.data[start:stop])
        if self.kind == "int":
            return pc.fill_null(self.data.slice(start, stop - start).cast(pa.string()), "")
        if self.kind == "bool":
            return pc.fill_null(pc.if_else(self.data.slice(start, stop - start), "True", "False"), "")
        raise _Unsupported(self.kind)


def _datetime_codes(values, bounds: np.ndarray) -> tuple[Any, np.ndarray]:
    """(texts, code per row) of a datetime column as pandas' writer formats it: dates only, or the finest
    resolution needed, decided per chunk of rows it writes (`bounds`: the chunks' starts and the end)."""
    pa, _ = _pa()
    codes, uniques = pd.factorize(values)
    uniques = pd.Index(uniques).array
    texts: list[str] = []
    seen: dict[tuple[int, ...], np.ndarray] = {}
    out = np.empty(len(codes), dtype=np.int64)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        part = codes[start:stop]
        present = tuple(np.unique(part).tolist())
        if present not in seen:  # pandas formats the chunk as a whole: the same values give the same texts
            formatted = uniques.take(np.asarray(present), allow_fill=True)._format_native_types(na_rep="")
            seen[present] = np.full(len(uniques) + 1, -1, dtype=np.int64)
            for code, text in zip(present, formatted, strict=True):
                seen[present][code] = len(texts)
                texts.append(str(text))
        out[start:stop] = seen[present][part]
    return pa.array(texts, type=pa.string()), out


def _chunk_bounds(n: int, chunk: int, singles: np.ndarray | None) -> np.ndarray:
    """The row chunks pandas' writer formats: runs of `chunk` rows; with `singles` (rows written one by one,
    those with a CR), each such row alone and the runs between them chunked from their own start."""
    if singles is None or not singles.any():
        return np.append(np.arange(0, n, chunk), n) if n else np.array([0, 0])
    cuts = [0, *(np.flatnonzero(singles[1:] != singles[:-1]) + 1).tolist(), n]
    bounds: list[int] = []
    for start, end in zip(cuts[:-1], cuts[1:], strict=True):
        step = 1 if singles[start] else chunk
        bounds.extend(range(start, end, step))
    return np.array([*bounds, n])


class FastCsv:
    """A frame's columns ready to be rendered as CSV (see `write_csv_files`); `of` is None for a frame it does
    not handle (fewer than two columns, duplicate names, a dtype it does not know)."""

    def __init__(self, df: pd.DataFrame):
        self.df = df
        self.n = len(df)
        self.columns: dict[Any, _Column] = {}
        self._text: dict[Any, Any] = {}
        self._holding: dict[tuple, np.ndarray] = {}

    @classmethod
    def of(cls, df: pd.DataFrame) -> FastCsv | None:
        if df.shape[1] < 2 or not df.columns.is_unique:
            return None
        try:
            _pa()
        except ImportError:
            return None
        return cls(df)

    def header(self, names: list) -> bytes:
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(names)
        return buffer.getvalue().encode("utf-8")

    def _key(self, name, width: int, file_columns: tuple = ()):
        """A renderer's key: the column, and for a datetime the chunking (pandas' format is decided per chunk of
        `width` rows, and per row for a row with a CR in a text cell of the file's `file_columns`)."""
        if isinstance(self.df[name].array, pd.arrays.DatetimeArray):
            return name, width, file_columns
        return name, None, ()

    def _column(self, name, ncols: int, file_columns: tuple = ()) -> _Column:
        key = self._key(name, ncols, file_columns)
        if key in self.columns:
            return self.columns[key]
        pa, _ = _pa()
        s = self.df[name]
        dtype = s.dtype
        values = s.array
        if isinstance(dtype, pd.CategoricalDtype):  # pandas' writer takes a table with one (not reproduced here)
            raise _Unsupported(f"categorical column {name!r}")
        elif isinstance(dtype, pd.StringDtype) or dtype == np.dtype(object):
            text = self.text(name)
            coded = coded_text(text)
            col = _Column("text", text) if coded is None else _Column("coded_text", *coded)
        elif isinstance(values, pd.arrays.DatetimeArray):
            chunk = (_PANDAS_CHUNK_CELLS // (ncols or 1)) or 1
            texts, codes = _datetime_codes(values, _chunk_bounds(self.n, chunk, self._singles(list(file_columns))))
            col = _Column("coded", texts, codes)
        elif isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize == 8:
            col = _Column("float", np.asarray(values))
        elif isinstance(dtype, np.dtype) and dtype.kind in "iu":
            col = _Column("int", pa.array(np.asarray(values)))
        elif isinstance(dtype, np.dtype) and dtype.kind == "b":
            col = _Column("bool", pa.array(np.asarray(values)))
        elif isinstance(values, pd.arrays.IntegerArray):
            col = _Column("int", pa.array(values))
        elif isinstance(values, pd.arrays.BooleanArray):
            col = _Column("bool", pa.array(values))
        else:
            raise _Unsupported(f"column {name!r} of dtype {dtype}")
        self.columns[key] = col
        return col

    def text(self, name):
        """The Arrow text of a text column (object columns: of str values only)."""
        if name not in self._text:
            s = self.df[name]
            if isinstance(s.dtype, pd.StringDtype):
                self._text[name] = _text_array(s.array)
            elif s.dtype == object:
                if pd.api.types.infer_dtype(s.array, skipna=True) not in ("string", "empty"):
                    raise _Unsupported(f"object column {name!r} of non-text values")
                self._text[name] = _text_array(np.asarray(s.array, dtype=object))
            elif isinstance(s.dtype, pd.CategoricalDtype):
                self._text[name] = _text_array(np.asarray(s, dtype=object))
            else:
                self._text[name] = None
        return self._text[name]

    def rows_holding(self, names: list, char: str) -> np.ndarray:
        """Rows with `char` in a text cell of `names`."""
        _, pc = _pa()
        rows = np.zeros(self.n, dtype=bool)
        for name in names:
            if self.text(name) is not None:
                if (name, char) not in self._holding:
                    col = self._column(name, 0)  # a text column's renderer (its distinct values when few)
                    if col.kind == "coded_text":
                        hits = np.flatnonzero(pc.fill_null(pc.match_substring(col.data, char), False)
                                              .to_numpy(zero_copy_only=False))
                        held = np.isin(col.codes, hits) if len(hits) else np.zeros(self.n, dtype=bool)
                    else:
                        held = pc.fill_null(pc.match_substring(self.text(name), char),
                                            False).to_numpy(zero_copy_only=False)
                    self._holding[name, char] = held
                rows |= self._holding[name, char]
        return rows

    def _singles(self, names: list) -> np.ndarray | None:
        """Rows with a CR in a text cell: pandas' path renders them one by one (only datetimes notice)."""
        rows = self.rows_holding(names, "\r")
        return rows if rows.any() else None

    def render(self, files: dict[Any, list], neutralise: bool = True, lone: dict[Any, tuple] | None = None,
               widths: dict[Any, int | None] | None = None) -> Iterator[dict[Any, memoryview]]:
        """Per block of rows, each file's bytes (its columns joined; `files`: key -> column names; `lone`: key ->
        its columns whose empty cells are written "", see `write_csv_files`; `widths`: key -> the column count
        pandas would have chunked its rows by, default its own)."""
        lone = lone or {}
        widths = {key: (widths or {}).get(key) or len(cols) for key, cols in files.items()}
        pa, pc = _pa()
        if any(len(cols) < 2 for cols in files.values()):
            raise _Unsupported("a file of fewer than two columns")
        # the rows pandas rendered one by one (a CR in a text cell): of the file's columns, but those rendered on
        # their own (`lone`)
        scope = {key: tuple(c for c in cols if c not in lone.get(key, ())) for key, cols in files.items()}
        renderers = {self._key(c, widths[key], scope[key]): self._column(c, widths[key], scope[key])
                     for key, cols in files.items() for c in cols}
        # a file's columns before its trailing lone ones (the CRM files: the same columns, then each its owner id):
        # joined once per block for the files that share them
        body = {key: _body_length(cols, lone.get(key, ())) for key, cols in files.items()}
        body_keys = {key: tuple(self._key(c, widths[key], scope[key]) for c in cols[:body[key]])
                     for key, cols in files.items()}

        def block(start: int) -> dict[Any, memoryview]:
            stop = min(start + FAST_CSV_BLOCK_ROWS, self.n)
            texts = {k: renderer.text(start, stop, neutralise) for k, renderer in renderers.items()}
            joined: dict[tuple, Any] = {}
            out = {}
            for key, cols in files.items():
                parts = [texts[self._key(c, widths[key], scope[key])] for c in cols]
                parts = [text if c not in lone.get(key, ()) else pc.if_else(pc.equal(text, ""), '""', text)
                         for c, text in zip(cols, parts, strict=True)]
                if 2 <= body[key] < len(cols):
                    if body_keys[key] not in joined:
                        joined[body_keys[key]] = pc.binary_join_element_wise(*parts[:body[key]], ",")
                    parts = [joined[body_keys[key]], *parts[body[key]:]]
                parts[-1] = pc.binary_join_element_wise(parts[-1], pa.scalar("\n"), "")  # the line's end
                lines = pc.binary_join_element_wise(*parts, ",")
                out[key] = _string_bytes(lines)
            return out

        yield from ordered_map(block, range(0, self.n, FAST_CSV_BLOCK_ROWS), render_threads())

    def blocks(self, names: list, header: bool = True, neutralise: bool = True) -> Iterator[bytes]:
        if header:
            yield self.header(names)
        for block in self.render({0: names}, neutralise):
            yield bytes(block[0])


def _body_length(cols: list, lone: tuple) -> int:
    """How many of `cols` come before its trailing `lone` columns (all of them when a lone column is elsewhere)."""
    n = len(cols)
    while n and cols[n - 1] in lone:
        n -= 1
    return n if set(cols[n:]) == set(lone) else len(cols)


def _string_bytes(arr) -> memoryview:
    """The concatenated values of an Arrow string array without nulls (its data buffer, no copy)."""
    pa, _ = _pa()
    if arr.null_count:
        raise _Unsupported("a null line")
    if pa.types.is_large_string(arr.type):
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)
    else:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)
    offsets = offsets[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or not len(arr):
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]):int(offsets[-1])]


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
