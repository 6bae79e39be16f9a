"""A model's trees compiled to machine code (lleaves): the same probabilities, a faster predict.

Only the trees' raw score is swapped: `with_compiled_trees` gives a shallow copy of a fitted `ConversionModel` or
`BlendedModel` whose LightGBM classifier is a `CompiledTrees`, which answers the raw-score predict at the model's
best iteration (the one both models ask for) with the compiled trees and hands every other call (contributions,
parameters, the booster) to the classifier. Column preparation, offsets, blends and calibration stay the model's
own, so the compiled path cannot drift from the reference one (tests compare them). Compiling, and caching what was
compiled, is the pipeline's (`pipeline.compiled.compiled_trees`): nothing here touches the disk.
"""

from __future__ import annotations

import copy

import numpy as np


class CompiledTrees:
    """Stands in for a fitted `LGBMClassifier`: ``predict(X, raw_score=True, num_iteration=<the compiled
    iteration>)`` runs `compiled` (an `lleaves.Model` compiled with ``raw_score=True`` from the classifier's trees
    up to that iteration) on `n_jobs` threads; any other call or attribute is the classifier's."""

    def __init__(self, classifier, compiled, num_iteration: int, n_jobs: int = 1):
        self.classifier = classifier
        self.compiled = compiled
        self.num_iteration = int(num_iteration)
        self.n_jobs = max(1, int(n_jobs))

    def predict(self, X, raw_score: bool = False, num_iteration: int | None = None, **kwargs) -> np.ndarray:
        if raw_score and num_iteration == self.num_iteration and not kwargs:
            return np.asarray(self.compiled.predict(X, n_jobs=self.n_jobs), dtype=float)
        return self.classifier.predict(X, raw_score=raw_score, num_iteration=num_iteration, **kwargs)

    def __getattr__(self, name: str):  # only for what this class does not define itself
        if name in ("classifier", "__setstate__"):  # unpickling/copying before __init__: no recursion
            raise AttributeError(name)
        return getattr(self.classifier, name)


def with_compiled_trees(model, compiled, n_jobs: int = 1):
    """A shallow copy of `model` (sharing its fitted parts) whose trees' raw scores come from `compiled`."""
    fast = copy.copy(model)
    fast.booster_ = CompiledTrees(model.booster_, compiled, model.best_iteration_, n_jobs)
    return fast


def trees_text(model) -> str:
    """The LightGBM model text of `model`'s trees up to its best iteration (what `compiled` is compiled from)."""
    return model.booster_.booster_.model_to_string(num_iteration=model.best_iteration_)
