"""The built wheel works outside the checkout: installed in a clean venv, `leadscore run` scores a fixture export
in an empty folder, on the packaged default params and profiles.

Offline: the wheel is built without build isolation (setuptools from the dev extra) from a copy of the sources
(no build/ or egg-info in the checkout), installed with --no-deps --no-index, and the new venv reaches the
dependencies through a .pth line naming the dev venv's site-packages. A path line in a .pth only extends sys.path:
the editable install's finder in that folder is not run, so `pipeline` can come from the wheel alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from models.decision import OUTPUT_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "features", "models")
FIXTURE = ROOT / "tests" / "fixtures" / "salesforce"


def _sh(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _project_files() -> set[str]:
    """Every file of the three packages (code and data) as the wheel names it."""
    return {p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", tmp / "dist", "./src", cwd=tmp)
    (path,) = (tmp / "dist").glob("leadscore-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A clean venv with the wheel installed; the dependencies importable from the dev venv, not the checkout."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", root, cwd=root.parent)
    python = root / "bin" / "python"
    _sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel,
        cwd=root.parent)
    site = Path(_sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=root.parent).stdout.strip())
    (site / "_leadscore_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def _env(venv: Path, store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI")}
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true",
            "GX_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}


@pytest.mark.slow
def test_the_wheel_carries_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_project_files() - names)
    assert not missing, f"not in the wheel (pyproject [tool.setuptools] packages / package-data): {missing}"
    assert "pipeline/defaults/params.yaml" in names and "pipeline/profiles/salesforce.yaml" in names


@pytest.mark.slow
def test_installed_wheel_runs_an_export_in_an_empty_folder(venv, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    export = shutil.copytree(FIXTURE, tmp_path / "export")
    env = _env(venv, tmp_path)

    # the installed wheel, not the checkout, and no params.yaml within reach
    where = _sh(venv / "bin" / "python", "-c",
                "import pipeline, features, models, pipeline.params as p; "
                "print(pipeline.__file__, features.__file__, models.__file__, p.PACKAGED_PARAMS, sep='\\n')",
                cwd=work, env=env).stdout.split()
    for path in map(Path, where):
        assert path.is_relative_to(venv) and not path.is_relative_to(ROOT), path
    assert not (work / "params.yaml").exists()

    helped = _sh(venv / "bin" / "leadscore", "--help", cwd=work, env=env)
    assert "run" in helped.stdout and "score" in helped.stdout

    run = _sh(venv / "bin" / "leadscore", "run", "--profile", "salesforce", "--input", export, "--workdir", "out",
              "--n-jobs", "1", "--cv-folds", "0", cwd=work, env=env, timeout=600)
    log = " ".join((run.stdout + run.stderr).split())
    assert "using the packaged defaults" in log

    # relative paths of the defaults resolve in the working folder
    table = pd.read_parquet(work / "out" / "data" / "05_scored" / "sql_leads.parquet")
    gates = {f"gate_{name}" for name in ("budget", "authority", "need", "timeline")}
    assert (set(OUTPUT_COLUMNS) - {"gate_<name>"}) | gates <= set(table.columns)
    assert len(table) > 0 and table["lead_id"].is_unique and table["p_convert"].between(0, 1).all()
    assert (work / "out" / "metrics.json").exists() and (tmp_path / "mlflow.db").exists()
    assert not (work / "data").exists() and not (work / "params.yaml").exists()  # all below --workdir
