"""The fast export writers (issue 16) write what the pandas writers wrote: the Arrow CSV writer byte for byte,
the SQLite rows value for value and type for type, the first scoring's change report frame for frame."""

import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.changes import diff_by_merge, diff_scorings, first_scoring_changes
from pipeline import io
from pipeline.export import (
    HUBSPOT_PROPERTIES,
    SALESFORCE_FIELDS,
    _write_files,
    crm_mapping,
    export_all,
    with_contacts,
    write_crm_files,
    write_sql_table,
)
from pipeline.io import FastCsv, _csv_text_pandas, csv_text, write_csv, write_csv_files

TRICKY = ["plain", "a,b", 'say "hi"', "line\nbreak", "cr\ronly", "=SUM(A1)", "+4930123456", "-12.5", "@x",
          "\tt", "x\r\n@SUM(A1)", "", None, "ünïcödé, €", "-A1", "(555) 123-4567"]


def tricky_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    text = [TRICKY[i % len(TRICKY)] for i in range(n)]
    floats = rng.uniform(-1e6, 1e6, n)
    floats[::7] = np.nan
    floats[1::11] = [1e-7, 1e16, -0.0, 123.0, 0.0001, 5e-324, np.inf, 1 / 3][: len(floats[1::11])] + \
        [0.5] * max(0, len(floats[1::11]) - 8)
    return pd.DataFrame({
        "id": [f"L{i:05d}" for i in range(n)],
        "str": pd.array(text, dtype="str"),
        "string": pd.array(text, dtype="string"),
        "object": np.array(text, dtype=object),
        "low": pd.array([["pass", "fail", "unknown, maybe"][i % 3] for i in range(n)], dtype="str"),
        "f": floats,
        "p": rng.uniform(size=n).round(6),
        "i": rng.integers(-10**12, 10**12, n),
        "b": rng.random(n) < 0.5,
        "I": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "B": pd.array([None if i % 4 == 0 else i % 2 == 0 for i in range(n)], dtype="boolean"),
        "when": pd.Timestamp("2026-10-02 08:00:01"),
        "day": pd.Timestamp("2026-10-01"),
    })


def test_fast_csv_writer_is_byte_for_byte_the_pandas_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "FAST_CSV_BLOCK_ROWS", 64)  # many blocks
    df = tricky_frame()
    assert FastCsv.of(df) is not None
    for neutralise in (True, False):
        for header in (True, False):
            assert csv_text(df, header=header, neutralise=neutralise) == \
                _csv_text_pandas(df, header=header, neutralise=neutralise)
    path = write_csv(df, tmp_path / "t.csv")
    assert path.read_bytes() == _csv_text_pandas(df).encode("utf-8")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(back) == len(df) and back["id"].tolist() == df["id"].tolist()
    assert csv_text(df.iloc[:0]) == _csv_text_pandas(df.iloc[:0])


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_csv_writer_neutralises_random_cells_as_the_pandas_writer(monkeypatch, seed):
    """Cells drawn from formula prefixes, digits, number punctuation, quotes and line breaks: one-line cells are
    neutralised in Arrow (a plain number such as +49 30 1234 keeps its sign, anything else risky gets a '), cells
    with line breaks line by line; blocks with and without line breaks, the same bytes as pandas' writer."""
    monkeypatch.setattr(io, "FAST_CSV_BLOCK_ROWS", 256)
    rng = np.random.default_rng(seed)
    pieces = ["=", "+", "-", "@", "\t", "1", "7", " ", "(", ")", ".", ",", "/", "a", '"', "é", "0"]
    breaks = ["\r", "\n", "\r\n"]

    def cells(n, with_breaks):
        alphabet = pieces + breaks if with_breaks else pieces
        return ["".join(rng.choice(alphabet, rng.integers(0, 9))) if rng.random() > 0.05 else None
                for _ in range(n)]

    one_line = cells(1024, False) + ["+4930123456", "-0042", "-12.5", "(555) 123-4567", "+49 30 1234", "+", "-"]
    mixed = cells(512, False) + cells(len(one_line) - 512, True)  # the later blocks hold line breaks
    df = pd.DataFrame({"one_line": pd.array(one_line, dtype="str"), "mixed": pd.array(mixed, dtype="str")})
    assert FastCsv.of(df) is not None
    text = csv_text(df)
    assert text == _csv_text_pandas(df)
    assert "\n'=" in text and "\n+4930123456," in text  # both outcomes occur


