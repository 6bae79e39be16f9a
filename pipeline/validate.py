"""Stage `validate`: check the raw CRM tables against the contract; invalid rows go to quarantine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.schema import TABLE_ORDER
from features.validation import validate_tables
from pipeline.io import read_tables, write_csv, write_json, write_parquet
from pipeline.params import ValidateParams
from pipeline.progress import log


class QuarantineLimitError(RuntimeError):
    """Too much of the input failed validation to trust a model trained on the rest."""


def run(raw_dir: Path, out_dir: Path, reports_dir: Path, export_date: str, p: ValidateParams) -> dict:
    """Validate every table; write valid tables, quarantine files and a metrics JSON. Returns the metrics."""
    tables = read_tables(raw_dir, TABLE_ORDER)
    result = validate_tables(tables, export_date=pd.Timestamp(export_date), engine=p.engine)
    out_dir = Path(out_dir)
    for name in TABLE_ORDER:
        write_parquet(result.valid[name], out_dir / f"{name}.parquet")
        write_csv(result.quarantine[name], out_dir / "quarantine" / f"{name}.csv")
    metrics = result.to_dict()
    metrics["quarantined_share"] = result.quarantined_share()
    write_json(metrics, Path(reports_dir) / "validation.json")
    for name in TABLE_ORDER:
        c = result.counts[name]
        log(f"{name}: {c['rows_in']:,} in = {c['valid']:,} valid + {c['quarantined']:,} quarantined")
    share = result.quarantined_share()
    if share > p.max_quarantine_share:
        worst = sorted(
            ((n, check, k) for n, f in result.failures.items() for check, k in f.items()), key=lambda t: -t[2]
        )[:5]
        detail = "; ".join(f"{n}.{check}: {k:,} rows" for n, check, k in worst)
        raise QuarantineLimitError(
            f"{share:.1%} of rows quarantined, above the limit of {p.max_quarantine_share:.1%} "
            f"(validate.max_quarantine_share). Most failed checks: {detail}. See {out_dir / 'quarantine'}."
        )
    return metrics
