"""With the default settings, the patch acts at exactly the steps the authors' code acts at.

Their loop (100 steps, skip 32: run steps k = 0..67) sees its step counter one step late, so although their
config says "structure at 10, 15, ..., 35 and matching from 10", structure injection runs at k = 11, 16, ..., 36,
matching at k = 12..67 (structure steps aside) and AdaIN after steps 49..67.
"""

from __future__ import annotations

import torch
from harness import pack_module


def _phases():
    inversion = pack_module("inversion")
    plan = pack_module("engine.patch.plan")
    fp = inversion.ModelFingerprint("sd1", "eps", "SD15", 0)
    inv = inversion.Inversion(method="ddpm_edit_friendly", sigmas=torch.linspace(14, 0, 101),
                              latents=torch.zeros(101, 1, 4, 8, 8), residuals=None, start_step=32, eta=1.0,
                              cfg=3.5, fingerprint=fp)
    layers = tuple(pack_module("engine.models.layers").LAYER_PRESETS["output 6-11 (SD1/SD2, paper)"])
    return plan.phases_of(inv, plan.Settings(layers=layers))


def test_structure_and_matching_steps_are_the_authors():
    steps = _phases()
    phases = {k: steps.get(32 + k) for k in range(68)}
    assert [k for k, p in phases.items() if p == "struct"] == [11, 16, 21, 26, 31, 36]
    assert [k for k, p in phases.items() if p == "match"] == [k for k in range(12, 68) if k not in (16, 21, 26, 31, 36)]
    assert all(phases[k] is None for k in range(11))


def test_adain_steps_are_the_authors():
    import inspect

    transfer = pack_module("engine.backends.sample")
    node = pack_module("nodes.appearance_transfer_sampler").AppearanceTransferSampler
    default = inspect.signature(transfer.transfer).parameters["adain_start_percent"].default
    ui_default = node.INPUT_TYPES()["required"]["adain_start_percent"][1]["default"]
    assert default == ui_default
    n_run = 68
    adain_from = pack_module("engine.patch.plan").run_step(default, n_run)  # after_step(j) acts when j + 1 >= adain_from
    assert [j for j in range(n_run) if j + 1 >= adain_from] == list(range(49, 68))
