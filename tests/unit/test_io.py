"""Atomic writes: the target appears whole or not at all, with ordinary permissions."""

import os
import stat

import pandas as pd
import pytest

from pipeline.io import atomic_path, write_parquet


def test_failed_write_leaves_previous_file_and_no_temp_files(tmp_path):
    target = tmp_path / "t.parquet"
    write_parquet(pd.DataFrame({"a": [1, 2]}), target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a table")
        raise RuntimeError("crash mid-write")
    assert pd.read_parquet(target)["a"].tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_written_files_get_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        target = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def _snapshot_file(path, groups):
    """A Parquet file written group by group, as the featurize stage writes its table (one snapshot each)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for i, split in enumerate(groups):
        n = 50 + i
        part = pd.DataFrame({
            "lead_id": [f"L{i}-{k}" for k in range(n)],
            "split": split if isinstance(split, list) else [split] * n,
            "x": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n, dtype="float32")),
            "source": pd.Categorical(["web", "ads", None][k % 3] for k in range(n)),
            "as_of": pd.Timestamp("2026-01-01") + pd.Timedelta(days=30 * i),
        })
        table = pa.Table.from_pandas(part, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


@pytest.mark.parametrize("wanted", [["score"], ["train"], ["train", "test"], ["test", "score", "train"], ["other"]])
def test_reading_the_rows_of_some_splits_gives_the_filtered_read(tmp_path, wanted):
    import pyarrow.parquet as pq

    from pipeline.io import _whole_row_groups, read_rows

    path = _snapshot_file(tmp_path / "f.parquet", ["train", "train", "test", "score"])
    expected = pd.read_parquet(path, filters=[("split", "in", wanted)])
    got = read_rows(path, "split", wanted)
    pd.testing.assert_frame_equal(got, expected)
    # each row group holds one split: whole groups are read (or skipped), nothing is filtered row by row
    groups = _whole_row_groups(pq.ParquetFile(path).metadata, "split", set(wanted))
    assert groups == ([g for g, s in enumerate(["train", "train", "test", "score"]) if s in wanted] or None)


def test_a_row_group_of_several_splits_is_filtered_row_by_row(tmp_path):
    import pyarrow.parquet as pq

    from pipeline.io import _whole_row_groups, read_rows

    mixed = ["train"] * 25 + ["score"] * 26
    path = _snapshot_file(tmp_path / "f.parquet", ["train", mixed, "score"])
    assert _whole_row_groups(pq.ParquetFile(path).metadata, "split", {"score"}) is None
    got = read_rows(path, "split", ["score"])
    pd.testing.assert_frame_equal(got, pd.read_parquet(path, filters=[("split", "in", ["score"])]))
    assert len(got) == 26 + 52 and set(got["split"]) == {"score"}
