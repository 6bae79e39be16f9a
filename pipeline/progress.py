"""Human-facing progress output for the stages (stderr, so stdout stays clean for data).

Verbosity is set once by the CLI (`--quiet`, `--verbose`): quiet keeps only errors and each command's final
summary line; verbose also shows tracebacks and third-party warnings. Long loops report through `progress()`: a
rich bar with rate and ETA on a terminal, a plain line every `LEADSCORE_PROGRESS_EVERY` seconds (10) otherwise,
so CI and scheduler logs show it too. Third-party warnings and log records (MLflow, great-expectations, LightGBM,
python `warnings`) go to a log file (`capture_third_party`) unless verbose.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

QUIET, NORMAL, VERBOSE = 0, 1, 2
PROGRESS_EVERY_ENV = "LEADSCORE_PROGRESS_EVERY"
PLAIN_EVERY_S = 10.0  # seconds between two plain progress lines (not a terminal)
SHOW_AFTER_S = 2.0  # a loop shorter than this prints no progress line at all
LOG_FILE_ENV = "LEADSCORE_LOG_FILE"
DEFAULT_LOG_FILE = Path(".leadscore") / "leadscore.log"  # in the working folder
# Loggers of the libraries whose warnings and info lines are not the user's business unless --verbose.
NOISY_LOGGERS = ("mlflow", "alembic", "great_expectations", "lightgbm", "optuna", "py.warnings", "urllib3",
                 "matplotlib", "numexpr")

Update = Callable[..., None]  # update(done, total=None): `done` of `total` units so far

_console = Console(stderr=True, highlight=False)
_level = NORMAL


def set_verbosity(level: int) -> None:
    global _level
    _level = level


def verbosity() -> int:
    return _level


def log(message: str) -> None:
    """One progress line (not when quiet); passwords of URLs in it are hidden (`pipeline.secrets.redact`)."""
    if _level > QUIET:
        _emit(message)


def summary(message: str) -> None:
    """A command's final one-line summary: printed even when quiet."""
    _emit(message)


def _emit(message: str) -> None:
    from pipeline.secrets import redact

    # soft_wrap: one line per message, whatever the width (logs and pipes are not 80 columns)
    _console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {redact(message)}", soft_wrap=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    start = time.perf_counter()
    log(f"[bold]{name}[/bold] ...")
    try:
        yield
    except Exception:
        log(f"[red]{name} failed after {time.perf_counter() - start:.1f}s[/red]")
        raise
    log(f"{name} done in {time.perf_counter() - start:.1f}s")


def console() -> Console:
    return Console(file=sys.stdout)


# ------------------------------------------------------------------------------------------------ progress
def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class _Plain:
    """Progress as a plain line every `every` seconds (logs, CI, a pipe), with rate and ETA."""

    def __init__(self, description: str, total: int | None, unit: str, every: float):
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.start = self.last = time.perf_counter()
        self.done = 0
        self.printed = False

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total or done < self.done:  # a new pass (e.g. the refit)
            self.total, self.start, self.last = total if total is not None else self.total, time.perf_counter(), \
                time.perf_counter()
        self.done = done
        now = time.perf_counter()
        if now - self.start >= SHOW_AFTER_S and now - self.last >= self.every:
            self.last = now
            self.printed = True
            log(self.line(now))

    def line(self, now: float, final: bool = False) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        of = f"/{self.total:,}" if self.total else ""
        text = f"{self.description}: {self.done:,}{of} {self.unit}"
        if self.total and not final:
            text += f" ({self.done / self.total:.0%})"
        text += f", {rate:,.1f} {self.unit}/s, {_clock(elapsed)} elapsed"
        if self.total and not final and rate > 0:
            text += f", ETA {_clock((self.total - self.done) / rate)}"
        return text

    def close(self) -> None:
        now = time.perf_counter()
        if self.printed or self.done and now - self.start >= SHOW_AFTER_S:  # nothing counted: nothing to say
            log(self.line(now, final=True))


class _Bar(_Plain):
    """Progress as a rich bar on a terminal: done / total, rate, elapsed and ETA; one summary line at the end."""

    def __init__(self, description: str, total: int | None, unit: str, every: float):
        super().__init__(description, total, unit, every)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn(unit), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=_console, transient=True)
        self.task = self.bar.add_task(description, total=total, rate="")
        self.bar.start()

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total or done < self.done:
            self.total, self.start = total if total is not None else self.total, time.perf_counter()
            self.bar.reset(self.task, total=self.total)
        self.done = done
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=done, rate=f"{done / elapsed:,.1f}/s")

    def close(self) -> None:
        self.bar.stop()
        super().close()


class _Off:
    def update(self, done: int, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


@contextmanager
def progress(description: str, total: int | None = None, unit: str = "rows") -> Iterator[Update]:
    """Report a long loop: yields ``update(done, total=None)`` for the loop (or a library's callback such as
    ``on_round``) to call. A bar with rate and ETA on a terminal; else a plain line every few seconds and one at
    the end (only for loops over ~2 s); nothing when quiet. A new `total` (or `done` going back) starts a new
    pass, e.g. the refit after early stopping."""
    try:
        every = float(os.environ.get(PROGRESS_EVERY_ENV, PLAIN_EVERY_S))
    except ValueError:
        every = PLAIN_EVERY_S
    if _level == QUIET:
        shown: _Plain | _Off = _Off()
    elif _console.is_terminal:
        shown = _Bar(description, total, unit, every)
    else:
        shown = _Plain(description, total, unit, every)
    try:
        yield shown.update
    finally:
        shown.close()


# -------------------------------------------------------------------------------------- third-party noise
class _FileHandler(logging.Handler):
    """Appends each record to the log file, creating its folder on first use (nothing is created when nothing is
    logged); a file that cannot be written is skipped silently: noise must never fail a run."""

    def __init__(self, path: Path):
        super().__init__(logging.DEBUG)
        self.path = path
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - see the class docstring
            pass


def log_file() -> Path:
    """Where third-party warnings go: env LEADSCORE_LOG_FILE, else `.leadscore/leadscore.log` in the working
    folder."""
    return Path(os.environ.get(LOG_FILE_ENV) or DEFAULT_LOG_FILE)


@contextmanager
def third_party_to_log_file(verbose: bool = False) -> Iterator[Path | None]:
    """While open: MLflow's, great-expectations', LightGBM's and python's warnings and log records go to
    `log_file()` instead of the terminal, and MLflow's artifact download bars are off. With `verbose` they stay on
    the terminal. On exit the loggers are as they were (the CLI opens it once per command)."""
    if verbose:
        yield None
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # else MLflow adds its own stderr handler on import
    path = log_file()
    handler = _FileHandler(path)
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in NOISY_LOGGERS}
    logging.captureWarnings(True)  # warnings.warn → logger "py.warnings"
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        # a library's own terminal handler (MLflow configured before us) is replaced by the file
        logger.handlers = [h for h in logger.handlers if not isinstance(h, logging.StreamHandler)] + [handler]
        logger.propagate = False
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
