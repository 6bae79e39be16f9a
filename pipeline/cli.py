"""The `leadscore` command line: one subcommand per pipeline stage, plus helpers to look at the results.

Conventions (docs/cli.md): `-h`/`--help` everywhere, `--version`, `--quiet`/`--verbose` before the command,
`--json` on every command that reports a result (one JSON object on stdout, human lines on stderr), a one-line
summary at the end of each command, and one exit code per kind of failure (`EXIT_CODES`, mapped from the
exception types in `ERRORS`: the one place).
"""

from __future__ import annotations

import contextlib
import errno
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pipeline import progress
from pipeline.params import load_params

# Exit codes: the documented table (docs/cli.md, docs/schedule.md); tests walk every one of them.
EXIT_OK = 0
EXIT_ERROR = 1  # unexpected: a failure no entry of ERRORS names (--verbose shows the traceback)
EXIT_USAGE = 2  # unknown command or flag, bad option value (click's own code)
EXIT_DRIFT = 3  # report --fail-on-drift flagged drift; everything was written first
EXIT_PROMOTION_REFUSED = 4  # promote: a condition of the rule failed
EXIT_INPUT = 5  # an input file is missing, unreadable or invalid
EXIT_CONFIG = 6  # params or profile
EXIT_MODEL = 7  # a model URI that cannot be resolved or loaded, a model file failing its integrity check
EXIT_DATABASE = 8  # the database or the MLflow store refused the connection or the write
EXIT_OUTPUT = 9  # disk full, or an output folder that cannot be written

# code -> (name, what to do): the hint printed under each error message and the table of docs/cli.md
EXIT_CODES: dict[int, tuple[str, str]] = {
    EXIT_OK: ("done", "nothing"),
    EXIT_ERROR: ("unexpected error", "rerun with --verbose and report the traceback"),
    EXIT_USAGE: ("usage", "check `leadscore COMMAND -h`"),
    EXIT_DRIFT: ("drift flagged", "read the report's drift section (everything was written first)"),
    EXIT_PROMOTION_REFUSED: ("promotion refused", "keep the champion; `leadscore compare` shows the difference"),
    EXIT_INPUT: ("input", "fix the file it names, or run the stage that writes it (`dvc repro`)"),
    EXIT_CONFIG: ("config", "fix the param or profile it names (params.yaml, --params, ingest.profile)"),
    EXIT_MODEL: ("model", "check the model URI (--model, score.model) or train and package a new version"),
    EXIT_DATABASE: ("database", "check that the database / MLflow store it names is up and takes connections"),
    EXIT_OUTPUT: ("output", "free disk space or make the folder it names writable, then rerun"),
}

# The one table: exception type ("module:Class") -> exit code; the first match wins, so subclasses come before
# their bases. A type whose module was never imported cannot have been raised, so nothing is imported here.
ERRORS: tuple[tuple[str, int], ...] = (
    ("pipeline.report:DriftDetected", EXIT_DRIFT),
    ("pipeline.transaction:DatabaseExportError", EXIT_DATABASE),  # refused connection, locked table, MLflow store
    ("pipeline.transaction:ExportError", EXIT_OUTPUT),  # output folder not writable, too little space, held
    ("sqlalchemy.exc:SQLAlchemyError", EXIT_DATABASE),  # OperationalError: connection refused, database locked
    ("pipeline.sources.readers:InputFileError", EXIT_INPUT),
    ("features.validation:FileContractError", EXIT_INPUT),
    ("features.validation:QuarantineLimitError", EXIT_INPUT),
    ("models.decision:FeatureSchemaError", EXIT_INPUT),
    ("pipeline.train:TrainingDataError", EXIT_INPUT),
    ("pipeline.params:ParamsError", EXIT_CONFIG),
    ("pipeline.sources.profiles:ProfileError", EXIT_CONFIG),  # incl. LabelValueError: the profile must declare
    ("models.gates:GateConfigError", EXIT_CONFIG),
    ("models.assignment:AssignmentConfigError", EXIT_CONFIG),
    ("pipeline.tracking:ModelLoadError", EXIT_MODEL),
    ("pipeline.artifacts:ModelIntegrityError", EXIT_MODEL),
    ("models.baselines:IncompatibleModelError", EXIT_MODEL),  # saved by an older leadscore: retrain
    ("pipeline.compare:ModelRefError", EXIT_MODEL),
    ("pipeline.promote:PromotionError", EXIT_MODEL),  # no champion or no challenger registered
    ("builtins:FileNotFoundError", EXIT_INPUT),
    ("builtins:IsADirectoryError", EXIT_INPUT),
    ("builtins:NotADirectoryError", EXIT_INPUT),
    ("pyarrow.lib:ArrowInvalid", EXIT_INPUT),  # an unreadable Parquet file
)
# OSError numbers that mean the output cannot be written (checked before ERRORS, also on a wrapped cause)
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})

