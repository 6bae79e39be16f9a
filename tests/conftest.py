"""Shared fixtures: quiet, offline tracking stores in temporary folders."""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# compiled trees (pipeline.compiled.compiled_trees) are cached in a folder of this test session, not the user's
os.environ["LEADSCORE_CACHE_DIR"] = tempfile.mkdtemp(prefix="leadscore-test-cache-")


def isolated_store(folder: Path) -> pytest.MonkeyPatch:
    """Point MLflow at a fresh sqlite store in `folder` and work there (the default artifact root lands there too).

    For module-scoped fixtures, which cannot use `monkeypatch`: the caller calls `.undo()` when done.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    mp.chdir(folder)
    return mp
