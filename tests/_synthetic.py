"""A small synthetic feature table with a known signal, for model, evaluation and registry tests."""

import numpy as np
import pandas as pd

from features.build import with_categories

AS_OFS = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-07-01"])


def feature_table(n_per_snapshot: int = 1500, seed: int = 0, signal: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for k, as_of in enumerate(AS_OFS):
        n = n_per_snapshot
        intent = rng.poisson(1.0, n)
        seniority = rng.integers(1, 7, n).astype(float)
        engagement = rng.gamma(2.0, 10.0, n)
        icp = rng.integers(0, 2, n).astype(float)
        noise = rng.standard_normal(n)
        logit = -3.6 + signal * (0.9 * intent + 0.25 * seniority + 0.02 * engagement + 0.6 * icp)
        label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
        parts.append(pd.DataFrame({
            "lead_id": [f"L{k}_{i}" for i in range(n)], "account_id": [f"A{i % 300}" for i in range(n)],
            "as_of": as_of, "split": "test" if k == len(AS_OFS) - 1 else "train", "label": label,
            "n_high_intent_30d": intent, "n_high_intent_7d": (intent > 1).astype(int), "seniority_level": seniority,
            "engagement_decayed": engagement, "icp_industry": icp, "icp_size": rng.integers(0, 2, n).astype(float),
            "icp_country": 1.0, "noise": noise,
            "industry": rng.choice(["Software", "Retail", "Healthcare"], n),
            "bant_budget_confirmed": np.where(rng.random(n) < 0.2, 1.0, np.nan),
            "form_budget_min": np.where(rng.random(n) < 0.5, 50_000.0, np.nan),
        }))
    return with_categories(pd.concat(parts, ignore_index=True))


GATES = {
    "budget": {"confirmed": "bant_budget_confirmed",
               "any": [{"column": "annual_revenue", "op": ">=", "value": 10_000_000},
                       {"column": "form_budget_min", "op": ">=", "value": 25_000}]},
    "authority": {"any": [{"column": "seniority_level", "op": ">=", "value": 4}]},
}
