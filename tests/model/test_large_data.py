"""Issue 8 (a million leads in bounded time and memory): compact feature dtypes and the streamed training table,
bounded baseline samples, the size-adaptive learning rate, and the fast export writers (same bytes as before)."""

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _synthetic import feature_table
from conftest import isolated_store

from features.build import (
    build_feature_table,
    compact_dtypes,
    feature_config,
    feature_parts,
    prepare_crm,
    snapshot_dates,
)
from features.schema import FLAT
from models import training
from models.config import TrainConfig
from models.sampling import cluster_sample, stratified_sample
from pipeline import train
from pipeline.export import (
    HUBSPOT_PROPERTIES,
    SALESFORCE_FIELDS,
    crm_file,
    neutralise_formulas,
    write_sql_table,
)
from pipeline.featurize import write_parts
from pipeline.params import load_params
from pipeline.sources.demo_crm import DemoConfig, generate_demo_crm

ROOT = Path(__file__).resolve().parents[2]
PARAMS = load_params(ROOT / "params.yaml")


# ------------------------------------------------------------------------------------ bounded samples
def test_stratified_sample_keeps_small_data_whole_and_bounds_large_data_at_the_base_rate():
    y = np.r_[np.ones(500, dtype=int), np.zeros(9_500, dtype=int)]
    np.random.default_rng(0).shuffle(y)
    assert stratified_sample(y, 10_000).tolist() == list(range(10_000))  # not above the bound: every row
    picked = stratified_sample(y, 2_000, seed=1)
    assert len(picked) == 2_000 and len(np.unique(picked)) == 2_000 and (np.diff(picked) > 0).all()
    assert y[picked].sum() == 100  # 5% of 2,000: the base rate of the whole
    assert picked.tolist() == stratified_sample(y, 2_000, seed=1).tolist()
    assert picked.tolist() != stratified_sample(y, 2_000, seed=2).tolist()
    rare = np.r_[1, np.zeros(9_999, dtype=int)]
    assert rare[stratified_sample(rare, 100)].sum() == 1  # a class rarer than 1 in max_rows keeps a row
    with pytest.raises(ValueError, match="max_rows must be positive, got 0"):
        stratified_sample(y, 0)


# ------------------------------------------------------------------------------- the learning-rate policy
def test_learning_rate_adapts_to_the_number_of_fitted_rows_and_leaves_the_demo_alone():
    p = TrainConfig(learning_rate=0.02, large_data_rows=500_000, large_data_learning_rate=0.1)
    assert training.learning_rate_for(499_999, p) == 0.02
    assert training.learning_rate_for(500_000, p) == 0.1
    assert training.booster_config(p, n_rows=1_900_000).learning_rate == 0.1
    assert training.booster_config(p).learning_rate == 0.02
    assert training.booster_config(p, n_rows=1_900_000, learning_rate=0.05).learning_rate == 0.05  # tuning overrides
    # the demo's ~40k fitted rows and the 100k benchmark's ~190k stay at the rate the demo was tuned with
    assert PARAMS.train.large_data_rows > 200_000
    assert training.learning_rate_for(200_000, PARAMS.train) == PARAMS.train.learning_rate


def test_a_large_flat_export_learns_faster_with_early_stopping_patience_scaled():
    p = TrainConfig(learning_rate=0.02, early_stopping_rounds=100, flat_fast_rows=20_000, flat_fast_learning_rate=0.05)
    small, large = (training.booster_config(p, n_rows=n, variant=FLAT) for n in (19_999, 20_000))
    assert (small.learning_rate, small.early_stopping_rounds) == (0.02, 100)
    assert (large.learning_rate, large.early_stopping_rounds) == (0.05, 40)  # the same patience in step size
    # snapshot tables of the same size keep the rate the demo was tuned with, and their patience
    snap = training.booster_config(p, n_rows=200_000)
    assert (snap.learning_rate, snap.early_stopping_rounds) == (0.02, 100)
    assert training.patience_for(1.0, p) == 10  # never fewer than 10 rounds


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("large")
    mp = isolated_store(tmp)
    yield tmp
    mp.undo()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_sample_draws_whole_accounts_up_to_the_budget(seed):
    rng = np.random.default_rng(seed)
    groups = pd.Series(rng.integers(0, 400, 20_000).astype(str), dtype=object)
    groups[rng.random(len(groups)) < 0.02] = None  # rows without an account: each a group of its own
    picked = cluster_sample(groups, 5_000, seed=seed)
    assert np.all(np.diff(picked) > 0)
    sizes = groups.fillna("<none>").value_counts()
    drawn = groups.iloc[picked]
    named = drawn.dropna().unique()
    assert (groups.isin(named).sum()) == drawn.notna().sum()  # every drawn account with all of its rows
    last = min(sizes[named].min(), 1)
    assert 5_000 <= len(picked) < 5_000 + sizes[named].max() + last
    assert np.array_equal(picked, cluster_sample(groups, 5_000, seed=seed))  # reproducible
    assert not np.array_equal(picked, cluster_sample(groups, 5_000, seed=seed + 10))
    np.testing.assert_array_equal(cluster_sample(groups, 20_000), np.arange(20_000))  # small data: every row
    with pytest.raises(ValueError, match="positive"):
        cluster_sample(groups, 0)


