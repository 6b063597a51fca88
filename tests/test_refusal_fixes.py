"""Every refusal that gives a fix is tested by applying the fix.

Each test makes the pack refuse an input through its public nodes (E4ELoadMasks, E4EDDIMInvertReference,
E4ESemanticMatchPatch, E4EAppearanceTransferSampler, E4EAuthorsFreeU; the stock-sampler path through ComfyUI's own
KSamplerAdvanced), checks the message, then does exactly what the message says and checks that the result is
accepted (and, where cheap, that the output is finite).

The refusals whose message gives a fix the user can apply in ComfyUI (``file:line`` as of this file's writing):

| message starts | where | the fix it gives | test |
|---|---|---|---|
| custom_layers: '…' is not like 'output.6', 'output.6-11' or 'single.34-37' | engine/models/layers.py:97 | write the blocks in that form | test_patch_settings |
| custom_layers: empty; name at least one block | engine/models/layers.py:109 | name a block, e.g. 'output.6-11' | test_patch_settings |
| layers: '…' is not one of [...] | engine/models/layers.py:116 | one of the listed presets | test_patch_settings |
| layers: '…' is a preset for another family | engine/models/layers.py:123 | layers 'auto' | test_patch_settings |
| match_block: '…': a UNet (…) matches at every rewritten layer | engine/models/layers.py:150 | leave match_block at 'auto' | test_patch_settings |
| match_block: '…' is not 'auto', 'each layer' or one block | engine/models/layers.py:156 | 'auto', 'each layer' or one block like 'single.9' | test_dit_match_block |
| match_block: '…' is not a block of this … model; its blocks are … | engine/models/layers.py:160 | one of the blocks it lists | test_dit_match_block |
| model: this is a … model; Eye-for-an-eye appearance transfer supports … | engine/models/families.py:206 | load one of those checkpoints | test_models_the_transfer_cannot_use |
| model: this … model takes … input channels (an inpainting …) | engine/models/families.py:213 | the plain text-to-image checkpoint | test_models_the_transfer_cannot_use |
| model: its sampling type … is neither eps, v nor rectified flow | engine/models/variant.py:25 | no sampling patch of another kind | test_models_the_transfer_cannot_use |
| {input}: … is not a number; give a finite value | engine/backends/checks.py:14 | a finite value | test_non_finite_numbers |
| latent: the latent holds NaN or infinite values | engine/backends/checks.py:25 | VAE Encode in fp32 | test_inversion_latent |
| model: the authors' FreeU changes a UNet decoder | engine/backends/freeu.py:106 | bypass Authors' FreeU | test_authors_freeu_on_a_dit |
| model: this MODEL already has the authors' FreeU | engine/backends/freeu.py:109 | apply it once | test_authors_freeu_twice |
| method: '…' is not one of (…) | engine/backends/invert.py:39 | one of the methods | test_invert_settings |
| skip_steps: … must be lower than steps | engine/backends/invert.py:41 | skip_steps below steps | test_invert_settings |
| model: this MODEL comes from Semantic Match Patch | engine/backends/invert.py:47 | invert with the MODEL that goes into the patch | test_inverting_a_patched_model |
| latent: … channels, but this … model works on …-channel latents | engine/backends/invert.py:52 | VAE Encode with this model's VAE | test_inversion_latent |
| skip_steps: … must be below the … steps that … gives | engine/backends/invert.py:58 | skip_steps below the steps given | test_a_scheduler_that_gives_fewer_steps |
| {what}: the file name … holds a NUL character | engine/backends/mask_files.py:23 | a plain file name | test_mask_files |
| {what}: '…' is outside ComfyUI's input folder | engine/backends/mask_files.py:27 | put the file there, give its name | test_mask_files |
| {what}: file '…' not found | engine/backends/mask_files.py:29 | put it in ComfyUI's input folder | test_mask_files |
| reference_of_object: '…' is not a list of reference numbers | engine/backends/masks.py:22 | numbers like '1,2' | test_load_masks |
| {mask}: masks are WxH but {image} is WxH | engine/backends/masks.py:40 | resize them to the image (width/height) | test_load_masks |
| target_mask_file: give either target_mask or target_mask_file | engine/backends/masks.py:81 | one of the two | test_mask_files |
| reference_mask_file: give either reference_mask or … | engine/backends/masks.py:85 | one of the two | test_mask_files |
| {side}: masks were given for one side only | engine/backends/masks.py:92 | masks for both sides, or none | test_load_masks |
| model: this MODEL is not patched | engine/backends/sample.py:25 | connect Semantic Match Patch's MODEL output | test_sampler_model |
| model: the patch was made for another model | engine/backends/sample.py:27 | connect Semantic Match Patch's MODEL output | test_sampler_model |
| adain_start_percent: must be between 0 and 1 | engine/backends/sample.py:74 | a value in 0..1 | test_sampler_settings |
| ending: '…' is not one of (…) | engine/backends/sample.py:76 | one of the endings | test_sampler_settings |
| latent: batch of … but the target inversion holds … | engine/patch/call.py:75 | sample the batch that was inverted | test_stock_sampler_latent |
| latent: the sampler gives a video latent … but the patch was made for an image latent | engine/patch/call.py:92 | sample the start_latent | test_stock_sampler_latent |
| latent: the sampler's latent has … frame(s) | engine/patch/call.py:95 | sample the start_latent | test_stock_sampler_latent |
| latent: … channels, but the patched model and its inversions work on … | engine/patch/call.py:99 | sample the start_latent | test_stock_sampler_latent |
| latent: the sampler's latent is … but the inversions are … | engine/patch/call.py:102 | sample the start_latent | test_stock_sampler_latent |
| model: … changed after Semantic Match Patch | engine/patch/install.py:37 | that node before the inversions and the patch | test_model_sampling_after_the_patch |
| model: this MODEL already comes from a Semantic Match Patch | engine/patch/install.py:52 | patch the original MODEL once, reference_2 | test_patching_twice |
| video_matching: '…' is not one of [...] | engine/patch/plan.py:65 | one of the listed | test_patch_settings |
| start_percent/end_percent: need 0 <= start_percent <= end_percent <= 1 | engine/patch/plan.py:67 | ordered values | test_patch_settings |
| strength: must be between 0 and 1 | engine/patch/plan.py:69 | a value in 0..1 | test_patch_settings |
| structure_every: must be >= 0 | engine/patch/plan.py:71 | 0 or more | test_patch_settings |
| sampler: sigma … is far from every step of the inversion | engine/patch/plan.py:141 | steps=…, scheduler=…, start_at_step=…, or the pack's sampler | test_stock_sampler_schedule |
| {ref}: inverted with/without the authors' FreeU … | engine/patch/plan.py:192 | Authors' FreeU once before both inversions and the patch | test_authors_freeu_on_one_side |
| {ref}: inverted with another model variant | engine/patch/plan.py:198 | the same MODEL to DDIM Invert Reference and the patch | test_another_model_variant |
| {ref}: a video of … latent frames, the target has … | engine/patch/plan.py:206 | one image or a video of the target's length | test_wan_reference_of_another_length |
| {ref}: latent WxH differs from the target's WxH | engine/patch/plan.py:211 | ImageScale to the target's size before VAE Encode | test_reference_of_another_size |
| {ref}: inverted with … steps (…), the target with … | engine/patch/plan.py:216 | the same steps and scheduler | test_reference_with_another_schedule |
| {mask}: object(s) … cover no token of the … feature map | engine/patch/plan.py:255 | larger mask, higher resolution or other layers | test_a_mask_that_covers_no_token |
| target_mask: object(s) … are not on the first frame | engine/patch/plan.py:259 | 'per frame' or 'whole clip' | test_wan_object_not_on_the_anchor_frame |
| layers: … has no self-attention in this … model | engine/patch/plan.py:292 | one of the blocks it lists | test_layers_without_attention |
| hint_strength: must be between 0 and 10 | engine/patch/plan.py:310 | a value in 0..10 | test_patch_settings |
| negative: cfg > 1 needs a negative conditioning | nodes/ddim_invert_reference.py:62 | connect one, or cfg 1.0 | test_invert_settings |
| crop: '…' is not 'disabled' or 'center' | matching/object_masks.py:41 | one of the two | test_load_masks |
| reference_mask: … reference masks for … target masks | matching/object_masks.py:72 | one reference mask per target object | test_load_masks |
| {mask}: object(s) … are empty (all zero) | matching/object_masks.py:79 | draw the object, or remove that object's target and reference masks | test_load_masks |
| reference_of_object: … entries for … objects | matching/object_masks.py:83 | one per object | test_load_masks |
| reference_of_object: reference numbers start at 1 | matching/object_masks.py:87 | numbers from 1 | test_load_masks |
| reference_mask: … target masks but … reference mask(s), and the target is an image | matching/object_masks.py:132 | one reference mask per object | test_more_target_than_reference_masks |
| target_mask: … masks per object, but the target is … frames | matching/object_masks.py:136 | a mask per frame, per latent frame, or one | test_wan_masks_per_frame_of_another_count |
| reference_of_object: reference […] named but only … | matching/object_masks.py:144 | more references, or another reference_of_object | test_a_missing_reference |
| {which}_mask: mask of WxH does not fit the {which} image | matching/object_masks.py:159 | masks from the image, or Load Masks' width/height/crop | test_masks_of_another_aspect |

Left out (no fix to apply, or not reachable from the nodes): layers.py:104/106 (an empty or huge range, said but no
fix), families.py:150 (internal API), checks.py:23 and masks.py:31 and object_masks.py:13/17/67 (socket types
ComfyUI already enforces), mask_files.py:46/56 (an unreadable file, no names), object_masks.py:19 (NaN mask: "check
the node that made it"), plan.py:73/187/282/300 (internal types; a video into an image model, no fix given),
sources.py:40 (hints with another match source: only evaluations choose the source), unet.py:50 (unreachable:
call.py:102 refuses the same latent first). Not covered here: the refusals of the correspondence hints
(matching/hints.py), new when this file was written.
"""

