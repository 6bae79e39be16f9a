"""Shared fixtures: quiet, offline tracking stores in temporary folders."""

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """Point MLflow at a fresh sqlite store (and artifact folder) inside the test's temporary folder."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact root (./mlartifacts) lands here too
    return uri
