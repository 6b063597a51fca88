from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import tiny_models  # noqa: E402

# pytest imports the repository's own __init__.py (the pack) as a package before fixtures run; ComfyUI's
# core must be set to CPU before that import.
harness.setup_host()


def pytest_report_header(config):
    try:
        host = harness.setup_host()
    except Exception as exc:  # the header must not hide the real error
        return [f"ComfyUI host: unavailable ({exc})"]
    import torch

    return [host.describe(), f"torch {torch.__version__}, threads {torch.get_num_threads()}"]


@pytest.fixture(scope="session")
def host():
    return harness.setup_host()


@pytest.fixture(scope="session")
def pack(host):
    return harness.load_pack()


@pytest.fixture(scope="session")
def sd15():
    return tiny_models.build_sd15()


@pytest.fixture(scope="session")
def sd15_v():
    return tiny_models.build_sd15(v_prediction=True, seed=1)


@pytest.fixture(scope="session")
def sdxl():
    return tiny_models.build_sdxl()


@pytest.fixture(scope="session")
def vae():
    return tiny_models.build_vae()


@pytest.fixture()
def conds():
    return tiny_models.sd15_conds()
