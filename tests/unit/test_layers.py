"""The layer contract (pyproject.toml `[tool.importlinter]`, `make lint`): features and models never import pipeline,
features never imports models, and the stage modules are independent of each other.

Checked with import-linter's `lint-imports` on the project, and on a temporary copy of the package tree with one
violating import added, so a contract that could never fail (a typo in a module name, a wrong root package) fails
here instead of passing silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "features", "models")


def _lint_imports() -> str:
    exe = Path(sys.executable).parent / "lint-imports"
    if exe.exists():
        return str(exe)
    found = shutil.which("lint-imports")
    assert found, "lint-imports not found: import-linter belongs to the dev extra (pip install -e '.[dev]')"
    return found


def run_lint(cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports` in `cwd` (its pyproject.toml, its packages first on the path); no cache folder left behind."""
    return subprocess.run([_lint_imports(), "--no-cache", "--config", str(cwd / "pyproject.toml")], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_project_keeps_the_layer_contract():
    result = run_lint(ROOT)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"the layer contract is broken:\n{out}"
    for name in ("features and models never import pipeline", "the stage modules are independent of each other",
                 "features never imports models"):
        assert f"{name} KEPT" in out, out  # each contract is configured and ran
    assert "3 kept, 0 broken" in out


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    """A pristine copy of the package tree and pyproject.toml (no caches)."""
    root = tmp_path_factory.mktemp("layers") / "clean"
    root.mkdir()
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_copy_keeps_the_contract(tree_copy):
    """The copy passes unchanged: a failure below is the added import, not the copying."""
    result = run_lint(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("features/engagement.py", "import pipeline", "features and models never import pipeline"),
    ("models/gates.py", "from pipeline.io import read_json", "features and models never import pipeline"),
    ("features/schema.py", "import models.config", "features never imports models"),
    ("pipeline/score.py", "from pipeline.train import run as _train_run", "the stage modules are independent"),
    # indirect: pipeline.score -> pipeline.export (shared edge code) -> pipeline.featurize
    ("pipeline/export.py", "import pipeline.featurize", "the stage modules are independent"),
])
def test_contract_catches_a_violation(tree_copy, tmp_path, module, line, broken):
    root = tmp_path / "tree"
    shutil.copytree(tree_copy, root)
    path = root / module
    text = path.read_text()
    # after the module docstring and `from __future__` (which must stay first), before everything else
    lines = text.splitlines(keepends=True)
    at = max((i + 1 for i, s in enumerate(lines) if s.startswith("from __future__")), default=0)
    lines.insert(at, f"{line}  # added by the test\n")
    path.write_text("".join(lines))

    result = run_lint(root)
    out = result.stdout + result.stderr
    assert result.returncode != 0, f"`{line}` in {module} passed the contract:\n{out}"
    assert "BROKEN" in out and broken in out, out
    broken_lines = [s for s in out.splitlines() if s.rstrip().endswith("BROKEN")]
    assert len(broken_lines) == 1 and broken in broken_lines[0], out
