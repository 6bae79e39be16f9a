"""Hold-out splits of labelled rows without snapshots (flat exports): which rows train, which test, which are
scored. Pure: arrays and frames in, positions out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from features.schema import FLAT_TIME

FLAT_TEST_SHARE = 0.2  # flat exports: the latest (or a stratified random) fifth of the labelled rows is held out


def holdout_split(y: np.ndarray, time: np.ndarray | pd.Series | None = None, test_share: float = FLAT_TEST_SHARE,
                  seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row positions: the latest ``test_share`` of rows by ``time`` when given (ties stay on
    one side), otherwise a stratified random split."""
    y = np.asarray(y, dtype=int)
    n = len(y)
    if time is not None:
        t = pd.Series(np.asarray(time))
        order = np.argsort(t.to_numpy(), kind="stable")
        cut_value = t.iloc[order[int(np.floor(n * (1 - test_share)))]]
        return np.flatnonzero((t < cut_value).to_numpy()), np.flatnonzero((t >= cut_value).to_numpy())
    train, test = train_test_split(np.arange(n), test_size=test_share, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


TIME_HOLDOUT, RANDOM_HOLDOUT = "time", "stratified random"


def has_time(flat: pd.DataFrame) -> bool:
    """Whether a flat table's hold-out is by time (the profile declared a time column and it has values)."""
    return FLAT_TIME in flat and bool(flat[FLAT_TIME].notna().any())


def flat_split(flat: pd.DataFrame, seed: int = 42) -> np.ndarray:
    """Per row of a flat table: ``score`` for open leads (label missing: the profile's declared open values, or a
    blank it declares open; never a held-out row); the labelled rows split into ``train`` and
    a ``test`` hold-out (the latest fifth by time when the export has time, else a stratified random fifth)."""
    labelled = flat["label"].notna().to_numpy()
    split = np.full(len(flat), "score", dtype=object)
    y = flat.loc[labelled, "label"].astype(int).to_numpy()
    t = flat.loc[labelled, FLAT_TIME].reset_index(drop=True) if has_time(flat) else None
    train_idx, test_idx = holdout_split(y, t, seed=seed)
    positions = np.flatnonzero(labelled)
    split[positions[train_idx]] = "train"
    split[positions[test_idx]] = "test"
    return split
