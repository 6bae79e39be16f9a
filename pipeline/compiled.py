"""The trees of a model about to score many rows, compiled to machine code (lleaves; `models.compiled` holds the
pure wrapper): compiled once per model and machine and cached, so that every later scoring loads them."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from models.config import PREDICTORS
from pipeline.artifacts import sha256_file
from pipeline.io import atomic_path, usable_cpus, write_atomic

# The trees of a model about to score many rows are compiled to machine code by lleaves (`models.compiled`): the
# same probabilities (tested to 1e-12), a faster predict (820k rows of the 1M benchmark model's 145 trees, 2
# threads, 50k-row chunks: 1.2-1.6 s against 2.9-3.3 s with LightGBM's own). Compiling takes 1.6-1.8 s for those
# trees, 10 s for the demo's 659, so it is done where it pays: once per model and machine, the object kept in a
# cache folder (`compile_cache_dir`) under a key of the trees, the compiler's versions and this processor; every
# later scoring of that model loads it in about 10 ms. A compiled object is code like a model file: the cache
# folder is created for its owner only (0700), holds only what this code compiled, and an object is loaded only
# when it matches the SHA-256 written beside it.
# `auto` compiles a model not in the cache when it scores this many rows: about where the first scoring repays the
# compile (820k rows of the 145-tree 1M model: 1.7 s saved after a 1.7 s compile; 1M rows of the demo's 659 trees:
# 15 s saved after 10 s), and every later scoring of the model gains all of it
COMPILE_MIN_ROWS = 500_000
CACHE_ENV = "LEADSCORE_CACHE_DIR"


def compile_cache_dir() -> Path:
    """Where compiled trees are kept: $LEADSCORE_CACHE_DIR, else $XDG_CACHE_HOME/leadscore, else
    ~/.cache/leadscore; its ``compiled`` folder."""
    root = os.environ.get(CACHE_ENV) or (Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "leadscore")
    return Path(root) / "compiled"


def compiled_trees(model: Any, n_rows: int, predictor: str = "auto", cache_dir: Path | None = None,
                   n_jobs: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(the model to score `n_rows` rows with, what was done): `model` with its trees compiled
    (`models.compiled.with_compiled_trees`) or `model` itself.

    `predictor` (score.predictor): ``lightgbm`` never compiles; ``compiled`` always does (an error when lleaves is
    not installed); ``auto`` uses the cached object of these trees, or compiles them when `n_rows` >=
    `COMPILE_MIN_ROWS`, and falls back to LightGBM's own predict when lleaves is missing or compiling fails (the
    reason is returned under ``fallback``). A model without LightGBM trees (`booster_`) is returned as it is.
    `n_jobs`: predict threads (default: the classifier's n_jobs, else the processors this process may use)."""
    if predictor not in PREDICTORS:
        raise ValueError(f"score.predictor must be one of {list(PREDICTORS)}, not {predictor!r}")
    if predictor == "lightgbm" or not hasattr(getattr(model, "booster_", None), "booster_"):
        return model, {"predictor": "lightgbm"}
    try:
        import lleaves  # noqa: F401
    except ImportError as exc:
        if predictor == "compiled":
            raise RuntimeError("score.predictor 'compiled' needs lleaves (pip install lleaves): "
                               f"{exc}") from None
        return model, {"predictor": "lightgbm", "fallback": "lleaves is not installed"}
    from models.compiled import trees_text, with_compiled_trees

    text = trees_text(model)
    target = Path(cache_dir or compile_cache_dir()) / f"trees-{_compile_key(text)}.o"
    if predictor == "auto" and not target.exists() and n_rows < COMPILE_MIN_ROWS:
        return model, {"predictor": "lightgbm"}
    started = time.perf_counter()
    try:
        compiled, cached = _compile(text, target)
    except Exception as exc:  # noqa: BLE001 - LLVM or a cache file gone bad: LightGBM predicts the same
        if predictor == "compiled":
            raise
        return model, {"predictor": "lightgbm", "fallback": f"compiling the trees failed: {type(exc).__name__}: {exc}"}
    threads = n_jobs or _threads(model)
    return with_compiled_trees(model, compiled, threads), {
        "predictor": "compiled", "compile_cached": cached, "compile_s": round(time.perf_counter() - started, 2),
        "threads": threads}


def _compile_key(text: str) -> str:
    """The cache key of compiled trees: the model text, lleaves' and LLVM's versions, this processor and its
    features (an object compiled for one processor may not run on another)."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    parts = [text, version("lleaves"), version("llvmlite"), llvm.get_host_cpu_name(),
             llvm.get_host_cpu_features().flatten()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _compile(text: str, target: Path) -> tuple[Any, bool]:
    """(an `lleaves.Model` of the model text, raw scores; whether it was loaded from the cache): loaded from
    `target` when its SHA-256 matches the one recorded beside it (LLVM aborts the process on a damaged object, it
    does not raise), else compiled and written there atomically, its hash after it."""
    import lleaves

    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = target.with_name(target.name + ".sha256")
    fd, source = tempfile.mkstemp(prefix=".trees-", suffix=".txt", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        compiled = lleaves.Model(model_file=source)
        if target.exists() and digest.exists() and digest.read_text().strip() == sha256_file(target):
            compiled.compile(cache=str(target), raw_score=True)
            return compiled, True
        with atomic_path(target) as tmp:
            tmp.unlink()  # lleaves writes its object only where no file is
            compiled.compile(cache=str(tmp), raw_score=True)
            written = sha256_file(tmp)
        write_atomic(digest, lambda path: Path(path).write_text(written + "\n"))
        return compiled, False
    finally:
        Path(source).unlink(missing_ok=True)


def _threads(model: Any) -> int:
    n_jobs = (model.booster_.get_params() or {}).get("n_jobs")
    return int(n_jobs) if n_jobs and int(n_jobs) > 0 else usable_cpus()
