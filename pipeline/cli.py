"""The `leadscore` command line: one subcommand per pipeline stage, plus helpers to look at the results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.params import ParamsError, load_params

app = typer.Typer(help="Score CRM leads into a ranked table of Sales Qualified Leads.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

# Exit codes (docs/schedule.md): 0 done, 1 error (named), 2 usage (typer), 3 drift flagged, 4 promotion refused.
EXIT_ERROR, EXIT_USAGE, EXIT_DRIFT, EXIT_PROMOTION_REFUSED = 1, 2, 3, 4

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params file")]


def _fail(message: str) -> None:
    from pipeline.secrets import redact

    typer.secho(f"error: {redact(message)}", fg="red", err=True)
    raise typer.Exit(code=1)


def _load(path: Path):
    try:
        return load_params(path)
    except ParamsError as exc:
        _fail(str(exc))


def _stage(path: Path):
    """(params with the ingest profile's overrides applied, the profile): what every stage command runs with."""
    from pipeline.sources.exports import apply_overrides, load_profile
    from pipeline.sources.profiles import ProfileError

    prm = _load(path)
    try:
        profile = load_profile(prm.ingest.profile)
        return apply_overrides(prm, profile), profile
    except ProfileError as exc:
        _fail(f"{path}: ingest.profile: {exc}")


def _warn(metrics: dict) -> None:
    """Print the evaluation's warnings (metrics.json `warnings`, e.g. a held-out calibration error above 0.05)."""
    for message in metrics.get("warnings") or []:
        typer.secho(f"warning: {message}", fg="yellow", err=True)


def _paths(prm) -> dict[str, Path]:
    return {k: Path(v) for k, v in vars(prm.paths).items()}


@app.command()
def ingest(params: ParamsOpt = Path("params.yaml")) -> None:
    """Read the export at params ingest.input through ingest.profile (or generate the demo CRM) into the contract."""
    from pipeline import ingest as stage
    from pipeline.sources.profiles import ProfileError
    from pipeline.sources.readers import InputFileError

    prm, profile = _stage(params)
    P = _paths(prm)
    try:
        stage.run(profile, Path(prm.ingest.input), P["raw"], P["truth"], prm.demo, prm.ingest.as_of,
                  outputs=list(P.values()), cv_folds=prm.evaluate.cv_folds)
    except (InputFileError, ProfileError) as exc:
        _fail(str(exc))


@app.command()
def validate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Check the ingested tables against the data contract; quarantine invalid rows."""
    from features.validation import FileContractError, QuarantineLimitError
    from pipeline import validate as stage

    prm, _ = _stage(params)
    P = _paths(prm)
    try:
        stage.run(P["raw"], P["validated"], P["reports"], prm.validate)
    except (FileContractError, QuarantineLimitError, FileNotFoundError) as exc:
        _fail(str(exc))


@app.command()
def featurize(params: ParamsOpt = Path("params.yaml")) -> None:
    """Build the feature table: point-in-time snapshots (four tables) or the flat export's columns, with labels."""
    from pipeline import featurize as stage

    prm, _ = _stage(params)
    P = _paths(prm)
    stage.run(P["validated"], P["features"], prm.featurize, seed=prm.train.seed)


@app.command()
def train(params: ParamsOpt = Path("params.yaml")) -> None:
    """Fit the calibrated conversion model and its baselines."""
    from pipeline import train as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    try:
        stage.run(P["features"] / "features.parquet", P["models"], P["reports"], prm.train, profile.category_shares)
    except stage.TrainingDataError as exc:
        _fail(str(exc))


@app.command()
def package(params: ParamsOpt = Path("params.yaml")) -> None:
    """Bundle the model with the gates and decision policy, log it to MLflow and register a version."""
    from pipeline import package as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    configs = {"ingest": prm.ingest, "train": prm.train, "featurize": prm.featurize, "score": prm.score}
    if profile.name == "demo":
        configs["demo"] = prm.demo
    stage.run(P["features"] / "features.parquet", P["models"], P["package"], configs, source=profile.name,
              experiment=prm.train.experiment, registered_model=prm.train.registered_model,
              tags={"profile": profile.name, "input": prm.ingest.input, "driver": "dvc"})


@app.command()
def evaluate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Held-out metrics (and the oracle ceiling on demo data)."""
    from pipeline import evaluate as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    _warn(stage.run(P["features"] / "features.parquet", P["models"], P["package"], P["reports"], prm.evaluate,
                    prm.featurize.horizon_days, P["truth"], P["raw"], prm.train, profile.category_shares))


@app.command()
def score(
    params: ParamsOpt = Path("params.yaml"),
    database_url: Annotated[str | None, typer.Option(
        envvar="LEADSCORE_DATABASE_URL", show_envvar=True,
        help="SQLAlchemy URL (default: env LEADSCORE_DATABASE_URL, else SQLite in the scored folder); "
             "its password is never printed")] = None,
    model: Annotated[str | None, typer.Option(
        help="champion, challenger, latest or an MLflow URI such as models:/leadscore-conversion/3 "
             "(default: params score.model, the registered champion)")] = None,
    input: Annotated[Path | None, typer.Option(  # noqa: A002 - the option's name is the user's word
        "--input", help="a fresh export to score without training (read through --profile), or a feature file")] = None,
    profile: Annotated[str | None, typer.Option(
        help="with --input: the export's profile (default: params ingest.profile; a feature file needs none)")] = None,
    as_of: Annotated[str | None, typer.Option(
        help="with --input: scoring date (default: midnight after the export's latest timestamp)")] = None,
    out: Annotated[Path | None, typer.Option(help="with --input: output folder (default: params paths.scored)")] = None,
) -> None:
    """Gate, score, decide, rank and hand over the open leads; write sql_leads, CRM files and rep queues.

    Without --input: the pipeline's feature table (the DVC stage). With --input: a fresh export, validated and
    featurized as of its date and scored with the registered champion, without training (the weekly job).
    """
    import dataclasses

    from features.validation import FileContractError, QuarantineLimitError
    from models.assignment import AssignmentConfigError
    from models.decision import FeatureSchemaError
    from models.gates import GateConfigError
    from pipeline import score as stage
    from pipeline.export import SchemaError
    from pipeline.sources.exports import load_profile
    from pipeline.sources.profiles import ProfileError
    from pipeline.sources.readers import InputFileError
    from pipeline.tracking import ModelLoadError
    from pipeline.transaction import ExportError

    prm, stage_profile = _stage(params)
    P = _paths(prm)
    history = P["reports"] / "score_history"
    p = prm.score if model is None else dataclasses.replace(prm.score, model=model)
    try:
        if input is not None:
            chosen = None
            if not (input.is_file() and input.suffix in (".parquet", ".csv") and profile is None
                    and stage_profile.kind != "flat" and _is_feature_file(input)):
                chosen = load_profile(profile) if profile else stage_profile
                if chosen.name == "demo":
                    chosen = None  # the demo's export is already in the contract's tables
            uri = stage.model_uri(p.model, prm.train.registered_model)
            if uri is None:
                _fail("--input scores with a registered model: use --model champion (default), challenger or a URI")
            stage.score_new_export(uri, input, out or P["scored"], P["reports"], p, as_of, prm.featurize,
                                   prm.validate, database_url, history, chosen, prm.train.seed)
        else:
            stage.run(P["features"] / "features.parquet", P["models"], P["package"], P["validated"], P["scored"],
                      P["reports"], p, database_url, history, prm.featurize.icp, prm.train.registered_model,
                      prm.ingest.profile)
    except (GateConfigError, AssignmentConfigError, SchemaError, FeatureSchemaError, QuarantineLimitError,
            FileContractError, InputFileError, ProfileError, ModelLoadError, FileNotFoundError, ValueError,
            ExportError) as exc:
        _fail(str(exc))


def _is_feature_file(path: Path) -> bool:
    """A Parquet/CSV file whose columns are a feature table's (lead_id and as_of or split), not a flat export."""
    import pandas as pd

    try:
        cols = set(pd.read_parquet(path).columns if path.suffix == ".parquet" else pd.read_csv(path, nrows=0).columns)
    except Exception:  # noqa: BLE001 - unreadable: let the reader name the problem
        return False
    return "lead_id" in cols and bool({"as_of", "split"} & cols)


@app.command()
def show(
    params: ParamsOpt = Path("params.yaml"),
    top: Annotated[int, typer.Option(help="rows to show")] = 15,
    status: Annotated[str | None, typer.Option(help="only this status (sql, needs_call, nurture, disqualified)")] = None,
    reasons: Annotated[bool, typer.Option("--reasons/--no-reasons", help="print each shown lead's reasons")] = True,
) -> None:
    """Print the top of the ranked SQL table, with the assigned rep and the reasons behind each score."""
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
            "engagement_score", "gate_budget", "gate_authority", "gate_need", "gate_timeline", "assigned_rep"]
    cols = [c for c in cols if c in df.columns]
    table = Table(title=f"sql_leads — {int(df['is_sql'].sum()):,} SQLs of {len(df):,} scored leads "
                        f"(model {df['model_version'].iloc[0] if len(df) else '-'})")
    for c in cols:
        table.add_column(c, justify="right" if c in ("rank", "score", "p_convert", "expected_value") else "left")
    for _, row in df.head(top).iterrows():
        table.add_row(*[f"{row[c]:,.2f}" if c == "expected_value" else f"{row[c]:.3f}" if c == "p_convert"
                        else str(row[c]) for c in cols])
    console = Console(width=200)
    console.print(table)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print("status counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if reasons and {"reasons_for", "reasons_against"} <= set(df.columns):
        for _, row in df.head(top).iterrows():
            if pd.isna(row["reasons_for"]) and pd.isna(row["reasons_against"]):
                continue  # reasons are computed only for leads handed over or queued for a call
            console.print(f"[bold]#{row['rank']} {row['lead_id']}[/bold] ({row['status']}, {row['status_reason']})",
                          highlight=False)
            for label, col in (("for", "reasons_for"), ("against", "reasons_against")):
                if not pd.isna(row[col]) and str(row[col]):
                    console.print(f"  {label}: {row[col]}", highlight=False)


@app.command()
def report(
    params: ParamsOpt = Path("params.yaml"),
    fail_on_drift: Annotated[bool | None, typer.Option(
        "--fail-on-drift/--no-fail-on-drift",
        help="exit 3 when drift is flagged (default: params report.fail_on_drift)")] = None,
) -> None:
    """Write the monitoring report: model quality, SQL funnel, criteria backtest, drift (HTML + metrics)."""
    import dataclasses

    from pipeline import report as stage

    prm, _ = _stage(params)
    P = _paths(prm)
    p = prm.report if fail_on_drift is None else dataclasses.replace(prm.report, fail_on_drift=fail_on_drift)
    try:
        stage.run(P["features"] / "features.parquet", P["models"], P["package"], P["validated"], P["scored"],
                  P["reports"], p, prm.score, prm.featurize.horizon_days, prm.evaluate.top_fraction)
    except stage.DriftDetected as exc:
        typer.secho(f"drift: {exc}", fg="yellow", err=True)
        raise typer.Exit(code=EXIT_DRIFT) from None
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


@app.command("run")
def run_export(
    profile: Annotated[str, typer.Option(help="profile name (pipeline/profiles/NAME.yaml) or a profile YAML path")],
    input: Annotated[Path, typer.Option("--input", help="the export: a folder (four tables) or one file (flat)")],
    workdir: Annotated[Path, typer.Option(help="folder for metrics.json, sql_leads.*, quarantine/, model")],
    params: ParamsOpt = Path("params.yaml"),
    n_jobs: Annotated[int | None, typer.Option(help="LightGBM threads (default: params train.n_jobs)")] = None,
    track: Annotated[bool, typer.Option(help="log the run to MLflow (env MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db)")] = True,
    cv_folds: Annotated[int, typer.Option(help="k-fold cross-validated AUC of the same fit (0: none)")] = 5,
) -> None:
    """Run the pipeline's stages on one export through a profile in a work folder, without DVC."""
    from features.validation import FileContractError, QuarantineLimitError
    from models.gates import GateConfigError
    from pipeline import run as driver
    from pipeline.sources.profiles import ProfileError
    from pipeline.sources.readers import InputFileError
    from pipeline.train import TrainingDataError

    prm = _load(params)
    try:
        _warn(driver.run(driver.load_profile(profile), input, workdir, prm, n_jobs=n_jobs, cv_folds=cv_folds,
                         track=track))
    except (InputFileError, ProfileError, FileContractError, GateConfigError, QuarantineLimitError,
            TrainingDataError) as exc:
        _fail(str(exc))


@app.command()
def contract() -> None:
    """Print the input data contract (tables, columns, types, checks, label) as Markdown."""
    from pipeline.sources.profiles import contract_markdown

    typer.echo(contract_markdown(), nl=False)


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="run id, runs:/<id>/model, models:/<name>/<version> or models:/<name>@<alias>")],
    b: Annotated[str, typer.Argument(help="the other model, same forms")],
    params: ParamsOpt = Path("params.yaml"),
    n_boot: Annotated[int | None, typer.Option(help="bootstrap resamples (default: params promote.n_bootstrap)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the comparison as JSON here")] = None,
) -> None:
    """Compare two model versions on the same held-out rows: metrics with CIs, paired bootstrap AUC test."""
    from pipeline import compare as stage
    from pipeline.io import write_json

    prm = _load(params)
    try:
        result = stage.compare_versions(a, b, Path(prm.paths.features) / "features.parquet",
                               n_boot or prm.promote.n_bootstrap, prm.evaluate.capacity_k)
    except (stage.ModelRefError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(stage.render(result))
    if out:
        write_json(result.as_dict(), out)


@app.command()
def promote(
    params: ParamsOpt = Path("params.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="apply the rule, move nothing")] = False,
) -> None:
    """Move the champion alias to the challenger if it passes params `promote:`; else refuse, naming why."""
    from pipeline import promote as stage
    from pipeline.compare import ModelRefError

    prm = _load(params)
    try:
        decision = stage.promote(prm.train.registered_model, Path(prm.paths.features) / "features.parquet",
                                 prm.promote, dry_run=dry_run)
    except (stage.PromotionError, ModelRefError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(decision.message())
    if decision.failed:
        raise typer.Exit(code=EXIT_PROMOTION_REFUSED)


@app.command("report-screenshot")
def report_screenshot(
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("notebooks/report.png"),
    height: Annotated[int, typer.Option(help="browser window height in pixels (the part of the page shot)")] = 2300,
) -> None:
    """Open the monitoring report in headless Chromium and save a screenshot (the README picture)."""
    from pipeline import report as stage

    prm = _load(params)
    try:
        path = stage.screenshot(Path(prm.paths.reports) / stage.REPORT_FILE, out, height=height)
    except (FileNotFoundError, RuntimeError) as exc:
        _fail(str(exc))
    typer.echo(f"{path} ({path.stat().st_size / 1024:.0f} KB)")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":
    sys.exit(app())
