"""The package's shape: no import cycle, readers without fairseq, interop/ only for the commands and research
tools, plots only in research/, true bounds.

Static checks read the source with ``ast``; the import-time check runs a fresh
Python, so nothing this suite already imported can hide an import.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

from conftest import REPO

PACKAGES = ("fairseq_tokendrop", "tokendrop_readers")


def module_files(root: Path, packages=PACKAGES) -> Dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The project modules that ``name`` imports anywhere in its file (function-level imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            targets.update(b for b in bases if b in known)
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if base in known:
            targets.add(base)
        for alias in node.names:  # "from . import models" imports the submodule models
            if f"{base}.{alias.name}" in known:
                targets.add(f"{base}.{alias.name}")
    targets.discard(name)
    return targets


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle as a path [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def import_graph(root: Path, packages=PACKAGES) -> Dict[str, Set[str]]:
    files = module_files(root, packages)
    return {name: imported_modules(name, path, set(files)) for name, path in files.items()}


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph(REPO)) is None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "fairseq_tokendrop"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "records.py").write_text("def read():\n    from .hdf5 import read_hdf5\n")
    (package / "data" / "hdf5.py").write_text("from .records import read\n")
    assert find_cycle(import_graph(tmp_path, ("fairseq_tokendrop",))) == [
        "fairseq_tokendrop.data.hdf5", "fairseq_tokendrop.data.records", "fairseq_tokendrop.data.hdf5"]


INTEROP = "fairseq_tokendrop.interop"
# Conversion to and from other ecosystems serves the commands users run and the research tools; training
# (fairseq-train --user-dir) must work without it, so no other module reaches it, directly or through others.
MAY_IMPORT_INTEROP = (INTEROP, "fairseq_tokendrop.commands", "fairseq_tokendrop.research")


def in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def interop_users(graph: Dict[str, Set[str]]) -> Dict[str, List[str]]:
    """Each module outside ``MAY_IMPORT_INTEROP`` that reaches interop/ through its imports -> one such path."""
    found = {}
    for start in sorted(graph):
        if any(in_package(start, allowed) for allowed in MAY_IMPORT_INTEROP):
            continue
        came_from, queue = {start: None}, [start]
        while queue:
            node = queue.pop(0)
            if in_package(node, INTEROP):
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                found[start] = path[::-1]
                break
            for nxt in sorted(graph.get(node, ())):
                if nxt not in came_from:
                    came_from[nxt] = node
                    queue.append(nxt)
    return found


def test_only_the_commands_and_research_reach_interop():
    graph = import_graph(REPO)
    assert any(in_package(name, INTEROP) for name in graph), "no interop/ package to guard"
    users = interop_users(graph)
    assert not users, "; ".join(" -> ".join(path) for path in users.values())


def test_the_interop_rule_finds_a_module_that_reaches_interop(tmp_path):
    package = tmp_path / "fairseq_tokendrop"
    for sub in ("", "checkpoints", "data", "interop", "commands"):
        (package / sub).mkdir(parents=True, exist_ok=True)
        (package / sub / "__init__.py").write_text("")
    (package / "interop" / "hf.py").write_text("def convert():\n    pass\n")
    (package / "commands" / "import_hf.py").write_text("from ..interop.hf import convert\n")
    (package / "checkpoints" / "io.py").write_text("def save():\n    from ..interop.hf import convert\n")
    (package / "data" / "vocab.py").write_text("from ..checkpoints.io import save\n")
    assert interop_users(import_graph(tmp_path, ("fairseq_tokendrop",))) == {
        "fairseq_tokendrop.checkpoints.io": ["fairseq_tokendrop.checkpoints.io", "fairseq_tokendrop.interop.hf"],
        "fairseq_tokendrop.data.vocab": ["fairseq_tokendrop.data.vocab", "fairseq_tokendrop.checkpoints.io",
                                         "fairseq_tokendrop.interop.hf"]}


def test_the_readers_import_without_fairseq_or_torch():
    readers = [name for name in module_files(REPO, ("tokendrop_readers",))]
    code = (f"import importlib, sys\nfor m in {readers!r}: importlib.import_module(m)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fairseq', 'torch', 'fairseq_tokendrop'}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["fairseq_tokendrop.method.token_selection", "fairseq_tokendrop.method.flops",
                                    "fairseq_tokendrop.method.keep_schedule", "fairseq_tokendrop.method.random_ltd"])
def test_the_pure_method_modules_import_nothing_from_fairseq(module):
    path = module_files(REPO)[module]
    imported = {alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and not node.level}
    assert not {m for m in imported if m.split(".")[0] == "fairseq"}


def setup_call_keywords() -> dict:
    tree = ast.parse((REPO / "setup.py").read_text())
    assigns = {n.targets[0].id: n.value for n in tree.body if isinstance(n, ast.Assign)}
    call = next(n.value for n in tree.body if isinstance(n, ast.Expr) and getattr(n.value.func, "id", "") == "setup")
    return {"TORCH_MIN": ast.literal_eval(assigns["TORCH_MIN"]), **{k.arg: k.value for k in call.keywords}}


def test_matplotlib_is_an_extra_and_only_research_imports_it():
    setup = setup_call_keywords()
    requires = ast.unparse(setup["install_requires"])
    extras = ast.literal_eval(setup["extras_require"])
    assert "matplotlib" not in requires and extras["research"] == ["matplotlib"]
    users = [name for name, path in module_files(REPO).items()
             if re.search(r"^\s*(import|from) matplotlib", path.read_text(), re.M)]
    assert users and all(name.startswith("fairseq_tokendrop.research.") for name in users), users


# The torch APIs the code calls that are newer than torch 2.0, and the release each came in.
NEWER_TORCH_APIS = {
    "torch.serialization.add_safe_globals": "2.4",
    "get_unsafe_globals_in_checkpoint": "2.5",
    "mmap=True": "2.1",
    "torch.nn.attention": "2.2",
    "sdpa_kernel": "2.3",
    "torch.amp.GradScaler": "2.3",
}


def version(text: str):
    return tuple(int(x) for x in text.split("."))


def test_the_declared_lowest_torch_is_the_newest_api_the_code_calls():
    source = "\n".join(path.read_text() for path in module_files(REPO).values())
    used = {api: release for api, release in NEWER_TORCH_APIS.items() if api in source}
    assert used, "the table lists none of the APIs the code calls"
    newest = max(used.values(), key=version)
    assert setup_call_keywords()["TORCH_MIN"] == newest, used


def test_fairseq_provides_the_private_api_the_task_relies_on():
    """setup.py pins ve-fairseq 0.12.3 (fairseq main) because the task calls this; fairseq 0.12.2 lacks it."""
    from fairseq.tasks.masked_lm import MaskedLMTask

    source = "\n".join(path.read_text() for path in module_files(REPO).values())
    assert "._regular_dataset(" in source
    assert callable(getattr(MaskedLMTask, "_regular_dataset", None))
