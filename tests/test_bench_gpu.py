"""bench/bench_gpu.py --tiny: the GPU benchmark's code paths on the CPU, and the table it prints."""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_gpu  # noqa: E402

MODEL_RUNS = ("plain sampling (", "transfer (", "whole transfer (", "plain sampling, all steps (", "inversion (",
              "matching: ", "attn1 patch at ", "host-device syncs in the attn1 patch")
MATCH_RUNS = ("match_tokens(check=False)", "authors' per-pixel loop", "dense floor")
SECTIONS = {"SD1.5 ": MODEL_RUNS, "SDXL ": MODEL_RUNS, "matching 16x16 ": MATCH_RUNS, "matching 32x32 ": MATCH_RUNS}


@pytest.fixture(scope="module")
def tiny_run():
    """One ``--tiny`` run in this process (about 6 s on 2 idle cores), shared by the tests below."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench_gpu.main(["--tiny"])
    return rc, buf.getvalue()


def _table(text: str) -> list[list[str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert lines and lines[0].startswith("| model / map | run | steps | wall time | ratio | vs | peak GPU memory |")
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines[1:]]


def _seconds(cell: str) -> float:
    m = re.fullmatch(r"([0-9.eE+-]+) (ms|s)", cell)
    assert m, f"not a time: {cell!r}"
    return float(m.group(1)) * (1e-3 if m.group(2) == "ms" else 1.0)


def _ratio(cell: str) -> float:
    m = re.fullmatch(r"([0-9.eE+-]+) ?(x|%)", cell)
    assert m, f"not a ratio: {cell!r}"
    return float(m.group(1))


@pytest.mark.slow
def test_tiny_run_prints_every_row_with_finite_numbers(tiny_run):
    rc, text = tiny_run
    assert rc == 0
    rows = _table(text)
    for prefix, runs in SECTIONS.items():
        section = [r for r in rows if r[0].startswith(prefix)]
        assert [next(run for run in runs if r[1].startswith(run)) for r in section] == list(runs), prefix
    assert len(rows) == sum(len(runs) for runs in SECTIONS.values())
    for section, run, _steps, wall, ratio, vs, peak in rows:
        if run.startswith("host-device syncs"):  # CUDA only
            assert ratio == "n/a (CPU)" and vs == "n/a (CPU)" and wall == "-"
            continue
        t, q = _seconds(wall), _ratio(ratio)
        assert math.isfinite(t) and t > 0, (section, run, wall)
        assert math.isfinite(q) and q > 0, (section, run, ratio)
        assert peak in ("n/a (CPU)", "-"), (section, run, peak)
        if run.startswith(("plain sampling (", "plain sampling, all", "match_tokens(")):
            assert ratio == "1.00x"


@pytest.mark.slow
def test_tiny_run_header_names_the_device_and_settings(tiny_run):
    _, text = tiny_run
    device = next(ln for ln in text.splitlines() if ln.startswith("- device: "))
    assert "CPU" in device and "threads" in device
    assert "dtype float32" in text and "torch " in text and "ComfyUI host: " in text
    assert "transfer" in text and "Goals" in text and "n/a (tiny CPU run)" in text
    assert "layers output 6-11)" in text and "layers output 0-5)" in text  # the default layers of each family
    assert "Sync check: " in text


def test_step_budget():
    assert bench_gpu.plan_steps(0.02, 400, 2) == 100  # SD1.5-like step: the authors' 100 steps fit
    assert bench_gpu.plan_steps(0.5, 240, 2) < 100
    assert bench_gpu.plan_steps(60, 1, 2) == 10  # never below 10
    steps = [bench_gpu.plan_steps(0.1, b, 2) for b in (20, 50, 100, 200, 400)]
    assert steps == sorted(steps)


def test_layer_names():
    assert bench_gpu._layer_names([("output", i) for i in (8, 6, 7, 11, 10)]) == "output 6-8, 10-11"
    assert bench_gpu._layer_names([("input", 4), ("output", 0)]) == "input 4; output 0"


@pytest.mark.parametrize("argv", [["--tiny", "--only", "sd16"], ["--tiny", "--steps", "5"]])
def test_bad_options(argv, capsys):
    with pytest.raises(SystemExit):
        bench_gpu.main(argv)
