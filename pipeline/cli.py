"""The `leadscore` command line: one subcommand per pipeline stage, plus helpers to look at the results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.params import ParamsError, load_params

app = typer.Typer(help="Score CRM leads into a ranked table of Sales Qualified Leads.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code=1)


def _load(path: Path):
    try:
        return load_params(path)
    except ParamsError as exc:
        _fail(str(exc))


@app.command("demo-data")
def demo_data(
    params: ParamsOpt = Path("params.yaml"),
    leads: Annotated[int | None, typer.Option(help="number of leads (default: params demo_data.n_leads)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: params demo_data.seed)")] = None,
    out: Annotated[Path | None, typer.Option(help="raw data folder (default: params paths.raw)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
) -> None:
    """Write a realistic demo CRM export (accounts, leads, activities, opportunities)."""
    import dataclasses

    from pipeline import demo_data as stage

    prm = _load(params)
    p = dataclasses.replace(prm.demo_data, **{k: v for k, v in {"n_leads": leads, "seed": seed}.items() if v is not None})
    stage.run(out or Path(prm.paths.raw), Path(prm.paths.truth), p, fmt)


@app.command()
def validate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Check the raw tables against the data contract; quarantine invalid rows."""
    from features.validation import FileContractError
    from pipeline import validate as stage

    prm = _load(params)
    try:
        stage.run(Path(prm.paths.raw), Path(prm.paths.validated), Path(prm.paths.reports), prm.demo_data.export_date,
                  prm.validate)
    except (FileContractError, stage.QuarantineLimitError, FileNotFoundError) as exc:
        _fail(str(exc))


@app.command()
def featurize(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build point-in-time feature snapshots and labels."""
    from pipeline import featurize as stage

    prm = _load(params)
    stage.run(Path(prm.paths.validated), Path(prm.paths.features), prm.demo_data.export_date, prm.featurize)


@app.command()
def train(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit the calibrated conversion model and log it to MLflow."""
    from pipeline import train as stage

    prm = _load(params)
    stage.run(Path(prm.paths.features) / "features.parquet", Path(prm.paths.models), Path(prm.paths.reports), prm.train)


@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Held-out metrics (and the oracle ceiling on demo data)."""
    from pipeline import evaluate as stage

    prm = _load(params)
    stage.run(Path(prm.paths.features) / "features.parquet", Path(prm.paths.models), Path(prm.paths.reports),
              prm.evaluate, prm.featurize.horizon_days, Path(prm.paths.truth), Path(prm.paths.raw))


@app.command()
def score(
    params: ParamsOpt = Path("params.yaml"),
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the scored folder)")] = None,
) -> None:
    """Gate, score, decide and rank the open leads; write the sql_leads table."""
    from models.gates import GateConfigError
    from pipeline import score as stage

    prm = _load(params)
    try:
        stage.run(Path(prm.paths.features) / "features.parquet", Path(prm.paths.models), Path(prm.paths.validated),
                  Path(prm.paths.scored), Path(prm.paths.reports), prm.score, database_url)
    except GateConfigError as exc:
        _fail(str(exc))


@app.command()
def show(
    params: ParamsOpt = Path("params.yaml"),
    top: Annotated[int, typer.Option(help="rows to show")] = 15,
    status: Annotated[str | None, typer.Option(help="only this status (sql, needs_call, nurture, disqualified)")] = None,
) -> None:
    """Print the top of the ranked SQL table."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    prm = _load(params)
    path = Path(prm.paths.scored) / "sql_leads.parquet"
    if not path.exists():
        _fail(f"{path} not found: run `make demo` or `leadscore score` first")
    df = pd.read_parquet(path)
    if status:
        df = df[df["status"] == status]
    cols = ["rank", "lead_id", "status", "tier", "score", "p_convert", "expected_value", "fit_score",
            "engagement_score", "gate_budget", "gate_authority", "gate_need", "gate_timeline"]
    table = Table(title=f"sql_leads — {int(df['is_sql'].sum()):,} SQLs of {len(df):,} scored leads "
                        f"(model {df['model_version'].iloc[0] if len(df) else '-'})")
    for c in cols:
        table.add_column(c, justify="right" if c in ("rank", "score", "p_convert", "expected_value") else "left")
    for _, row in df.head(top).iterrows():
        table.add_row(*[f"{row[c]:,.2f}" if c == "expected_value" else f"{row[c]:.3f}" if c == "p_convert"
                        else str(row[c]) for c in cols])
    Console(width=200).print(table)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print("status counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":
    sys.exit(app())
