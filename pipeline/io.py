"""Reading and writing tables at the edge of the pipeline; every write is atomic."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def write_csv(df: pd.DataFrame, target: Path | str) -> Path:
    return write_atomic(target, lambda tmp: df.to_csv(tmp, index=False))


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


def read_table(path: Path | str) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def read_tables(folder: Path | str, names: tuple[str, ...] | list[str]) -> dict[str, pd.DataFrame]:
    return {name: read_table(find_table(folder, name)) for name in names}
