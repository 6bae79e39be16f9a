"""Batch-by-batch scoring (pipeline/chunked.py) gives the whole-table scoring's probabilities, statuses and ranks."""

import dataclasses

import pandas as pd
import pytest

from features.build import build_feature_table, feature_columns, feature_config, prepare_crm, snapshot_dates
from models.conversion import BoosterConfig, ConversionModel
from models.decision import score_frame
from pipeline.chunked import score_in_chunks
from pipeline.params import load_params
from pipeline.sources.demo_crm import DemoConfig, generate_demo_crm

EXPORT = "2026-10-01"


@pytest.fixture(scope="module")
def world():
    prm = load_params("params.yaml")
    crm = generate_demo_crm(DemoConfig(n_leads=1200, seed=5, export_date=EXPORT, dirty_share=0.0))
    config = feature_config(prm.featurize)
    prepared = prepare_crm(crm.accounts, crm.leads, crm.activities, crm.opportunities, icp=config.icp)
    dates = snapshot_dates(pd.Timestamp(EXPORT), 90, 30, 3)
    table = build_feature_table(prepared, dates, config)
    cols = feature_columns(table)
    fit, val = table[table["split"] == "train"], table[table["split"] == "test"]
    model = ConversionModel(BoosterConfig(n_estimators=30, n_jobs=1, min_child_samples=20)).fit(
        fit[cols], fit["label"].astype(int), val[cols], val["label"].astype(int))
    return prm, crm, table, model


def test_chunked_scoring_equals_whole_table(world, tmp_path):
    prm, crm, table, model = world
    path = tmp_path / "features.parquet"
    table.to_parquet(path, index=False)  # all splits: only the score rows are scored
    result = score_in_chunks([path], model, crm.accounts, crm.opportunities, prm.score, tmp_path / "out",
                             batch_rows=200)
    rows = table[table["split"] == "score"]
    whole = score_frame(rows, model, crm.accounts, crm.opportunities, prm.score, "", "", pd.Timestamp("2026-10-02"))
    parts = pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*.parquet"))])
    rank = pd.read_parquet(tmp_path / "out" / "rank.parquet")

    assert result["rows"] == len(whole) > 400 and result["parts"] > 1
    merged = whole.merge(parts, on="lead_id", suffixes=("", "_chunk")).merge(rank, on="lead_id",
                                                                             suffixes=("", "_global"))
    assert len(merged) == len(whole)
    assert (merged["p_convert"] == merged["p_convert_chunk"]).all()
    assert (merged["status"] == merged["status_chunk"]).all()
    assert (merged["rank"] == merged["rank_global"]).all()  # the global rank, not the rank within a batch


def test_rescoring_into_the_same_folder_leaves_no_earlier_part(world, tmp_path):
    """A second run with larger batches writes fewer parts: the first run's extra parts must not be read with them."""
    prm, crm, table, model = world
    path = tmp_path / "features.parquet"
    table.to_parquet(path, index=False)
    out = tmp_path / "out"
    first = score_in_chunks([path], model, crm.accounts, crm.opportunities, prm.score, out, batch_rows=100)
    second = score_in_chunks([path], model, crm.accounts, crm.opportunities, prm.score, out, batch_rows=100_000)
    parts = sorted(out.glob("part-*.parquet"))
    scored = pd.concat([pd.read_parquet(p) for p in parts])

    assert first["parts"] > 2 and second["parts"] == len(parts) == 1
    assert len(scored) == second["rows"] == (table["split"] == "score").sum()
    assert scored["lead_id"].is_unique
    assert set(pd.read_parquet(out / "rank.parquet")["lead_id"]) == set(scored["lead_id"])


def test_chunked_scoring_refuses_a_capacity_rule(world, tmp_path):
    prm, crm, table, model = world
    table.to_parquet(tmp_path / "f.parquet", index=False)
    p = dataclasses.replace(prm.score, sql_rule="capacity", sql_capacity=10)
    with pytest.raises(ValueError, match="sql_rule 'capacity' ranks all leads at once"):
        score_in_chunks([tmp_path / "f.parquet"], model, crm.accounts, crm.opportunities, p, tmp_path / "out")