_state: dict[str, Any] = {"command": None, "json": False, "json_done": False, "database": None}


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an exception (EXIT_ERROR when the table does not name it)."""
    seen = exc
    while seen is not None:  # a full disk wrapped by another error is still a full disk
        if isinstance(seen, OSError) and (seen.errno in OUTPUT_ERRNOS or "No space left" in str(seen)):
            return EXIT_OUTPUT
        seen = seen.__cause__
    for spec, code in ERRORS:
        module, name = spec.split(":")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return code
    return EXIT_ERROR


def error_message(exc: BaseException, code: int) -> str:
    """One line naming what failed (the file, column, param, URI or database) with the password hidden."""
    from pipeline.secrets import hide_password, redact

    if isinstance(exc, OSError) and exc.filename and code in (EXIT_INPUT, EXIT_OUTPUT):
        text = f"{exc.filename}: {(exc.strerror or str(exc)).lower()}"
    elif isinstance(exc, OSError) and code == EXIT_OUTPUT:
        text = f"cannot write the output: {exc.strerror or exc}"
    elif type(exc).__module__.startswith("sqlalchemy"):
        orig = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        where = hide_password(_state["database"]) if _state["database"] else "the database"
        text = f"database {where}: {orig}"
    elif code == EXIT_ERROR and not isinstance(exc, ValueError | RuntimeError) or not str(exc):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = str(exc)
    return redact(text)


def _report_error(exc: BaseException, code: int) -> None:
    import traceback

    name, todo = EXIT_CODES[code]
    if progress.verbosity() >= progress.VERBOSE:
        typer.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
    message = error_message(exc, code)
    typer.secho(f"{'drift' if code == EXIT_DRIFT else 'error'}: {message}", fg="yellow" if code == EXIT_DRIFT
                else "red", err=True)
    typer.echo(f"  exit {code} ({name}): {todo}" + ("" if progress.verbosity() >= progress.VERBOSE or code == EXIT_ERROR
                                                     else "; --verbose shows the traceback"), err=True)
    if _state["json"] and not _state["json_done"]:
        _print_json({"command": _state["command"], "ok": False, "exit_code": code, "error": message})


class _Commands(TyperGroup):
    """The app's command group: every failure of a command ends in one message and its documented exit code."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exits, usage errors: typer's own handling
            raise
        except Exception as exc:  # noqa: BLE001 - the one place failures become messages and exit codes
            code = exit_code_for(exc)
            _report_error(exc, code)
            raise typer.Exit(code=code) from None


HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(help="Score CRM leads into a ranked table of Sales Qualified Leads.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=_Commands, context_settings=HELP)

ParamsOpt = Annotated[Path | None, typer.Option(
    "--params", "-p", help="params file, read over the packaged defaults key by key "
                           "(default: ./params.yaml when present, else the packaged defaults alone)")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="print one JSON object on stdout (key numbers, paths written); human lines go to stderr")]


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("leadscore")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"leadscore {version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="print the version and exit")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="print only errors and each command's final summary line")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="tracebacks on error; third-party warnings on the terminal, not the log file")] = False,
) -> None:
    """Score CRM leads into a ranked table of Sales Qualified Leads."""
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose exclude each other")
    _state.update(command=ctx.invoked_subcommand, json=False, json_done=False, database=None)
    progress.set_verbosity(progress.QUIET if quiet else progress.VERBOSE if verbose else progress.NORMAL)
    ctx.call_on_close(lambda: progress.set_verbosity(progress.NORMAL))
    ctx.with_resource(progress.third_party_to_log_file(verbose))