from __future__ import annotations

import functools
import importlib
import re

import pytest
import tiny_models
import torch
import transfer_kit as kit
from harness import pack_module

STEPS, SKIP = 4, 1  # ddim_uniform gives 4 steps for 4: structure injection at step 1, matching at steps 2 and 3
SIZE = kit.SIZE  # latent side (a 128 px image)
PX = SIZE * 8


# ------------------------------------------------------------------------------------------------- helpers


@functools.cache
def pack(name: str):
    """A module of the pack (``harness.pack_module`` looks the pack up again at every call: a tenth of a second)."""
    return pack_module(name)


def node(name: str):
    return pack("nodes").NODE_CLASS_MAPPINGS[name]()


def comfy_nodes():
    """ComfyUI's own nodes.py (ImageScale, VAEEncode, KSamplerAdvanced)."""
    mod = importlib.import_module("nodes")
    assert hasattr(mod, "KSamplerAdvanced"), mod.__file__
    return mod


def invert(model, lat, conds, steps=STEPS, skip=SKIP, cfg=1.0, method="ddim", scheduler="ddim_uniform", seed=0):
    """DDIM Invert Reference: ``(inversion, start_latent)``."""
    pos, neg = conds
    return node("E4EDDIMInvertReference").run(model, pos, {"samples": lat}, steps, skip, cfg, method, scheduler, seed,
                                              negative=neg)


def patch(model, target, reference, masks=None, extra_refs=(), **settings):
    """Semantic Match Patch with transfer_kit's settings (``kit.patch``, through the cached node): the MODEL."""
    kw = dict(layers="auto", custom_layers="output.6-11", start_percent=0.15, end_percent=1.0, structure_every=5,
              structure_end_percent=0.59, strength=1.0)
    kw.update(settings)
    extra = {f"reference_{i + 2}": r for i, r in enumerate(extra_refs)}
    return node("E4ESemanticMatchPatch").patch(model, reference, target, masks=masks, **kw, **extra)["result"][0]


def sample(model, conds, cfg=1.0, **kw) -> torch.Tensor:
    """Appearance Transfer Sampler's output latent, checked finite."""
    pos, neg = conds
    out = node("E4EAppearanceTransferSampler").sample(model, pos, neg, cfg, kw.pop("adain", True),
                                                      kw.pop("adain_start_percent", 0.7), **kw)
    samples = out["result"][0]["samples"]
    assert torch.isfinite(samples).all()
    return samples


def load_masks(reference_of_object="", **kw):
    return node("E4ELoadMasks").load(reference_of_object, False, **kw)["result"][0]


def ksampler_advanced(model, conds, start: dict, steps, scheduler, start_at_step, sampler="ddim", cfg=1.0):
    """ComfyUI's KSamplerAdvanced as a transfer uses it: no added noise, from start_at_step to the end."""
    pos, neg = conds
    out = comfy_nodes().KSamplerAdvanced().sample(model, "disable", 0, steps, cfg, sampler, scheduler, pos, neg, start,
                                                  start_at_step, 10000, "disable")
    return out[0]["samples"]


def result(node_output):
    """The first output of a ComfyUI node, V1 (a tuple) or V3 (io.NodeOutput)."""
    return node_output.result[0] if hasattr(node_output, "result") else node_output[0]


