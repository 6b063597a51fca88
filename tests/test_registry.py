"""The Comfy Registry listing: pyproject.toml against the fields and rules the registry documents
(docs.comfy.org/registry/specifications; comfy-cli's checks), and the icon it names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
GPU_CLASSIFIERS = {"Environment :: GPU :: NVIDIA CUDA", "Environment :: GPU :: AMD ROCm", "Environment :: GPU :: Intel Arc",
                   "Environment :: GPU :: Apple Metal", "Environment :: NPU :: Huawei Ascend"}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_project_fields_follow_the_registry_rules():
    project = _pyproject()["project"]
    name = project["name"]
    assert len(name) < 100 and re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?", name)
    assert not re.search(r"[._-]{2}", name) and "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert 0 < len(project["description"]) <= 1000
    assert set(project["license"]) in ({"file"}, {"text"}) and (REPO / project["license"].get("file", "LICENSE")).is_file()
    for c in project.get("classifiers", []):
        assert c.startswith("Operating System ::") or c in GPU_CLASSIFIERS, c


def test_comfy_table_follows_the_registry_rules():
    comfy = _pyproject()["tool"]["comfy"]
    assert re.fullmatch(r"[a-z][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"].strip()
    assert re.fullmatch(r"(>=|<=|==|>|<)\d+\.\d+\.\d+(,(>=|<=|==|>|<)\d+\.\d+\.\d+)*", comfy["requires-comfyui"])
    assert set(comfy) <= {"PublisherId", "DisplayName", "Icon", "Banner", "requires-comfyui", "includes"}


def test_the_icon_is_shipped_square_and_at_most_400_px():
    from PIL import Image

    icon = _pyproject()["tool"]["comfy"]["Icon"]
    assert icon, "[tool.comfy] Icon is empty"
    path = REPO / icon
    assert icon.startswith("https://") or path.is_file(), icon
    if path.is_file():
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width == img.height <= 400
        done = subprocess.run([sys.executable, str(REPO / "scripts" / "make_icon.py"), "--check"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