def test_fast_csv_writer_formats_datetimes_per_pandas_chunk(monkeypatch):
    monkeypatch.setattr(io, "FAST_CSV_BLOCK_ROWS", 1000)
    n = 9000  # 3 columns: pandas formats 33,333-row chunks; 2 columns + CR rows: runs and single rows
    stamps = pd.Series(pd.Timestamp("2026-10-01"), index=range(n))
    stamps[5000] = pd.Timestamp("2026-10-01 12:30:00")  # only that chunk shows times
    stamps[7000] = pd.Timestamp("2026-10-01 00:00:00.250")
    stamps[100] = pd.NaT
    note = pd.array(["ok"] * n, dtype="str")
    note[[10, 5000, 5001, 8999]] = "with\rcr"
    df = pd.DataFrame({"d": stamps, "note": note, "x": np.arange(n)})
    for frame in (df, df.iloc[::3].reset_index(drop=True), df[["d", "note"]]):
        assert csv_text(frame) == _csv_text_pandas(frame)


def test_fast_csv_writer_leaves_what_it_cannot_render_to_pandas(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "mixed": np.array(["x", 3], dtype=object)})
    assert csv_text(df) == _csv_text_pandas(df) == "a,mixed\n1,x\n2,3\n"
    cats = pd.DataFrame({"a": [1, 2], "c": pd.Categorical(["=1+1", "x"])})
    assert csv_text(cats) == _csv_text_pandas(cats)
    single = pd.DataFrame({"a": ["", "x"]})
    assert csv_text(single) == _csv_text_pandas(single)  # one column: an empty cell is written ""


def test_csv_files_sharing_columns_match_separate_renders(tmp_path):
    df = tricky_frame(200)
    files = {tmp_path / "a.csv": (["id", "str", "f", "when"], ["Id", "Text", "F", "When"]),
             tmp_path / "b.csv": (["id", "low", "f", "I"], None, ("I",))}
    write_csv_files(df, files)
    assert (tmp_path / "a.csv").read_bytes() == \
        _csv_text_pandas(df[["id", "str", "f", "when"]].set_axis(["Id", "Text", "F", "When"], axis=1)).encode()
    lines = _csv_text_pandas(df[["id", "low", "f"]], header=False).split("\n")[:-1]
    alone = _csv_text_pandas(df[["I"]], header=False).split("\n")[:-1]  # '""' for a missing value
    body = "".join(f"{a},{b}\n" for a, b in zip(lines, alone, strict=True))
    assert (tmp_path / "b.csv").read_bytes() == ("id,low,f,I\n" + body).encode()


def _old_crm_file(df, mapping):
    """The CRM writer before issue 16: the shared columns rendered once, each file's owner column appended."""
    rows = df.loc[df["lead_id"].notna()]
    cols = [c for c in mapping if c in df.columns and not (c in ("fit_score", "engagement_score")
                                                           and df[c].isna().all())]
    owner = [c for c in cols if c.startswith("owner_user_id_")]
    common = [c for c in cols if c not in owner]
    lines = _csv_text_pandas(rows[common], header=False).split("\n")[:-1]
    extra = _csv_text_pandas(rows[owner], header=False).split("\n")[:-1] if owner else []
    header = _csv_text_pandas(pd.DataFrame(columns=[mapping[c] for c in (*common, *owner)]))
    if owner and len(extra) == len(lines) == len(rows):
        return header + "".join(f"{a},{b}\n" for a, b in zip(lines, extra, strict=True))
    if owner:
        return header + _csv_text_pandas(rows[[*common, *owner]], header=False)
    return header + "".join(f"{a}\n" for a in lines)


