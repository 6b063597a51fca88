"""Cost of a transfer against plain sampling of the same model, steps and size, in one run.

    python bench/bench_transfer.py [--preset small|medium|sd15] [--size 256] [--steps 50] [--skip 16] [--device cpu|cuda]

Plain sampling = ComfyUI's KSampler path (ddpm sampler, CFG, the same steps from the same start step).
Transfer = Appearance Transfer Sampler on the Semantic Match Patch model (same-batch reference rows, all six
decoder layers matched per step, structure injection, masked AdaIN). Wall time (median) and peak extra memory.
"""

from __future__ import annotations

import torch
from common import PeakMemory, build, conds, machine, parser, setup, timed


def main():
    ap = parser(__doc__, cfg=2.5)
    ap.add_argument("--skip", type=int, default=16)
    args = ap.parse_args()

    harness = setup(args.device)
    import comfy.sample

    invert = harness.pack_module("nodes.ddim_invert_reference").invert
    patch_node = harness.pack_module("nodes.semantic_match_patch")
    transfer = harness.pack_module("nodes.appearance_transfer_sampler").transfer
    model = build(args.preset, args.device)
    pos, neg = conds(args.preset)
    n = args.size // 8
    g = torch.Generator().manual_seed(0)
    tgt, ref = torch.randn(1, 4, n, n, generator=g), torch.randn(1, 4, n, n, generator=g)
    t_inv = invert(model, pos, neg, tgt, args.steps, 3.5, "ddpm_edit_friendly", args.skip, "ddim_uniform")
    r_inv = invert(model, pos, neg, ref, args.steps, 3.5, "ddpm_edit_friendly", args.skip, "ddim_uniform", seed=1)
    mask = torch.zeros(args.size, args.size)
    mask[args.size // 8: -args.size // 8, args.size // 8: -args.size // 8] = 1
    masks = harness.pack_module("matching").ObjectMasks(mask[None], mask[None])

    def patched(strength=1.0):
        state = patch_node.build_state(model, t_inv, r_inv, masks, strength=strength)
        return harness.pack_module("nodes.attention_hooks").install(model, state)

    start = harness.pack_module("nodes.sampler_stack").latent_out(model, t_inv.start_latent())

    def plain():
        return comfy.sample.sample(model, torch.randn_like(start), args.steps, args.cfg, "ddpm", "ddim_uniform", pos,
                                   neg, start, start_step=args.skip, seed=0, disable_pbar=True)

    m_on, m_off = patched(), patched(0.0)
    runs = [
        ("plain sampling (KSampler, ddpm)", plain),
        ("transfer, strength 0 (loop only)", lambda: transfer(m_off, pos, neg, args.cfg)),
        ("transfer (same-batch reference)", lambda: transfer(m_on, pos, neg, args.cfg)),
    ]
    rows = []
    for name, fn in runs:
        t = timed(fn, args.device, args.repeats)
        with PeakMemory(args.device) as pm:
            fn()
        rows.append((name, t, pm.peak))
    base = rows[0][1]
    print(f"\nTransfer, preset {args.preset}, {args.size}x{args.size}, {args.steps} steps from step {args.skip}, "
          f"cfg {args.cfg}, {machine(args.device)}\n")
    print("| run | wall s | ratio to plain | peak extra memory MB |")
    print("|---|---:|---:|---:|")
    for name, t, peak in rows:
        print(f"| {name} | {t:.2f} | {t / base:.2f} | {peak / 2**20:.0f} |")


if __name__ == "__main__":
    main()
