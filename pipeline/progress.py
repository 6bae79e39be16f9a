"""Human-facing progress output for the stages (stderr, so stdout stays clean for data)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

_console = Console(stderr=True, highlight=False)


def log(message: str) -> None:
    """One progress line; passwords of URLs in it are hidden (`pipeline.secrets.redact`)."""
    from pipeline.secrets import redact

    _console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {redact(message)}")


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