def half(size=PX):
    left = torch.zeros(size, size)
    left[:, : size // 2] = 1
    return left, 1 - left


def freeu(model):
    authors = pack("engine.models.defaults")
    return node("E4EAuthorsFreeU").patch(model, authors.FREEU_B1, authors.FREEU_B2, authors.FREEU_S1,
                                         authors.FREEU_S2)[0]


@pytest.fixture(scope="module")
def sd(sd15):
    """Target and two references inverted on the tiny SD1.5 model (ddim, so the stock sampler may use them too)."""
    c = kit.conds()
    target, start = invert(sd15, kit.latent(1), c)
    return dict(c=c, target=target, start=start, reference=invert(sd15, kit.latent(2), c, seed=1)[0],
                reference_2=invert(sd15, kit.latent(3), c, seed=2)[0])


@pytest.fixture(scope="module")
def flux():
    model = tiny_models.build_flux()
    c = tiny_models.flux_conds()
    g = torch.Generator().manual_seed(4)
    target, start = invert(model, torch.randn(1, 16, SIZE, SIZE, generator=g), c, scheduler="simple")
    reference, _ = invert(model, torch.randn(1, 16, SIZE, SIZE, generator=g), c, scheduler="simple")
    return dict(model=model, c=c, target=target, start=start, reference=reference)


FRAMES, WAN_SIZE = 3, 8  # a 9-frame, 64 px clip: 3 latent frames of 8x8


def _video(seed: int, frames: int = FRAMES) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 16, WAN_SIZE // 2, WAN_SIZE // 2, generator=g)
    still = torch.nn.functional.interpolate(base, size=(WAN_SIZE, WAN_SIZE), mode="bilinear", align_corners=False)
    return still[:, :, None].repeat(1, 1, frames, 1, 1) + 0.3 * torch.randn(1, 16, frames, WAN_SIZE, WAN_SIZE,
                                                                             generator=g)


@pytest.fixture(scope="module")
def wan():
    model = tiny_models.build_wan()
    c = tiny_models.wan_conds()
    target, start = invert(model, _video(1), c, scheduler="simple")
    return dict(model=model, c=c, target=target, start=start,
                reference=invert(model, _video(2, frames=1), c, scheduler="simple")[0])


# ---------------------------------------------------------------------------------------------- Load Masks

L, R = half()
SMALL = torch.ones(PX // 2, PX // 2)
IMAGE = torch.rand(1, PX, PX, 3, generator=torch.Generator().manual_seed(0))
EMPTY = torch.zeros(PX, PX)

LOAD_MASKS_CASES = {
    # id: (refused inputs, message, the inputs with the message's fix applied)
    "reference_of_object_not_numbers": (
        dict(reference_of_object="a,b", target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R])),
        r"reference_of_object: 'a,b' is not a list of reference numbers like '1,2'",
        dict(reference_of_object="1,2", target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R]))),
    "reference_numbers_start_at_1": (
        dict(reference_of_object="0,1", target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R])),
        r"reference_of_object: reference numbers start at 1",
        dict(reference_of_object="1,2", target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R]))),
    "reference_of_object_entries": (
        dict(reference_of_object="1", target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R])),
        r"reference_of_object: 1 entries for 2 objects; give one per object",
        dict(reference_of_object="1,2", target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R]))),
    "target_side_only": (
        dict(target_mask=L), r"reference_mask: masks were given for one side only; give target and reference masks",
        dict(target_mask=L, reference_mask=L)),
    "reference_side_only": (
        dict(reference_mask=L), r"target_mask: masks were given for one side only",
        dict(target_mask=L, reference_mask=L)),
    "one_side_only_or_none": (
        dict(target_mask=L), r"masks were given for one side only.*\(or none for whole images\)", dict()),
    "reference_mask_count": (
        dict(target_mask=L, reference_mask=torch.stack([L, R])),
        r"reference_mask: 2 reference masks for 1 target masks; give one reference mask per target object",
        dict(target_mask=L, reference_mask=L)),
    "empty_object_drawn": (
        dict(target_mask=torch.stack([L, EMPTY]), reference_mask=torch.stack([L, R])),
        r"target_mask: object\(s\) \[2\] are empty \(all zero\); draw the object, or remove that object's target "
        r"and reference masks",
        dict(target_mask=torch.stack([L, R]), reference_mask=torch.stack([L, R]))),
    "empty_object_removed": (  # the object goes, with its reference mask (its pair)
        dict(target_mask=torch.stack([L, EMPTY]), reference_mask=torch.stack([L, R])),
        r"target_mask: object\(s\) \[2\] are empty .*remove that object's target and reference masks",
        dict(target_mask=L, reference_mask=L)),
    "masks_smaller_than_the_target_image": (
        dict(target_mask=SMALL, reference_mask=SMALL, target_image=IMAGE),
        r"target_mask: masks are 64x64 but target_image is 128x128; make the masks from that image \(or resize them",
        dict(target_mask=SMALL, reference_mask=SMALL, target_image=IMAGE, width=PX, height=PX)),
    "masks_smaller_than_the_reference_image": (
        dict(target_mask=SMALL, reference_mask=SMALL, reference_image=IMAGE),
        r"reference_mask: masks are 64x64 but reference_image is 128x128; make the masks from that image",
        dict(target_mask=SMALL, reference_mask=SMALL, reference_image=IMAGE, width=PX, height=PX)),
    "crop": (
        dict(target_mask=L, reference_mask=L, width=PX, height=PX, crop="middle"),
        r"crop: 'middle' is not 'disabled' or 'center'",
        dict(target_mask=L, reference_mask=L, width=PX, height=PX, crop="center")),
}


@pytest.mark.parametrize("case", list(LOAD_MASKS_CASES))
def test_load_masks(sd15, sd, case):
    """Load Masks' refusals; the fixed masks go through Semantic Match Patch with two references."""
    bad, message, fixed = LOAD_MASKS_CASES[case]
    with pytest.raises(ValueError, match=message):
        load_masks(**bad)
    masks = load_masks(**fixed)
    patch(sd15, sd["target"], sd["reference"], masks=masks, extra_refs=[sd["reference_2"]])


@pytest.fixture()
def input_dir(tmp_path, monkeypatch):
    import folder_paths
    import numpy as np
    from PIL import Image

    folder = tmp_path / "input"
    folder.mkdir()
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(folder))
    left = (np.asarray(L) * 255).astype(np.uint8)
    Image.fromarray(left).save(tmp_path / "outside.png")  # beside the input folder, not in it
    Image.fromarray(left).save(folder / "left.png")
    return folder


