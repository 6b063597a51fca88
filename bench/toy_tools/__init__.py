"""The toy world's tools: training its models (``train``), measuring transfers on them (``evaluate``), their
figures (``pictures``). Run by the benchmark scripts and the tests (with ``bench/`` on ``sys.path``, as ``python
bench/<script>.py`` has it); the pack itself never imports them.

Importing this package sets ComfyUI up (``e4e_headless.host``: the one rule for finding it) and gives the pack's
own toy world, imported through the pack (``world``, ``models``), so that every file loads once, under one name.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))

from e4e_headless.host import pack_module, setup_comfyui  # noqa: E402

setup_comfyui()
world = pack_module("toy_world.world")
models = pack_module("toy_world.models")

__all__ = ["REPO", "pack_module", "world", "models"]