def scored(n: int = 300) -> pd.DataFrame:
    from pipeline.export import conform

    rng = np.random.default_rng(3)
    status = rng.choice(["sql", "needs_call", "nurture", "disqualified"], n)
    reps = pd.array(rng.choice(["Ana", "Ben", "Zoë Ünal"], n), dtype="string")
    reps[status != "sql"] = pd.NA
    df = pd.DataFrame({
        "lead_id": [f"L{i:04d}" for i in range(n)], "account_id": [f"A{i % 7}" for i in range(n)],
        "rank": np.arange(1, n + 1), "status": status, "is_sql": status == "sql",
        "score": rng.integers(0, 100, n), "p_convert": rng.uniform(size=n).round(6),
        "expected_value": rng.uniform(0, 1e5, n).round(2), "expected_deal_size": 20_000.0,
        "tier": rng.choice(["A", "B", "C", "D"], n), "fit_score": rng.uniform(0, 100, n).round(1),
        "engagement_score": np.nan, "gate_budget": "pass", "gate_authority": "fail", "gate_need": "unknown",
        "gate_timeline": "pass", "status_reason": "failed gate: authority, need",
        "assigned_rep": reps, "queue_position": pd.array(np.where(status == "sql", 1, 0), dtype="Int64"),
        "assignment_reason": pd.array(["round-robin"] * n, dtype="string"),
        "call_queue_position": pd.array([None] * n, dtype="Int64"),
        "reasons_for": pd.array([TRICKY[i % len(TRICKY)] for i in range(n)], dtype="string"),
        "reasons_against": pd.array([None] * n, dtype="string"),
        "change": "new_lead", "territory": "Europe", "as_of": pd.Timestamp("2026-10-01"),
        "scored_at": pd.Timestamp("2026-10-02 08:00:01"), "model_version": "m/3", "model_run_id": "abc",
        "scoring_run_id": "run-1", "schema_version": 3,
    })
    df["queue_position"] = df["queue_position"].where(df["status"] == "sql")
    return conform(df)


@pytest.mark.parametrize("line_break", [False, True])
def test_crm_files_match_the_old_writer(tmp_path, line_break):
    df = scored()
    contacts = pd.DataFrame({"lead_id": pd.array(df["lead_id"].tolist()[::-1] + ["L0001"], dtype="string"),
                             "email": pd.array([f"x{i}@y.z" for i in range(len(df))] + ["dup@y.z"],
                                               dtype="string"),
                             "job_title": pd.array(["Head, Sales"] * len(df) + ["x"], dtype="string")})
    if line_break:
        contacts.loc[3, "job_title"] = "VP\nSales"
    owners = {"salesforce": {"Ana": "005A", "Ben": "005B"}, "hubspot": {"Ana": "1", "Zoë Ünal": "3"}}
    hand = with_contacts(df, contacts, owners)
    assert hand.loc[df["lead_id"] == "L0001", "email"].item() == f"x{len(df) - 2}@y.z"  # the first contact
    files = {"sf": (crm_mapping(SALESFORCE_FIELDS, hand, "salesforce"), tmp_path / "sf.csv"),
             "hs": (crm_mapping(HUBSPOT_PROPERTIES, hand, "hubspot"), tmp_path / "hs.csv")}
    paths = write_crm_files(hand, files)
    for key, (mapping, _) in files.items():
        assert Path(paths[key]).read_bytes() == _old_crm_file(hand, mapping).encode(), key
    # the table's CSV rendered in the same pass as the CRM files: the same bytes
    out = tmp_path / "run"
    written = _write_files(df, out, "sql_leads", None, hand)
    assert Path(written["csv"]).read_bytes() == _csv_text_pandas(df).encode()
    for key, name in (("salesforce", "sf"), ("hubspot", "hs")):
        assert Path(written[key]).read_bytes() == Path(paths[name]).read_bytes()


def _dump(path: Path) -> tuple[str, list]:
    with sqlite3.connect(path) as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'sql_leads'").fetchone()[0]
        cols = [r[1] for r in conn.execute('PRAGMA table_info("sql_leads")')]
        typed = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
        return ddl.split("(", 1)[1], conn.execute(f'SELECT {typed} FROM "sql_leads" ORDER BY rowid').fetchall()


