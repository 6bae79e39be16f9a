"""dvc.yaml lists, for each stage, the code it runs: a code change must rerun exactly the stages it affects.

For every stage whose cmd is `leadscore <name>`, the project modules the stage runs are
- `pipeline.<name>` and everything it imports, directly or indirectly (grimp, import-linter's graph builder;
  imports inside functions count),
- `pipeline.params` and its imports (the CLI loads params.yaml for every stage) and `pipeline/cli.py` itself,
- the imports of the CLI command `<name>` and of the cli helpers it calls (e.g. `_stage`, which loads the ingest
  profile for every stage), and their imports.
Each such module's file must be covered by one of the stage's `deps` (the file itself or a folder above it).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (dev extra: pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "features", "models")
CLI = "pipeline.cli"
ALWAYS = ("pipeline.params",)
STAGE_CMD = re.compile(r"^\s*leadscore\s+([a-z_]+)\s*$")
EXPECTED_STAGES = ["ingest", "validate", "featurize", "train", "package", "evaluate", "score", "report"]


@cache
def graph():
    return grimp.build_graph(*PACKAGES, cache_dir=None)


@cache
def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def leadscore_stages() -> list[str]:
    out = []
    for name, stage in dvc_stages().items():
        m = STAGE_CMD.match(str(stage.get("cmd", "")))
        if m:
            assert m.group(1) == name, f"stage {name} runs `leadscore {m.group(1)}`: stage and command names differ"
            out.append(name)
    return out


def module_file(module: str) -> str:
    """The module's file relative to the project root (posix)."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate.relative_to(ROOT).as_posix()
    raise AssertionError(f"no file for module {module}")


def closure(module: str) -> set[str]:
    return {module} | set(graph().find_upstream_modules(module))


def _imported_modules(node: ast.AST) -> set[str]:
    """Project modules named by the import statements under `node` (`from pipeline import score` → pipeline.score)."""
    modules = graph().modules
    found: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            names = [f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in modules else n.module for a in n.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def _command_function(tree: ast.Module, command: str) -> ast.FunctionDef:
    """The function behind `leadscore <command>` (`@app.command()` on `def command`, or `@app.command("command")`)."""
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr == "command"):
                continue
            named = [a.value for a in dec.args if isinstance(a, ast.Constant)]
            if (named and named[0] == command) or (not named and node.name.replace("_", "-") == command):
                return node
    raise AssertionError(f"pipeline/cli.py has no command `{command}`")


def cli_imports(command: str) -> set[str]:
    """Project modules imported by cli.py at module level and by the command and the cli helpers it calls."""
    tree = ast.parse((ROOT / "pipeline" / "cli.py").read_text())
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    found = set()
    for node in tree.body:  # module level
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _imported_modules(node)
    todo, seen = [_command_function(tree, command)], set()
    while todo:
        fn = todo.pop()
        if fn.name in seen:
            continue
        seen.add(fn.name)
        found |= _imported_modules(fn)
        for n in ast.walk(fn):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in helpers:
                todo.append(helpers[n.func.id])
    return found


def required_modules(stage: str) -> set[str]:
    roots = {f"pipeline.{stage}", *ALWAYS, *cli_imports(stage)}
    return set().union(*(closure(m) for m in roots)) | {CLI}


def code_deps(stage: str) -> list[str]:
    """The stage's deps that are paths in the project (data paths `${...}` left out), without trailing slashes."""
    deps = dvc_stages()[stage].get("deps", [])
    return [str(d).rstrip("/") for d in deps if "${" not in str(d)]


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in deps)


def test_every_pipeline_stage_runs_its_own_command():
    assert leadscore_stages() == EXPECTED_STAGES


@pytest.mark.parametrize("stage", EXPECTED_STAGES)
def test_code_deps_exist(stage):
    missing = [d for d in code_deps(stage) if not (ROOT / d).exists()]
    assert not missing, f"dvc.yaml stage {stage} depends on paths that do not exist: {missing}"


@pytest.mark.parametrize("stage", EXPECTED_STAGES)
def test_stage_deps_cover_its_imports(stage):
    deps = code_deps(stage)
    missing = sorted(m for m in required_modules(stage) if not covered(module_file(m), deps))
    if missing:
        lines = []
        for m in missing:
            chain = None
            for start in (f"pipeline.{stage}", *ALWAYS, *sorted(cli_imports(stage))):
                c = graph().find_shortest_chain(importer=start, imported=m) if start != m else (m,)
                if c and (chain is None or len(c) < len(chain)):
                    chain = c
            how = " -> ".join(chain) if chain else f"{CLI} `leadscore {stage}`"
            lines.append(f"  {module_file(m)}  (via {how})")
        pytest.fail(f"dvc.yaml stage {stage}: deps miss {len(missing)} module(s) the stage runs:\n" + "\n".join(lines))


def test_the_check_sees_indirect_and_function_level_imports():
    """Guards the check itself: an import inside a function body and an indirect one are both found."""
    assert "pipeline.sources.exports" in cli_imports("featurize")  # cli._stage imports it inside the function
    assert "pipeline.tracking" in required_modules("score")  # pipeline.score -> pipeline.tracking
    assert "features.schema" in required_modules("train")  # pipeline.train -> models.training -> features.schema
    assert not covered("models/gates.py", ["models/config.py", "model"])
    assert covered("models/gates.py", ["models"]) and covered("pipeline/sources/x.py", ["pipeline/sources"])
