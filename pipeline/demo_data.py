"""Stage `demo_data`: write a realistic demo CRM export (four tables) and its hidden truth."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from pipeline.io import write_csv, write_parquet
from pipeline.params import DemoDataParams
from pipeline.progress import log
from pipeline.sources.demo_crm import DemoConfig, generate_demo_crm

TABLES = ("accounts", "leads", "activities", "opportunities")


def run(raw_dir: Path, truth_dir: Path, p: DemoDataParams, fmt: str = "parquet") -> dict[str, int]:
    """Generate the demo CRM and write it; returns the row count of every table written."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, not {fmt!r}")
    start = time.perf_counter()
    crm = generate_demo_crm(
        DemoConfig(
            n_leads=p.n_leads,
            seed=p.seed,
            export_date=p.export_date,
            history_days=p.history_days,
            activities_per_lead=p.activities_per_lead,
            dirty_share=p.dirty_share,
        )
    )
    log(f"generated {p.n_leads:,} leads in {time.perf_counter() - start:.1f}s")
    writer = write_parquet if fmt == "parquet" else write_csv
    counts = {}
    for name in TABLES:
        frame: pd.DataFrame = getattr(crm, name)
        writer(frame, Path(raw_dir) / f"{name}.{fmt}")
        counts[name] = len(frame)
    # The truth is never an input: it lives outside the raw folder and only evaluation reads it.
    write_parquet(crm.truth, Path(truth_dir) / "truth.parquet")
    write_parquet(crm.dirty, Path(truth_dir) / "dirty_rows.parquet")
    log("wrote " + ", ".join(f"{n} {c:,}" for n, c in counts.items()) + f" rows to {raw_dir}")
    return counts