@pytest.mark.parametrize("rows_file", [False, True], ids=["python-binder", "rows-file"])
def test_sqlite_writer_stores_what_pandas_to_sql_stored(tmp_path, monkeypatch, rows_file):
    from sqlalchemy import create_engine

    import pipeline.export as export

    monkeypatch.setattr(export, "SQLITE_INSERT_ROWS", 37)  # several batches
    if rows_file:  # the ADBC rows file from the first row on (by default from ROWS_FILE_MIN_ROWS)
        pytest.importorskip("adbc_driver_sqlite")
        monkeypatch.setattr(export, "ROWS_FILE_MIN_ROWS", 0)
    used = []
    real_rows_file = export.rows_file

    @contextlib.contextmanager
    def watched(df, database):
        with real_rows_file(df, database) as path:
            used.append(path)
            yield path

    monkeypatch.setattr(export, "rows_file", watched)
    df = scored()
    df["model_version"] = "it's quoted"  # a constant written as a literal
    df.loc[5, "scored_at"] = pd.NaT
    engine = create_engine(f"sqlite:///{tmp_path / 'generic.db'}")
    with engine.begin() as conn:
        df.to_sql("sql_leads", conn, index=False, chunksize=50_000)  # the generic writer
    engine.dispose()
    write_sql_table(df, f"sqlite:///{tmp_path / 'fast.db'}")
    assert _dump(tmp_path / "fast.db") == _dump(tmp_path / "generic.db")
    constant = df.assign(is_sql=True, score=7)  # constant bool and int columns
    write_sql_table(constant, f"sqlite:///{tmp_path / 'const.db'}")
    engine = create_engine(f"sqlite:///{tmp_path / 'generic2.db'}")
    with engine.begin() as conn:
        constant.to_sql("sql_leads", conn, index=False)
    engine.dispose()
    assert _dump(tmp_path / "const.db") == _dump(tmp_path / "generic2.db")
    assert len(used) == 2 and all((path is not None) == rows_file for path in used)
    assert not list(tmp_path.glob(".*.tmp"))  # the rows files are gone


def test_rows_file_carries_every_supported_kind_and_refuses_the_others(tmp_path):
    pytest.importorskip("adbc_driver_sqlite")
    from sqlalchemy import create_engine

    from pipeline.export import arrow_rows

    df = tricky_frame(60).rename(columns={"I": "nullable_int", "B": "nullable_bool"}).assign(  # SQLite: i == I
        u=np.arange(60, dtype=np.uint32), f32=np.linspace(0, 1, 60, dtype=np.float32),
        arrow_text=pd.array([None, "x"] * 30, dtype=pd.ArrowDtype(__import__("pyarrow").string())),
        when=pd.Series([pd.Timestamp("2026-10-02 08:00:01.5"), pd.NaT] * 30),
        utc=pd.Timestamp("2026-10-02 08:00:01", tz="UTC"), obj_nan=np.array(["a", np.nan] * 30, dtype=object))
    rows = arrow_rows(df)
    assert rows is not None and rows.num_rows == 60 and rows.column_names == [f"c{i}" for i in range(df.shape[1])]
    for name, bad in {"mixed": np.array([1, "a"] * 30, dtype=object),
                      "category": pd.Categorical(["a", "b"] * 30),
                      "huge": np.full(60, 2 ** 63, dtype=np.uint64),
                      "span": pd.to_timedelta(np.arange(60), unit="s")}.items():
        assert arrow_rows(df.assign(**{name: bad})) is None, name
    # written through the rows file (any size), the stored rows are to_sql's, value and type
    import pipeline.export as export

    engine = create_engine(f"sqlite:///{tmp_path / 'generic.db'}")
    with engine.begin() as conn:
        df.to_sql("sql_leads", conn, index=False)
    engine.dispose()
    old = export.ROWS_FILE_MIN_ROWS
    export.ROWS_FILE_MIN_ROWS = 0
    try:
        write_sql_table(df, f"sqlite:///{tmp_path / 'fast.db'}")
    finally:
        export.ROWS_FILE_MIN_ROWS = old
    assert _dump(tmp_path / "fast.db") == _dump(tmp_path / "generic.db")


def test_a_killed_writers_rows_file_is_removed_by_the_next_scoring_and_a_live_ones_is_not(tmp_path):
    import os

    from pipeline.transaction import hold, recover, rows_file_pattern

    out = tmp_path / "scored"
    out.mkdir()
    db = tmp_path / "elsewhere" / "crm.db"  # a database outside the scored folder
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    dead = db.parent / rows_file_pattern(db).replace("*", "dead")
    live = db.parent / rows_file_pattern(db).replace("*", "live")
    os.close(hold(dead))  # its writer is gone: nothing holds it
    held = hold(live)
    other = out / ".sql_leads.parquet.x.tmp"  # a killed file writer's temporary in the scored folder
    other.write_bytes(b"x")
    try:
        recover(out, url)
        assert not dead.exists() and live.exists() and not other.exists()
    finally:
        os.close(held)
    recover(out, url)
    assert not live.exists()


