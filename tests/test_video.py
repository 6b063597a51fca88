"""Video (Wan 2.1 / 2.2 text-to-video) and Qwen-Image through ComfyUI's own model classes and sampler: the target is
a video latent ``[B, 16, T, H, W]``, the reference an image or a video, and every frame's object tokens take the
Q/K/V of their matched reference tokens."""

from __future__ import annotations

import pytest
import tiny_models
import torch
import transfer_kit as kit
from harness import pack_module

STEPS, SKIP = 8, 2
FRAMES = 3  # latent frames: a 9-frame video (Wan packs 4 frames into each latent frame after the first)
SIZE = 8  # latent side: a 64 px video


def _video(seed: int, frames: int = FRAMES, size: int = SIZE, channels: int = 16) -> torch.Tensor:
    """A smooth random clip whose frames differ a little (a slowly changing scene)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, channels, size // 2, size // 2, generator=g)
    still = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return still[:, :, None].repeat(1, 1, frames, 1, 1) + 0.3 * torch.randn(1, channels, frames, size, size,
                                                                             generator=g)


def _invert(model, lat, conds, method="ddpm_edit_friendly"):
    return kit.invert(model, lat, conds, method=method, cfg=1.0, steps=STEPS, skip=SKIP, scheduler="simple")


@pytest.fixture(scope="module")
def wan():
    return tiny_models.build_wan()


@pytest.fixture(scope="module")
def clip(wan):
    c = tiny_models.wan_conds()
    tgt = _video(1)
    return dict(c=c, tgt_lat=tgt, target=_invert(wan, tgt, c), reference=_invert(wan, _video(2, frames=1), c))


def record_events(monkeypatch) -> dict:
    """``(step, block, kind) -> count``: matches found (once per block call) and structure injections (once per
    Q and K layer)."""
    dit = pack_module("engine.patch.dit")
    events: dict = {}
    real_match, real_struct = dit.match_sources, dit.inject_structure

    def count(step, block, kind):
        events[(step, block, kind)] = events.get((step, block, kind), 0) + 1

    def match_spy(plan, run, call, x, block):
        count(call.step, block, "match")
        src = real_match(plan, run, call, x, block)
        events.setdefault("src", []).append((call.frames, src))
        return src

    def struct_spy(call, x, y, block, gives="qkv"):
        count(call.step, block, "struct")
        return real_struct(call, x, y, block, gives)

    real_take = dit.take_matches

    def take_spy(plan, call, x, y, block, src, gives="qkv"):
        events.setdefault("taken", []).append((call.step, block, gives))
        return real_take(plan, call, x, y, block, src, gives)

    monkeypatch.setattr(dit, "match_sources", match_spy)
    monkeypatch.setattr(dit, "inject_structure", struct_spy)
    monkeypatch.setattr(dit, "take_matches", take_spy)
    return events


def _left_masks(frames_px: int, size: int = SIZE * 8, moving: bool = True):
    """Per-frame target masks of one object (a bar that moves from the left to the right edge), the reference's
    left half."""
    out = torch.zeros(frames_px, size, size)
    for f in range(frames_px):
        x0 = round(f * (size // 2) / max(1, frames_px - 1)) if moving else 0
        out[f, :, x0:x0 + size // 2] = 1
    left = torch.zeros(1, size, size)
    left[..., : size // 2] = 1
    return out, left


# ------------------------------------------------------------------------------------------------------ Wan


def test_wan_is_recognised_with_its_blocks_and_the_5b_layout():
    families, layers = pack_module("engine.models.families"), pack_module("engine.models.layers")
    variant, blocks_of = pack_module("engine.models.variant"), pack_module("engine.models.blocks").attention_blocks
    wan = tiny_models.build_wan(depth=6)
    fam = families.family_of(wan)
    assert fam.key == "wan" and variant.prediction_type(wan) == "flow"
    blocks = blocks_of(fam, wan.model.diffusion_model)
    assert blocks == {("double", i) for i in range(6)}
    assert layers.resolve_layers("auto", "", fam, blocks) == [("double", i) for i in (3, 4, 5)]
    wan22 = tiny_models.build_wan(channels=48)
    assert families.family_of(wan22).key == "wan" and families.latent_channels(fam, wan22.model.diffusion_model) == 48
    c = tiny_models.wan_conds()  # the 5B layout's 48-channel video: transfers, and gives itself back at strength 0
    clip48 = _video(11, frames=2, channels=48)
    target, reference = _invert(wan22, clip48, c), _invert(wan22, _video(12, frames=1, channels=48), c)
    out = kit.sample(kit.patch(wan22, target, reference, strength=0.0), c, cfg=1.0, ending="exact")
    assert out.shape == clip48.shape and (out - clip48).abs().max() <= 1e-4
    assert torch.isfinite(kit.sample(kit.patch(wan22, target, reference), c, cfg=2.0)).all()


def test_wan_video_inversion_and_strength_zero_give_back_the_video(wan, clip):
    target = clip["target"]
    assert target.flow and tuple(target.latents.shape[2:]) == (16, FRAMES, SIZE, SIZE)
    out = kit.sample(kit.patch(wan, target, clip["reference"], strength=0.0), clip["c"], cfg=1.0, ending="exact")
    assert out.shape == clip["tgt_lat"].shape and (out - clip["tgt_lat"]).abs().max() <= 1e-4


def test_wan_euler_inversion_of_a_video(wan, clip):
    """The deterministic (Euler) inversion runs on a video, and with nothing transferred comes back nearer to it
    than to another clip (not exactly: deterministic inversion of a random model drifts)."""
    inv = _invert(wan, clip["tgt_lat"], clip["c"], method="ddim")
    assert inv.residuals is None and tuple(inv.latents.shape[2:]) == (16, FRAMES, SIZE, SIZE)
    out = kit.sample(kit.patch(wan, inv, clip["reference"], strength=0.0), clip["c"], cfg=1.0)
    own, other = (out - clip["tgt_lat"]).abs().mean(), (out - _video(9)).abs().mean()
    assert torch.isfinite(out).all() and own < 0.6 * other


def test_wan_matches_every_frame_at_exactly_the_chosen_blocks_and_steps(wan, clip, monkeypatch):
    """match_block 'each layer': every rewritten block matches every frame on its own features."""
    ev = record_events(monkeypatch)
    patched = kit.patch(wan, clip["target"], clip["reference"], layers="custom", custom_layers="double.1, double.3",
                        match_block="each layer")
    out = kit.sample(patched, clip["c"], cfg=2.0)
    plan = kit.plan(patched)
    match = {g for g in range(SKIP, STEPS) if plan.phase(g) == "match"}
    struct = {g for g in range(SKIP, STEPS) if plan.phase(g) == "struct"}
    assert match and struct
    blocks = {("double", 1), ("double", 3)}
    srcs, taken = ev.pop("src"), ev.pop("taken")
    assert {(s, b) for (s, b, k) in ev if k == "match"} == {(s, b) for s in match for b in blocks}
    # each match goes into the Q, the K and the V layer of its block, once each
    assert sorted(taken) == sorted((s, b, g) for s in match for b in blocks for g in "qkv")
    assert {(s, b) for (s, b, k) in ev if k == "struct"} == {(s, b) for s in struct for b in blocks}
    assert all(v == (1 if k == "match" else 2) for (_, _, k), v in ev.items())  # struct: the Q and K layers
    # every frame's tokens were matched (whole images: every token of every frame), into the reference's tokens
    n = (SIZE // 2) ** 2
    for frames, src in srcs:
        assert frames == FRAMES and src.shape == (1, FRAMES * n) and (src >= 0).all() and (src < FRAMES * n).all()
    assert torch.isfinite(out).all() and (out - clip["tgt_lat"]).abs().mean() > 1e-3
    net = wan.model.diffusion_model  # the projection hooks are gone after each block
    assert not any(m._forward_hooks for i in (1, 3) for m in (net.blocks[i].self_attn.q, net.blocks[i].self_attn.k,
                                                            net.blocks[i].self_attn.v))


def test_wan_per_frame_matching_stays_in_each_frame(wan, clip, monkeypatch):
    """Per frame: frame f's tokens take tokens of frame f of the reference rows; anchor frame: of the first."""
    for mode, same_frame in (("per frame", True), ("anchor frame", False)):
        patched = kit.patch(wan, clip["target"], clip["reference"], video_matching=mode, layers="custom",
                            custom_layers="double.3")
        ev = record_events(monkeypatch)
        kit.sample(patched, clip["c"], cfg=1.0)
        monkeypatch.undo()
        n = (SIZE // 2) ** 2
        frame_of_token = torch.arange(FRAMES * n) // n
        for _, src in ev["src"]:
            frame_of_match = (src[0] % (FRAMES * n)) // n
            assert torch.equal(frame_of_match, frame_of_token if same_frame else torch.zeros_like(frame_of_token))


def test_wan_two_references_an_image_and_a_video(wan, clip, monkeypatch):
    """Object 1 (the left half) from a reference image, object 2 (the right half) from a reference video of the
    clip's length: every frame's tokens go to their own object's reference, per frame to that reference's frame."""
    video_ref = _invert(wan, _video(13), clip["c"])
    size = SIZE * 8
    left = torch.zeros(size, size)
    left[:, : size // 2] = 1
    two = kit.masks(torch.stack([left, 1 - left]), torch.stack([left, 1 - left]), "1,2")
    ev = record_events(monkeypatch)
    kit.sample(kit.patch(wan, clip["target"], clip["reference"], masks=two, extra_refs=[video_ref], layers="custom",
                         custom_layers="double.3"), clip["c"], cfg=1.0)
    h = w = SIZE // 2
    n = h * w
    for _, src in ev["src"]:
        tokens = src[0].view(FRAMES, h, w)
        ref_of = tokens // (FRAMES * n)
        assert (ref_of[..., : w // 2] == 0).all() and (ref_of[..., w // 2:] == 1).all()
        frame = (tokens % (FRAMES * n)) // n
        assert torch.equal(frame, torch.arange(FRAMES).view(FRAMES, 1, 1).expand(-1, h, w))


def test_wan_input_model_untouched_and_patch_gone_when_bypassed(wan, clip):
    import comfy.sample

    pos, neg = clip["c"]
    noise = torch.randn(1, 16, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(3))

    def plain():
        return comfy.sample.sample(wan, noise, 3, 2.0, "euler", "simple", pos, neg, torch.zeros_like(noise), seed=0,
                                   disable_pbar=True)

    before, options = plain(), repr(wan.model_options)
    kit.sample(kit.patch(wan, clip["target"], clip["reference"]), clip["c"], cfg=2.0)
    assert torch.equal(plain(), before) and repr(wan.model_options) == options


def test_wan_masks_per_frame_and_for_all_frames(wan, clip):
    frames_px = 4 * (FRAMES - 1) + 1
    per_frame, left = _left_masks(frames_px)
    got = kit.masks(per_frame, left)
    assert got.frames == frames_px and "per frame" in got.describe()
    n = (SIZE // 2) ** 2
    w = SIZE // 2
    _, run = kit.sample_run(kit.patch(wan, clip["target"], clip["reference"], masks=got, layers="custom",
                                      custom_layers="double.3"), clip["c"], cfg=1.0)
    plan_masks = run.token_masks((SIZE // 2, SIZE // 2), "cpu")[0].view(FRAMES, SIZE // 2, w)
    # latent frame 0 = video frame 0 (the bar at the left); the last latent frame holds frames 5..8 (their union)
    assert plan_masks[0, :, : w // 2].all() and not plan_masks[0, :, w // 2:].any()
    assert plan_masks[-1, :, w // 4:].all()
    src = run.correspondence.src[0].view(SIZE // 2, w)  # the picture: the first frame
    assert (src[:, : w // 2] >= 0).all() and (src[:, w // 2:] == -1).all() and (src[:, : w // 2] % w < w // 2).all()
    # one mask for all frames
    one = kit.masks(per_frame[:1], left)
    assert one.frames is None and "all frames" in one.describe()
    _, run = kit.sample_run(kit.patch(wan, clip["target"], clip["reference"], masks=one), clip["c"], cfg=1.0)
    tokens = run.token_masks((SIZE // 2, SIZE // 2), "cpu")[0].view(FRAMES, n)
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[1], tokens[2])


def test_wan_bad_inputs_are_refused_by_name(wan, clip):
    import comfy.sample

    frames_px = 4 * (FRAMES - 1) + 1
    per_frame, left = _left_masks(frames_px)
    with pytest.raises(ValueError, match="target_mask: 5 masks per object.*9 frames, 3 latent frames"):
        kit.patch(wan, clip["target"], clip["reference"], masks=kit.masks(per_frame[:5], left))
    two = _invert(wan, _video(5, frames=2), clip["c"])
    with pytest.raises(ValueError, match="reference: a video of 2 latent frames, the target has 3"):
        kit.patch(wan, clip["target"], two)
    qwen = tiny_models.build_qwen_image()
    image = _invert(qwen, _video(6, frames=1)[:, :, 0], tiny_models.qwen_conds())
    with pytest.raises(ValueError, match="target: inverted with another model"):
        kit.patch(wan, image, clip["reference"])
    anchor_masks = per_frame.clone()
    anchor_masks[:4] = 0  # the object enters after the first latent frame
    with pytest.raises(ValueError, match="target_mask: object.*not on the first frame"):
        kit.patch(wan, clip["target"], clip["reference"], masks=kit.masks(anchor_masks, left),
                  video_matching="anchor frame")
    patched = kit.patch(wan, clip["target"], clip["reference"])
    pos, neg = clip["c"]
    # an image latent: KSampler samples it as a one-frame video (as common_ksampler does)
    four_d = comfy.sample.fix_empty_latent_channels(patched, torch.randn(1, 16, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"latent: the sampler's latent has 1 frame\(s\).*inversion has 3"):
        comfy.sample.sample(patched, torch.zeros_like(four_d), STEPS, 1.0, "euler", "simple", pos, neg, four_d,
                            denoise=0.7, disable_pbar=True)
    with pytest.raises(ValueError, match="video_matching"):
        kit.patch(wan, clip["target"], clip["reference"], video_matching="every other frame")


# ----------------------------------------------------------------------------------------------- Qwen-Image


@pytest.fixture(scope="module")
def qwen():
    return tiny_models.build_qwen_image()


def test_qwen_image_transfer(qwen, monkeypatch):
    families, layers = pack_module("engine.models.families"), pack_module("engine.models.layers")
    fam = families.family_of(qwen)
    assert fam.key == "qwen_image" and pack_module("engine.models.variant").prediction_type(qwen) == "flow"
    blocks = pack_module("engine.models.blocks").attention_blocks(fam, qwen.model.diffusion_model)
    assert layers.resolve_layers("auto", "", fam, blocks) == [("double", 2), ("double", 3)]
    c = tiny_models.qwen_conds()
    tgt = _video(7, frames=1)[:, :, 0]  # an image latent, as VAE Encode gives it; ComfyUI samples it as [B, 16, 1, H, W]
    target, reference = _invert(qwen, tgt, c), _invert(qwen, _video(8, frames=1)[:, :, 0], c)
    out = kit.sample(kit.patch(qwen, target, reference, strength=0.0), c, cfg=1.0, ending="exact")
    assert (out[:, :, 0] - tgt).abs().max() <= 1e-4
    ev = record_events(monkeypatch)
    left = torch.zeros(1, SIZE * 8, SIZE * 8)
    left[..., : SIZE * 4] = 1
    out, run = kit.sample_run(kit.patch(qwen, target, reference, masks=kit.masks(left, left)), c, cfg=2.0)
    ev.pop("src"), ev.pop("taken")
    # two target masks, one reference mask, an image target: the likely mistake is a missing reference mask, said
    # first and by name; giving it (two objects, each with its reference mask) is then accepted
    two = torch.cat([left, 1 - left])
    with pytest.raises(ValueError, match=r"reference_mask: 2 target masks but 1 reference mask\(s\), and the target "
                                         r"is an image: give one reference mask per object"):
        kit.patch(qwen, target, reference, masks=kit.masks(two, left))
    kit.patch(qwen, target, reference, masks=kit.masks(two, two))
    assert {b for (_, b, _) in ev} == {("double", 2), ("double", 3)} and torch.isfinite(out).all()
    src = run.correspondence.src[0].view(SIZE // 2, SIZE // 2)
    assert (src[:, :2] >= 0).all() and (src[:, 2:] == -1).all() and (src[:, :2] % 4 < 2).all()
    attn = qwen.model.diffusion_model.transformer_blocks[3].attn
    assert not (attn.to_q._forward_hooks or attn.to_k._forward_hooks or attn.to_v._forward_hooks)


def test_a_still_clip_stays_still(wan):
    """A clip whose frames are all the same: the transfer's output changes little from frame to frame, because the
    edit-friendly inversion draws one noise for all frames (noise drawn per frame, the old default, made it flicker:
    bench/bench_video.py --only still)."""
    inversion = pack_module("inversion")
    c = tiny_models.wan_conds()
    still = _video(21, frames=1).expand(-1, -1, FRAMES, -1, -1).contiguous()
    reference = _invert(wan, _video(22, frames=1), c)

    def flicker(noise):
        pos, neg = c
        target = pack_module("engine.backends.invert").invert(wan, pos, neg, still, STEPS, 1.0, "ddpm_edit_friendly",
                                                              SKIP, scheduler="simple", noise=noise)
        out = kit.sample(kit.patch(wan, target, reference, video_matching="anchor frame"), c, cfg=2.0)
        return float((out[:, :, 1:] - out[:, :, :-1]).abs().mean()), float((out - still).abs().mean())

    shared, shared_change = flicker(inversion.frame_shared_noise)
    per_frame, _ = flicker(inversion.independent_noise)
    print(f"mean frame-to-frame change: {shared:.4f} (noise shared by the frames) against {per_frame:.4f} (noise per "
          f"frame); the transfer's own change {shared_change:.3f}")
    assert shared <= 0.25 * per_frame and shared <= 0.2 * shared_change
    target = _invert(wan, still, c)  # the node's default: the frames share the noise
    assert target.latents.shape[3] == FRAMES
    assert torch.equal(target.latents[1, :, :, 0], target.latents[1, :, :, 1])  # one noisy trajectory for every frame


def test_wan_hints_steer_every_frame(wan, clip, monkeypatch):
    """Correspondence hints on a video: the hinted target spot takes the hinted reference spot in every frame (of
    that frame's reference rows, per frame), the prior changes the other matches, and hint_strength 0 gives the
    plain matches exactly."""
    hints = pack_module("matching.hints")
    h = w = SIZE // 2
    n = h * w
    text = "0.1,0.1 > 0.9,0.9"

    def sources(**settings):
        patched = kit.patch(wan, clip["target"], clip["reference"], layers="custom", custom_layers="double.3",
                            **settings)
        ev = record_events(monkeypatch)
        kit.sample(patched, clip["c"], cfg=1.0)
        monkeypatch.undo()
        return [src[0] for _, src in ev["src"]]

    plain, hinted, off = sources(), sources(hints=text), sources(hints=text, hint_strength=0.0)
    assert plain and len(plain) == len(hinted) == len(off)
    t, r = hints.token_of((0.1, 0.1), h, w), hints.token_of((0.9, 0.9), h, w)
    for src in hinted:
        assert [int(src[f * n + t]) for f in range(FRAMES)] == [f * n + r for f in range(FRAMES)]
    assert all(torch.equal(a, b) for a, b in zip(plain, off))
    assert any(int(a[f * n + t]) != f * n + r for a in plain for f in range(FRAMES))  # not so without hints
    assert any(not torch.equal(a, b) for a, b in zip(plain, hinted))
