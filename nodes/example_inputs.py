"""The example images the shipped workflows load, put into ComfyUI's input folder when they are not there.

The templates' LoadImage / LoadImageMask nodes and Load Masks' mask files name ``e4e_*.png`` files of ComfyUI's
input folder; the pack ships them in ``workflows/inputs/``. At import (``__init__.py``) each one is copied there
unless a file of that name exists: a user's file is never overwritten, and a folder that cannot be written is
logged, never an import error.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "workflows" / "inputs"
LOG = logging.getLogger("eye_for_an_eye")


def input_folder() -> Path:
    """ComfyUI's input folder (``--input-directory``, ``--base-directory``, or the checkout's ``input/``)."""
    import folder_paths

    return Path(folder_paths.get_input_directory())


def copy_example_inputs(folder: Path | str | None = None) -> list[str]:
    """Copy each file of ``workflows/inputs/`` into ``folder`` (ComfyUI's input folder by default) unless a file of
    that name is there; returns the names copied. Idempotent; never raises."""
    copied = []
    try:
        target = Path(folder) if folder is not None else input_folder()
        for source in sorted(EXAMPLES.glob("*.png")):
            destination = target / source.name
            if destination.exists():
                continue
            target.mkdir(parents=True, exist_ok=True)
            try:
                with open(source, "rb") as src, open(destination, "xb") as dst:  # "x": never replaces a file
                    shutil.copyfileobj(src, dst)
            except FileExistsError:  # made meanwhile (another ComfyUI on the same folder): it stays
                continue
            copied.append(source.name)
    except Exception as error:  # noqa: BLE001 - an unwritable input folder must not stop ComfyUI loading the pack
        LOG.warning("Eye-for-an-eye: could not put the example inputs into ComfyUI's input folder (%s); the shipped "
                    "workflows load them: copy workflows/inputs/*.png there yourself", error)
        return copied
    if copied:
        LOG.info("Eye-for-an-eye: copied %d example input(s) the shipped workflows load into %s: %s", len(copied),
                 target, ", ".join(copied))
    return copied