def test_train_uses_the_large_data_rate_and_a_bounded_baseline_sample_from_the_thresholds_on(store):
    features = store / "features.parquet"
    table = feature_table(1500, seed=4)
    table.loc[len(table) - 5:, "split"] = "score"  # rows of another split are not read, let alone fitted
    table.to_parquet(features, index=False)
    base = dataclasses.replace(PARAMS.train, n_jobs=1, n_estimators=150, experiment="test-large", min_positives=10,
                               registered_model="test-large")
    small = train.run(features, store / "small", store / "reports", base)
    assert small["learning_rate"] == base.learning_rate and small["n_baseline_rows"] == small["n_train"]
    large = train.run(features, store / "large", store / "reports",
                      dataclasses.replace(base, large_data_rows=1_000, baseline_max_rows=2_000))
    assert large["learning_rate"] == base.large_data_learning_rate
    assert large["n_baseline_rows"] == 2_000 and large["n_train"] > 2_000
    assert large["best_iteration"] < small["best_iteration"]  # the faster rate needs fewer trees
    assert small["n_train"] + small["n_validation"] <= (table["split"] == "train").sum()
    # the trees saw every positive and 30% of the negatives; the baselines and calibration are untouched by it
    assert "n_fit_rows_sampled" not in small
    assert 0.3 * large["n_train"] < large["n_fit_rows_sampled"] < 0.6 * large["n_train"]
    assert large["validation_roc_auc"] > 0.6 and large["validation_ece"] < 0.05  # still a calibrated signal


# ----------------------------------------------------------------- compact dtypes, streamed training table
def test_compact_dtypes_are_float32_features_with_exact_counts_and_untouched_meta():
    table = pd.DataFrame({"lead_id": ["a", "b"], "account_id": ["x", "y"], "as_of": pd.Timestamp("2026-01-01"),
                          "split": pd.array(["train", "train"], dtype="string"), "label": np.array([0, 1], np.int8),
                          "n_total_90d": np.array([16_777_216, 3], dtype=np.int64),
                          "engagement_decayed": [1 / 3, np.nan],
                          "industry": pd.Categorical(["Software", None], categories=["Software", "Retail"])})
    out = compact_dtypes(table)
    assert out["n_total_90d"].dtype == np.float32 and out["n_total_90d"].tolist() == [16_777_216.0, 3.0]
    assert out["engagement_decayed"].dtype == np.float32 and np.isnan(out["engagement_decayed"].iloc[1])
    assert out["engagement_decayed"].iloc[0] == pytest.approx(1 / 3, rel=1e-7)
    assert str(out["label"].dtype) == "Int8" and out["label"].tolist() == [0, 1]
    assert out["industry"].dtype == table["industry"].dtype
    for col in ("lead_id", "account_id", "as_of", "split"):
        assert out[col].dtype == table[col].dtype and out[col].tolist() == table[col].tolist()


@pytest.fixture(scope="module")
def crm():
    data = generate_demo_crm(DemoConfig(n_leads=1500, seed=3, export_date="2026-10-01", dirty_share=0.0))
    config = feature_config(PARAMS.featurize)
    dates = snapshot_dates(pd.Timestamp("2026-10-01"), 90, 30, 3)
    return prepare_crm(data.accounts, data.leads, data.activities, data.opportunities, icp=config.icp), dates, config


def test_streamed_training_table_is_the_stacked_table_in_float32(crm, tmp_path):
    prepared, dates, config = crm
    wide = build_feature_table(prepared, dates, config)
    counts = write_parts(feature_parts(prepared, dates, config, float32=True), tmp_path / "features.parquet")
    streamed = pd.read_parquet(tmp_path / "features.parquet")
    assert list(streamed.columns) == list(wide.columns) and len(streamed) == len(wide)
    assert {k: v["rows"] for k, v in counts.items() if k != "_features"} == wide["split"].value_counts().to_dict()
    assert counts["train"]["positives"] == int(wide.loc[wide["split"] == "train", "label"].sum())
    numeric = [c for c in wide if wide[c].dtype.kind in "fi" and c != "label"]
    assert numeric and all(streamed[c].dtype == np.float32 for c in numeric)
    np.testing.assert_allclose(streamed[numeric].to_numpy(float), wide[numeric].to_numpy(float), rtol=2e-7)
    for col in [c for c in wide if c not in numeric]:
        a, b = wide[col], streamed[col]
        assert a.astype(object).where(a.notna(), None).tolist() == b.astype(object).where(b.notna(), None).tolist()
    assert isinstance(streamed["industry"].dtype, pd.CategoricalDtype)
    only_train = pd.read_parquet(tmp_path / "features.parquet", filters=[("split", "==", "train")])
    assert len(only_train) == counts["train"]["rows"]


