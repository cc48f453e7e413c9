"""The floor plan (docs/design.md): every module imports, none imports in a cycle, none is over 800 lines, no function
is over 120 lines of code, and the banned APIs are refused by ruff (which follows aliases, unlike a grep)."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "diffusers_led"
MAX_MODULE_LINES = 800
MAX_FUNCTION_CODE_LINES = 120


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` in ``module`` names."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(module: str, types_too: bool = True) -> list[tuple[int, str]]:
    """The package modules ``module`` imports, ``(line, module)``: anywhere in it (also inside functions), and under
    ``if TYPE_CHECKING:`` only when ``types_too``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node) and not types_too:
                continue
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    found.append((node.lineno, candidate if candidate in MODULES else target))
            elif isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            else:
                visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return [(line, name) for line, name in found if name == "diffusers_led" or name.startswith("diffusers_led.")]


def test_every_import_of_the_package_names_a_module_that_exists():
    """Relative imports anywhere (also inside functions, which importing the module does not run) still point at a
    module after a move."""
    missing = [
        f"{MODULES[module].relative_to(REPO)}:{line}: {target}"
        for module in MODULES
        for line, target in _imports(module)
        if target not in MODULES
    ]
    assert missing == []


def test_no_import_cycle():
    """Data flows one way: no module imports, even lazily inside a function, a module that imports it back (only
    annotations under ``TYPE_CHECKING`` may look back)."""
    graph = {module: {target for _, target in _imports(module, types_too=False)} for module in MODULES}
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_module_imports():
    for module in MODULES:
        if not module.endswith(".__main__"):  # `python -m` entry points run when imported
            importlib.import_module(module)


def test_no_module_is_over_800_lines():
    lengths = {
        str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines()) for path in MODULES.values()
    }
    assert {path: n for path, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    """Lines of code of ``function``: its body without the docstring, blank lines and comments."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    if not body:
        return 0
    text = lines[body[0].lineno - 1 : function.end_lineno]
    return sum(1 for line in text if line.strip() and not line.strip().startswith("#"))


def test_no_function_is_over_120_lines_of_code():
    files = [*MODULES.values(), REPO / "train_led.py"]
    long = {}
    for path in files:
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count = _code_lines(node, lines)
                if count > MAX_FUNCTION_CODE_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = count
    assert long == {}


def test_banned_apis_are_refused_by_ruff(tmp_path):
    """pyproject.toml bans plain argparse parsers (one spelling only), torch.load and pickle (code execution from a
    file); ruff follows `from argparse import ArgumentParser as P`, which a grep of the source would miss."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    offender = tmp_path / "offender.py"
    offender.write_text("from argparse import ArgumentParser as P\nimport pickle\n\nP()\n")
    config = ["--config", str(REPO / "pyproject.toml")]
    caught = subprocess.run(
        [ruff, "check", *config, "--select", "TID251", str(offender)], capture_output=True, text=True
    )
    assert caught.returncode == 1 and caught.stdout.count("TID251") == 2, caught.stdout
    clean = subprocess.run([ruff, "check", "--select", "TID251", "."], cwd=REPO, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
