"""The fitted model on disk: the one save and load, used by every stage and driver.

A model file is code: unpickling it runs whatever it says. So `save_model` records the SHA-256 of every file it
writes (``artefact_sha256`` in `train_metrics.json`, copied into `model_info.json` by the package stage) and every
load checks the file against that record *before* unpickling it; a file without a record or with another hash
is refused (:class:`ModelIntegrityError`). See docs/model.md, "Models are trusted code".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import joblib

from features.schema import SNAPSHOTS
from models.config import PREDICTORS
from pipeline.io import atomic_path, read_json, write_atomic, write_json

MODEL_FILE = "model.joblib"
BASELINES_FILE = "baselines.joblib"
TRAIN_METRICS = "train_metrics.json"
MODEL_INFO = "model_info.json"  # in the package folder: MLflow run, registered version, model URI
HASHES = "artefact_sha256"  # key in train_metrics.json / model_info.json: file name -> SHA-256 (hex)
# key in the models folder's train_metrics.json: {"started": .., "finished": ..} (epoch seconds) of the train stage,
# so the MLflow run the package stage logs spans the training (its duration is the work's, in one process or two)
TRAINING_TIME = "training_time"


class ModelIntegrityError(ValueError):
    """A model file whose SHA-256 does not match its record (or has none): refused before it is unpickled."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None, record: str) -> None:
    """Refuse `path` unless its SHA-256 is `expected` (the hash `record` holds for it). Reads, never unpickles."""
    if not expected:
        raise ModelIntegrityError(
            f"{path}: no SHA-256 recorded for this model file in {record}; refusing to load it (a model file is "
            "code). Retrain (`dvc repro train`) or re-package it so that its hash is recorded")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"{path}: SHA-256 {actual[:16]}... does not match the hash recorded in {record} ({expected[:16]}...); "
            "refusing to load it: the file was changed or replaced after it was recorded (a model file is code)")


def features_variant(features_path: Path) -> str:
    """The pipeline variant a feature table was built for (`snapshots.json` beside it; snapshots without one)."""
    path = Path(features_path).parent / "snapshots.json"
    return read_json(path).get("variant", SNAPSHOTS) if path.exists() else SNAPSHOTS


def save_model(models_dir: Path, model: Any, baselines: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The fitted model, its baselines and what training chose (with the SHA-256 of both files), each written
    atomically. `metrics` itself is not changed."""
    models_dir = Path(models_dir)
    write_atomic(models_dir / MODEL_FILE, lambda tmp: joblib.dump(model, tmp))
    write_atomic(models_dir / BASELINES_FILE, lambda tmp: joblib.dump(baselines, tmp))
    hashes = {name: sha256_file(models_dir / name) for name in (MODEL_FILE, BASELINES_FILE)}
    write_json({**metrics, HASHES: hashes}, models_dir / TRAIN_METRICS)


def _check_recorded(models_dir: Path, name: str, package_dir: Path | None = None) -> Path:
    """`models_dir/name` after its hash was checked against train_metrics.json (and model_info.json if it records one)."""
    path = Path(models_dir) / name
    check_sha256(path, load_train_metrics(models_dir).get(HASHES, {}).get(name), str(Path(models_dir) / TRAIN_METRICS))
    info_path = Path(package_dir) / MODEL_INFO if package_dir is not None else None
    if info_path is not None and info_path.exists():
        packaged = read_json(info_path).get(HASHES, {}).get(name)
        if packaged:  # the package stage recorded the model it bundled: the info must describe this very file
            check_sha256(path, packaged, str(info_path))
    return path


def load_model(models_dir: Path, package_dir: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """(fitted model, model info): the info of the packaged version when `package_dir` holds one, else a local
    description (no MLflow run)."""
    models_dir = Path(models_dir)
    path = models_dir / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model; run the train stage first (`dvc repro` or `leadscore run`)")
    info_path = Path(package_dir) / MODEL_INFO if package_dir is not None else None
    info = read_json(info_path) if info_path is not None and info_path.exists() else \
        {"run_id": "", "model_version": f"local:{models_dir}", "model_uri": str(path)}
    return joblib.load(_check_recorded(models_dir, MODEL_FILE, package_dir)), info


def load_baselines(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / BASELINES_FILE
    return joblib.load(_check_recorded(models_dir, BASELINES_FILE)) if path.exists() else {}


def load_train_metrics(models_dir: Path) -> dict[str, Any]:
    path = Path(models_dir) / TRAIN_METRICS
    return read_json(path) if path.exists() else {}


def write_model_info(package_dir: Path, info: dict[str, Any]) -> Path:
    return write_json(info, Path(package_dir) / MODEL_INFO)


# ------------------------------------------------------------------------------------------ compiled trees
# The trees of a model about to score many rows are compiled to machine code by lleaves (`models.compiled`): the
# same probabilities (tested to 1e-12), predict about twice as fast (820k rows of the 532-tree 1M model: 1.0 s
# against 2.6-3.3 s on 2 threads). Compiling takes 1-2 s per 500 trees, so it is done where it pays: once per model
# and machine, the object kept in a cache folder (`compile_cache_dir`) under a key of the trees, the compiler's
# versions and this processor; then every scoring of that model loads it in milliseconds. A compiled object is code
# like a model file: the cache folder is created for its owner only (0700) and holds only what this code compiled.
COMPILE_MIN_ROWS = 500_000  # `auto` compiles a model not in the cache when it scores this many rows (it pays at once)
CACHE_ENV = "LEADSCORE_CACHE_DIR"


def compile_cache_dir() -> Path:
    """Where compiled trees are kept: $LEADSCORE_CACHE_DIR, else $XDG_CACHE_HOME/leadscore, else
    ~/.cache/leadscore; its ``compiled`` folder."""
    import os

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
    import time

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
    import os
    import tempfile

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
    import os

    n_jobs = (model.booster_.get_params() or {}).get("n_jobs")
    if n_jobs and int(n_jobs) > 0:
        return int(n_jobs)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        return os.cpu_count() or 1