# ----------------------------------------------------------------------------------- fast export writers
def _scored(n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "lead_id": pd.array([f"L{i}" for i in range(n - 1)] + [None], dtype="string"),
        "rank": np.arange(1, n + 1), "is_sql": rng.random(n) < 0.3, "p_convert": rng.random(n).round(6),
        "expected_value": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 1e5, n)),
        "queue_position": pd.array([1, None] * (n // 2), dtype="Int64"),
        "reasons_for": pd.array(["=cmd|' /C calc'!A0", None, "3 visits; VP title"] * (n // 3) + [None] * (n % 3),
                                dtype="string"),
        "tier": pd.Categorical(rng.choice(["A", "B"], n)).astype(str),
        "as_of": pd.Timestamp("2026-10-01"),
        "scored_at": pd.Series([pd.Timestamp("2026-10-02 08:00:01.123456"), pd.NaT] * (n // 2)),
        "schema_version": 2,
    })


def _dump(path: Path, table: str) -> tuple[str, list]:
    with sqlite3.connect(path) as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
        cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        typed = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
        return ddl, conn.execute(f'SELECT {typed} FROM "{table}" ORDER BY rowid').fetchall()


def test_sqlite_executemany_writer_stores_exactly_what_the_generic_to_sql_stored(tmp_path):
    from sqlalchemy import create_engine

    df = _scored()
    engine = create_engine(f"sqlite:///{tmp_path / 'generic.db'}")
    with engine.begin() as conn:
        df.to_sql("sql_leads", conn, index=False, chunksize=50_000)  # the writer before issue 8
    engine.dispose()
    write_sql_table(df, f"sqlite:///{tmp_path / 'fast.db'}")
    ddl_generic, rows_generic = _dump(tmp_path / "generic.db", "sql_leads")
    ddl_fast, rows_fast = _dump(tmp_path / "fast.db", "sql_leads")
    assert ddl_fast.replace('"sql_leads__staging_', '"').split("(", 1)[1] == ddl_generic.split("(", 1)[1]
    assert rows_fast == rows_generic and len(rows_fast) == len(df)
    with sqlite3.connect(tmp_path / "fast.db") as conn:
        stamps = conn.execute("SELECT scored_at, typeof(scored_at), as_of FROM sql_leads ORDER BY rowid LIMIT 2")
        assert stamps.fetchall() == [("2026-10-02 08:00:01.123456", "text", "2026-10-01 00:00:00.000000"),
                                     (None, "null", "2026-10-01 00:00:00.000000")]


def test_crm_files_sharing_one_body_are_byte_identical_to_separate_writes(tmp_path):
    from pipeline.export import write_crm_files

    df = _scored().assign(score=7, status="sql")
    paths = write_crm_files(df, {"sf": (SALESFORCE_FIELDS, tmp_path / "sf.csv"),
                                 "hs": (HUBSPOT_PROPERTIES, tmp_path / "hs.csv")})
    for key, mapping in (("sf", SALESFORCE_FIELDS), ("hs", HUBSPOT_PROPERTIES)):
        before = neutralise_formulas(crm_file(df, mapping)).to_csv(index=False)  # the writer before issue 8
        assert Path(paths[key]).read_bytes() == before.encode()
    assert "'=cmd" in Path(paths["sf"]).read_text()  # formulas still neutralised
    assert len(pd.read_csv(paths["hs"])) == df["lead_id"].notna().sum()


def test_export_all_checks_the_database_before_writing_any_file(tmp_path):
    from pipeline.export import OUTPUT_COLUMNS, conform, export_all
    from pipeline.transaction import ExportError

    df = _scored(12)
    full = pd.DataFrame({c: df.get(c, "x") for c in OUTPUT_COLUMNS if c != "gate_<name>"})
    full["rank"], full["queue_position"], full["call_queue_position"] = np.arange(1, 13), pd.NA, pd.NA
    full["assigned_rep"] = pd.array([None] * 12, dtype="string")
    conform(full)  # a valid sql_leads table
    with pytest.raises(ExportError, match="unable to open database file"):
        export_all(full, tmp_path / "out", database_url=f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    assert not (tmp_path / "out" / "sql_leads.parquet").exists()  # a bad database URL is found before any file
    export_all(full, tmp_path / "out")  # the table and the files, then one switch
    assert len(pd.read_parquet(tmp_path / "out" / "sql_leads.parquet")) == 12


def test_the_blends_logistic_part_is_fitted_on_at_most_logistic_max_rows():
    from models.conversion import BoosterConfig, ConversionModel

    table = feature_table(1500, seed=2)
    cols = [c for c in table if c not in ("lead_id", "account_id", "as_of", "split", "label")]
    fit, val = table[table["as_of"] < table["as_of"].max()], table[table["as_of"] == table["as_of"].max()]

    def logistic_rows(max_rows: int) -> int:
        cfg = BoosterConfig(n_estimators=20, n_jobs=1, min_child_samples=20, blend_logistic=True,
                            logistic_max_rows=max_rows)
        model = ConversionModel(cfg, calibration="sigmoid").fit(fit[cols], fit["label"], val[cols], val["label"])
        return int(model.blend_model_.design_.n_rows_)

    assert logistic_rows(0) == len(fit) == 6000  # 0: every row, as before
    assert logistic_rows(1000) == 1000


def test_downsample_negatives_keeps_every_positive_and_weights_kept_negatives_by_the_inverse_rate():
    from models.sampling import downsample_negatives

    y = np.r_[np.ones(1_000, dtype=int), np.zeros(99_000, dtype=int)]
    rows, weight = downsample_negatives(y, 0.25, seed=3)
    assert (np.diff(rows) > 0).all() and y[rows].sum() == 1_000  # every positive
    assert abs((y[rows] == 0).sum() - 24_750) < 500  # a quarter of the negatives
    assert set(weight[y[rows] == 1]) == {1.0} and set(weight[y[rows] == 0]) == {4.0}
    assert (y[rows] * weight).sum() / weight.sum() == pytest.approx(0.01, rel=0.03)  # weighted base rate kept
    assert downsample_negatives(y, 1.0)[0].tolist() == list(range(len(y)))
    with pytest.raises(ValueError, match=r"negative sampling rate must be in \(0, 1\], got 0"):
        downsample_negatives(y, 0)


def test_weighted_negative_downsampling_keeps_the_mean_probability_at_the_base_rate():
    from models.conversion import BoosterConfig, ConversionModel
    from models.sampling import downsample_negatives

    table = feature_table(6000, seed=5)
    cols = [c for c in table if c not in ("lead_id", "account_id", "as_of", "split", "label")]
    fit, val = table[table["split"] == "train"], table[table["split"] == "test"]
    y = fit["label"].to_numpy(dtype=int)
    rows, weight = downsample_negatives(y, 0.25, seed=0)
    cfg = BoosterConfig(n_estimators=150, n_jobs=1, min_child_samples=50)

    def mean_p(weights) -> float:
        model = ConversionModel(cfg, calibration="none").fit(fit.iloc[rows][cols], y[rows], sample_weight=weights)
        return float(model.predict_proba(val[cols])[:, 1].mean())

    base = float(val["label"].mean())
    assert mean_p(weight) == pytest.approx(base, rel=0.12)  # weighted: the full data's probabilities
    assert mean_p(None) > 1.6 * base  # unweighted, keeping a quarter of the negatives inflates them (here ~2x)


def test_gate_context_looks_accounts_up_once_with_the_values_reindex_gave():
    from models.decision import _context

    accounts = pd.DataFrame({"account_id": ["a", "b", "c", "a"], "employees": pd.array([10, None, 30, 99], "Int64"),
                             "annual_revenue": [1e6, np.nan, 3e7, 5.0], "country": ["US", None, "DE", "FR"]})
    rows = pd.DataFrame({"lead_id": ["1", "2", "3", "4"], "account_id": ["c", "unknown", "a", "b"],
                         "seniority_level": [4.0, 2.0, 5.0, 1.0]})
    context = _context(rows, accounts, ["seniority_level"])
    acc = accounts.drop_duplicates("account_id").set_index("account_id")  # the first row of a duplicated id wins
    for col in ("employees", "annual_revenue", "country"):
        want = acc[col].reindex(rows["account_id"]).to_numpy()
        got = context[col].to_numpy()
        assert got.dtype == want.dtype, col
        assert pd.Series(got).astype(object).where(pd.notna(got), None).tolist() == \
            pd.Series(want).astype(object).where(pd.notna(want), None).tolist(), col
    assert context["employees"].tolist()[0] == 30 and np.isnan(context["employees"].tolist()[1])
    assert context["country"].tolist()[2] == "US"
