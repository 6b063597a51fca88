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
