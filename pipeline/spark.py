"""Featurize and score on PySpark (optional extra `.[spark]`): the same pure code, spread over a cluster.

Every feature of a lead depends only on its own account's leads, activities and opportunities (the account
history and buying-group features look no further), so the CRM is split into account buckets: each bucket
holds whole accounts and runs the pandas feature code (`features.build`) on its own — no per-feature
reimplementation, so Spark and pandas cannot drift. Scoring runs `models.decision.score_frame` on each
partition (`mapInPandas`) with the saved or registered model; the deal-size medians come from every won deal
(broadcast), and the final rank over all leads is a Spark sort. Run it with `spark-submit`:

    spark-submit --master yarn --py-files leadscore.zip pipeline/spark.py \
        --input s3://bucket/crm/validated --model data/04_models/model.joblib --as-of 2026-10-01 \
        --out s3://bucket/crm/scored
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.build import score_features
from features.config import FeaturizeConfig
from features.schema import CONTRACT, TABLE_ORDER
from models.config import ScoreConfig
from models.ranking import STATUS_ORDER

if TYPE_CHECKING:  # pyspark is an optional extra: imported only where it is used
    from pyspark.sql import DataFrame, SparkSession

BUCKET = "_bucket"
TABLE = "_table"
ORDER = "_status_order"
DEFAULT_BUCKETS = 64


# --------------------------------------------------------------------------------------- the model
def load_scoring_model(model: str | Path):
    """The fitted ConversionModel from a `model.joblib`, a models folder, or an MLflow model URI."""
    path = Path(str(model))
    if path.is_dir() and (path / "model.joblib").exists():
        path = path / "model.joblib"
    if path.suffix == ".joblib" and path.exists():
        import joblib

        return joblib.load(path)
    from pipeline.tracking import load_registered  # models:/leadscore-conversion/3, runs:/<id>/model ...

    return load_registered(str(model))[0]


# --------------------------------------------------------------------------------- pandas <-> Spark
def _spark_type(dtype: Any):
    from pyspark.sql import types as T

    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return T.StringType()
    if pd.api.types.is_bool_dtype(dtype):
        return T.BooleanType()
    if pd.api.types.is_integer_dtype(dtype):
        return T.LongType()
    if pd.api.types.is_float_dtype(dtype):
        return T.DoubleType()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return T.TimestampType()
    raise TypeError(f"no Spark type for pandas dtype {dtype}")


def spark_schema(frame: pd.DataFrame):
    """The Spark schema of a pandas frame's columns (categoricals travel as strings)."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(c, _spark_type(frame[c].dtype), True) for c in frame.columns])


