"""Inversion cost and exactness: DDIM Invert Reference against plain sampling of the same steps.

    python bench/bench_inversion.py [--preset small|medium|sd15] [--size 256] [--steps 50] [--device cpu|cuda]

Prints a markdown table: wall time of each inversion method, its ratio to plain sampling with the same model,
steps and CFG (the same number of UNet calls, so ~1.0 is the floor), and the round-trip error (max |x - x'|
in VAE latent units after inverting and sampling back from step 0).
"""

from __future__ import annotations

import torch
from common import build, conds, machine, parser, setup, timed


def main():
    args = parser(__doc__, cfg=3.5).parse_args()

    host = setup(args.device)
    import comfy.sample

    import inversion as inv_lib

    invert = host.pack_module("engine.backends.invert").invert
    sampling = host.pack_module("engine.backends.sampling")
    model = build(args.preset, args.device)
    pos, neg = conds(args.preset)
    lat_size = args.size // 8
    lat = torch.randn(1, 4, lat_size, lat_size, generator=torch.Generator().manual_seed(0))

    def plain():
        return comfy.sample.sample(model, torch.randn_like(lat), args.steps, args.cfg, "euler", "ddim_uniform", pos,
                                   neg, lat, seed=0, disable_pbar=True)

    t_plain = timed(plain, args.device, args.repeats)
    rows = [("plain sampling (euler, same steps)", t_plain, 1.0, "")]
    for method, refine in (("ddim", 0), ("ddim", 1), ("ddpm_edit_friendly", 0)):
        def run(method=method, refine=refine):
            return invert(model, pos, neg, lat, args.steps, args.cfg, method, 0, "ddim_uniform", refine_steps=refine)

        t = timed(run, args.device, args.repeats)
        inv = run()
        if method == "ddim":
            start = sampling.latent_out(model, inv.start_latent())
            back = comfy.sample.sample(model, torch.zeros_like(lat), args.steps, args.cfg, "euler", "ddim_uniform",
                                       pos, neg, start, disable_noise=True, start_step=0, last_step=args.steps,
                                       force_full_denoise=True, seed=0, disable_pbar=True)
        else:
            def loop(denoise, x, sig, inv=inv):
                return inv_lib.sample_edit_friendly(denoise, inv.start_latent().to(x), sig, inv.residuals.to(x.device))

            back = sampling.run_loop(model, loop, inv.sigmas, pos, neg, args.cfg, torch.zeros_like(lat))
        err = float((back.cpu() - lat).abs().max())
        name = f"{method}" + (f" + {refine} refinement" if refine else "")
        rows.append((name, t, t / t_plain, f"{err:.2e}"))

    print(f"\nInversion, preset {args.preset}, {args.size}x{args.size}, {args.steps} steps, cfg {args.cfg}, "
          f"{machine(args.device)}\n")
    print("| method | wall s | ratio to plain sampling | round-trip max error |")
    print("|---|---:|---:|---:|")
    for name, t, r, e in rows:
        print(f"| {name} | {t:.2f} | {r:.2f} | {e} |")


if __name__ == "__main__":
    main()
