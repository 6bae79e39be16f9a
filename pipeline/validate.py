"""Stage `validate`: check the ingested tables against the contract; invalid rows go to quarantine with reasons.

Picklist values outside the contract's lists (industry, lead source, use case, activity type) are kept as the
list's catch-all (`Other` / `other`): counted per column, with the most frequent values, under `other` in
`validation.json` and in the log.

A flat export (one row per lead) was parsed column by column when it was mapped: its table passes through and
the counts say so. `ingest.json` travels with the validated tables, so later stages know the variant and date.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from features.config import ValidateConfig
from features.schema import CONTRACT, FLAT, TABLE_ORDER
from features.validation import check_quarantine_limit, flat_result, validate_export
from pipeline.io import read_json, read_tables, write_csv, write_json, write_parquet
from pipeline.progress import log
from pipeline.sources.profiles import typed_table

MANIFEST = "ingest.json"
FLAT_QUARANTINE = "flat_quarantine.parquet"  # written by ingest: the flat rows the row checks refused
FLAT_FAILURES = "flat_failures.json"


def is_text_typed(df: pd.DataFrame, table: str) -> bool:
    """A mapped export keeps unparsable values as text (so rows can be quarantined): type the valid rows."""
    return any(col.dtype != "string" and col.name in df and not (
        pd.api.types.is_numeric_dtype(df[col.name]) or pd.api.types.is_datetime64_any_dtype(df[col.name])
        or pd.api.types.is_bool_dtype(df[col.name])) for col in CONTRACT[table].columns)


def other_lines(other: dict) -> list[str]:
    """One line per picklist column with values kept as its catch-all (validation.json's ``other``)."""
    return [f"{table}.{col}: {o['mapped']:,} value(s) outside the contract's list kept as {o['to']!r} (top: "
            + ", ".join(f"{v['value']!r} {v['count']:,}" for v in o["top"]) + ")"
            for table, cols in other.items() for col, o in cols.items() if o["mapped"]]


def run(raw_dir: Path, out_dir: Path, reports_dir: Path, p: ValidateConfig) -> dict:
    """Validate every table; write valid tables, quarantine files and a metrics JSON. Returns the metrics."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = read_json(raw_dir / MANIFEST)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(raw_dir / MANIFEST, out_dir / MANIFEST)
    if manifest["variant"] == FLAT:
        return run_flat(raw_dir, out_dir, reports_dir, p)
    tables = read_tables(raw_dir, TABLE_ORDER)
    result = validate_export(tables, pd.Timestamp(manifest["as_of"]), p)
    present = list(result.counts)  # a table the export does not have (activities) is not validated: it stays empty
    for name in TABLE_ORDER:
        valid = result.valid[name] if name in present else tables[name]
        write_parquet(typed_table(valid, name) if is_text_typed(valid, name) else valid, out_dir / f"{name}.parquet")
        if name in present:
            write_csv(result.quarantine[name], out_dir / "quarantine" / f"{name}.csv")
    metrics = {**result.to_dict(), "as_of": manifest["as_of"]}
    write_json(metrics, Path(reports_dir) / "validation.json")
    for name in present:
        c = result.counts[name]
        log(f"{name}: {c['rows_in']:,} in = {c['valid']:,} valid + {c['quarantined']:,} quarantined")
    for line in other_lines(metrics.get("other", {})):
        log(line)
    if metrics.get("leads_missing_activities"):
        log(f"{metrics['leads_missing_activities']:,} kept lead(s) have quarantined activities: their engagement "
            f"features miss those events (quarantine/activities.csv)")
    check_quarantine_limit(result, p, out_dir / "quarantine")
    return metrics


def run_flat(raw_dir: Path, out_dir: Path, reports_dir: Path, p: ValidateConfig) -> dict:
    """The flat variant: the rows ingest's row checks refused go to ``quarantine/flat.csv`` with their reasons,
    the counts to ``validation.json``; the run fails above ``validate.max_quarantine_share``."""
    flat = pd.read_parquet(raw_dir / "flat.parquet")
    q_path, f_path = raw_dir / FLAT_QUARANTINE, raw_dir / FLAT_FAILURES
    quarantine = pd.read_parquet(q_path) if q_path.exists() else pd.DataFrame(columns=["source_row", "reason"])
    failures = read_json(f_path) if f_path.exists() else {}
    result = flat_result(flat, quarantine, failures)
    write_parquet(flat, out_dir / "flat.parquet")
    write_csv(quarantine, out_dir / "quarantine" / "flat.csv")
    metrics = {**result.to_dict(), "variant": FLAT}
    metrics.pop("other", None)
    write_json(metrics, Path(reports_dir) / "validation.json")
    c = result.counts["flat"]
    log(f"flat: {c['rows_in']:,} in = {c['valid']:,} valid + {c['quarantined']:,} quarantined")
    check_quarantine_limit(result, p, out_dir / "quarantine")
    return metrics
