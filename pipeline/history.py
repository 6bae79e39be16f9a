"""The score history of a project: one entry per distinct scoring, so each week is compared with the last one.

An entry is keyed by what decides the table: the scoring date, the model version, the scored rows and the decision
policy. Scoring the same export again with the same model and policy finds its entry: it gets the same
`scoring_run_id` and `scored_at` (the same table) and adds no entry; `changes.csv` still compares with the entry
before it. `index.json` lists the entries in the order they were made, with the counts the report's trend draws.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.io import read_json, write_json, write_parquet

INDEX = "index.json"
HISTORY_COLUMNS = ("lead_id", "status", "tier", "rank", "score", "p_convert", "model_version", "scoring_run_id",
                   "scored_at", "as_of")


def _policy_text(policy: Any) -> str:
    data = asdict(policy) if is_dataclass(policy) else policy
    return json.dumps(data, sort_keys=True, default=str)


def scoring_key(rows: pd.DataFrame, model_version: str, policy: Any) -> str:
    """A digest of what decides a scoring: the rows (every column, in lead order), the model version, the policy."""
    ordered = rows.sort_values("lead_id", kind="stable").reset_index(drop=True) if "lead_id" in rows else rows
    row_hash = pd.util.hash_pandas_object(ordered.astype({c: "object" for c in ordered.columns
                                                         if isinstance(ordered[c].dtype, pd.CategoricalDtype)}),
                                          index=False)
    digest = hashlib.sha256()
    digest.update(np.asarray(row_hash, dtype=np.uint64).tobytes())
    digest.update(str(model_version).encode())
    digest.update(_policy_text(policy).encode())
    return digest.hexdigest()


class History:
    """The entries of one folder (``paths.reports/score_history`` by default)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def entries(self) -> list[dict]:
        path = self.folder / INDEX
        return list(read_json(path)) if path.exists() else []

    def find(self, key: str) -> dict | None:
        return next((e for e in self.entries() if e["key"] == key), None)

    def previous(self, key: str) -> pd.DataFrame | None:
        """The table of the scoring before `key`'s (the latest one when `key` is new), or None."""
        entries = self.entries()
        at = next((i for i, e in enumerate(entries) if e["key"] == key), len(entries))
        if at == 0:
            return None
        path = self.folder / entries[at - 1]["file"]
        return pd.read_parquet(path) if path.exists() else None

    def add(self, table: pd.DataFrame, key: str, summary: dict) -> dict:
        """Keep `table` (its history columns) as a new entry, unless `key` has one already."""
        found = self.find(key)
        if found is not None:
            return found
        run_id = str(table["scoring_run_id"].iloc[0]) if len(table) else ""
        stamp = pd.Timestamp(table["scored_at"].iloc[0]).strftime("%Y%m%dT%H%M%S") if len(table) else "empty"
        name = f"sql_leads_{stamp}_{run_id}.parquet"
        write_parquet(table[[c for c in HISTORY_COLUMNS if c in table]], self.folder / name)
        decided = table[table["status"] != "with_sales"] if len(table) else table
        p = decided["p_convert"].to_numpy(dtype=float) if len(decided) else np.array([np.nan])
        entry = {
            "key": key, "file": name, "scoring_run_id": run_id,
            "as_of": str(pd.Timestamp(table["as_of"].iloc[0]).date()) if len(table) else "",
            "scored_at": str(pd.Timestamp(table["scored_at"].iloc[0])) if len(table) else "",
            "model_version": summary.get("model_version", ""), "n_scored": summary.get("n_scored", 0),
            "n_sql": summary.get("n_sql", 0), "n_assigned": summary.get("n_assigned", 0),
            "status_counts": summary.get("status_counts", {}),
            "p_convert_quantiles": {q: float(np.nanquantile(p, float(q))) if np.isfinite(p).any() else None
                                    for q in ("0.1", "0.5", "0.9")},
        }
        write_json([*self.entries(), entry], self.folder / INDEX)
        return entry