def test_mask_files(sd15, sd, input_dir):
    import shutil

    import numpy as np
    from PIL import Image

    with pytest.raises(ValueError, match=r"target_mask_file: the file name 'left\\x00.png' holds a NUL character; "
                                         r"give a plain file name"):
        load_masks(target_mask_file="left\0.png", reference_mask=L)
    load_masks(target_mask_file="left.png", reference_mask=L)

    with pytest.raises(ValueError, match=r"target_mask_file: '../outside.png' is outside ComfyUI's input folder; put "
                                         r"the file there and give its name"):
        load_masks(target_mask_file="../outside.png", reference_mask=L)
    shutil.copy(input_dir.parent / "outside.png", input_dir / "outside.png")
    load_masks(target_mask_file="outside.png", reference_mask=L)

    with pytest.raises(ValueError, match=r"reference_mask_file: file 'right.png' not found .*; put it in ComfyUI's "
                                         r"input folder"):
        load_masks(target_mask=R, reference_mask_file="right.png")
    Image.fromarray((np.asarray(R) * 255).astype(np.uint8)).save(input_dir / "right.png")
    masks = load_masks(target_mask=R, reference_mask_file="right.png")
    assert torch.allclose(masks.reference[0], R, atol=1 / 255)

    with pytest.raises(ValueError, match="target_mask_file: give either target_mask or target_mask_file, not both"):
        load_masks(target_mask=L, target_mask_file="left.png", reference_mask=L)
    with pytest.raises(ValueError, match="reference_mask_file: give either reference_mask or reference_mask_file, "
                                         "not both"):
        load_masks(target_mask=L, reference_mask=L, reference_mask_file="left.png")
    by_tensor = load_masks(target_mask=L, reference_mask=L)
    by_file = load_masks(target_mask_file="left.png", reference_mask_file="left.png")
    assert torch.equal(by_tensor.target, by_file.target) and torch.equal(by_tensor.reference, by_file.reference)
    patch(sd15, sd["target"], sd["reference"], masks=by_file)


# ------------------------------------------------------------------------------------- DDIM Invert Reference


def _run(model, c, lat, **over):
    """DDIM Invert Reference with the file's settings, ``over`` replacing some (``negative=None``: unconnected)."""
    pos, neg = c
    kw = dict(steps=STEPS, skip_steps=SKIP, cfg=1.0, method="ddim", scheduler="ddim_uniform", seed=0, negative=neg)
    kw.update(over)
    return node("E4EDDIMInvertReference").run(model, pos, {"samples": lat}, **kw)


INVERT_CASES = {
    "no_negative_connect_one": (dict(cfg=2.0, negative=None),
                                r"negative: cfg > 1 needs a negative conditioning; connect one .* or set cfg to 1.0",
                                dict(cfg=2.0)),
    "no_negative_cfg_1": (dict(cfg=2.0, negative=None), r"negative: cfg > 1 needs a negative conditioning",
                          dict(cfg=1.0, negative=None)),
    "method": (dict(method="dpm"), r"method: 'dpm' is not one of \('ddpm_edit_friendly', 'ddim'\)",
               dict(method="ddpm_edit_friendly")),
    "skip_steps": (dict(skip_steps=STEPS), rf"skip_steps: {STEPS} must be lower than steps \({STEPS}\)",
                   dict(skip_steps=STEPS - 1)),
}


@pytest.mark.parametrize("case", list(INVERT_CASES))
def test_invert_settings(sd15, case):
    bad, message, fixed = INVERT_CASES[case]
    c = kit.conds()
    with pytest.raises(ValueError, match=message):
        _run(sd15, c, kit.latent(1), **bad)
    inv, start = _run(sd15, c, kit.latent(1), **fixed)
    assert torch.isfinite(inv.latents).all() and torch.isfinite(start["samples"]).all()


