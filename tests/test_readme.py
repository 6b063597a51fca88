"""The README tells the truth: the node reference is the nodes' own, the test command is CI's."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))


def test_node_reference_is_current(pack):
    import node_reference

    readme = (REPO / "README.md").read_text()
    assert node_reference.readme_section(readme) == node_reference.reference(), (
        "README node reference is stale: run `python scripts/node_reference.py --write`"
    )


def test_the_families_table_and_the_description_come_from_the_registry(pack):
    """One registry of model families: the README's table is what it says, and the pyproject description and the
    nodes' tooltips name every family it holds."""
    import node_reference
    import tomllib

    readme = (REPO / "README.md").read_text()
    assert node_reference.readme_section(readme, "families") == node_reference.families_table(), (
        "README family table is stale: run `python scripts/node_reference.py --write`"
    )
    families = pack_module_of(pack, "engine.models.families")
    names = families.family_names()
    description = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["description"]
    assert names in description, (names, description)
    tooltip = pack.NODE_CLASS_MAPPINGS["E4EDDIMInvertReference"].INPUT_TYPES()["required"]["model"][1]["tooltip"]
    assert families.family_names(last="or") in tooltip


def pack_module_of(pack, name: str):
    import importlib

    return importlib.import_module(f"{pack.__name__}.{name}")


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[0] == "python scripts/e4e_run.py"  # the toy world demo: no checkpoint, no server
    assert commands[1].startswith("python scripts/e4e_run.py --server")
    assert commands[2] == "bash scripts/run_tests.sh"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[2] in [line.strip() for line in ci]


def test_the_layout_table_matches_the_tree():
    """Every place the README's layout table names exists, every top-level folder of the repository and every file
    of engine/'s layers is named there."""
    import subprocess

    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- layout:start -->", 1)[1].split("<!-- layout:end -->", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {re.match(r"\| `([^`]+)`", line).group(1).rstrip("/") for line in rows}
    assert all((REPO / p).exists() for p in named), sorted(p for p in named if not (REPO / p).exists())
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    top = {p.split("/")[0] for p in tracked if "/" in p}
    layered = {f"engine/{p.split('/')[1]}" for p in tracked if p.startswith("engine/") and p.count("/") == 2}
    assert top - {"engine"} <= named and layered <= named, (sorted(top - named), sorted(layered - named))
    for folder in layered:
        row = next(line for line in rows if line.startswith(f"| `{folder}/`"))
        files = {Path(p).name for p in tracked if p.startswith(folder + "/") and p.endswith(".py")} - {"__init__.py"}
        assert all(f"`{f}`" in row for f in files), (folder, sorted(f for f in files if f"`{f}`" not in row))
