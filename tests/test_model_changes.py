"""A MODEL changed between Semantic Match Patch and the sampler (issue 29): the sampler compares the MODEL it samples
with the one the images were inverted with (the pack's own patch left out). Another prediction type or model
sampling is refused by name; other changes (weight patches, attention and guidance patches, FreeU) are said once,
in the log and in the sampler node's UI output; nothing added says nothing."""

from __future__ import annotations

import logging

import pytest
import torch
import transfer_kit as kit
from harness import pack_module


@pytest.fixture(scope="module")
def made(sd15):
    """A transfer made on the tiny SD1.5 model: its inversions (edit-friendly, the inversion's cfg) and the patch."""
    c = kit.conds()
    target, reference = kit.invert(sd15, kit.latent(50), c), kit.invert(sd15, kit.latent(51), c, seed=1)
    return dict(c=c, target=target, patched=kit.patch(sd15, target, reference))


def _result(node_output):
    """The MODEL of a node's output, V1 (a tuple) or V3 (io.NodeOutput)."""
    return node_output.result[0] if hasattr(node_output, "result") else node_output[0]


def _v_prediction(m):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    return _result(ModelSamplingDiscrete().patch(m, "v_prediction", False))


def _freeu_v2(m):
    from comfy_extras.nodes_freelunch import FreeU_V2

    return _result(FreeU_V2().patch(m, 1.3, 1.4, 0.9, 0.2))


def _sag(m):
    from comfy_extras.nodes_sag import SelfAttentionGuidance

    return _result(SelfAttentionGuidance.execute(m, 0.5, 2.0))


def _pag(m):
    from comfy_extras.nodes_pag import PerturbedAttentionGuidance

    return _result(PerturbedAttentionGuidance.execute(m, 3.0))


def _lora_like(m):
    """A weight patch as a LoRA loader adds one (a small change to one weight)."""
    m = m.clone()
    key = next(k for k in m.model.state_dict() if k.endswith("attn1.to_q.weight"))
    m.add_patches({key: (torch.full_like(m.model.state_dict()[key], 0.01),)}, 1.0)
    return m


def _sample(model, c, **kw):
    """The sampler node (its UI output too): strength-0-like exactness is not needed here."""
    node = pack_module("nodes.appearance_transfer_sampler").AppearanceTransferSampler()
    pos, neg = c
    return node.sample(model, pos, neg, 3.5, False, 0.7, "exact", **kw)


def test_a_model_sampling_added_after_the_patch_is_refused_by_name(made, caplog):
    calls = []
    import comfy.model_base

    real = comfy.model_base.BaseModel.apply_model
    after = _v_prediction(made["patched"])
    with pytest.raises(ValueError, match=r"model: .*prediction type \(eps when inverted, v now\).*model_sampling.* "
                                         r"changed after Semantic Match Patch.*before DDIM Invert Reference"):
        comfy.model_base.BaseModel.apply_model = lambda *a, **k: calls.append(1) or real(*a, **k)
        try:
            _sample(after, made["c"])
        finally:
            comfy.model_base.BaseModel.apply_model = real
    assert not calls  # refused before any model call


@pytest.mark.parametrize("add, what", [
    (_freeu_v2, "output_block_patch"),
    (_sag, "sampler_post_cfg_function"),
    (_pag, "sampler_post_cfg_function"),
    (_lora_like, "weight patches"),
])
def test_other_nodes_added_after_the_patch_are_said_once(made, caplog, add, what):
    after = add(made["patched"])
    with caplog.at_level(logging.WARNING, logger="eye_for_an_eye"):
        out = _sample(after, made["c"])
    said = [r.getMessage() for r in caplog.records if "differs from the one the images were inverted with" in
            r.getMessage()]
    assert len(said) == 1 and what in said[0] and "before DDIM Invert Reference" in said[0]
    notices = out["ui"]["e4e_notices"]
    assert notices and all(n.startswith("Added after Semantic Match Patch") for n in notices)
    assert any(what in n for n in notices)
    assert torch.isfinite(out["result"][0]["samples"]).all()


def test_nothing_added_says_nothing(made, caplog):
    with caplog.at_level(logging.WARNING, logger="eye_for_an_eye"):
        out = _sample(made["patched"], made["c"])
        out_clone = _sample(made["patched"].clone(), made["c"])  # a clone is the same model
    assert not [r for r in caplog.records if "differs from" in r.getMessage()]
    assert "e4e_notices" not in out.get("ui", {}) and "e4e_notices" not in out_clone.get("ui", {})


def test_the_stock_sampler_path_is_checked_too(made):
    """KSamplerAdvanced on a patched MODEL with a v-prediction node after the patch: refused the same way."""
    import comfy.sample

    pos, neg = made["c"]
    start = torch.zeros(1, 4, kit.SIZE, kit.SIZE)
    with pytest.raises(ValueError, match=r"model: .*changed after Semantic Match Patch"):
        comfy.sample.sample(_v_prediction(made["patched"]), start, kit.STEPS, 1.0, "ddim", "ddim_uniform", pos, neg,
                            start, disable_noise=True, start_step=kit.SKIP, last_step=10000,
                            force_full_denoise=True, seed=0, disable_pbar=True)
