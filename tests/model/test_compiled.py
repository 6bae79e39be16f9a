"""Compiled trees (`models.compiled`): the model's probabilities, margins and contributions, with categorical and
missing values, for the conversion model and the blend; anything but the compiled raw score is LightGBM's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.blend import BlendConfig, fit_blend
from models.compiled import CompiledTrees, trees_text, with_compiled_trees
from models.conversion import BoosterConfig, ConversionModel

lleaves = pytest.importorskip("lleaves", reason="lleaves is not installed")

FAST = BoosterConfig(n_estimators=60, learning_rate=0.1, num_leaves=15, min_child_samples=10, n_jobs=1,
                     early_stopping_rounds=15)


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers with missing values, a category with a level unseen in training (seed 1) and missing ones."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    levels = ["Web", "Referral", "Event", "Partner"] + (["Unseen"] if seed else [])
    source = pd.Series(rng.choice(levels, n)).where(rng.random(n) > 0.1)
    employees = rng.lognormal(5, 1, n)
    logit = -1 + 0.4 * np.nan_to_num(visits, nan=1) + 0.8 * (source == "Referral") - 0.1 * np.log(employees)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"visits": visits, "source": source.astype(pd.CategoricalDtype(levels[:4])),
                      "employees": employees})
    return X, y


def compile_trees(model, tmp_path):
    path = tmp_path / "trees.txt"
    path.write_text(trees_text(model))
    compiled = lleaves.Model(model_file=str(path))
    compiled.compile(cache=str(tmp_path / "trees.o"), raw_score=True)
    return compiled


@pytest.fixture(scope="module")
def data():
    (X, y), (X_val, y_val), (X_new, _) = frame(3000, 0), frame(1000, 0), frame(2000, 1)
    return X, y, X_val, y_val, X_new


def test_compiled_conversion_model_gives_the_same_scores_and_contributions(data, tmp_path):
    X, y, X_val, y_val, X_new = data
    model = ConversionModel(FAST, calibration="isotonic").fit(X, y, X_val, y_val)
    fast = with_compiled_trees(model, compile_trees(model, tmp_path), n_jobs=2)
    assert isinstance(fast.booster_, CompiledTrees) and not isinstance(model.booster_, CompiledTrees)  # a copy
    np.testing.assert_allclose(fast._margin(X_new), model._margin(X_new), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.predict_proba(X_new), model.predict_proba(X_new), rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(fast.contributions(X_new.head(50)), model.contributions(X_new.head(50)))
    assert fast.feature_names_in_.tolist() == model.feature_names_in_.tolist()


def test_compiled_blend_gives_the_same_probabilities(data, tmp_path):
    X, y, _, _, X_new = data
    model = fit_blend(X, y, BlendConfig(booster=FAST, refit=False))
    fast = with_compiled_trees(model, compile_trees(model, tmp_path), n_jobs=1)
    np.testing.assert_allclose(fast.predict_proba(X_new), model.predict_proba(X_new), rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(fast.contributions(X_new.head(20)), model.contributions(X_new.head(20)))


def test_other_predictions_are_lightgbms_own(data, tmp_path):
    X, y, X_val, y_val, X_new = data
    model = ConversionModel(FAST, calibration="none").fit(X, y, X_val, y_val)
    trees = CompiledTrees(model.booster_, compile_trees(model, tmp_path), model.best_iteration_)
    prepared = model._prepare(X_new)
    # fewer trees than were compiled, probabilities, contributions: not what was compiled, so LightGBM answers
    for kwargs in ({"raw_score": True, "num_iteration": 5}, {"raw_score": False, "num_iteration": model.best_iteration_},
                   {"pred_contrib": True, "num_iteration": model.best_iteration_}):
        np.testing.assert_array_equal(trees.predict(prepared, **kwargs), model.booster_.predict(prepared, **kwargs))
    assert trees.n_features_in_ == 3 and trees.booster_ is model.booster_.booster_
