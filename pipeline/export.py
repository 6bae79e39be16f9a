"""Exports of the scored table: a SQL database (atomic table swap), Parquet and CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.io import write_csv, write_parquet

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Make text cells inert for spreadsheets: a leading =, +, -, @ gets a quote (CSV injection)."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_string_dtype(out[col]) or out[col].dtype == object:
            text = out[col].astype("string")
            risky = text.str.startswith(FORMULA_PREFIXES).fillna(False)
            if risky.any():
                out[col] = text.where(~risky, "'" + text)
    return out


def write_sql_table(df: pd.DataFrame, url: str, table: str = "sql_leads") -> None:
    """Replace `table` in one transaction: readers see the old table or the new one, never half of it."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    staging = f"{table}__staging"
    try:
        with engine.begin() as conn:
            df.to_sql(staging, conn, if_exists="replace", index=False, chunksize=50_000)
            if inspect(conn).has_table(table):
                conn.execute(text(f'DROP TABLE "{table}"'))
            conn.execute(text(f'ALTER TABLE "{staging}" RENAME TO "{table}"'))
    finally:
        engine.dispose()


def export_all(df: pd.DataFrame, out_dir: Path, database_url: str | None = None, name: str = "sql_leads") -> dict[str, str]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{(out_dir / 'leadscore.db').resolve()}"
    write_sql_table(df, url, name)
    parquet = write_parquet(df, out_dir / f"{name}.parquet")
    csv = write_csv(neutralise_formulas(df), out_dir / f"{name}.csv")
    return {"database": url, "parquet": str(parquet), "csv": str(csv)}