# ------------------------------------------------------------------------------------------------ helpers
def _fail(message: str, code: int = EXIT_ERROR) -> None:
    """A failure the command itself detects (not an exception): the message and the exit code."""
    from pipeline.secrets import redact

    name, todo = EXIT_CODES[code]
    typer.secho(f"error: {redact(message)}", fg="red", err=True)
    typer.echo(f"  exit {code} ({name}): {todo}", err=True)
    if _state["json"]:
        _print_json({"command": _state["command"], "ok": False, "exit_code": code, "error": redact(message)})
    raise typer.Exit(code=code)


def _load(path: Path | None):
    return load_params(path)  # ParamsError: exit EXIT_CONFIG (ERRORS)


def _stage(path: Path | None):
    """(params with the ingest profile's overrides applied, the profile): what every stage command runs with."""
    from pipeline.sources.exports import apply_overrides, load_profile
    from pipeline.sources.profiles import ProfileError

    prm = _load(path)
    try:
        profile = load_profile(prm.ingest.profile)
    except ProfileError as exc:
        raise ProfileError(f"{path or 'params.yaml'}: ingest.profile: {exc}") from None
    return apply_overrides(prm, profile), profile


def _need(path: Path, made_by: str) -> Path:
    """`path`, an input a stage reads, or an error naming it and the command that writes it."""
    from pipeline.sources.readers import InputFileError

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: not found; run `leadscore {made_by}` first (or `dvc repro`)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(path)
        except Exception as exc:  # noqa: BLE001 - every reader error means the same: rewrite it
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(f"{path}: not a readable Parquet file ({detail}); rerun `leadscore {made_by}`") \
                from None
    return path


def _warn(metrics: dict) -> None:
    """Print the evaluation's warnings (metrics.json `warnings`, e.g. a held-out calibration error above 0.05)."""
    for message in metrics.get("warnings") or []:
        typer.secho(f"warning: {message}", fg="yellow", err=True)


def _paths(prm) -> dict[str, Path]:
    return {k: Path(v) for k, v in vars(prm.paths).items()}


@contextlib.contextmanager
def _work(as_json: bool) -> Iterator[None]:
    """Run a command's work; with --json everything it prints goes to stderr, so stdout carries only the JSON."""
    _state["json"] = as_json
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _print_json(obj: dict) -> None:
    _state["json_done"] = True
    typer.echo(json.dumps(obj, default=_jsonable, ensure_ascii=False))


def _done(line: str, result: dict | None = None, as_json: bool = False, code: int = EXIT_OK) -> None:
    """The command's one-line summary (stderr, even when quiet) and with --json its JSON object (stdout)."""
    progress.summary(line)
    if as_json:
        _print_json({"command": _state["command"], "ok": code == EXIT_OK, "exit_code": code, **(result or {})})


def _pick(d: dict, *keys: str) -> dict:
    return {k: d[k] for k in keys if k in d}


