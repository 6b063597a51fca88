"""Cost of a transfer against plain sampling of the same model, steps and size, in one run.

    python bench/bench_transfer.py [--preset small|medium|sd15] [--size 256] [--steps 50] [--skip 16] [--device cpu|cuda]

Plain sampling = ComfyUI's KSampler path (ddpm sampler, CFG, the same steps from the same start step).
Transfer = Appearance Transfer Sampler on the Semantic Match Patch model (same-batch reference rows, all six
decoder layers matched per step, structure injection, masked AdaIN). Wall time (median) and peak extra memory.
"""

from __future__ import annotations

import torch
from common import (
    build,
    conds,
    invert_pair,
    machine,
    measure_rows,
    object_masks,
    parser,
    patched_model,
    print_rows,
    setup,
)


def main():
    ap = parser(__doc__, cfg=2.5)
    ap.add_argument("--skip", type=int, default=16)
    args = ap.parse_args()

    host = setup(args.device)
    import comfy.sample

    transfer = host.pack_module("engine.backends.sample").transfer
    model = build(args.preset, args.device)
    pos, neg = conds(args.preset)
    n = args.size // 8
    g = torch.Generator().manual_seed(0)
    tgt, ref = torch.randn(1, 4, n, n, generator=g), torch.randn(1, 4, n, n, generator=g)
    t_inv, r_inv = invert_pair(host, model, pos, neg, tgt, ref, args.steps, 3.5, args.skip, "ddim_uniform")
    masks = object_masks(host, args.size)
    start = host.pack_module("engine.backends.sampling").latent_out(model, t_inv.start_latent())

    def plain():
        return comfy.sample.sample(model, torch.randn_like(start), args.steps, args.cfg, "ddpm", "ddim_uniform", pos,
                                   neg, start, start_step=args.skip, seed=0, disable_pbar=True)

    m_on, m_off = (patched_model(host, model, t_inv, r_inv, masks, s) for s in (1.0, 0.0))
    rows = measure_rows([
        ("plain sampling (KSampler, ddpm)", plain),
        ("transfer, strength 0 (loop only)", lambda: transfer(m_off, pos, neg, args.cfg)),
        ("transfer (same-batch reference)", lambda: transfer(m_on, pos, neg, args.cfg)),
    ], args.device, args.repeats)
    print(f"\nTransfer, preset {args.preset}, {args.size}x{args.size}, {args.steps} steps from step {args.skip}, "
          f"cfg {args.cfg}, {machine(args.device)}\n")
    print_rows(rows)


if __name__ == "__main__":
    main()
