"""Stage `ingest`: the user's export (or the generated demo CRM) mapped onto the data contract.

Reads `ingest.input` through the profile `ingest.profile` and writes the contract tables (or the flat table) to
the raw folder with `ingest.json`: profile, pipeline variant, scoring date and rows read. The demo profile
generates its CRM from params `demo:` and keeps its hidden truth apart (only evaluation reads it). The export
itself is only read: an input inside one of the pipeline's output folders is refused, because DVC clears
those before a stage runs.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd

from pipeline.io import write_json, write_parquet
from pipeline.progress import log
from pipeline.sources.demo_crm import DemoConfig
from pipeline.sources.exports import DEMO, ingest_export
from pipeline.sources.profiles import Profile, ProfileError
from pipeline.sources.readers import InputFileError

MANIFEST = "ingest.json"
FLAT_QUARANTINE = "flat_quarantine.parquet"  # a flat export's rows the row checks refused (ingest -> validate)
FLAT_FAILURES = "flat_failures.json"  # per check: the flat rows that failed it
TRUTH_NOTE = "README.txt"


def as_storable(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns as text (missing kept missing): a mapped export keeps values it could not parse as text
    beside parsed ones, for the validator to quarantine, and Parquet stores one type per column."""
    mixed = [c for c in df.columns if df[c].dtype == object]
    return df.assign(**{c: df[c].astype("string") for c in mixed}) if mixed else df


def check_input_location(input_path: Path, outputs: list[Path]) -> None:
    """Refuse an export that lives inside a folder the pipeline writes (it would be deleted or overwritten)."""
    where = Path(input_path).resolve()
    for out in outputs:
        out = Path(out).resolve()
        if where == out or out in where.parents:
            raise ProfileError(
                f"{input_path}: the export is inside {out}, a folder the pipeline writes and DVC clears; "
                f"keep your export elsewhere (e.g. exports/) and point ingest.input at it")


def run(profile: Profile, input_path: Path | str, raw_dir: Path, truth_dir: Path, demo: DemoConfig | None = None,
        as_of: str = "auto", outputs: list[Path] | None = None, cv_folds: int = 0) -> dict:
    """Map the export onto the contract in `raw_dir` (+ `ingest.json`); the demo's truth in `truth_dir`.

    `cv_folds`: the cross-validation evaluation will run (a flat export's labels must support it)."""
    start = time.perf_counter()
    input_path = Path(input_path)
    if profile.name != DEMO:
        check_input_location(input_path, list(outputs or []) + [Path(raw_dir), Path(truth_dir)])
        if not input_path.exists():
            raise InputFileError(f"{input_path}: export not found (ingest.input); profile {profile.name!r} reads "
                               f"{'a file' if profile.kind == 'flat' else 'a folder of CSV/Parquet files'}")
    data = ingest_export(profile, input_path, demo, as_of, cv_folds=cv_folds)
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    # a previous run's tables of another variant must not linger beside this one's
    for stale in raw_dir.glob("*.parquet") if raw_dir.exists() else []:
        stale.unlink()
    if data.flat is not None:
        write_parquet(data.flat, raw_dir / "flat.parquet")
        quarantine = data.flat_quarantine if data.flat_quarantine is not None else pd.DataFrame()
        write_parquet(as_storable(quarantine), raw_dir / FLAT_QUARANTINE)  # validate writes it out, with counts
        write_json(data.flat_failures, raw_dir / FLAT_FAILURES)
    for name, table in data.tables.items():
        write_parquet(as_storable(table), raw_dir / f"{name}.parquet")
    if truth_dir.exists():
        shutil.rmtree(truth_dir)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for name, table in data.truth.items():
        write_parquet(table, truth_dir / f"{name}.parquet")
    if not data.truth:
        (truth_dir / TRUTH_NOTE).write_text("A real export has no hidden truth: only the demo CRM writes one here.\n")
    manifest = data.manifest("(generated from params demo:)" if profile.name == DEMO else input_path)
    write_json(manifest, raw_dir / MANIFEST)
    counts = ", ".join(f"{n} {c:,}" for n, c in data.rows_read.items())
    log(f"ingest {profile.name} ({data.variant}): {counts} rows, scoring date {manifest['as_of']}, "
        f"{time.perf_counter() - start:.1f}s")
    return manifest
