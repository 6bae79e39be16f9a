"""Spark parity: featurize + score on PySpark (local[2]) give the pandas path's features and `sql_leads`.

Needs the optional extra (`pip install '.[spark]'`, part of `make test`'s install) and Java 17+ (`java` on PATH
or JAVA_HOME); without either the test is skipped with the reason.

Tolerances. Arrow carries float64 bit for bit between Spark and pandas, and every Spark task runs the pandas
code itself, so the only possible float difference is summation order: a bucket holds a subset of the rows, in
another order, so a per-account sum may differ in its last bits. Feature floats are compared to a relative 1e-12
(a few ulps; a real bug is orders of magnitude larger). `sql_leads` rounds its floats (p_convert to 1e-6, money
to cents, the sub-scores to 0.1), so they must be equal to 1e-9, i.e. identical after rounding; every other
column (ids, rank, status, tier, gates, reasons, hand-over, timestamps, versions) must be exactly equal.
"""

import dataclasses
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark", reason="pyspark not installed: pip install -e '.[spark]' (make test does)")


def _java_major() -> int | None:
    """The major version of the Java runtime PySpark will start (JAVA_HOME's, else `java` on PATH); None: none."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0_x" is Java 8


from features.build import (  # noqa: E402
    build_feature_table,
    feature_columns,
    feature_config,
    prepare_crm,
    score_features,
    snapshot_dates,
)
from features.validation import validate_tables  # noqa: E402
from models.changes import diff_scorings  # noqa: E402
from models.conversion import BoosterConfig, ConversionModel  # noqa: E402
from models.decision import OUTPUT_COLUMNS, hand_over, score_frame  # noqa: E402
from pipeline import spark as spark_path  # noqa: E402
from pipeline.params import load_params  # noqa: E402
from pipeline.sources.demo_crm import DemoConfig, generate_demo_crm  # noqa: E402

pytestmark = pytest.mark.slow
EXPORT = "2026-10-01"
SCORED_AT = pd.Timestamp("2026-10-02 06:30:00")
BUCKETS = 5  # account buckets: featurize runs as five pandas tasks, each on its own whole accounts
FEATURE_RTOL = 1e-12
SCORE_ATOL = 1e-9


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small validated demo CRM on disk, a model trained on it, and the pandas path's `sql_leads`."""
    root = tmp_path_factory.mktemp("spark")
    prm = load_params("params.yaml")
    crm = generate_demo_crm(DemoConfig(n_leads=1500, seed=3, export_date=EXPORT, dirty_share=0.0))
    tables = {n: getattr(crm, n) for n in ("accounts", "leads", "activities", "opportunities")}
    valid = validate_tables(tables, export_date=pd.Timestamp(EXPORT), engine="pandas").valid
    for name, frame in valid.items():
        frame.to_parquet(root / f"{name}.parquet", index=False)
    valid = {n: pd.read_parquet(root / f"{n}.parquet") for n in valid}  # exactly what Spark reads

    config = feature_config(prm.featurize)
    prepared = prepare_crm(**valid, icp=config.icp)
    dates = snapshot_dates(pd.Timestamp(EXPORT), 90, 30, 4)
    train = build_feature_table(prepared, {"train": dates["train"], "test": dates["test"]}, config)
    cols = feature_columns(train)
    model = ConversionModel(BoosterConfig(n_estimators=60, n_jobs=1, min_child_samples=20), calibration="isotonic")
    fit, val = train[train["split"] == "train"], train[train["split"] == "test"]
    model.fit(fit[cols], fit["label"].astype(int), val[cols], val["label"].astype(int))

    # A threshold low enough that the decision has SQLs to hand over (the demo model is small).
    p = dataclasses.replace(prm.score, threshold=0.05)
    features = score_features(valid, pd.Timestamp(EXPORT), prm.featurize)  # the open leads, as every driver stores them
    scored = score_frame(features, model, valid["accounts"], valid["opportunities"], p, "v1", "run", SCORED_AT,
                         "scoring-1")
    return {"root": root, "prm": prm, "p": p, "model": model, "features": features,
            "sql_leads": sql_leads(scored, features, model, p)}


def sql_leads(scored: pd.DataFrame, features: pd.DataFrame, model, p) -> pd.DataFrame:
    """The score stage's table from a ranked `score_frame` output: hand-over (on the driver, in pandas, as the
    Spark path documents) and the change against the previous scoring (none: the first scoring)."""
    table = hand_over(scored, features, model, p)
    table = table.merge(diff_scorings(None, table)[["lead_id", "change"]], on="lead_id", how="left")
    return table.sort_values("rank").reset_index(drop=True)


