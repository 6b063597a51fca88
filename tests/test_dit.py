"""The method on diffusion transformers (Flux.1, SD3) through ComfyUI's own model classes and sampler."""

from __future__ import annotations

import pytest
import tiny_models
import torch
import transfer_kit as kit
from harness import pack_module

STEPS, SKIP = 12, 3


def _latent(seed: int, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 16, 4, 4, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return smooth + 0.3 * torch.randn(1, 16, size, size, generator=g)


def _invert(model, lat, conds, cfg=1.0, method="ddpm_edit_friendly", seed=0):
    pos, neg = conds
    return pack_module("engine.backends.invert").invert(model, pos, neg, lat, STEPS, cfg, method, SKIP,
                                                             scheduler="simple", seed=seed)


@pytest.fixture(scope="module")
def flux():
    return tiny_models.build_flux()


@pytest.fixture(scope="module")
def flux_pair(flux):
    c = tiny_models.flux_conds()
    tgt = _latent(1)
    return dict(c=c, tgt_lat=tgt, target=_invert(flux, tgt, c), reference=_invert(flux, _latent(2), c))


def record_dit_events(monkeypatch) -> dict:
    """``(step, block, kind) -> count`` of the DiT events (spying on engine.patch.dit): "found" (a correspondence
    found on a block's features), "match" (a block's Q/K/V rewritten with matched reference tokens), "struct"."""
    dit = pack_module("engine.patch.dit")
    events: dict = {}
    real_found, real_take, real_struct = dit.match_sources, dit.take_matches, dit.inject_structure

    def count(step, block, kind):
        events[(step, block, kind)] = events.get((step, block, kind), 0) + 1

    def found_spy(plan, run, call, x, block):
        count(call.step, block, "found")
        return real_found(plan, run, call, x, block)

    def take_spy(plan, call, x, y, block, src, gives="qkv"):
        count(call.step, block, "match")
        events.setdefault("src", {})[(call.step, block)] = src.clone()
        return real_take(plan, call, x, y, block, src, gives)

    def struct_spy(call, x, y, block, gives="qkv"):
        count(call.step, block, "struct")
        return real_struct(call, x, y, block, gives)

    monkeypatch.setattr(dit, "match_sources", found_spy)
    monkeypatch.setattr(dit, "take_matches", take_spy)
    monkeypatch.setattr(dit, "inject_structure", struct_spy)
    return events


def test_flux_is_recognised_with_its_blocks(flux):
    families = pack_module("engine.models.families")
    variant = pack_module("engine.models.variant")
    layers = pack_module("engine.models.layers")
    fam = families.family_of(flux)
    assert fam.key == "flux" and variant.prediction_type(flux) == "flow"
    blocks = pack_module("engine.models.blocks").attention_blocks(fam, flux.model.diffusion_model)
    assert blocks == {("double", i) for i in range(3)} | {("single", i) for i in range(4)}
    # Stable Flow's vital layers (double 0, 1, 17, 18; single 6, 9, 34, 35, 37 of 19 + 38) at this depth
    assert layers.resolve_layers("auto", "", fam, blocks) == [("double", 0), ("double", 2), ("single", 0),
                                                             ("single", 3)]
    full = {("double", i) for i in range(19)} | {("single", i) for i in range(38)}
    assert sorted(layers.resolve_layers("auto", "", fam, full)) == sorted(
        [("double", i) for i in (0, 1, 17, 18)] + [("single", i) for i in (6, 9, 34, 35, 37)])
    assert layers.parse_layers("double.0-1, single.34") == [("double", 0), ("double", 1), ("single", 34)]


def test_flux_inversion_and_strength_zero_give_back_the_target(flux, flux_pair):
    target = flux_pair["target"]
    assert target.flow and target.latents.shape[2] == 16
    off = kit.patch(flux, target, flux_pair["reference"], strength=0.0)
    out = kit.sample(off, flux_pair["c"], cfg=1.0, ending="exact")
    assert (out - flux_pair["tgt_lat"]).abs().max() <= 1e-4


def test_flux_matches_at_exactly_the_chosen_blocks_and_steps(flux, flux_pair, monkeypatch):
    """match_block 'each layer': every rewritten block matches on its own features (before the matching block)."""
    ev = record_dit_events(monkeypatch)
    patched = kit.patch(flux, flux_pair["target"], flux_pair["reference"], layers="custom",
                        custom_layers="double.1, single.2", match_block="each layer")
    out = kit.sample(patched, flux_pair["c"], cfg=1.0)
    state = kit.plan(patched)
    steps = state.target.steps
    match = {g for g in range(SKIP, steps) if state.phase(g) == "match"}
    struct = {g for g in range(SKIP, steps) if state.phase(g) == "struct"}
    assert match and struct
    blocks = {("double", 1), ("single", 2)}
    assert set(ev.get("src") or {}) == {(s, b) for s in match for b in blocks}
    assert {(s, b) for (s, b, k) in _events(ev) if k == "found"} == {(s, b) for s in match for b in blocks}
    # no negative branch at cfg 1: structure still acts (the target's queries and keys)
    assert {(s, b) for (s, b, k) in _events(ev) if k == "struct"} == {(s, b) for s in struct for b in blocks}
    assert all(v == 1 for v in _events(ev).values())
    assert torch.isfinite(out).all() and (out - flux_pair["tgt_lat"]).abs().mean() > 1e-3
    net = flux.model.diffusion_model  # the temporary projection hooks are gone after each block
    assert not net.double_blocks[1].img_attn.qkv._forward_hooks and not net.single_blocks[2].linear1._forward_hooks


def test_flux_finds_each_steps_correspondence_once_at_the_matching_block(flux, flux_pair, monkeypatch):
    """match_block (default: the block at half the depth, single.0 of this 3 + 4 block model): the correspondence
    is found there once per matched step and every rewritten block takes it; a block that runs before the matching
    block takes the last matched step's (none at the first)."""
    ev = record_dit_events(monkeypatch)
    patched = kit.patch(flux, flux_pair["target"], flux_pair["reference"], layers="custom",
                        custom_layers="double.1, single.2")
    kit.sample(patched, flux_pair["c"], cfg=1.0)
    plan = kit.plan(patched)
    assert plan.settings.match_block == ("single", 0)
    match = sorted(g for g in range(SKIP, plan.target.steps) if plan.phase(g) == "match")
    events = _events(ev)
    assert {(s, b) for (s, b, k) in events if k == "found"} == {(s, ("single", 0)) for s in match}
    taken = ev["src"]
    assert {s for (s, b) in taken if b == ("single", 2)} == set(match)
    assert {s for (s, b) in taken if b == ("double", 1)} == set(match[1:])  # before the matching block
    found = {}  # the matching block's correspondence per step, as the other blocks received it
    for s in match:
        found[s] = taken[(s, ("single", 2))]
        if s != match[0]:
            last = max(t for t in match if t < s)
            assert torch.equal(taken[(s, ("double", 1))], found[last])
    assert not torch.equal(found[match[0]], found[match[-1]])  # recomputed at every step


def test_the_matching_block_is_checked_by_name(flux, flux_pair, sd15):
    with pytest.raises(ValueError, match=r"match_block: 'single.9' is not a block of this Flux.1 model; its blocks "
                                         r"are double.0-2, single.0-3"):
        kit.patch(flux, flux_pair["target"], flux_pair["reference"], match_block="single.9")
    with pytest.raises(ValueError, match=r"match_block: 'nine' is not 'auto', 'each layer' or one block"):
        kit.patch(flux, flux_pair["target"], flux_pair["reference"], match_block="nine")
    c = kit.conds()
    target, reference = kit.invert(sd15, kit.latent(1), c), kit.invert(sd15, kit.latent(2), c, seed=1)
    with pytest.raises(ValueError, match=r"match_block: 'output.6': a UNet \(SD1.x\) matches at every rewritten "
                                         r"layer on its own features"):
        kit.patch(sd15, target, reference, match_block="output.6")


def _events(ev: dict) -> dict:
    return {k: v for k, v in ev.items() if k != "src"}


def test_flux_structure_can_be_switched_off(flux, flux_pair, monkeypatch):
    ev = record_dit_events(monkeypatch)
    kit.sample(kit.patch(flux, flux_pair["target"], flux_pair["reference"], structure_every=0), flux_pair["c"],
               cfg=1.0)
    assert {k for (*_, k) in _events(ev)} == {"found", "match"}


def test_flux_with_cfg_and_masks(flux, flux_pair):
    left, right = kit.half_masks(128)
    m = kit.masks(left, left)
    patched = kit.patch(flux, flux_pair["target"], flux_pair["reference"], masks=m)
    out, run = kit.sample_run(patched, flux_pair["c"], cfg=2.0)
    assert torch.isfinite(out).all()
    corr = run.correspondence
    h, w = corr.grid
    assert (h, w) == (8, 8)
    src = corr.src[0].view(h, w)
    assert (src[:, : w // 2] >= 0).all() and (src[:, w // 2:] == -1).all()  # only the left half is matched
    assert (src[:, : w // 2] % w < w // 2).all()  # ... to the reference's left half


def test_the_input_model_is_never_touched(flux, flux_pair):
    import comfy.sample

    pos, neg = flux_pair["c"]
    noise = torch.randn(1, 16, 16, 16, generator=torch.Generator().manual_seed(3))

    def plain():
        return comfy.sample.sample(flux, noise, 4, 1.0, "euler", "simple", pos, neg, torch.zeros_like(noise), seed=0,
                                   disable_pbar=True)

    before = plain()
    options = repr(flux.model_options)
    kit.sample(kit.patch(flux, flux_pair["target"], flux_pair["reference"]), flux_pair["c"], cfg=1.0)
    assert torch.equal(plain(), before) and repr(flux.model_options) == options


def test_dit_injection_leaves_text_tokens_and_the_mlp_alone():
    """Unit check of the Q/K/V rewrite in a Flux single block: [text | image] tokens, [q k v | mlp] outputs."""
    from types import MappingProxyType

    dit = pack_module("engine.patch.dit")
    plan_mod = pack_module("engine.patch.plan")
    rows = pack_module("engine.patch.call")
    inversion = pack_module("inversion")
    matching = pack_module("matching")
    fp = inversion.ModelFingerprint("flux", "flow", "Flux", 0)
    inv = inversion.Inversion(method="ddim", sigmas=torch.linspace(1, 0, 5), latents=torch.zeros(5, 1, 16, 4, 4),
                              residuals=None, start_step=0, eta=0.0, cfg=1.0, fingerprint=fp, flow=True)
    whole = matching.ObjectMasks.whole_image()
    tokens = (matching.mask_to_tokens(whole.target, 2, 2), matching.mask_to_tokens(whole.reference, 2, 2))
    plan = plan_mod.TransferPlan(
        target=inv, masks=whole, ref_ids=(0,), settings=plan_mod.Settings(layers=(("single", 0),)),
        family=pack_module("engine.models.families").FAMILIES["flux"], fingerprint=fp,
        token_maps=MappingProxyType({("single", 0): (2, 2)}), phases=MappingProxyType({}),
        tensors=plan_mod.PlanTensors(inv.latents, inv.latents, MappingProxyType({(2, 2): tokens})), patch_size=2)
    run = pack_module("engine.patch.run").TransferRun(plan)
    d, txt, n = 8, 3, 4  # hidden 8, 3 text tokens, a 2x2 token grid
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, txt + n, d, generator=g)  # rows: out, reference, structure
    y = torch.randn(3, txt + n, 3 * d + 16, generator=g)  # q, k, v and a 16-wide MLP part
    call = rows.CallLayout(step=2, match=True, struct=False, cond_rows=torch.tensor([0]),
                                ref_rows=torch.tensor([1]), grid=(2, 2), context_len=txt)
    new = y.clone()
    dit.take_matches(plan, call, x, new, ("single", 0), dit.match_sources(plan, run, call, x, ("single", 0)))
    assert torch.equal(new[:, :txt], y[:, :txt]) and torch.equal(new[:, :, 3 * d:], y[:, :, 3 * d:])
    assert torch.equal(new[1:], y[1:])  # the reference row is read, never written
    out, ref = dit.matching_features(x[:1, txt:], x[1:2, txt:])  # the DiT's matching features (centred)
    src = matching.match_tokens(out[0], ref[0])
    assert torch.equal(new[0, txt:, : 3 * d], y[1, txt:, : 3 * d][src])
    struct = rows.CallLayout(step=2, match=False, struct=True, struct_targets=torch.tensor([0, 1]),
                                  struct_rows=torch.tensor([2, 2]), grid=(2, 2), context_len=txt)
    new = y.clone()
    dit.inject_structure(struct, x, new, ("single", 0))
    assert torch.equal(new[:2, txt:, : 2 * d], y[2:, txt:, : 2 * d].expand(2, -1, -1))  # queries and keys: target's
    assert torch.equal(new[:, :, 2 * d:], y[:, :, 2 * d:]) and torch.equal(new[:, :txt], y[:, :txt])  # values kept


def test_flux_schnell_and_ddim_inversion():
    schnell = tiny_models.build_flux(schnell=True, seed=1)
    c = tiny_models.flux_conds()
    tgt = _latent(3)
    target = _invert(schnell, tgt, c, method="ddim")
    reference = _invert(schnell, _latent(4), c)
    assert pack_module("engine.models.families").family_of(schnell).key == "flux"
    out = kit.sample(kit.patch(schnell, target, reference), c, cfg=1.0)
    assert torch.isfinite(out).all()


def test_sd3_joint_blocks():
    sd3 = tiny_models.build_sd3()
    c = tiny_models.sd3_conds()
    tgt = _latent(5)
    target, reference = _invert(sd3, tgt, c, cfg=2.0), _invert(sd3, _latent(6), c, cfg=2.0)
    assert pack_module("engine.models.families").family_of(sd3).key == "sd3"
    off = kit.sample(kit.patch(sd3, target, reference, strength=0.0), c, cfg=2.0, ending="exact")
    assert (off - tgt).abs().max() <= 1e-4
    patched = kit.patch(sd3, target, reference)
    assert kit.plan(patched).settings.layers == (("double", 2), ("double", 3))
    out = kit.sample(patched, c, cfg=2.0)
    assert torch.isfinite(out).all() and (out - tgt).abs().mean() > 1e-3


def test_bad_inputs_are_refused_by_name(flux, flux_pair, sd15):
    pos, neg = flux_pair["c"]
    invert = pack_module("engine.backends.invert").invert
    with pytest.raises(ValueError, match="latent: 4 channels, but this flux model works on 16-channel latents"):
        invert(flux, pos, neg, torch.randn(1, 4, 16, 16), STEPS, 1.0, "ddpm_edit_friendly", SKIP)
    unet_inv = kit.invert(sd15, kit.latent(1), kit.conds())
    with pytest.raises(ValueError, match="target: inverted with another model"):
        kit.patch(flux, unet_inv, flux_pair["reference"])
    with pytest.raises(ValueError, match="layers: double.7 has no self-attention in this flux model.*double.0-2"):
        kit.patch(flux, flux_pair["target"], flux_pair["reference"], layers="custom", custom_layers="double.7")
    with pytest.raises(ValueError, match="model: the authors' FreeU changes a UNet decoder"):
        pack_module("engine.backends.freeu").apply_authors_freeu(flux, 1.2, 1.4, 0.9, 0.2)


def test_flux_stock_ksampler_advanced_path(flux, flux_pair):
    """A ddim-inverted target: the node's start_latent in KSamplerAdvanced (no noise, from skip_steps, same steps and
    scheduler, euler) follows the same deterministic path as the pack's own loop."""
    import comfy.sample

    node = pack_module("nodes.ddim_invert_reference").DDIMInvertReference()
    pos, neg = flux_pair["c"]
    inv, start = node.run(flux, pos, {"samples": flux_pair["tgt_lat"]}, STEPS, SKIP, 1.0, "ddim", "simple", 0,
                          negative=neg)
    stock = comfy.sample.sample(flux, torch.zeros_like(start["samples"]), STEPS, 1.0, "euler", "simple", pos, neg,
                                start["samples"], disable_noise=True, start_step=SKIP, last_step=10000,
                                force_full_denoise=True, seed=0, disable_pbar=True)
    off = kit.patch(flux, inv, flux_pair["reference"], strength=0.0)
    ours = kit.sample(off, flux_pair["c"], cfg=1.0)
    torch.testing.assert_close(stock, ours, atol=1e-4, rtol=1e-4)