def _to_arrow_friendly(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals and extension strings as plain objects, nullable ints as int64/float: what Arrow hands Spark."""
    out = frame.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        elif pd.api.types.is_integer_dtype(dtype):
            out[col] = out[col].astype("Int64" if pd.api.types.is_extension_array_dtype(dtype) else "int64")
    return out


def _restore_types(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Give a bucket's rows of table `name` the dtypes the pandas pipeline reads from Parquet."""
    frame = frame.copy()
    for col in CONTRACT[name].columns:
        if col.name not in frame:
            continue
        if col.dtype == "datetime":
            frame[col.name] = pd.to_datetime(frame[col.name])
        elif col.dtype == "bool":
            frame[col.name] = frame[col.name].astype("boolean")
        elif col.dtype == "string":
            frame[col.name] = frame[col.name].astype("string")
    return frame


# ------------------------------------------------------------------------------------------ featurize
def _bucketed(tables: dict[str, DataFrame], n_buckets: int) -> DataFrame:
    """All four tables in one frame (unioned by name), each row tagged with its table and account bucket."""
    from pyspark.sql import functions as F

    leads = tables["leads"].withColumn(BUCKET, F.pmod(F.hash("account_id"), F.lit(n_buckets)))
    lead_bucket = leads.select(F.col("lead_id").alias("_lid"), F.col(BUCKET))
    accounts = tables["accounts"].withColumn(BUCKET, F.pmod(F.hash("account_id"), F.lit(n_buckets)))
    # Activities and opportunities follow their lead's account (as prepare_crm does), not a column of their own.
    activities = tables["activities"].join(lead_bucket, F.col("lead_id") == F.col("_lid")).drop("_lid")
    opportunities = tables["opportunities"].join(lead_bucket, F.col("lead_id") == F.col("_lid")).drop("_lid")
    parts = [accounts, leads, activities, opportunities]
    # Columns shared by name (created_at ...) must agree in type; the contract makes them so.
    union = None
    for name, df in zip(TABLE_ORDER, parts, strict=True):
        df = df.withColumn(TABLE, F.lit(name))
        union = df if union is None else union.unionByName(df, allowMissingColumns=True)
    return union


def _split_bucket(frame: pd.DataFrame, columns: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    return {
        name: _restore_types(frame.loc[frame[TABLE] == name, columns[name]].reset_index(drop=True), name)
        for name in TABLE_ORDER
    }


def featurize_bucket(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, p: FeaturizeConfig) -> pd.DataFrame:
    """The pandas featurize of one as-of date on one bucket of whole accounts (what every Spark task runs)."""
    return score_features(tables, pd.Timestamp(as_of), p)


def featurize(spark: SparkSession, tables: dict[str, DataFrame], as_of: str | pd.Timestamp, p: FeaturizeConfig,
              n_buckets: int = DEFAULT_BUCKETS) -> DataFrame:
    """Features of every open lead as of `as_of`, one row per lead, as a Spark DataFrame."""
    as_of = pd.Timestamp(as_of).normalize()
    columns = {name: list(tables[name].columns) for name in TABLE_ORDER}
    union = _bucketed(tables, n_buckets)

    # The output schema: the pandas code run on a handful of accounts (dtypes hold even when no row is eligible).
    sample_accounts = [r[0] for r in tables["leads"].select("account_id").distinct().limit(20).collect()]
    sample = union.where(union["account_id"].isin(sample_accounts) | union["lead_id"].isin(
        [r[0] for r in tables["leads"].where(tables["leads"]["account_id"].isin(sample_accounts))
         .select("lead_id").collect()]
    )).toPandas()
    schema = spark_schema(featurize_bucket(_split_bucket(sample, columns), as_of, p))

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        return _to_arrow_friendly(featurize_bucket(_split_bucket(frame, columns), as_of, p))

    return union.groupBy(BUCKET).applyInPandas(run, schema=schema)


# ---------------------------------------------------------------------------------------------- score
def _won_before(tables: dict[str, DataFrame], as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Won deals closed before `as_of` and their accounts' sizes: all the deal-size model needs (small)."""
    from pyspark.sql import functions as F

    won = tables["opportunities"].where(
        (F.col("stage") == "closed_won") & (F.col("closed_at") < F.lit(as_of.to_pydatetime()))
    ).select("opportunity_id", "lead_id", "account_id", "stage", "closed_at", "amount")
    won_pd = _restore_types(won.toPandas(), "opportunities")
    accounts = tables["accounts"].join(won.select("account_id").distinct(), "account_id", "inner")
    return won_pd, _restore_types(accounts.toPandas(), "accounts")


def score(spark: SparkSession, features: DataFrame, tables: dict[str, DataFrame], model: Any, p: ScoreConfig,
          as_of: str | pd.Timestamp, model_version: str = "", run_id: str = "", scoring_run_id: str = "",
          scored_at: pd.Timestamp | None = None) -> DataFrame:
    """The `sql_leads` table in Spark: `score_frame` per partition, then one global rank (a Spark sort).

    `run_id` is the MLflow run that trained the model, `scoring_run_id` identifies this scoring and `scored_at`
    is its time (default: now, UTC), as in the pandas score stage.
    """

    from models.decision import ACCOUNT_COLUMNS, score_frame
    from pipeline.chunked import refuse_global_rule

    refuse_global_rule(p)
    as_of = pd.Timestamp(as_of).normalize()
    won, won_accounts = _won_before(tables, as_of)
    acc_cols = ["account_id", *[c for c in ACCOUNT_COLUMNS if c in tables["accounts"].columns]]
    rows = features.join(
        tables["accounts"].select(*acc_cols).withColumnsRenamed({c: f"_acc_{c}" for c in acc_cols[1:]}),
        "account_id", "left",
    )
    payload = spark.sparkContext.broadcast((model, won, won_accounts))
    scored_at = pd.Timestamp(scored_at) if scored_at is not None \
        else pd.Timestamp.now(tz="UTC").floor("s").tz_localize(None)
    feature_cols = features.columns

    def score_part(frame: pd.DataFrame) -> pd.DataFrame:
        mdl, won_, won_acc = payload.value
        acc = frame[["account_id", *[f"_acc_{c}" for c in acc_cols[1:]]]].rename(
            columns={f"_acc_{c}": c for c in acc_cols[1:]})
        acc = pd.concat([acc, won_acc[acc.columns.intersection(won_acc.columns)]], ignore_index=True)
        out = score_frame(frame[feature_cols].reset_index(drop=True), mdl, acc, won_, p, model_version, run_id,
                          scored_at, scoring_run_id)
        out[ORDER] = out["status"].map(STATUS_ORDER).astype("int64")
        return out.drop(columns=["rank"])

    # The output schema from a few rows scored on the driver.
    schema = spark_schema(score_part(rows.limit(50).toPandas()))

    def score_batches(batches):
        for frame in batches:
            if len(frame):
                yield _to_arrow_friendly(score_part(frame))

    # Kept (memory and disk) so the rank's sampling pass and its sort read the scores instead of rerunning the model.
    return rank(rows.mapInPandas(score_batches, schema=schema).persist())


def rank(scored: DataFrame) -> DataFrame:
    """1-based rank over all leads: status order, expected value descending, then lead id.

    A global sort range-partitions the rows; each partition numbers its rows and adds the count of the
    partitions before it. No step gathers all rows in one task (a window without partitionBy would).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = [F.col(ORDER), F.col("expected_value").desc(), F.col("lead_id")]
    ordered = scored.orderBy(*keys).withColumn("_part", F.spark_partition_id()).persist()
    counts = sorted((r["_part"], r["count"]) for r in ordered.groupBy("_part").count().collect())
    offsets, total = {}, 0
    for part, count in counts:
        offsets[part] = total
        total += count
    offset = F.create_map(*[x for part, off in offsets.items() for x in (F.lit(part), F.lit(off))]) \
        if offsets else F.create_map(F.lit(0), F.lit(0))
    within = F.row_number().over(Window.partitionBy("_part").orderBy(*keys))
    return ordered.withColumn("rank", (offset[F.col("_part")] + within).cast("long")).drop("_part", ORDER)


# ---------------------------------------------------------------------------------------------- entry
def read_tables(spark: SparkSession, folder: str) -> dict[str, DataFrame]:
    """The four validated tables (Parquet) from a folder or a URL Spark can read (hdfs://, s3a:// ...)."""
    return {name: spark.read.parquet(f"{folder.rstrip('/')}/{name}.parquet") for name in TABLE_ORDER}


def session(master: str | None = None, app: str = "leadscore", conf: dict[str, str] | None = None):
    """A Spark session in UTC; `conf` adds settings (e.g. fewer shuffle partitions for a local run)."""
    from pyspark.sql import SparkSession

    if master and master.startswith("local"):  # workers must run this interpreter (its pandas, its leadscore)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app).config("spark.sql.session.timeZone", "UTC")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    if master:
        builder = builder.master(master)
    return builder.getOrCreate()


def main(argv: list[str] | None = None) -> None:
    from pipeline.params import load_params

    ap = argparse.ArgumentParser(description="Featurize and score a validated CRM on Spark.")
    ap.add_argument("--input", required=True, help="folder with the validated {accounts,leads,...}.parquet")
    ap.add_argument("--model", required=True, help="model.joblib, a models folder, or an MLflow model URI")
    ap.add_argument("--as-of", required=True, help="scoring date (the export date)")
    ap.add_argument("--out", required=True, help="output folder for sql_leads (Parquet)")
    ap.add_argument("--params", default=None,
                    help="params file (default: ./params.yaml when present, else the packaged defaults)")
    ap.add_argument("--master", default=None, help="e.g. local[2]; spark-submit sets it otherwise")
    ap.add_argument("--buckets", type=int, default=DEFAULT_BUCKETS, help="account buckets (tasks) for featurize")
    args = ap.parse_args(argv)
    prm = load_params(args.params)
    spark = session(args.master)
    tables = read_tables(spark, args.input)
    features = featurize(spark, tables, args.as_of, prm.featurize, args.buckets)
    model = load_scoring_model(args.model)
    scored = score(spark, features, tables, model, prm.score, args.as_of, scoring_run_id=uuid.uuid4().hex)
    scored.write.mode("overwrite").parquet(args.out)
    spark.stop()


if __name__ == "__main__":
    main()