def test_a_scheduler_that_gives_fewer_steps(sd15, monkeypatch):
    """A scheduler of another pack that gives fewer steps than asked: skip_steps must be below what it gives."""
    import comfy.samplers

    handler = comfy.samplers.SCHEDULER_HANDLERS["normal"]
    fewer = comfy.samplers.SchedulerHandler(lambda ms, steps: handler.handler(ms, max(1, steps // 2)))
    monkeypatch.setitem(comfy.samplers.SCHEDULER_HANDLERS, "half", fewer)
    c = kit.conds()
    with pytest.raises(ValueError, match=r"skip_steps: 2 must be below the 2 steps that half gives for steps=4"):
        _run(sd15, c, kit.latent(1), skip_steps=2, scheduler="half")
    inv, _ = _run(sd15, c, kit.latent(1), skip_steps=1, scheduler="half")
    assert inv.steps == 2 and inv.start_step == 1


def test_inversion_latent(sd15, vae):
    """A latent of another model's VAE, or one with NaN: VAE Encode of the image with this model's VAE (fp32)."""
    c = kit.conds()
    with pytest.raises(ValueError, match=r"latent: 16 channels, but this sd1 model works on 4-channel latents; encode "
                                         r"the image with this model's VAE"):
        _run(sd15, c, torch.randn(1, 16, SIZE, SIZE))
    nan = kit.latent(1)
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"latent: the latent holds NaN or infinite values; check the image and the "
                                         r"VAE Encode .*try the VAE in fp32"):
        _run(sd15, c, nan)
    latent = comfy_nodes().VAEEncode().encode(vae, IMAGE)[0]["samples"]  # the tiny VAE runs in fp32
    assert latent.shape == (1, 4, SIZE, SIZE)
    inv, _ = _run(sd15, c, latent)
    assert torch.isfinite(inv.latents).all()


def test_inverting_a_patched_model(sd15, sd):
    patched = patch(sd15, sd["target"], sd["reference"])
    with pytest.raises(ValueError, match="model: this MODEL comes from Semantic Match Patch; invert with the MODEL "
                                         "that goes into the patch"):
        _run(patched, sd["c"], kit.latent(4))
    _run(sd15, sd["c"], kit.latent(4))


def _refiner():
    """A tiny SDXL refiner: a family the transfer does not support."""
    import comfy.model_base
    import comfy.supported_models

    cfg = tiny_models._base_unet_config(num_res_blocks=1, channel_mult=[1, 2], transformer_depth=[0, 1],
                                        transformer_depth_output=[0, 0, 1, 1], transformer_depth_middle=1,
                                        use_linear_in_transformer=True, adm_in_channels=2560, num_classes="sequential")
    mc = tiny_models._with_heads(comfy.supported_models.SDXLRefiner(cfg))
    return tiny_models._patcher(comfy.model_base.SDXLRefiner(mc).eval())


def _inpainting():
    return tiny_models.build_sd15(in_channels=9)


def _cosmos_sampling(sd15):
    from comfy_extras.nodes_model_advanced import ModelSamplingContinuousEDM

    return result(ModelSamplingContinuousEDM().patch(sd15, "cosmos_rflow", 80.0, 0.002))


@pytest.mark.parametrize("make, message", [
    (lambda sd15: _refiner(), r"model: this is a SDXLRefiner model; Eye-for-an-eye appearance transfer supports "
                              r"SD1.x.*Load one of those checkpoints"),
    (lambda sd15: _inpainting(), r"model: this SD15 model takes 9 input channels \(an inpainting, fill or instruct "
                                 r"model\); the transfer needs the plain text-to-image checkpoint"),
    (_cosmos_sampling, r"model: its sampling type \w+ is neither eps, v nor rectified flow; use a .* checkpoint "
                       r"without a sampling patch of another kind"),
], ids=["unsupported_family", "inpainting", "sampling_patch"])
def test_models_the_transfer_cannot_use(sd15, make, message):
    """The fix is the plain SD1.5 checkpoint (a supported family, text-to-image, no sampling patch)."""
    with pytest.raises(pack("engine.models.families").UnsupportedModelError, match=message):
        _run(make(sd15), kit.conds(), kit.latent(1))
    _run(sd15, kit.conds(), kit.latent(1))


# ------------------------------------------------------------------------------------------- Authors' FreeU


def test_authors_freeu_on_a_dit(flux):
    """Flux has no UNet decoder: bypass the node (invert, patch and sample the plain MODEL)."""
    with pytest.raises(ValueError, match=r"model: the authors' FreeU changes a UNet decoder \(SD1.x, SD2.x, SDXL\); "
                                         r"this Flux model has none. Bypass Authors' FreeU for it."):
        freeu(flux["model"])
    model, c = flux["model"], flux["c"]
    patched = patch(model, flux["target"], flux["reference"])
    sample(patched, c, cfg=1.0)


@pytest.fixture(scope="module")
def freeu_once(sd15):
    """The fix of both FreeU refusals: one Authors' FreeU node, its MODEL into both inversions and the patch."""
    once = freeu(sd15)
    c = kit.conds()
    return dict(model=once, c=c, target=invert(once, kit.latent(1), c)[0],
                reference=invert(once, kit.latent(2), c, seed=1)[0])


def test_authors_freeu_twice(sd15, freeu_once):
    with pytest.raises(ValueError, match="model: this MODEL already has the authors' FreeU; apply it once"):
        freeu(freeu(sd15))
    sample(patch(freeu_once["model"], freeu_once["target"], freeu_once["reference"]), freeu_once["c"])


def test_authors_freeu_on_one_side(sd15, sd, freeu_once):
    """FreeU on the inversions but not on the patched MODEL, or the reverse: refused; the fix is one Authors' FreeU
    on the MODEL before both DDIM Invert Reference nodes and Semantic Match Patch."""
    fix = (r".*put Authors' FreeU once on the MODEL before both DDIM Invert Reference nodes and Semantic Match "
           r"Patch")
    with pytest.raises(ValueError, match=r"target: inverted with the authors' FreeU \(1.2, 1.4, 0.9, 0.2\) but the "
                                         r"model being patched is without" + fix):
        patch(sd15, freeu_once["target"], freeu_once["reference"])
    with pytest.raises(ValueError, match=r"target: inverted without the authors' FreeU but the model being patched is "
                                         r"with the authors' FreeU" + fix):
        patch(freeu(sd15), sd["target"], sd["reference"])
    sample(patch(freeu_once["model"], freeu_once["target"], freeu_once["reference"]), freeu_once["c"], cfg=2.0)


# -------------------------------------------------------------------------------------- Semantic Match Patch

PATCH_CASES = {
    "custom_layers_syntax": (dict(layers="custom", custom_layers="decoder 6"),
                             r"custom_layers: 'decoder 6' is not like 'output.6', 'output.6-11' or 'single.34-37'",
                             dict(layers="custom", custom_layers="output.6")),
    "custom_layers_empty": (dict(layers="custom", custom_layers=" , "),
                            r"custom_layers: empty; name at least one block, e.g. 'output.6-11'",
                            dict(layers="custom", custom_layers="output.6-11")),
    "layers_unknown": (dict(layers="decoder"), r"layers: 'decoder' is not one of \[",
                       dict(layers="output 6-11 (SD1/SD2, paper)")),
    "layers_of_another_family": (dict(layers="vital (Flux, Stable Flow)"),
                                 r"layers: 'vital \(Flux, Stable Flow\)' is a preset for another family; this is a "
                                 r"sd1 model, use 'auto'", dict(layers="auto")),
    "match_block_on_a_unet": (dict(match_block="output.6"),
                              r"match_block: 'output.6': a UNet \(SD1.x\) matches at every rewritten layer .*leave it "
                              r"at 'auto'", dict(match_block="auto")),
    "video_matching": (dict(video_matching="every frame"), r"video_matching: 'every frame' is not one of \[",
                       dict(video_matching="per frame")),
    "start_after_end": (dict(start_percent=0.9, end_percent=0.2),
                        r"start_percent/end_percent: need 0 <= start_percent <= end_percent <= 1",
                        dict(start_percent=0.2, end_percent=0.9)),
    "strength": (dict(strength=1.5), r"strength: must be between 0 and 1", dict(strength=1.0)),
    "structure_every": (dict(structure_every=-1), r"structure_every: must be >= 0 \(0 turns structure injection off\)",
                        dict(structure_every=0)),
    "hint_strength": (dict(hint_strength=12.0), r"hint_strength: must be between 0 and 10 \(0: the hints do nothing\)",
                      dict(hint_strength=10.0)),
}


@pytest.mark.parametrize("case", list(PATCH_CASES))
def test_patch_settings(sd15, sd, case):
    bad, message, fixed = PATCH_CASES[case]
    with pytest.raises(ValueError, match=message):
        patch(sd15, sd["target"], sd["reference"], **bad)
    patch(sd15, sd["target"], sd["reference"], **fixed)


def _listed_blocks(message: str) -> str:
    return re.search(r"(?:blocks|decoder attention blocks) are (.+)$", message).group(1)


@pytest.mark.parametrize("family", ["sd15", "flux"])
def test_layers_without_attention(sd15, sd, flux, family):
    """Blocks without self-attention: the message lists the model's blocks; choosing from them is accepted."""
    model, target, reference, c, cfg = ((sd15, sd["target"], sd["reference"], sd["c"], 2.0) if family == "sd15" else
                                        (flux["model"], flux["target"], flux["reference"], flux["c"], 1.0))
    bad = "output.0-1, output.6" if family == "sd15" else "double.0, double.7"
    key = "sd1" if family == "sd15" else "flux"
    with pytest.raises(ValueError, match=rf"layers: .* has no self-attention in this {key} model") as refused:
        patch(model, target, reference, layers="custom", custom_layers=bad)
    listed = _listed_blocks(str(refused.value))
    assert listed == ("output.3-11" if family == "sd15" else "double.0-2, single.0-3")
    sample(patch(model, target, reference, layers="custom", custom_layers=listed), c, cfg=cfg)


@pytest.mark.parametrize("bad, message, fix", [
    ("double.0-1", r"match_block: 'double.0-1' is not 'auto', 'each layer' or one block like 'single.9'", "each layer"),
    ("double.0-1", r"is not 'auto', 'each layer' or one block", "auto"),
    ("double.0-1", r"is not 'auto', 'each layer' or one block", "double.1"),
    ("single.9", r"match_block: 'single.9' is not a block of this Flux.1 model; its blocks are double.0-2, single.0-3",
     None),
], ids=["range_to_each_layer", "range_to_auto", "range_to_one_block", "missing_block_to_a_listed_one"])
def test_dit_match_block(flux, bad, message, fix):
    with pytest.raises(ValueError, match=message) as refused:
        patch(flux["model"], flux["target"], flux["reference"], match_block=bad)
    if fix is None:  # one block of those it lists
        fix = _listed_blocks(str(refused.value)).split(", ")[-1].split("-")[0]
        assert fix == "single.0"
    patched = patch(flux["model"], flux["target"], flux["reference"], match_block=fix)
    sample(patched, flux["c"], cfg=1.0)


def test_patching_twice(sd15, sd):
    """Two references by patching twice: refused; the fix is one patch of the original MODEL with reference_2."""
    left, right = half()
    masks = load_masks("1,2", target_mask=torch.stack([left, right]), reference_mask=torch.stack([left, right]))
    once = patch(sd15, sd["target"], sd["reference"])
    with pytest.raises(ValueError, match=r"model: this MODEL already comes from a Semantic Match Patch; patch the "
                                         r"original MODEL once \(several references go into one patch: reference_2"):
        patch(once, sd["target"], sd["reference_2"])
    sample(patch(sd15, sd["target"], sd["reference"], masks=masks, extra_refs=[sd["reference_2"]]), sd["c"])


def _lora_like(m):
    m = m.clone()
    key = next(k for k in m.model.state_dict() if k.endswith("attn1.to_q.weight"))
    m.add_patches({key: (torch.full_like(m.model.state_dict()[key], 0.01),)}, 1.0)
    return m


def _freeu_v2(m):
    from comfy_extras.nodes_freelunch import FreeU_V2

    return result(FreeU_V2().patch(m, 1.3, 1.4, 0.9, 0.2))


@pytest.mark.parametrize("variant, what", [(_lora_like, "weight patches"), (_freeu_v2, "output_block_patch")],
                         ids=["lora", "freeu_v2"])
def test_another_model_variant(sd15, sd, variant, what):
    """Inverted through a LoRA (or FreeU_V2), patched without: the fix is one MODEL into both nodes."""
    c = sd["c"]
    other = variant(sd15)
    with pytest.raises(ValueError, match=rf"target: inverted with another model variant .*{what}.*connect the same "
                                         r"MODEL .* to DDIM Invert Reference and Semantic Match Patch"):
        patch(other, sd["target"], sd["reference"])
    target, _ = invert(other, kit.latent(1), c)
    reference, _ = invert(other, kit.latent(2), c, seed=1)
    sample(patch(other, target, reference), c)


def test_reference_of_another_size(sd15, sd, vae):
    """A 64 px reference for a 128 px target: ImageScale to the target's size before VAE Encode is accepted."""
    comfy = comfy_nodes()
    c = sd["c"]
    small = torch.rand(1, PX // 2, PX // 2, 3, generator=torch.Generator().manual_seed(1))
    target, _ = invert(sd15, comfy.VAEEncode().encode(vae, IMAGE)[0]["samples"], c)
    reference, _ = invert(sd15, comfy.VAEEncode().encode(vae, small)[0]["samples"], c, seed=1)
    with pytest.raises(ValueError, match=r"reference: latent 64x64 differs from the target's 128x128; resize the "
                                         r"reference image to the target's size \(e.g. ImageScale\) before VAE Encode"):
        patch(sd15, target, reference)
    scaled = comfy.ImageScale().upscale(small, "bilinear", PX, PX, "disabled")[0]
    reference, _ = invert(sd15, comfy.VAEEncode().encode(vae, scaled)[0]["samples"], c, seed=1)
    sample(patch(sd15, target, reference), c)


@pytest.mark.parametrize("other", [dict(steps=STEPS + 2), dict(scheduler="normal")], ids=["steps", "scheduler"])
def test_reference_with_another_schedule(sd15, sd, other):
    c = sd["c"]
    reference, _ = invert(sd15, kit.latent(2), c, seed=1, **other)
    with pytest.raises(ValueError, match=r"reference: inverted with \d+ steps \(\w+\), the target with \d+ "
                                         r"\(ddim_uniform\); invert both with the same steps and scheduler"):
        patch(sd15, sd["target"], reference)
    reference, _ = invert(sd15, kit.latent(2), c, seed=1, steps=STEPS, scheduler="ddim_uniform")
    sample(patch(sd15, sd["target"], reference), c)


@pytest.mark.parametrize("fix", ["masks_from_the_image", "load_masks_resize"])
def test_masks_of_another_aspect(sd15, sd, fix):
    """Masks drawn on a 200x64 image for a 128x128 target: masks made from the target image, or Load Masks'
    width/height/crop set to the ImageScale settings that made the 128x128 image (128, 128, disabled)."""
    wide = torch.zeros(64, 200)
    wide[:, :100] = 1
    ref = torch.ones(PX, PX)
    with pytest.raises(ValueError, match=r"target_mask: mask of 200x64 does not fit the target image \(128x128\); use "
                                         r"masks made from the target image, or set Load Masks' width/height/crop"):
        patch(sd15, sd["target"], sd["reference"], masks=load_masks(target_mask=wide, reference_mask=ref))
    if fix == "masks_from_the_image":
        masks = load_masks(target_mask=half()[0], reference_mask=ref)
    else:
        masks = load_masks(target_mask=wide, reference_mask=ref, width=PX, height=PX, crop="disabled")
    sample(patch(sd15, sd["target"], sd["reference"], masks=masks), sd["c"])


@pytest.mark.parametrize("fix", ["connect_reference_2", "change_reference_of_object"])
def test_a_missing_reference(sd15, sd, fix):
    left, right = half()
    two = dict(target_mask=torch.stack([left, right]), reference_mask=torch.stack([left, right]))
    with pytest.raises(ValueError, match=r"reference_of_object: reference \[2\] named but only 1 reference image\(s\) "
                                         r"are connected .*; connect more references or change reference_of_object"):
        patch(sd15, sd["target"], sd["reference"], masks=load_masks("1,2", **two))
    if fix == "connect_reference_2":
        patched = patch(sd15, sd["target"], sd["reference"], masks=load_masks("1,2", **two),
                        extra_refs=[sd["reference_2"]])
    else:
        patched = patch(sd15, sd["target"], sd["reference"], masks=load_masks("1,1", **two))
    sample(patched, sd["c"])


def test_more_target_than_reference_masks(sd15, sd):
    left, right = half()
    with pytest.raises(ValueError, match=r"reference_mask: 2 target masks but 1 reference mask\(s\), and the target is "
                                         r"an image: give one reference mask per object"):
        patch(sd15, sd["target"], sd["reference"],
              masks=load_masks(target_mask=torch.stack([left, right]), reference_mask=left))
    masks = load_masks(target_mask=torch.stack([left, right]), reference_mask=torch.stack([left, right]))
    sample(patch(sd15, sd["target"], sd["reference"], masks=masks), sd["c"])


def _spot() -> torch.Tensor:
    """A 4 px square near the corner of a 128 px image: on the 16x16 token map of output 9-11 (whose token centres
    sample pixels 3 and 4), not on the 8x8 one of output 6-8 (pixels 7 and 8)."""
    m = torch.zeros(PX, PX)
    m[2:6, 2:6] = 1
    return m


@pytest.mark.parametrize("fix", ["larger_mask", "other_layers", "higher_resolution"])
def test_a_mask_that_covers_no_token(sd15, sd, fix):
    c = sd["c"]
    whole = torch.ones(PX, PX)
    with pytest.raises(ValueError, match=r"target_mask: object\(s\) \[1\] cover no token of the 8x8 feature map of "
                                         r"output.6, output.7, output.8; use a larger mask, a higher resolution, or "
                                         r"other layers"):
        patch(sd15, sd["target"], sd["reference"], masks=load_masks(target_mask=_spot(), reference_mask=whole))
    target, reference, kw = sd["target"], sd["reference"], {}
    masks = load_masks(target_mask=_spot(), reference_mask=whole)
    if fix == "larger_mask":
        larger = torch.zeros(PX, PX)
        larger[: PX // 4, : PX // 4] = 1
        masks = load_masks(target_mask=larger, reference_mask=whole)
    elif fix == "other_layers":  # the 16x16 map's layers, where the spot covers a token
        kw = dict(layers="custom", custom_layers="output.9-11")
    else:  # the images at 256 px (the masks resized like them, by Load Masks)
        target, _ = invert(sd15, kit.latent(1, size=2 * SIZE), c)
        reference, _ = invert(sd15, kit.latent(2, size=2 * SIZE), c, seed=1)
        masks = load_masks(target_mask=_spot(), reference_mask=whole, width=2 * PX, height=2 * PX)
    sample(patch(sd15, target, reference, masks=masks, **kw), c)


# -------------------------------------------------------------------------------------------- Wan (video)


def _moving_bar() -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame target masks of one object over the 9 video frames (a bar moving left to right) and the reference's
    left half."""
    size = WAN_SIZE * 8
    frames_px = 4 * (FRAMES - 1) + 1
    bar = torch.zeros(frames_px, size, size)
    for f in range(frames_px):
        x0 = round(f * (size // 2) / (frames_px - 1))
        bar[f, :, x0:x0 + size // 2] = 1
    left = torch.zeros(1, size, size)
    left[..., : size // 2] = 1
    return bar, left


@pytest.mark.parametrize("fix", ["one_image", "the_targets_length"])
def test_wan_reference_of_another_length(wan, fix):
    model, c, target = wan["model"], wan["c"], wan["target"]
    two = invert(model, _video(5, frames=2), c, scheduler="simple")[0]
    with pytest.raises(ValueError, match=r"reference: a video of 2 latent frames, the target has 3; give the "
                                         r"reference as one image or as a video of the target's length"):
        patch(model, target, two)
    frames = 1 if fix == "one_image" else FRAMES
    reference = invert(model, _video(5, frames=frames), c, scheduler="simple")[0]
    sample(patch(model, target, reference), c)


@pytest.mark.parametrize("fix", ["one_per_frame", "one_per_latent_frame", "one_for_all_frames"])
def test_wan_masks_per_frame_of_another_count(wan, fix):
    bar, left = _moving_bar()
    with pytest.raises(ValueError, match=r"target_mask: 5 masks per object, but the target is 9 frames, 3 latent "
                                         r"frames; give one mask per frame, one per latent frame, or one mask for all"):
        patch(wan["model"], wan["target"], wan["reference"], masks=load_masks(target_mask=bar[:5], reference_mask=left))
    masks = {"one_per_frame": bar, "one_per_latent_frame": bar[::4], "one_for_all_frames": bar[:1]}[fix]
    sample(patch(wan["model"], wan["target"], wan["reference"], masks=load_masks(target_mask=masks,
                                                                                 reference_mask=left)), wan["c"])


@pytest.mark.parametrize("mode", ["per frame", "whole clip"])
def test_wan_object_not_on_the_anchor_frame(wan, mode):
    bar, left = _moving_bar()
    bar[:4] = 0  # the object enters after the first latent frame (video frame 0)
    masks = load_masks(target_mask=bar, reference_mask=left)
    with pytest.raises(ValueError, match=r"target_mask: object\(s\) \[1\] are not on the first frame, the anchor of "
                                         r"video_matching 'anchor frame'; use 'per frame' or 'whole clip'"):
        patch(wan["model"], wan["target"], wan["reference"], masks=masks, video_matching="anchor frame")
    sample(patch(wan["model"], wan["target"], wan["reference"], masks=masks, video_matching=mode), wan["c"])


# ----------------------------------------------------------------------------------- Appearance Transfer Sampler


def test_sampler_model(sd15, sd15_v, sd):
    patched = patch(sd15, sd["target"], sd["reference"])
    with pytest.raises(ValueError, match="model: this MODEL is not patched; connect the MODEL output of Semantic "
                                         "Match Patch"):
        sample(sd15, sd["c"])
    # a MODEL carrying the plan of a patch made for another model (as a node copying model_options across models
    # would leave it)
    other = sd15_v.clone()
    other.model_options[pack("engine.patch.plan").PLAN_KEY] = kit.plan(patched)
    with pytest.raises(ValueError, match="model: the patch was made for another model; connect Semantic Match Patch's "
                                         "MODEL output"):
        sample(other, sd["c"])
    sample(patched, sd["c"])


@pytest.mark.parametrize("bad, message, fixed", [
    (dict(adain_start_percent=1.5), r"adain_start_percent: must be between 0 and 1", dict(adain_start_percent=1.0)),
    (dict(ending="clean"), r"ending: 'clean' is not one of \('authors', 'exact'\)", dict(ending="exact")),
], ids=["adain_start_percent", "ending"])
def test_sampler_settings(sd15, sd, bad, message, fixed):
    patched = patch(sd15, sd["target"], sd["reference"])
    with pytest.raises(ValueError, match=message):
        sample(patched, sd["c"], **bad)
    sample(patched, sd["c"], **fixed)


NAN = float("nan")


@pytest.mark.parametrize("name", ["DDIMInvertReference.cfg", "SemanticMatchPatch.strength",
                                  "SemanticMatchPatch.hint_strength",
                                  "AppearanceTransferSampler.cfg", "AppearanceTransferSampler.adain_start_percent",
                                  "AuthorsFreeU.s1"])
def test_non_finite_numbers(sd15, sd, name):
    """ComfyUI lets a JSON NaN through: refused by name; a finite value is accepted."""
    which, field = name.split(".")
    c = sd["c"]
    authors = pack("engine.models.defaults")
    patched = patch(sd15, sd["target"], sd["reference"]) if which == "AppearanceTransferSampler" else None

    def call(value):
        if which == "DDIMInvertReference":
            return _run(sd15, c, kit.latent(5), cfg=value)
        if which == "SemanticMatchPatch":
            return patch(sd15, sd["target"], sd["reference"], **{field: value})
        if which == "AuthorsFreeU":
            return node("E4EAuthorsFreeU").patch(sd15, authors.FREEU_B1, authors.FREEU_B2, value, authors.FREEU_S2)
        return sample(patched, c, **{field: value})

    with pytest.raises(ValueError, match=f"{field}: nan is not a number; give a finite value"):
        call(NAN)
    call({"cfg": 2.0, "strength": 1.0, "hint_strength": 1.0, "adain_start_percent": 0.7, "s1": authors.FREEU_S1}[field])


def test_model_sampling_after_the_patch(sd15, sd):
    """ModelSamplingDiscrete (v) between the patch and the sampler: refused; put before the inversions and the patch
    (so that all three see it), the transfer runs."""
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    def v(model):
        return result(ModelSamplingDiscrete().patch(model, "v_prediction", False))

    c = sd["c"]
    with pytest.raises(ValueError, match=r"model: the prediction type \(eps when inverted, v now\).* changed after "
                                         r"Semantic Match Patch.*Put that node \(e.g. ModelSamplingDiscrete\) on the "
                                         r"MODEL before DDIM Invert Reference and Semantic Match Patch"):
        sample(v(patch(sd15, sd["target"], sd["reference"])), c)
    before = v(sd15)
    target, _ = invert(before, kit.latent(1), c)
    reference, _ = invert(before, kit.latent(2), c, seed=1)
    sample(patch(before, target, reference), c)


# ------------------------------------------------------------------------------- the stock sampler (KSamplerAdvanced)


@pytest.mark.parametrize("family", ["sd15", "flux"])
def test_stock_sampler_schedule(sd15, flux, family):
    """KSamplerAdvanced on another schedule: refused with the inputs to set; setting exactly those works, and so does
    the Appearance Transfer Sampler."""
    if family == "sd15":  # ddim_uniform gives 7 steps for steps=6: the advice must say 6, what the user types
        model, c, scheduler, sampler, cfg = sd15, kit.conds(), "ddim_uniform", "ddim", 1.0
        lat = (kit.latent(40), kit.latent(41))
        bad = dict(steps=30, scheduler="karras", start_at_step=3)
    else:
        model, c, scheduler, sampler, cfg = flux["model"], flux["c"], "simple", "euler", 1.0
        g = torch.Generator().manual_seed(7)
        lat = (torch.randn(1, 16, SIZE, SIZE, generator=g), torch.randn(1, 16, SIZE, SIZE, generator=g))
        bad = dict(steps=30, scheduler="simple", start_at_step=12)
    target, start = invert(model, lat[0], c, steps=6, skip=3, scheduler=scheduler)
    reference, _ = invert(model, lat[1], c, steps=6, skip=3, scheduler=scheduler, seed=1)
    patched = patch(model, target, reference)
    with pytest.raises(ValueError, match=r"sampler: sigma .* is far from every step of the inversion") as refused:
        ksampler_advanced(patched, c, start, sampler=sampler, cfg=cfg, **bad)
    advice = re.search(r"Sample with steps=(\d+), scheduler=(\w+), start_at_step=(\d+) \(or use the Appearance "
                       r"Transfer Sampler", str(refused.value))
    steps, advised, start_at = int(advice.group(1)), advice.group(2), int(advice.group(3))
    assert (steps, advised, start_at) == (6, scheduler, 3)
    out = ksampler_advanced(patched, c, start, steps, advised, start_at, sampler=sampler, cfg=cfg)
    assert torch.isfinite(out).all()
    sample(patched, c, cfg=cfg)


STOCK_LATENT_CASES = {
    # id: (the transfer's fixture, sampler, scheduler, the refused latent, message)
    "size": ("sd", "ddim", "ddim_uniform", lambda: dict(samples=torch.zeros(1, 4, SIZE + 8, SIZE)),
             r"latent: the sampler's latent is 16x24 but the inversions are 16x16; sample the target inversion's "
             r"start_latent"),
    "batch": ("sd", "ddim", "ddim_uniform", lambda: dict(samples=torch.zeros(2, 4, SIZE, SIZE)),
              r"latent: batch of 2 but the target inversion holds 1 image\(s\); sample the same batch that was "
              r"inverted"),
    "video_into_an_image_model": (
        "sd", "ddim", "ddim_uniform", lambda: dict(samples=torch.zeros(1, 4, 1, SIZE, SIZE)),
        r"latent: the sampler gives a video latent \[B, C, T, H, W\] but the patch was made for an image latent "
        r"\[B, C, H, W\]; sample the target inversion's start_latent"),
    "channels": ("flux", "euler", "simple", lambda: dict(samples=kit.latent(6)),  # an SD VAE's latent (an empty one
                 # KSamplerAdvanced would widen to 16 channels itself)
                 r"latent: 4 channels, but the patched model and its inversions work on 16; sample the target "
                 r"inversion's start_latent"),
    "frames": ("wan", "euler", "simple", lambda: comfy_nodes().EmptyLatentImage().generate(WAN_SIZE * 8, WAN_SIZE * 8)[0],
               r"latent: the sampler's latent has 1 frame\(s\) .*but the target inversion has 3; sample the target "
               r"inversion's start_latent"),
}


@pytest.mark.parametrize("case", list(STOCK_LATENT_CASES))
def test_stock_sampler_latent(sd15, request, case):
    """A latent other than the target's start_latent into KSamplerAdvanced: refused by name; DDIM Invert Reference's
    start_latent (with the inversion's steps, scheduler and start step) is accepted."""
    which, sampler, scheduler, bad, message = STOCK_LATENT_CASES[case]
    made = request.getfixturevalue(which)
    model = sd15 if which == "sd" else made["model"]
    patched = patch(model, made["target"], made["reference"])
    with pytest.raises(ValueError, match=message):
        ksampler_advanced(patched, made["c"], bad(), STEPS, scheduler, SKIP, sampler=sampler, cfg=2.0)
    out = ksampler_advanced(patched, made["c"], made["start"], STEPS, scheduler, SKIP, sampler=sampler, cfg=2.0)
    assert out.shape == made["start"]["samples"].shape and torch.isfinite(out).all()
