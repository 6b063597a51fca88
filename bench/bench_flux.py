"""Cost of a Flux transfer against plain Flux sampling of the same model, steps and size, in one run.

    python bench/bench_flux.py [--preset small|medium|flux-dev] [--size 512] [--steps 28] [--skip 9] [--device cpu|cuda]

The model is ComfyUI's own Flux class with random weights: "small" (hidden 128, 4 + 8 blocks) and "medium"
(hidden 384, 8 + 16 blocks) for a CPU, "flux-dev" (hidden 3072, 19 + 38 blocks: Flux.1-dev's shapes, bf16,
a GPU with about 24 GB). Plain sampling = ComfyUI's KSampler path (euler, simple schedule, cfg 1 as for
Flux-dev, the same steps from the same start step). Transfer = Appearance Transfer Sampler on the Semantic Match
Patch model (one reference row in the batch, Stable Flow's vital blocks rewritten at every step, structure by
the target's queries and keys, masked AdaIN): with each step's correspondence found once, at the matching block
(the default), and with every rewritten block matching on its own features (``match_block`` 'each layer', the
pack's DiT rule before it had a matching block). Wall time (median) and peak extra memory.
"""

from __future__ import annotations

import torch
from common import invert_pair, machine, measure_rows, object_masks, patched_model, print_rows, setup

FLUX_PRESETS = {  # hidden, heads, axes, double blocks, single blocks, text tokens
    "small": (128, 4, [8, 12, 12], 4, 8, 64),
    "medium": (384, 6, [16, 24, 24], 8, 16, 128),
    "flux-dev": (3072, 24, [16, 56, 56], 19, 38, 512),
}


def build_flux(preset: str, device: str):
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    import tiny_models

    hidden, heads, axes, depth, single, _ = FLUX_PRESETS[preset]
    cfg = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096,
               hidden_size=hidden, mlp_ratio=4.0, num_heads=heads, depth=depth, depth_single_blocks=single,
               axes_dim=axes, theta=10000, patch_size=2, qkv_bias=True, guidance_embed=True)
    mc = comfy.supported_models.Flux(cfg)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    mc.set_inference_dtype(dtype, None)
    model = comfy.model_base.Flux(mc, device=torch.device(device))
    tiny_models.init_weights(model, 0)
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device(device), offload_device=torch.device("cpu"))


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=list(FLUX_PRESETS))
    ap.add_argument("--size", type=int, default=512, help="image size in pixels (latent = size / 8)")
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--skip", type=int, default=9)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    host = setup(args.device)
    import comfy.sample

    invert = host.pack_module("engine.backends.invert").invert
    transfer = host.pack_module("engine.backends.sample").transfer
    model = build_flux(args.preset, args.device)
    tokens = FLUX_PRESETS[args.preset][5]
    g = torch.Generator().manual_seed(0)

    def cond():
        return [[torch.randn(1, tokens, 4096, generator=g), {"pooled_output": torch.randn(1, 768, generator=g),
                                                              "guidance": 3.5}]]

    pos, neg = cond(), cond()
    n = args.size // 8
    tgt, ref = torch.randn(1, 16, n, n, generator=g), torch.randn(1, 16, n, n, generator=g)
    t_inv, r_inv = invert_pair(host, model, pos, neg, tgt, ref, args.steps, 1.0, args.skip, "simple")
    masks = object_masks(host, args.size)
    patched = patched_model(host, model, t_inv, r_inv, masks)
    each = patched_model(host, model, t_inv, r_inv, masks, match_block="each layer")
    start = host.pack_module("engine.backends.sampling").latent_out(model, t_inv.start_latent())

    def plain():
        return comfy.sample.sample(model, torch.randn_like(start), args.steps, 1.0, "euler", "simple", pos, neg,
                                   start, start_step=args.skip, seed=0, disable_pbar=True)

    rows = measure_rows([
        ("plain Flux sampling (KSampler, euler, cfg 1)", plain),
        ("transfer (vital blocks, one reference row; matched once a step)", lambda: transfer(patched, pos, neg, 1.0)),
        ("transfer, every rewritten block matching on its own", lambda: transfer(each, pos, neg, 1.0)),
        ("inversion, edit-friendly (all steps)",
         lambda: invert(model, pos, neg, tgt, args.steps, 1.0, "ddpm_edit_friendly", args.skip, "simple")),
    ], args.device, args.repeats)
    state = host.pack_module("engine.patch.install").plan_of(patched)
    layers = ", ".join(f"{b}.{i}" for b, i in state.settings.layers)
    layers += f"; matching block {state.settings.match_block[0]}.{state.settings.match_block[1]}"
    print(f"\nFlux transfer, preset {args.preset}, {args.size}x{args.size}, {args.steps} steps from step {args.skip}, "
          f"blocks {layers}, {machine(args.device)}\n")
    print_rows(rows)
    print(f"\n(the inversion covers all {t_inv.steps} steps; plain sampling and the transfer the last "
          f"{t_inv.steps - args.skip})")


if __name__ == "__main__":
    main()
