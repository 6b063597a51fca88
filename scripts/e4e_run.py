#!/usr/bin/env python3
"""Eye-for-an-eye appearance transfer without the editor, from a clone: ``python scripts/e4e_run.py --help``.

The runner is the package ``scripts/e4e_headless`` (installed by ``pip install .`` as the ``e4e-run`` command).
This shim imports it from the folder next to it, by path (sys.path stays as it is), and re-exports what
scripts/make_workflows.py and the tests use.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _package():
    """scripts/e4e_headless as the package ``e4e_headless`` (the one already imported, if it is this one)."""
    init = Path(__file__).resolve().parent / "e4e_headless" / "__init__.py"
    module = sys.modules.get("e4e_headless")
    if module is not None and Path(getattr(module, "__file__", "") or "").resolve() == init:
        return module
    spec = importlib.util.spec_from_file_location("e4e_headless", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["e4e_headless"] = module
    spec.loader.exec_module(module)
    return module


_package()
from e4e_headless.cli import main as _main  # noqa: E402  (the package is in sys.modules now)
from e4e_headless.errors import RunError  # noqa: E402
from e4e_headless.settings import (  # noqa: E402
    DEFAULTS,
    FLUX_MODEL,
    FLUX_TEXT_ENCODERS,
    FLUX_VAE,
    PROMPT_TEMPLATE,
    QWEN_MODEL,
    QWEN_TEXT_ENCODER,
    QWEN_VAE,
    SD15_CHECKPOINT,
    SDXL_CHECKPOINT,
    TITLES,
    WAN_MODEL,
    WAN_TEXT_ENCODER,
    WAN_VAE,
)

__all__ = ["DEFAULTS", "FLUX_MODEL", "FLUX_TEXT_ENCODERS", "FLUX_VAE", "PROMPT_TEMPLATE", "QWEN_MODEL",
           "QWEN_TEXT_ENCODER", "QWEN_VAE", "SD15_CHECKPOINT", "SDXL_CHECKPOINT", "TITLES", "WAN_MODEL",
           "WAN_TEXT_ENCODER", "WAN_VAE", "RunError", "main"]


def main(argv=None) -> int:
    return _main(argv, prog="e4e_run.py")


if __name__ == "__main__":
    raise SystemExit(main())
