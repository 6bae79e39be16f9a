"""`pipeline.compiled.compiled_trees`, the score stage's predictor: compiled once per model and machine, cached,
falling back to LightGBM where it must; the same exports as LightGBM's own predict on the Salesforce and HubSpot
fixtures and a flat export's blend."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import artifacts, score
from pipeline.compiled import CACHE_ENV, COMPILE_MIN_ROWS, compiled_trees
from pipeline.params import Params, load_params
from tests._stages import run_stages

pytest.importorskip("lleaves", reason="lleaves is not installed")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    """A flat export's `leadscore run` (no tracking): its blend and its feature rows."""
    from pipeline.run import run
    from pipeline.sources.profiles import parse_profile
    from tests.pipeline.test_run import PROFILE, export

    tmp = tmp_path_factory.mktemp("flat")
    run(parse_profile(PROFILE, "tiny"), export(tmp, 600, 200), tmp / "work", Params(), n_jobs=1, track=False)
    model, _ = artifacts.load_model(tmp / "work" / "data" / "04_models")
    rows = pd.read_parquet(next((tmp / "work" / "data").glob("03_features*/features.parquet")))
    return model, rows


def test_auto_compiles_for_many_rows_and_then_loads_the_cached_object(flat_run, tmp_path):
    model, rows = flat_run
    X = rows[list(model.feature_names_in_)]
    same, how = compiled_trees(model, 1_000, "auto", cache_dir=tmp_path)
    assert same is model and how == {"predictor": "lightgbm"} and not any(tmp_path.iterdir())  # too few rows
    fast, how = compiled_trees(model, COMPILE_MIN_ROWS, "auto", cache_dir=tmp_path)
    assert how["predictor"] == "compiled" and how["compile_cached"] is False
    # the object and its hash, nothing else left behind (no model text, no temporary file)
    cached, digest = sorted(tmp_path.iterdir())
    assert cached.name.startswith("trees-") and cached.suffix == ".o" and digest.name == cached.name + ".sha256"
    again, how = compiled_trees(model, 10, "auto", cache_dir=tmp_path)  # cached: used for any number of rows
    assert how["predictor"] == "compiled" and how["compile_cached"] is True
    for m in (fast, again):
        np.testing.assert_allclose(m.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    assert type(model.booster_).__name__ == "LGBMClassifier"  # the loaded model itself is left as it was


def test_a_damaged_cache_object_is_compiled_again(flat_run, tmp_path):
    model, rows = flat_run
    compiled_trees(model, 10, "compiled", cache_dir=tmp_path)
    cached, _ = sorted(tmp_path.iterdir())
    cached.write_bytes(b"not an object file")  # loaded, LLVM would abort the process
    fast, how = compiled_trees(model, 10, "auto", cache_dir=tmp_path)
    assert how["predictor"] == "compiled" and how["compile_cached"] is False
    X = rows[list(model.feature_names_in_)]
    np.testing.assert_allclose(fast.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    assert cached.read_bytes() != b"not an object file"


def test_lightgbm_never_compiles_and_a_missing_lleaves_falls_back_or_fails(flat_run, tmp_path, monkeypatch):
    model, _ = flat_run
    assert compiled_trees(model, 10**7, "lightgbm", cache_dir=tmp_path) == (model, {"predictor": "lightgbm"})
    with pytest.raises(ValueError, match="score.predictor must be one of"):
        compiled_trees(model, 10, "fast", cache_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "lleaves", None)  # not installed
    same, how = compiled_trees(model, 10**7, "auto", cache_dir=tmp_path)
    assert same is model and how == {"predictor": "lightgbm", "fallback": "lleaves is not installed"}
    with pytest.raises(RuntimeError, match="needs lleaves"):
        compiled_trees(model, 10, "compiled", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_model_without_trees_is_scored_as_it_is(tmp_path):
    from models.baselines import LogisticBaseline

    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    model = LogisticBaseline().fit(X, (np.arange(40) % 2 == 0).astype(int))
    assert compiled_trees(model, 10**7, "compiled", cache_dir=tmp_path) == (model, {"predictor": "lightgbm"})


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["salesforce", "hubspot"])
def test_the_score_stage_writes_the_same_exports_with_compiled_trees(profile, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    params = load_params()
    # trees on the fixture's few conversions (the default min_positives would fit the logistic fallback)
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, n_jobs=1, min_positives=20))
    stages = run_stages(tmp_path, params, profile=profile, input_path=FIXTURES / profile, upto="train")
    P, features = stages["paths"], stages["paths"]["features"] / "features.parquet"
    out = {}
    for predictor in ("lightgbm", "compiled"):
        p = dataclasses.replace(stages["params"].score, predictor=predictor)
        summary = score.run(features, P["models"], None, P["validated"], tmp_path / predictor,
                            tmp_path / f"reports_{predictor}", p, icp=stages["params"].featurize.icp)
        assert summary["predictor"]["predictor"] == predictor
        out[predictor] = (pd.read_parquet(tmp_path / predictor / "sql_leads.parquet"),
                          (tmp_path / predictor / "crm" / "salesforce_leads.csv").read_text().splitlines())
    (a, crm_a), (b, crm_b) = out["lightgbm"], out["compiled"]
    assert len(a) > 100 and a["is_sql"].any()
    run_columns = ["scoring_run_id", "scored_at"]
    pd.testing.assert_frame_equal(a.drop(columns=run_columns), b.drop(columns=run_columns))
    run_column = crm_a[0].split(",").index("Scoring_Run_Id__c")
    assert [line.split(",")[:run_column] for line in crm_a] == [line.split(",")[:run_column] for line in crm_b]
