"""Two interpretable 0-100 sub-scores beside the model: fit (who they are) and engagement (what they do).

Fit uses firmographics and persona only; engagement uses behaviour only. Both are simple, documented point
systems so revenue ops can read *why* a lead is hot without the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Fit points: ICP industry 25, ICP size 25, ICP country 15, seniority up to 35 (C-level gets all of it).
FIT_POINTS = {"icp_industry": 25.0, "icp_size": 25.0, "icp_country": 15.0}
SENIORITY_POINTS = 35.0
MAX_SENIORITY_LEVEL = 6.0
# Decayed engagement points at which the engagement score reaches 63 (1 - 1/e of the way to 100).
ENGAGEMENT_SCALE = 60.0


def fit_score(features: pd.DataFrame, unknown_as_null: bool = True) -> pd.Series:
    """Fit points (0-100). A lead whose firmographic ICP inputs are all unknown (a flat export without them) has
    no fit: null, never the constant the seniority default alone would give (``unknown_as_null=False``: the old
    reading, 0 ICP points and seniority level 1, which the points baseline keeps)."""
    points = sum(features[col].fillna(0).astype(float) * w for col, w in FIT_POINTS.items())
    seniority = features["seniority_level"].astype(float).fillna(1.0).clip(0, MAX_SENIORITY_LEVEL)
    points = (points + SENIORITY_POINTS * seniority / MAX_SENIORITY_LEVEL).clip(0, 100).round(1)
    if unknown_as_null:
        unknown = features[list(FIT_POINTS)].isna().all(axis=1)
        points = points.astype(float).mask(unknown)
    return points.rename("fit_score")


def engagement_score(features: pd.DataFrame, unknown_as_null: bool = True) -> pd.Series:
    """Engagement points (0-100) from decayed engagement. A lead without an engagement value (a flat export has no
    activity log) has none: null, never 0 (``unknown_as_null=False``: 0, which the points baseline keeps)."""
    raw = features["engagement_decayed"].astype(float)
    decayed = raw.fillna(0).clip(lower=0)
    score = pd.Series(100.0 * (1.0 - np.exp(-decayed / ENGAGEMENT_SCALE)), index=features.index).round(1)
    if unknown_as_null:
        score = score.mask(raw.isna())
    return score.rename("engagement_score")
