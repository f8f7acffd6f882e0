"""The package's import graph (read with ``ast``, module-level and function-level imports): no cycles, no upward arrow.

Layers, lowest first (a module may import from its own layer and from lower ones only):

0. ``errors``, ``config_types``, ``atomic_io``, ``locks``, ``flow_viz`` (flow colouring and the end-point error,
   used by data, train, report and export), ``progress`` (the k/n, elapsed, ETA line) and ``quiet`` (keeps
   TensorFlow's and TFLite's chatter off the console; train, export and latency): the ground floor
1. ``config``, ``config_yaml``, ``config_check``
2. ``data``, ``nas`` (arch codes, pools, the Pareto front and its ``front.json``)
3. ``model`` (the network and its exact cost table)
4. ``train`` (graphs, ``TrainedRun`` and the evaluation of a checkpoint: search, report and export build on it)
5. ``search`` (scores candidates through ``train.trained_run``)
6. ``report`` (reads runs and search fronts; never imports ``search``)
7. ``export`` (exports a subnet scored as ``efnas eval`` does; uses report's flow legend; never imports ``search``)
8. ``latency`` (times exported block probes)
9. ``outputs`` (the guard of every output option: it knows runs, datasets, searches, studies and exports)
10. ``launcher`` (the engines of submit, status, the study and SLURM search arrays; runs ``edgeflownas`` code in
    jobs)
11. ``cli`` (every ``efnas`` command: thin wrappers over the layers below, the launcher's engines included)

Every command registered on the ``efnas`` group is defined in a module under ``edgeflownas/cli/`` (checked by
walking the registry), so the launcher holds no click command and never imports the CLI.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

import click

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgeflownas", "launcher")
LAYERS = [
    {"edgeflownas.errors", "edgeflownas.config_types", "edgeflownas.atomic_io", "edgeflownas.locks",
     "edgeflownas.flow_viz", "edgeflownas.progress", "edgeflownas.quiet"},
    {"edgeflownas.config", "edgeflownas.config_yaml", "edgeflownas.config_check"},
    # report.ranking is plain statistics (tau, rho, bootstrap) that search's latency table uses too
    {"edgeflownas.data", "edgeflownas.nas", "edgeflownas.report.ranking"},
    {"edgeflownas.model"},
    {"edgeflownas.train"},
    # the latency table is read by search and eval; building and timing its probes (latency.*) exports models
    {"edgeflownas.search", "edgeflownas.latency.table"},
    {"edgeflownas.report", "edgeflownas.study"},
    {"edgeflownas.export"},
    {"edgeflownas.latency"},
    {"edgeflownas.outputs"},
    {"launcher"},
    {"edgeflownas.cli"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> Dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imported(name: str, path: Path, known: Set[str]) -> Set[str]:
    """Package modules ``name`` imports anywhere in its file (``from a import b`` counts a.b if it is a module)."""
    is_package = path.name == "__init__.py"
    targets: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            if candidate in known:
                targets.add(candidate)
                break
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate:
                targets.add(candidate)
                break
    targets.discard(name)
    return targets


def layer(name: str) -> int:
    if name == "edgeflownas":  # the package's __init__: its version string only
        return 0
    for index, members in enumerate(LAYERS):
        if any(name == m or name.startswith(m + ".") for m in members):
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS in {__file__}")


def graph() -> Dict[str, Set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def test_no_import_from_a_lower_layer_to_a_higher_one():
    edges = graph()
    upward = [f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
              for a, targets in sorted(edges.items()) for b in sorted(targets) if layer(b) > layer(a)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    cycles: List[List[str]] = []
    state: Dict[str, int] = {}

    def visit(node: str, stack: List[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_report_and_export_do_not_import_search():
    # They read runs and fronts through train.trained_run and nas.front; search is one consumer among them.
    edges = graph()
    found = [f"{a} imports {b}" for a, targets in sorted(edges.items()) for b in sorted(targets)
             if a.startswith(("edgeflownas.report", "edgeflownas.export")) and b.startswith("edgeflownas.search")]
    assert not found, "\n".join(found)


def registered_commands() -> Dict[str, click.Command]:
    """Every command of the ``efnas`` group by its full name (``config validate``), groups and subcommands alike."""
    from edgeflownas.cli import main

    found: Dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None, f"efnas {prefix}{name} is listed but cannot be loaded"
            found[prefix + name] = command
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")

    walk(main, "")
    return found


def test_every_registered_command_is_defined_under_edgeflownas_cli():
    commands = registered_commands()
    assert {"submit", "status", "config", "config validate", "search", "study", "eval"} <= set(commands)
    cli_dir = ROOT / "edgeflownas" / "cli"
    outside = []
    for name, command in sorted(commands.items()):
        module = command.callback.__module__
        path = Path(sys.modules[module].__file__).resolve()
        if not module.startswith("edgeflownas.cli.") or path.parent != cli_dir:
            outside.append(f"efnas {name}: defined in {module} ({path})")
    assert not outside, "\n".join(outside)


def test_the_launcher_holds_no_click_code():
    # Its modules are the engines the commands call; option parsing and output belong to edgeflownas/cli/.
    found = [name for name, path in sorted(modules().items())
             if name.startswith("launcher") and "click" in imported_names(path)]
    assert not found, "\n".join(found)


def imported_names(path: Path) -> Set[str]:
    """Top-level names of every module ``path`` imports (``click`` for ``import click.testing``)."""
    names: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names
