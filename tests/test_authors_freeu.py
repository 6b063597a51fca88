"""Authors' FreeU: the authors' variant at the decoder-stage entries, on a small UNet with SD1.5's block layout."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_models
import torch
import transfer_kit as kit
from harness import pack_module

B1, B2, S1, S2 = 1.2, 1.4, 0.9, 0.2


@pytest.fixture(scope="module")
def unet15():
    # SD1.5's channel multipliers (1, 2, 4, 4) at a small base width: stage entries see 4x and 2x the base width
    return tiny_models.build_sd15(channel_mult=[1, 2, 4, 4], seed=3)


def _numpy_filter(h: np.ndarray, threshold: int, scale: float) -> np.ndarray:
    """Independent transcription: FFT over the two spatial axes, centre, scale a (2t x 2t) square, back."""
    freq = np.fft.fftshift(np.fft.fftn(h, axes=(-2, -1)), axes=(-2, -1))
    mask = np.ones(freq.shape[-2:])
    cy, cx = freq.shape[-2] // 2, freq.shape[-1] // 2
    mask[cy - threshold:cy + threshold, cx - threshold:cx + threshold] = scale
    return np.fft.ifftn(np.fft.ifftshift(freq * mask, axes=(-2, -1)), axes=(-2, -1)).real


def _transcribed(h: torch.Tensor, base: int) -> torch.Tensor:
    """The authors' rule at a stage entry: 1280-channel (4x base) input: first 640 x b1, filter s1; 640 (2x): x b2, s2."""
    arr = h.double().numpy().copy()
    c = arr.shape[1]
    if c == 4 * base:
        arr[:, : c // 2] *= B1
        arr = _numpy_filter(arr, 1, S1)
    elif c == 2 * base:
        arr[:, : c // 2] *= B2
        arr = _numpy_filter(arr, 1, S2)
    return torch.from_numpy(arr).to(h.dtype)


def _one_step(model, x, conds):
    import comfy.sample

    pos, neg = conds
    return comfy.sample.sample(model, x, 1, 2.0, "euler", "normal", pos, neg, torch.zeros_like(x), seed=0,
                               disable_pbar=True)


def test_patched_forward_equals_the_transcribed_formula(unet15):
    freeu = pack_module("engine.backends.freeu")
    conds = tiny_models.sd15_conds()
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    patched = freeu.apply_authors_freeu(unet15, B1, B2, S1, S2)
    got = _one_step(patched, x, conds)

    unet = unet15.model.diffusion_model
    base = unet.model_channels
    entries = {0: 4 * base, 3: 4 * base, 6: 4 * base, 9: 2 * base}  # SD1.5: up blocks 0-2 take 1280, up block 3 640
    assert freeu.stage_entries(unet) == set(entries)
    seen = []

    def pre_hook(width):
        def hook(module, args):
            x_in = args[0]
            h, hsp = x_in[:, :width], x_in[:, width:]
            seen.append(width)
            return (torch.cat([_transcribed(h, base), hsp], dim=1), *args[1:])
        return hook

    # ComfyUI runs an output block layer by layer: hook its first layer (the ResBlock taking cat([h, skip]))
    handles = [unet.output_blocks[i][0].register_forward_pre_hook(pre_hook(w)) for i, w in entries.items()]
    try:
        expected = _one_step(unet15, x, conds)
    finally:
        for handle in handles:
            handle.remove()
    assert sorted(set(seen)) == [2 * base, 4 * base]
    plain = _one_step(unet15, x, conds)
    assert (got - plain).abs().max() > 1e-3  # FreeU changes the model
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _patch_fn(unet15):
    unet = unet15.model.diffusion_model
    return pack_module("engine.backends.freeu").authors_freeu_patch(unet, B1, B2, S1, S2, 1), unet.model_channels


def test_only_stage_entries_with_those_widths_change(unet15):
    patch, base = _patch_fn(unet15)
    h = torch.randn(2, 4 * base, 8, 8)
    hsp = torch.randn(2, 4 * base, 8, 8)
    for block in (("output", 1), ("output", 4), ("input", 0), ("middle", 0)):
        out, skip = patch(h, hsp, {"block": block})
        assert out is h and skip is hsp
    out, skip = patch(h, hsp, {"block": ("output", 3)})
    assert skip is hsp
    torch.testing.assert_close(out, _transcribed(h, base), atol=1e-5, rtol=1e-5)
    odd = torch.randn(1, 3 * base, 8, 8)  # a width FreeU does not touch
    assert patch(odd, hsp, {"block": ("output", 0)})[0] is odd


def test_fp16_backbone(unet15):
    patch, base = _patch_fn(unet15)
    h = torch.randn(1, 2 * base, 16, 16)
    out16, _ = patch(h.half(), None, {"block": ("output", 9)})
    assert out16.dtype == torch.float16 and torch.isfinite(out16).all()
    torch.testing.assert_close(out16.float(), _transcribed(h, base).float(), atol=1e-2, rtol=1e-2)


def test_input_model_untouched_and_bypass_removes_it(unet15):
    conds = tiny_models.sd15_conds()
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    before = _one_step(unet15, x, conds)
    options = repr(unet15.model_options)
    node = pack_module("nodes.authors_freeu").AuthorsFreeU()
    (patched,) = node.patch(unet15, B1, B2, S1, S2)
    assert patched is not unet15 and repr(unet15.model_options) == options
    assert not torch.equal(_one_step(patched, x, conds), before)
    assert torch.equal(_one_step(unet15, x, conds), before)  # "bypassed": the original MODEL is as it was
    with pytest.raises(ValueError, match="already has the authors' FreeU"):
        node.patch(patched, B1, B2, S1, S2)


def test_inversion_and_patch_must_agree_on_freeu(unet15):
    freeu = pack_module("engine.backends.freeu")
    c = kit.conds()
    with_freeu = freeu.apply_authors_freeu(unet15, B1, B2, S1, S2)
    target = kit.invert(with_freeu, kit.latent(1), c)
    reference = kit.invert(with_freeu, kit.latent(2), c)
    kit.patch(with_freeu, target, reference)  # same model: fine
    with pytest.raises(ValueError, match="target: inverted with the authors' FreeU .* without the authors' FreeU"):
        kit.patch(unet15, target, reference)
    plain_ref = kit.invert(unet15, kit.latent(2), c)
    with pytest.raises(ValueError, match="reference: inverted without the authors' FreeU"):
        kit.patch(with_freeu, target, plain_ref)


def test_freeu_needs_a_unet(sdxl):
    freeu = pack_module("engine.backends.freeu")
    assert freeu.stage_entries(sdxl.model.diffusion_model) == {0, 3, 6}
    import types

    fake = types.SimpleNamespace(model=types.SimpleNamespace(diffusion_model=torch.nn.Linear(2, 2)), model_options={})
    with pytest.raises(ValueError, match="model: the authors' FreeU changes a UNet decoder"):
        freeu.apply_authors_freeu(fake, B1, B2, S1, S2)
