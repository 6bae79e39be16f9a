"""Both notebooks execute top to bottom (nbclient, the venv's kernel) on a small generated CRM in tmp."""

import ast
import dataclasses
import os
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from _stages import run_stages
from conftest import isolated_store

from features.build import feature_columns
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_crm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebooks")
    mp = isolated_store(tmp)
    base = load_params(ROOT / "params.yaml")
    prm = dataclasses.replace(
        base, demo=dataclasses.replace(base.demo, n_leads=2000, seed=5),
        train=dataclasses.replace(base.train, n_jobs=1, n_estimators=100, experiment="test-notebooks",
                                  registered_model="test-notebooks"),
    )
    P = run_stages(tmp, prm, upto="package")["paths"]
    # The kernel inherits this environment: the data root, the project (params.yaml), the store and a PATH
    # whose first `python` is this venv's (the kernelspec runs plain `python`).
    mp.setenv("LEADSCORE_ROOT", str(tmp))
    mp.setenv("LEADSCORE_PROJECT", str(ROOT))
    mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    mp.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows the figures
    yield {"tmp": tmp, "paths": P}
    mp.undo()


def _execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_notebooks_carry_no_outputs_and_import_the_package():
    for name in ("01_exploration.ipynb", "02_model_comparison.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name
        assert "from models." in code and "from pipeline." in code
        assert "def " not in code  # no logic copied into the notebook: it calls the package


def test_exploration_notebook_runs_on_the_small_crm(small_crm):
    nb = _execute("01_exploration.ipynb", small_crm["tmp"])
    text = _text(nb)
    assert f"data under {small_crm['tmp']}" in text
    features = pd.read_parquet(small_crm["paths"]["features"] / "features.parquet")
    assert "leads created" in text and "activities" in text
    flags = ast.literal_eval(re.search(r"\{'(?:ok|warn|drift)'[^}]*\}", text).group(0))
    assert sum(flags.values()) == len(feature_columns(features))  # every feature got a drift verdict
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))


def test_model_comparison_notebook_runs_on_the_small_crm(small_crm):
    nb = _execute("02_model_comparison.ipynb", small_crm["tmp"])
    text = _text(nb)
    features = pd.read_parquet(small_crm["paths"]["features"] / "features.parquet")
    test = features[features["split"] == "test"]
    assert "current model: test-notebooks/1" in text
    assert "engagement only" in text
    assert f"'n_leads': {len(test)}, 'n_won': {int(test['label'].sum())}" in text
    assert "test_roc_auc" in text  # the registered versions, read from the test's MLflow store
