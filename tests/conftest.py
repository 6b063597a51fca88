from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import tiny_models  # noqa: E402

# pytest imports the repository's own __init__.py (the pack) as a package before fixtures run; ComfyUI's
# core must be set to CPU before that import.
harness.setup_host()

# One torch thread unless told otherwise (E4E_TORCH_THREADS): the tiny models gain nothing from more, and with two
# threads on a loaded machine OpenMP's spinning made them over 10x slower.
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("E4E_TORCH_THREADS", "1")))


def pytest_report_header(config):
    try:
        host = harness.setup_host()
    except Exception as exc:  # the header must not hide the real error
        return [f"ComfyUI host: unavailable ({exc})"]
    import torch

    return [host.describe(), f"torch {torch.__version__}, threads {torch.get_num_threads()}"]


# scripts/run_tests.sh (and so CI) sets E4E_NO_SKIPS=1: there a skipped test is a failure, since the host is
# complete. A plain `python -m pytest` keeps skips, each with its reason.
NO_SKIPS = os.environ.get("E4E_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in a run that allows no skips (E4E_NO_SKIPS=1): {reason}"


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


@pytest.fixture(scope="session")
def real_comfy(host, pack, tmp_path_factory):
    """The full checkout's node registry and prompt validation (tests/real_comfy.py)."""
    import real_comfy as rc

    return rc.RealComfy(host.path, tmp_path_factory.mktemp("real_comfy"), pack)