@pytest.fixture(scope="module")
def spark():
    java = _java_major()
    if java is None or java < 17:
        pytest.skip(f"PySpark 4 needs a Java 17+ runtime (JAVA_HOME or java on PATH); found: {java or 'none'}")
    session = spark_path.session("local[2]", "leadscore-parity", conf={
        "spark.sql.shuffle.partitions": "2",  # two tasks per shuffle: still several partitions to rank across
        "spark.default.parallelism": "2",
        "spark.sql.adaptive.coalescePartitions.enabled": "false",  # keep them: small data would coalesce to one
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",  # toPandas through Arrow, as the pandas UDFs do
        # A small test on 2 cores: the JVM's quick compiler and one GC thread spend less CPU than the defaults.
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    })
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _same(got: pd.Series, want: pd.Series, col: str, rtol: float = 0.0, atol: float = 0.0) -> None:
    """One column of Spark's frame against the pandas one, row for row, missing values included."""
    if pd.api.types.is_datetime64_any_dtype(want.dtype):
        assert pd.to_datetime(got).tolist() == want.tolist(), col
    elif (pd.api.types.is_numeric_dtype(want.dtype) and not pd.api.types.is_bool_dtype(want.dtype)
          and not pd.api.types.is_integer_dtype(want.dtype)):
        np.testing.assert_allclose(got.to_numpy(dtype=float, na_value=np.nan),
                                   want.to_numpy(dtype=float, na_value=np.nan), rtol=rtol, atol=atol, err_msg=col)
    else:  # text, categories, booleans, integers: equal values, missing where missing (None, NaN and NA alike)
        def plain(s: pd.Series) -> list:
            return [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in s.astype(object)]

        assert plain(got) == plain(want), col


def test_spark_featurize_and_score_equal_pandas_on_every_column(spark, world):  # spark first: skips before the work
    from pyspark.sql import functions as F

    tables = spark_path.read_tables(spark, str(world["root"]))
    features = spark_path.featurize(spark, tables, EXPORT, world["prm"].featurize, n_buckets=BUCKETS).cache()
    scored = spark_path.score(spark, features, tables, world["model"], world["p"], EXPORT, "v1", "run",
                              scoring_run_id="scoring-1", scored_at=SCORED_AT)

    # More than one account bucket did the featurize (the buckets hold whole accounts: a bucket is a hash of
    # the account id), and the scores came from more than one partition (the rank adds up partition offsets).
    bucket_of = tables["leads"].select("lead_id", F.pmod(F.hash("account_id"), F.lit(BUCKETS)).alias("b")).toPandas()
    per_bucket = bucket_of.loc[bucket_of["lead_id"].isin(world["features"]["lead_id"]), "b"].value_counts()
    assert len(per_bucket) >= 2 and per_bucket.sort_values().iloc[-2] >= 100, per_bucket
    assert scored.select(F.spark_partition_id()).distinct().count() >= 2

    # Featurize: the same open leads with every feature column.
    got_features = features.toPandas().sort_values("lead_id").reset_index(drop=True)
    want_features = world["features"].sort_values("lead_id").reset_index(drop=True)
    assert len(want_features) > 500
    assert list(got_features.columns) == list(want_features.columns)
    for col in want_features.columns:
        _same(got_features[col], want_features[col], col, rtol=FEATURE_RTOL)

    # Score: Spark's table (one rank over all partitions), handed over on the driver, is the pandas sql_leads.
    got = sql_leads(scored.toPandas().sort_values("rank").reset_index(drop=True), got_features, world["model"],
                    world["p"])
    want = world["sql_leads"]
    assert sorted(got.columns) == sorted(want.columns)
    documented = {c for c in OUTPUT_COLUMNS if not c.startswith("gate_<")} | {f"gate_{g}" for g in world["p"].gates}
    assert documented <= set(want.columns), documented - set(want.columns)  # the whole schema is compared
    assert got["rank"].tolist() == list(range(1, len(want) + 1))
    for col in want.columns:
        _same(got[col], want[col], col, atol=SCORE_ATOL)
    # The comparison covers more than one decision, and the hand-over columns are not all empty.
    assert {"sql", "nurture", "disqualified"} <= set(want["status"]), want["status"].value_counts()
    assert want["assigned_rep"].notna().any() and want["reasons_for"].notna().any()