def test_first_scoring_changes_are_diff_scorings_without_a_previous_scoring():
    df = scored().drop(columns="change")
    df = df.sample(frac=1, random_state=1).reset_index(drop=True)  # lead ids not in rank order
    changes, change = first_scoring_changes(df)
    expected = diff_scorings(None, df)
    pd.testing.assert_frame_equal(changes, expected)
    merged = df.merge(expected[["lead_id", "change"]], on="lead_id", how="left")
    pd.testing.assert_frame_equal(df.assign(change=change), merged)
    assert first_scoring_changes(pd.concat([df, df.iloc[:1]], ignore_index=True)) == (None, None)  # repeated id
    assert first_scoring_changes(df.assign(rank=1)) == (None, None)  # tied ranks: the merge's order decides


def test_export_all_writes_what_the_pandas_writers_wrote(tmp_path):
    df = scored()
    paths = export_all(df, tmp_path / "out", changes=diff_scorings(None, df))
    assert Path(paths["csv"]).read_bytes() == _csv_text_pandas(df).encode()
    assert Path(paths["changes"]).read_bytes() == _csv_text_pandas(diff_scorings(None, df)).encode()
    back = pd.read_parquet(paths["parquet"])
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def _scoring(rng, ids, tied_ranks=False, odd=False):
    n = len(ids)
    statuses = ["sql", "needs_call", "nurture", "disqualified", "with_sales"] + (["retired", None] if odd else [])
    tiers = ["A", "B", "C", "D"] + ([None, "Bx"] if odd else [])
    rank = rng.integers(1, max(n // 3, 2), n) if tied_ranks else rng.permutation(n) + 1
    return pd.DataFrame({"lead_id": pd.array(ids, dtype="str"),
                         "status": pd.array(rng.choice(np.array(statuses, dtype=object), n), dtype="str"),
                         "tier": pd.array(rng.choice(np.array(tiers, dtype=object), n), dtype="str"),
                         "rank": rank.astype(np.int64)})


@pytest.mark.parametrize("seed", range(12))
def test_diff_scorings_by_id_lookup_is_the_outer_merge(seed):
    """diff_scorings matches leads by Arrow lookups when ids are unique text: the same rows, values, dtypes and
    order as pandas' outer merge, with leads gone and new, dropped SQLs (missing ranks: ordered by id), tied
    ranks, missing and unknown statuses and tiers, and empty scorings."""
    rng = np.random.default_rng(seed)
    pool = np.array([f"L{i:04d}" for i in rng.permutation(3000)] + ["ü-1", "Z9", "a", "é"], dtype=object)
    n_cur, n_prev = [(300, 280), (0, 50), (40, 0), (1, 1), (500, 500), (200, 20)][seed % 6]
    cur_ids = rng.choice(pool, n_cur, replace=False)
    overlap = rng.choice(cur_ids, min(len(cur_ids), n_prev) // 2, replace=False) if n_cur else np.array([], object)
    rest = rng.choice(np.setdiff1d(pool, cur_ids), n_prev - len(overlap), replace=False)
    prev_ids = rng.permutation(np.concatenate([overlap, rest]))
    current = _scoring(rng, cur_ids, tied_ranks=seed % 4 == 1, odd=seed % 3 == 2)
    previous = _scoring(rng, prev_ids, odd=seed % 3 == 1)
    if seed % 5 == 3 and len(current):
        current.loc[current.index[:3], "rank"] = current["rank"].iloc[0]  # a three-way tie
    from models.changes import _diff_unique_ids

    assert _diff_unique_ids(current, previous) is not None  # the id-lookup path, not the merge
    got = diff_scorings(previous, current)
    pd.testing.assert_frame_equal(got, diff_by_merge(previous, current))
    assert set(got["change"]) <= {"new_sql", "upgraded", "downgraded", "dropped", "unchanged", "new_lead"}
    pd.testing.assert_frame_equal(diff_scorings(None, current), diff_by_merge(None, current))


def test_diff_scorings_with_repeated_or_numeric_ids_falls_back_to_the_merge():
    """Ids the lookup path does not take (repeated, numeric) go through the merge: numeric ids give the same changes
    as the same ids as text; a repeated current lead is listed once per row."""
    from models.changes import _diff_unique_ids

    rng = np.random.default_rng(5)
    current = _scoring(rng, [f"{i}" for i in range(50)])
    previous = _scoring(rng, [f"{i}" for i in range(25, 75)])
    as_text = diff_scorings(previous, current)
    numeric, numeric_prev = current.assign(lead_id=np.arange(50)), previous.assign(lead_id=np.arange(25, 75))
    assert _diff_unique_ids(numeric, numeric_prev) is None
    by_number = diff_scorings(numeric_prev, numeric)
    pd.testing.assert_series_equal(by_number.set_index(by_number["lead_id"].astype(str))["change"].sort_index(),
                                   as_text.set_index("lead_id")["change"].sort_index(), check_names=False,
                                   check_index_type=False, check_dtype=False)
    doubled = pd.concat([current, current.iloc[:3]], ignore_index=True)
    assert _diff_unique_ids(doubled, previous) is None
    assert len(diff_scorings(previous, doubled)) == len(as_text) + 3


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_blocks_rendered_by_threads_come_out_in_order_with_few_waiting(threads):
    import threading
    import time

    from pipeline.io import ordered_map

    lock = threading.Lock()
    state = {"started": 0, "yielded": 0, "most_ahead": 0}

    def work(i):
        with lock:
            state["started"] += 1
            state["most_ahead"] = max(state["most_ahead"], state["started"] - state["yielded"])
        time.sleep(0.002 * (i % 3))  # later items may finish first
        return i * i

    out = []
    for value in ordered_map(work, range(40), threads):
        out.append(value)
        state["yielded"] += 1
    assert out == [i * i for i in range(40)]
    assert state["most_ahead"] <= 2 * threads + 1  # never the whole table in memory

    def failing(i):
        if i == 7:
            raise ValueError("block 7")
        return i

    with pytest.raises(ValueError, match="block 7"):
        list(ordered_map(failing, range(40), threads))
    assert list(ordered_map(work, [], threads)) == []


def test_threaded_csv_rendering_is_byte_for_byte_the_one_thread_rendering(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "FAST_CSV_BLOCK_ROWS", 50)  # many blocks
    df = tricky_frame(1_000)
    monkeypatch.setattr(io, "render_threads", lambda: 1)
    one = csv_text(df)
    monkeypatch.setattr(io, "render_threads", lambda: 2)
    assert csv_text(df) == one == _csv_text_pandas(df)


def test_files_sharing_their_leading_columns_join_them_once_and_keep_their_bytes(tmp_path, monkeypatch):
    from pipeline.io import _body_length

    assert _body_length(["a", "b", "owner"], ("owner",)) == 2
    assert _body_length(["a", "owner", "b"], ("owner",)) == 3  # a lone column inside: no shared body
    assert _body_length(["a", "b"], ()) == 2
    monkeypatch.setattr(io, "FAST_CSV_BLOCK_ROWS", 64)  # many blocks
    df = tricky_frame(500).assign(o1=pd.array([None, "005A"] * 250, dtype="string"),
                                  o2=pd.array(["7", None] * 250, dtype="string"))
    joins = []
    real_join = io._pa()[1].binary_join_element_wise
    monkeypatch.setattr(io._pa()[1], "binary_join_element_wise", lambda *a: joins.append(len(a)) or real_join(*a))
    common = ["id", "str", "f", "p", "i", "when"]
    files = {tmp_path / "one.csv": (common + ["o1"], None, ("o1",)),
             tmp_path / "two.csv": (common + ["o2"], [c.upper() for c in common + ["o2"]], ("o2",))}
    write_csv_files(df, files)
    assert joins.count(len(common) + 1) == len(range(0, 500, 64))  # the shared columns: once per block
    shared = {target: target.read_bytes() for target in files}
    monkeypatch.setattr(io, "_body_length", lambda cols, lone: len(cols))  # each file joined on its own
    write_csv_files(df, files)
    assert all(target.read_bytes() == data for target, data in shared.items())
    assert b',""\n' in shared[tmp_path / "one.csv"]  # the lone owner column's empty cell
