"""The walls between the packages: the game never imports torch or the world model; the model's parts import
no training, simulation, planning, opponents, agents or command line; simulation imports no planning,
opponents, training, agents or command line; training no simulation, planning, opponents, agents or command
line; planning no model, training, agents or command line; the opponent models no planning, training,
agents or viewing; viewing no training. Every import statement counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# what only the layers above may import: training, planning, agents, the command line, the demo and viewing
ABOVE = (
    "gridmarl_wm.training",
    "gridmarl_wm.planning",
    "gridmarl_wm.agents",
    "gridmarl_wm.cli",
    "gridmarl_wm.demo",
    "gridmarl_wm.viewing",
)
WALLS = {
    "gridmarl": ("torch", "gridmarl_wm"),
    "gridmarl_wm/model": (
        *ABOVE,
        "gridmarl_wm.data",
        "gridmarl_wm.evaluate",
        "gridmarl_wm.simulation",
        "gridmarl_wm.opponents",
    ),
    "gridmarl_wm/simulation": (*ABOVE, "gridmarl_wm.opponents"),
    # training knows the model and the data, nothing that plays the game
    "gridmarl_wm/training": (
        *(a for a in ABOVE if a != "gridmarl_wm.training"),
        "gridmarl_wm.simulation",
        "gridmarl_wm.opponents",
    ),
    # planners know the simulator interface, never a concrete model
    "gridmarl_wm/planning": (*(a for a in ABOVE if a != "gridmarl_wm.planning"), "gridmarl_wm.model"),
    "gridmarl_wm/opponents": ABOVE,
    "gridmarl_wm/viewing": (
        "gridmarl_wm.training",
        "gridmarl_wm.agents.ppo",
        "gridmarl_wm.agents.learn",
        "gridmarl_wm.cli",
        "gridmarl_wm.demo",
    ),
}


def imported(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (``from a import b`` counts as ``a`` and ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def crossings(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize("package", sorted(WALLS))
def test_no_import_crosses_a_wall(package):
    assert (ROOT / package).is_dir()
    assert crossings(package, WALLS[package]) == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from gridmarl_wm.planning import CEM\n    import torch\n")
    assert {"gridmarl_wm.planning", "gridmarl_wm.planning.CEM", "torch"} <= imported(tmp_path / "m.py")