def _f(value: Any, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


# ----------------------------------------------------------------------------------------------- stages
@app.command()
def ingest(params: ParamsOpt = None) -> None:
    """Read the export at params ingest.input through ingest.profile (or generate the demo CRM) into the contract."""
    from pipeline import ingest as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    manifest = stage.run(profile, Path(prm.ingest.input), P["raw"], P["truth"], prm.demo, prm.ingest.as_of,
                         outputs=list(P.values()), cv_folds=prm.evaluate.cv_folds)
    rows = sum(int(n) for n in (manifest.get("rows_read") or {}).values())
    _done(f"ingest: {rows:,} rows of {profile.name} as of {manifest['as_of']} → {P['raw']}")


@app.command()
def validate(params: ParamsOpt = None, as_json: JsonOpt = False) -> None:
    """Check the ingested tables against the data contract; quarantine invalid rows."""
    from pipeline import validate as stage

    prm, _ = _stage(params)
    P = _paths(prm)
    _need(P["raw"] / "ingest.json", "ingest")
    with _work(as_json):
        metrics = stage.run(P["raw"], P["validated"], P["reports"], prm.validate)
    counts = metrics.get("counts", {})
    total = {k: sum(int(c.get(k, 0)) for c in counts.values()) for k in ("rows_in", "valid", "quarantined")}
    _done(f"validate: {total['valid']:,} valid, {total['quarantined']:,} quarantined of {total['rows_in']:,} rows "
          f"({metrics.get('quarantined_share', 0):.2%}) → {P['validated']}",
          {**total, "quarantined_share": metrics.get("quarantined_share"), "counts": counts,
           "paths": {"validated": str(P["validated"]), "quarantine": str(P["validated"] / "quarantine"),
                     "validation": str(P["reports"] / "validation.json")}}, as_json)


@app.command()
def featurize(params: ParamsOpt = None) -> None:
    """Build the feature table: point-in-time snapshots (four tables) or the flat export's columns, with labels."""
    from pipeline import featurize as stage

    prm, _ = _stage(params)
    P = _paths(prm)
    _need(P["validated"] / "ingest.json", "validate")
    summary = stage.run(P["validated"], P["features"], prm.featurize, seed=prm.train.seed)
    splits = ", ".join(f"{k} {v['rows']:,}" for k, v in summary.items() if isinstance(v, dict))
    _done(f"featurize: {summary['n_features']} features; rows {splits} → {P['features'] / 'features.parquet'}")


@app.command()
def train(params: ParamsOpt = None) -> None:
    """Fit the calibrated conversion model and its baselines."""
    from pipeline import train as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    features = _need(P["features"] / "features.parquet", "featurize")
    metrics = stage.run(features, P["models"], P["reports"], prm.train, profile.category_shares)
    auc = metrics.get("validation_roc_auc")
    _done(f"train: {metrics.get('model_kind')} on {metrics.get('n_train', 0):,} rows, "
          f"{metrics.get('best_iteration', 0)} trees" + (f", validation AUC {auc:.4f}" if auc is not None else "")
          + f" → {P['models']}")


@app.command()
def package(params: ParamsOpt = None) -> None:
    """Bundle the model with the gates and decision policy, log it to MLflow and register a version."""
    from pipeline import package as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    _need(P["features"] / "features.parquet", "featurize")
    configs = {"ingest": prm.ingest, "train": prm.train, "featurize": prm.featurize, "score": prm.score}
    if profile.name == "demo":
        configs["demo"] = prm.demo
    info = stage.run(P["features"] / "features.parquet", P["models"], P["package"], configs, source=profile.name,
              experiment=prm.train.experiment, registered_model=prm.train.registered_model,
              tags={"profile": profile.name, "input": prm.ingest.input, "driver": "dvc"})
    registered = f", {info['model_version']} as @{info['alias']}" if info.get("alias") else ""
    _done(f"package: run {info.get('run_id')}{registered} → {P['package'] / 'model_info.json'}")


@app.command()
def evaluate(params: ParamsOpt = None, as_json: JsonOpt = False) -> None:
    """Held-out metrics (and the oracle ceiling on demo data)."""
    from pipeline import evaluate as stage

    prm, profile = _stage(params)
    P = _paths(prm)
    features = _need(P["features"] / "features.parquet", "featurize")
    with _work(as_json):
        metrics = stage.run(features, P["models"], P["package"], P["reports"], prm.evaluate,
                            prm.featurize.horizon_days, P["truth"], P["raw"], prm.train, profile.category_shares)
        _warn(metrics)
    cv = f", {prm.evaluate.cv_folds}-fold CV AUC {metrics['cv_roc_auc']:.4f}" if "cv_roc_auc" in metrics else ""
    _done(f"evaluate: held-out AUC {metrics['roc_auc']:.4f}, ECE {metrics['ece']:.4f} on {metrics['n_test']:,} rows"
          f"{cv} → {P['reports'] / 'metrics.json'}",
          {**_pick(metrics, "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "pr_auc", "brier", "ece", "n_test",
                   "n_train", "cv_roc_auc", "cv_roc_auc_std", "oracle_roc_auc", "oracle_gap", "beats_baselines",
                   "baseline_logistic_roc_auc", "baseline_points_rule_roc_auc", "warnings"),
           "paths": {"metrics": str(P["reports"] / "metrics.json"), "plots": str(P["reports"] / "plots")}}, as_json)


@app.command()
def score(
    params: ParamsOpt = None,
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
    as_json: JsonOpt = False,
) -> None:
    """Gate, score, decide, rank and hand over the open leads; write sql_leads, CRM files and rep queues.

    Without --input: the pipeline's feature table (the DVC stage). With --input: a fresh export, validated and
    featurized as of its date and scored with the registered champion, without training (the weekly job).
    """
    import dataclasses

    from pipeline import score as stage
    from pipeline.secrets import hide_password
    from pipeline.sources.exports import load_profile
    from pipeline.sources.readers import InputFileError

    prm, stage_profile = _stage(params)
    P = _paths(prm)
    history = P["reports"] / "score_history"
    p = prm.score if model is None else dataclasses.replace(prm.score, model=model)
    scored = (out or P["scored"]) if input is not None else P["scored"]
    _state["database"] = database_url or f"sqlite:///{scored / 'leadscore.db'}"
    with _work(as_json):
        if input is not None:
            if not input.exists():
                raise InputFileError(f"{input}: not found (--input): give an export folder, a flat export file "
                                     "or a feature file")
            chosen = None
            if not (input.is_file() and input.suffix in (".parquet", ".csv") and profile is None
                    and stage_profile.kind != "flat" and _is_feature_file(input)):
                chosen = load_profile(profile) if profile else stage_profile
                if chosen.name == "demo":
                    chosen = None  # the demo's export is already in the contract's tables
            uri = stage.model_uri(p.model, prm.train.registered_model)
            if uri is None:
                raise typer.BadParameter("--input scores with a registered model: use --model champion (default), "
                                         "challenger or a URI", param_hint="--model")
            summary = stage.score_new_export(uri, input, scored, P["reports"], p, as_of, prm.featurize,
                                             prm.validate, database_url, history, chosen, prm.train.seed)
        else:
            features = _need(P["features"] / "features.parquet", "featurize")
            summary = stage.run(features, P["models"], P["package"], P["validated"], scored, P["reports"], p,
                                database_url, history, prm.featurize.icp, prm.train.registered_model,
                                prm.ingest.profile)
    database = hide_password(database_url) if database_url else str(scored / "leadscore.db")
    _done(f"score: {summary['n_scored']:,} rows scored, {summary['n_sql']:,} SQLs, {summary['n_assigned']:,} handed "
          f"to reps, {summary['n_call_queue']:,} queued for a call, with {summary['model_version']} → {scored}",
          {**_pick(summary, "n_scored", "n_sql", "n_assigned", "n_call_queue", "n_with_sales", "status_counts",
                   "changes", "as_of", "model_version", "scoring_run_id", "expected_value_sql"),
           "paths": {"scored": str(scored), "sql_leads": str(scored / "sql_leads.parquet"), "database": database,
                     "summary": str(P["reports"] / "score_summary.json")}}, as_json)


def _is_feature_file(path: Path) -> bool:
    """A Parquet/CSV file whose columns are a feature table's (lead_id and as_of or split), not a flat export."""
    import pandas as pd
    import pyarrow.parquet as pq

    try:  # the header only: a feature file may hold millions of rows
        cols = set(pq.read_schema(path).names if path.suffix == ".parquet" else pd.read_csv(path, nrows=0).columns)
    except Exception:  # noqa: BLE001 - unreadable: let the reader name the problem
        return False
    return "lead_id" in cols and bool({"as_of", "split"} & cols)


def _check_status(value: str | None) -> str | None:
    from models.ranking import STATUS_ORDER

    if value is not None and value not in STATUS_ORDER:
        raise typer.BadParameter(f"{value!r} is not a status; choose one of {', '.join(STATUS_ORDER)}")
    return value


# the columns `show` prints, most important first: those that fit the terminal's width are shown
SHOW_PRIORITY = ("rank", "lead_id", "status", "score", "expected_value", "assigned_rep", "tier", "p_convert",
                 "gate_budget", "gate_authority", "gate_need", "gate_timeline", "fit_score", "engagement_score")
SHOW_ORDER = ("rank", "lead_id", "status", "tier", "score", "p_convert", "expected_value", "fit_score",
              "engagement_score", "gate_budget", "gate_authority", "gate_need", "gate_timeline", "assigned_rep")


def fitting_columns(cells: dict[str, list[str]], width: int) -> list[str]:
    """The columns of `cells` (name -> shown values) that fit `width` characters, by SHOW_PRIORITY, in
    SHOW_ORDER. A rich table cell takes its text, a space either side and a border."""
    chosen, used = set(), 1
    for col in (c for c in SHOW_PRIORITY if c in cells):
        need = max([len(col), *map(len, cells[col])]) + 3
        if used + need <= width:
            chosen.add(col)
            used += need
    return [c for c in SHOW_ORDER if c in chosen]


@app.command()
def show(
    params: ParamsOpt = None,
    top: Annotated[int, typer.Option(help="rows to show")] = 15,
    status: Annotated[str | None, typer.Option(
        callback=_check_status,
        help="only this status: sql, needs_call, nurture, disqualified or with_sales")] = None,
    reasons: Annotated[bool, typer.Option("--reasons/--no-reasons", help="print each shown lead's reasons")] = True,
) -> None:
    """Print the top of the ranked SQL table, with the assigned rep and the reasons behind each score.

    The columns that fit the terminal's width are shown, most important first (env COLUMNS sets the width).
    """
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from pipeline.sources.readers import InputFileError

    prm = _load(params)
    path = Path(prm.paths.scored) / "sql_leads.parquet"
    if not path.exists():
        raise InputFileError(f"{path} not found: run `make demo` or `leadscore score` first")
    df = pd.read_parquet(path)
    if status:
        df = df[df["status"] == status]
    shown = df.head(top)

    def cell(row, c: str) -> str:
        return f"{row[c]:,.2f}" if c == "expected_value" else f"{row[c]:.3f}" if c == "p_convert" else str(row[c])

    cells = {c: [cell(row, c) for _, row in shown.iterrows()] for c in SHOW_ORDER if c in df.columns}
    console = Console()  # the terminal's width; env COLUMNS (80 when not a terminal)
    cols = fitting_columns(cells, console.width)
    hidden = [c for c in cells if c not in cols]
    table = Table(title=f"sql_leads — {int(df['is_sql'].sum()):,} SQLs of {len(df):,} scored leads "
                        f"(model {df['model_version'].iloc[0] if len(df) else '-'})",
                  caption=f"not shown (too narrow): {', '.join(hidden)}" if hidden else None)
    for c in cols:
        table.add_column(c, justify="right" if c in ("rank", "score", "p_convert", "expected_value") else "left")
    for i in range(len(shown)):
        table.add_row(*[cells[c][i] for c in cols])
    console.print(table)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print("status counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if reasons and {"reasons_for", "reasons_against"} <= set(df.columns):
        for _, row in shown.iterrows():
            if pd.isna(row["reasons_for"]) and pd.isna(row["reasons_against"]):
                continue  # reasons are computed only for leads handed over or queued for a call
            console.print(f"[bold]#{row['rank']} {row['lead_id']}[/bold] ({row['status']}, {row['status_reason']})",
                          highlight=False)
            for label, col in (("for", "reasons_for"), ("against", "reasons_against")):
                if not pd.isna(row[col]) and str(row[col]):
                    console.print(f"  {label}: {row[col]}", highlight=False)


@app.command()
def report(
    params: ParamsOpt = None,
    fail_on_drift: Annotated[bool | None, typer.Option(
        "--fail-on-drift/--no-fail-on-drift",
        help="exit 3 when drift is flagged (default: params report.fail_on_drift)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the monitoring report: model quality, SQL funnel, criteria backtest, drift (HTML + metrics)."""
    import dataclasses

    from pipeline import report as stage
    from pipeline.io import read_json

    prm, _ = _stage(params)
    P = _paths(prm)
    p = prm.report if fail_on_drift is None else dataclasses.replace(prm.report, fail_on_drift=fail_on_drift)
    features = _need(P["features"] / "features.parquet", "featurize")
    _need(P["scored"] / "sql_leads.parquet", "score")
    drift = None
    with _work(as_json):
        try:
            summary = stage.run(features, P["models"], P["package"], P["validated"], P["scored"], P["reports"], p,
                                prm.score, prm.featurize.horizon_days, prm.evaluate.top_fraction)
        except stage.DriftDetected as exc:  # everything was written: sum it up, then exit EXIT_DRIFT (ERRORS)
            drift = exc
            summary = {**read_json(P["reports"] / stage.METRICS_FILE), "report": str(P["reports"] / stage.REPORT_FILE)}
    code = EXIT_DRIFT if drift else EXIT_OK
    _done(f"report: {summary.get('drift_n_flagged', 0)} of {summary.get('drift_n_features', 0)} features drifted, "
          f"score PSI {_f(summary.get('score_psi'), '.3f')}, backtest precision "
          f"{_f(summary.get('backtest_precision'), '.1%')} recall {_f(summary.get('backtest_recall'), '.1%')} "
          f"→ {summary['report']}",
          {**_pick(summary, "drift_n_features", "drift_n_flagged", "drift_n_warn", "score_psi", "score_drift",
                   "backtest_precision", "backtest_recall", "backtest_n_sql", "recommended_threshold",
                   "current_threshold"), "drift": bool(drift),
           **({"error": str(drift)} if drift else {}),
           "paths": {"report": summary["report"], "monitoring": str(P["reports"] / stage.METRICS_FILE),
                     "drift": str(P["reports"] / "drift.csv")}}, as_json, code)
    if drift is not None:
        raise drift


@app.command("run")
def run_export(
    profile: Annotated[str, typer.Option(help="profile name (pipeline/profiles/NAME.yaml) or a profile YAML path")],
    input: Annotated[Path, typer.Option("--input", help="the export: a folder (four tables) or one file (flat)")],
    workdir: Annotated[Path, typer.Option(help="folder for metrics.json, sql_leads.*, quarantine/, model")],
    params: ParamsOpt = None,
    n_jobs: Annotated[int | None, typer.Option(help="LightGBM threads (default: params train.n_jobs)")] = None,
    track: Annotated[bool, typer.Option(help="log the run to MLflow (env MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db)")] = True,
    cv_folds: Annotated[int, typer.Option(help="k-fold cross-validated AUC of the same fit (0: none)")] = 5,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline's stages on one export through a profile in a work folder, without DVC."""
    from pipeline import run as driver

    prm = _load(params)
    with _work(as_json):
        metrics = driver.run(driver.load_profile(profile), input, workdir, prm, n_jobs=n_jobs, cv_folds=cv_folds,
                             track=track)
        _warn(metrics)
    cv = f", {cv_folds}-fold CV AUC {metrics['cv_roc_auc']:.4f}" if "cv_roc_auc" in metrics else ""
    _done(f"run {metrics['profile']}: held-out AUC {metrics['roc_auc']:.4f}, ECE {_f(metrics.get('ece'))}{cv}; "
          f"{metrics['n_scored']:,} rows scored, {metrics['n_sql']:,} SQLs in {metrics['seconds']:.0f}s "
          f"→ {workdir / 'metrics.json'}",
          {**_pick(metrics, "profile", "roc_auc", "pr_auc", "ece", "cv_roc_auc", "cv_roc_auc_std", "n_train",
                   "n_test", "n_features", "n_scored", "n_sql", "model_kind", "seconds", "warnings",
                   "leakage_warnings", "mlflow"),
           "paths": {"metrics": str(workdir / "metrics.json"), **metrics.get("outputs", {})}}, as_json)


@app.command()
def contract() -> None:
    """Print the input data contract (tables, columns, types, checks, label) as Markdown."""
    from pipeline.sources.profiles import contract_markdown

    typer.echo(contract_markdown(), nl=False)


@app.command()
def compare(
    a: Annotated[str, typer.Argument(help="run id, runs:/<id>/model, models:/<name>/<version> or models:/<name>@<alias>")],
    b: Annotated[str, typer.Argument(help="the other model, same forms")],
    params: ParamsOpt = None,
    n_boot: Annotated[int | None, typer.Option(help="bootstrap resamples (default: params promote.n_bootstrap)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the comparison as JSON here")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare two model versions on the same held-out rows: metrics with CIs, paired bootstrap AUC test."""
    from pipeline import compare as stage
    from pipeline.io import write_json

    prm = _load(params)
    features = _need(Path(prm.paths.features) / "features.parquet", "featurize")
    with _work(as_json):
        result = stage.compare_versions(a, b, features, n_boot or prm.promote.n_bootstrap, prm.evaluate.capacity_k)
        typer.echo(stage.render(result))
        if out:
            write_json(result.as_dict(), out)
    t = result.paired_auc
    _done(f"compare: AUC {t['auc_a']:.4f} ({a}) vs {t['auc_b']:.4f} ({b}), difference {t['auc_diff']:+.4f} "
          f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], p = {t['p_value']:.3g} on {result.n_rows:,} rows"
          + (f" → {out}" if out else ""),
          {**result.as_dict(), "paths": {"out": str(out)} if out else {}}, as_json)


@app.command()
def promote(
    params: ParamsOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="apply the rule, move nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move the champion alias to the challenger if it passes params `promote:`; else refuse, naming why."""
    from pipeline import promote as stage

    prm = _load(params)
    features = _need(Path(prm.paths.features) / "features.parquet", "featurize")
    with _work(as_json):
        decision = stage.promote(prm.train.registered_model, features, prm.promote, dry_run=dry_run)
        typer.echo(decision.message())
    code = EXIT_PROMOTION_REFUSED if decision.failed else EXIT_OK
    verdict = ("promoted" if decision.promoted else "refused" if decision.failed else "would promote (dry run)")
    _done(f"promote: {verdict} version {decision.challenger_version} over champion {decision.champion_version}"
          + (f" (failed {', '.join(c.name for c in decision.failed)})" if decision.failed else ""),
          {"decision": "promoted" if decision.promoted else "refused" if decision.failed else "dry_run",
           "promoted": decision.promoted, "dry_run": decision.dry_run,
           "champion_version": decision.champion_version, "challenger_version": decision.challenger_version,
           "conditions": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in decision.conditions]},
          as_json, code)
    if decision.failed:
        raise typer.Exit(code=EXIT_PROMOTION_REFUSED)


@app.command("report-screenshot")
def report_screenshot(
    params: ParamsOpt = None,
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("notebooks/report.png"),
    height: Annotated[int, typer.Option(help="browser window height in pixels (the part of the page shot)")] = 2300,
) -> None:
    """Open the monitoring report in headless Chromium and save a screenshot (the README picture)."""
    from pipeline import report as stage

    prm = _load(params)
    path = stage.screenshot(Path(prm.paths.reports) / stage.REPORT_FILE, out, height=height)
    typer.echo(f"{path} ({path.stat().st_size / 1024:.0f} KB)")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":
    sys.exit(app())
