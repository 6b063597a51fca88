"""Video (Wan): the transfer's cost against plain sampling per frame count, flicker per video_matching choice, and
the extra memory of a real-size transfer computed from the shapes.

    python bench/bench_video.py [--frames 1,3,5,9] [--size 256] [--steps 30] [--skip 10] [--device cpu|cuda]
    python bench/bench_video.py --memory-only     # the table of a Wan 14B transfer of 81 frames at 480x832

The model is ComfyUI's own WanModel (Wan 2.1 text-to-video layout) with random weights, "small": dim 128, 8
heads, 8 blocks. Plain sampling = ComfyUI's KSampler path (euler, simple schedule, the same CFG and steps from the
same start step). Transfer = Appearance Transfer Sampler on the Semantic Match Patch model (a reference image
repeated over the frames as its rows, the second half of the blocks matched at every step, structure by the
target's queries and keys, masked AdaIN over the clip).

Flicker (random weights: it measures what the matching rule does to a clip, not how a trained Wan looks):
  * correspondence flicker: on a clip whose content moves one token to the right per latent frame, the share of
    object tokens whose matched reference token differs from the one the same content point matched on the frame
    before (0 = every point keeps its reference point over the clip);
  * colour flicker: the mean frame-to-frame change of each object's mean output latent, over the same change in
    the target clip itself (1.0 = the transfer adds no flicker of its own). The runs end with ending "exact", so
    that with nothing transferred the clip comes back as it was (a random model's last denoised prediction, the
    "authors" ending, would add a flicker of its own to every row).
"""

from __future__ import annotations

import torch
from common import PeakMemory, machine, setup, timed

WAN_PRESETS = {"small": (128, 8, 8, 256), "wan-1.3b": (1536, 12, 30, 8960), "wan-14b": (5120, 40, 40, 13824)}


def build_wan(preset: str, device: str):
    import comfy.model_patcher
    import comfy.supported_models
    import tiny_models

    dim, heads, layers, ffn = WAN_PRESETS[preset]
    cfg = dict(image_model="wan2.1", model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=16, dim=dim,
               ffn_dim=ffn, freq_dim=256, text_dim=4096, out_dim=16, num_heads=heads, num_layers=layers)
    mc = comfy.supported_models.WAN21_T2V(cfg)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    mc.set_inference_dtype(dtype, None)
    model = mc.get_model({}, device=torch.device(device))
    tiny_models.init_weights(model, 0)
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device(device), offload_device=torch.device("cpu"))


def _clip(frames: int, n: int, seed: int, shift: int = 0) -> torch.Tensor:
    """A smooth random scene; with ``shift`` its content moves ``shift`` latent pixels right per frame."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 16, n // 4, (n + shift * frames) // 4 + 1, generator=g)
    wide = torch.nn.functional.interpolate(base, size=(n, n + shift * frames), mode="bilinear", align_corners=False)
    start = shift * frames
    return torch.stack([wide[..., start - shift * f: start - shift * f + n] for f in range(frames)], dim=2)


def _masks(host, size: int, frames_px: int, shift_px: int):
    """One object: a centred square that moves with the content (``shift_px`` pixels per video frame)."""
    m = torch.zeros(frames_px, size, size)
    for f in range(frames_px):
        x0 = size // 4 + shift_px * f
        m[f, size // 4: 3 * size // 4, max(0, x0): max(0, x0 + size // 2)] = 1
    ref = torch.zeros(1, size, size)
    ref[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    return host.pack_module("matching").ObjectMasks.of_frames(m[None], ref)


def cost(args, host, model, pos, neg):
    import comfy.sample

    invert = host.pack_module("engine.backends.invert").invert
    transfer = host.pack_module("engine.backends.sample").transfer
    make_plan = host.pack_module("engine.patch.plan").make_plan
    patch_model = host.pack_module("engine.patch.install").patch_model
    n = args.size // 8
    print(f"\nCost, Wan {args.preset}, {args.size}x{args.size}, {args.steps} steps from step {args.skip}, cfg {args.cfg}, "
          f"{machine(args.device)}\n")
    print("| latent frames (video frames) | plain s | transfer s | ratio | inversion s | ratio | peak extra MB (transfer) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for frames in args.frames:
        tgt, ref = _clip(frames, n, 1), _clip(1, n, 2)
        t_inv = invert(model, pos, neg, tgt, args.steps, args.cfg, "ddpm_edit_friendly", args.skip, "simple")
        r_inv = invert(model, pos, neg, ref, args.steps, args.cfg, "ddpm_edit_friendly", args.skip, "simple", seed=1)
        patched = patch_model(model, make_plan(model, t_inv, r_inv))
        start = host.pack_module("engine.backends.sampling").latent_out(model, t_inv.start_latent())

        def plain(start=start):
            return comfy.sample.sample(model, torch.randn_like(start), args.steps, args.cfg, "euler", "simple", pos,
                                       neg, start, start_step=args.skip, seed=0, disable_pbar=True)

        def run(patched=patched):
            return transfer(patched, pos, neg, args.cfg)

        def inversion(tgt=tgt):
            return invert(model, pos, neg, tgt, args.steps, args.cfg, "ddpm_edit_friendly", args.skip, "simple")

        t_plain = timed(plain, args.device, args.repeats)
        t_transfer = timed(run, args.device, args.repeats)
        t_invert = timed(inversion, args.device, 1)
        with PeakMemory(args.device) as pm:
            transfer(patched, pos, neg, args.cfg)
        print(f"| {frames} ({4 * (frames - 1) + 1}) | {t_plain:.2f} | {t_transfer:.2f} | {t_transfer / t_plain:.2f} | "
              f"{t_invert:.2f} | {t_invert / t_plain:.2f} | {pm.peak / 2**20:.0f} |")


def flicker(args, host, model, pos, neg):
    invert = host.pack_module("engine.backends.invert").invert
    transfer = host.pack_module("engine.backends.sample").transfer
    make_plan = host.pack_module("engine.patch.plan").make_plan
    patch_model = host.pack_module("engine.patch.install").patch_model
    dit = host.pack_module("engine.patch.dit")
    frames, n = args.flicker_frames, args.size // 8
    shift = 2  # latent pixels per latent frame: one token of Wan's 2x2 patches
    tgt, ref = _clip(frames, n, 3, shift=shift), _clip(1, n, 4)
    masks = _masks(host, args.size, 4 * (frames - 1) + 1, shift * 8 // 4)
    t_inv = invert(model, pos, neg, tgt, args.steps, args.cfg, "ddpm_edit_friendly", args.skip, "simple")
    r_inv = invert(model, pos, neg, ref, args.steps, args.cfg, "ddpm_edit_friendly", args.skip, "simple", seed=1)
    stride = host.pack_module("engine.models.families").FAMILIES["wan"].frame_stride
    per_frame = masks.target_frames(frames, stride)  # [1, F, H, W]
    obj = torch.nn.functional.interpolate(per_frame, size=(n, n), mode="bilinear", align_corners=False)[0] > 0.5
    motion = _colour_change(tgt, obj)
    print(f"\nFlicker, Wan {args.preset}, {frames} latent frames ({4 * (frames - 1) + 1} video frames), the content "
          f"moving one token per latent frame, {args.size}x{args.size}\n")
    print("| video_matching | correspondence flicker, all matched steps | at the last step | colour flicker (vs the "
          "clip's own) | mean change vs target |")
    print("|---|---:|---:|---:|---:|")
    still = patch_model(model, make_plan(model, t_inv, r_inv, masks, strength=0.0))
    out, _ = transfer(still, pos, neg, args.cfg, ending="exact")
    print(f"| no transfer (strength 0) | – | – | {_colour_change(out, obj) / motion:.2f} | {(out - tgt).abs().mean():.3f} |")
    for mode in host.pack_module("engine.patch.plan").VIDEO_MATCHING:
        patched = patch_model(model, make_plan(model, t_inv, r_inv, masks, video_matching=mode))
        seen = []
        real = dit.match_sources

        def spy(plan, run, call, x, block, real=real, seen=seen):
            src = real(plan, run, call, x, block)
            seen.append((call.grid, src.detach().cpu()))
            return src

        dit.match_sources = spy
        try:
            out, _ = transfer(patched, pos, neg, args.cfg, ending="exact")
        finally:
            dit.match_sources = real
        changes = [_corr_flicker(src, grid, frames) for grid, src in seen]
        blocks = len(patched.model_options[host.pack_module("engine.patch.install").PLAN_KEY].settings.layers)
        last = changes[-blocks:]
        print(f"| {mode} | {sum(changes) / len(changes):.3f} | {sum(last) / len(last):.3f} | "
              f"{_colour_change(out, obj) / motion:.2f} | {(out - tgt).abs().mean():.3f} |")


NOISE_RULES = ("per frame", "shared by the frames", "ddim")


def stillness(args, host, model, pos, neg, seeds=(0, 1, 2)):
    """Frame-to-frame change of the output on a still clip (every frame the same) and on the moving clip, per
    inversion (edit-friendly with noise drawn per frame, with one draw shared by the frames, or ddim) and per
    video_matching; mean over ``seeds`` (of the clips' content). Still clip: the largest frame-to-frame change of
    any latent value, and its mean over the object (0: the clip stays still); the transfer's own size: the mean
    change against the target. Moving clip: the colour flicker of :func:`flicker`."""
    inversion = host.pack_module("inversion")
    invert = host.pack_module("engine.backends.invert").invert
    transfer = host.pack_module("engine.backends.sample").transfer
    make_plan = host.pack_module("engine.patch.plan").make_plan
    patch_model = host.pack_module("engine.patch.install").patch_model
    modes = host.pack_module("engine.patch.plan").VIDEO_MATCHING
    frames, n = args.flicker_frames, args.size // 8
    shift = 2
    masks_still = _masks(host, args.size, 4 * (frames - 1) + 1, 0)
    masks_moving = _masks(host, args.size, 4 * (frames - 1) + 1, shift * 8 // 4)
    stride = host.pack_module("engine.models.families").FAMILIES["wan"].frame_stride

    def obj_of(masks):
        per_frame = masks.target_frames(frames, stride)
        return torch.nn.functional.interpolate(per_frame, size=(n, n), mode="bilinear", align_corners=False)[0] > 0.5

    rows = {}
    for seed in seeds:
        still = _clip(1, n, 10 + seed).expand(-1, -1, frames, -1, -1).contiguous()
        moving = _clip(frames, n, 20 + seed, shift=shift)
        ref = _clip(1, n, 30 + seed)
        for rule in NOISE_RULES:
            method = "ddim" if rule == "ddim" else "ddpm_edit_friendly"
            noise = inversion.frame_shared_noise if rule == "shared by the frames" else inversion.independent_noise
            r_inv = invert(model, pos, neg, ref, args.steps, args.cfg, method, args.skip, "simple", seed=1)
            for clip_name, tgt, masks in (("still", still, masks_still), ("moving", moving, masks_moving)):
                t_inv = invert(model, pos, neg, tgt, args.steps, args.cfg, method, args.skip, "simple", noise=noise)
                obj = obj_of(masks)
                for mode in modes:
                    patched = patch_model(model, make_plan(model, t_inv, r_inv, masks, video_matching=mode))
                    out, _ = transfer(patched, pos, neg, args.cfg, ending="exact")
                    step = (out[:, :, 1:] - out[:, :, :-1]).abs()
                    key = (rule, mode)
                    acc = rows.setdefault(key, {"largest": [], "mean": [], "change": [], "moving": []})
                    if clip_name == "still":
                        acc["largest"].append(float(step.max()))
                        acc["mean"].append(float(step[0].permute(1, 2, 3, 0)[obj[1:]].mean()))
                        acc["change"].append(float((out - tgt).abs().mean()))
                    else:
                        acc["moving"].append(_colour_change(out, obj) / _colour_change(tgt, obj))
    print(f"\nStill and moving clips, Wan {args.preset}, {frames} latent frames, {args.size}x{args.size}, "
          f"{args.steps} steps ({args.skip} skipped), CFG {args.cfg:g}, mean of {len(seeds)} clips\n")
    print("| inversion | video_matching | still clip: largest frame-to-frame change | mean over the object | "
          "transfer's change vs target | moving clip: colour flicker (vs the clip's own) |")
    print("|---|---|---:|---:|---:|---:|")
    for (rule, mode), acc in rows.items():
        mean = {k: sum(v) / len(v) for k, v in acc.items()}
        label = rule if rule == "ddim" else f"edit-friendly, noise {rule}"
        print(f"| {label} | {mode} | {mean['largest']:.3f} | {mean['mean']:.4f} | {mean['change']:.3f} | "
              f"{mean['moving']:.2f} |")
    return rows


def _corr_flicker(src: torch.Tensor, grid, frames: int) -> float:
    """Share of object tokens (present on both frames, the content moved one token right) whose matched reference
    token (its position within the reference frame) differs from the previous frame's match of the same point."""
    h, w = grid
    n = h * w
    pos = torch.where(src[0] >= 0, src[0] % n, -1).view(frames, h, w)
    changed = total = 0
    for f in range(1, frames):
        prev, cur = pos[f - 1, :, :-1], pos[f, :, 1:]
        both = (prev >= 0) & (cur >= 0)
        changed += int((both & (prev != cur)).sum())
        total += int(both.sum())
    return changed / max(1, total)


def _colour_change(x: torch.Tensor, obj: torch.Tensor) -> float:
    """Mean frame-to-frame change of the object's mean latent (``obj`` ``[F, H, W]`` bool)."""
    means = torch.stack([x[0, :, f][:, obj[f]].mean(dim=1) for f in range(x.shape[2])])
    return float((means[1:] - means[:-1]).abs().mean())


def memory_table(frames_px: int = 81, width: int = 832, height: int = 480, steps: int = 30, skip: int = 10,
                 preset: str = "wan-14b"):
    """The extra memory of a transfer, computed from the shapes (bf16 model on the GPU, the plan in float32)."""
    dim, heads, layers, ffn = WAN_PRESETS[preset]
    t, h, w = (frames_px - 1) // 4 + 1, height // 8, width // 8
    tokens = t * (h // 2) * (w // 2)
    latent = 16 * t * h * w * 4  # one float32 latent
    rows = [
        (f"stored trajectories, target + reference x_t ({steps + 1} steps each, float32), on the model's device",
         2 * (steps + 1) * latent),
        ("the target's noise maps (edit-friendly), on the intermediate device (CPU RAM)", steps * latent),
        ("the reference row at matching steps: its hidden state (bf16)", tokens * dim * 2),
        ("the reference row at matching steps: its feed-forward activation, a block's largest (bf16)",
         tokens * ffn * 2),
        ("matching at a block: the target and reference features taken out (bf16)", 2 * tokens * dim * 2),
        ("matching at a block: the normalised reference features (float32)", tokens * dim * 4),
        ("matching at a block: one similarity chunk (the byte budget)", 64 * 2**20),
    ]
    print(f"\nExtra memory of a Wan {preset} transfer: {frames_px} frames at {width}x{height} ({t} latent frames, "
          f"{tokens} tokens per row, hidden {dim}, {layers} blocks), {steps} steps, one reference image\n")
    print("| what | MB |")
    print("|---|---:|")
    for what, b in rows:
        print(f"| {what} | {b / 2**20:.0f} |")
    matching = sum(b for _, b in rows[4:])
    peak = rows[0][1] + rows[2][1] + max(matching, rows[3][1])
    print(f"| **peak extra on the GPU** (trajectories + the reference row + the larger of matching and its "
          f"feed-forward; transients are freed after each block) | **{peak / 2**20:.0f}** |")


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=list(WAN_PRESETS))
    ap.add_argument("--frames", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3, 5, 9],
                    help="latent frames to time (video frames = 4 (f - 1) + 1)")
    ap.add_argument("--flicker-frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=256, help="frame size in pixels (latent = size / 8)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--skip", type=int, default=10)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--memory-only", action="store_true")
    ap.add_argument("--clips", type=int, default=3, help="still / moving clips to average over (--only still)")
    ap.add_argument("--only", choices=("flicker", "cost", "still"), help="run one of the measurements")
    args = ap.parse_args()
    memory_table()
    if args.memory_only:
        return
    host = setup(args.device)
    model = build_wan(args.preset, args.device)
    g = torch.Generator().manual_seed(0)
    pos, neg = ([[torch.randn(1, 32, 4096, generator=g), {}]] for _ in range(2))
    if args.only in (None, "still"):
        stillness(args, host, model, pos, neg, seeds=range(args.clips))
    if args.only in (None, "flicker"):
        flicker(args, host, model, pos, neg)
    if args.only in (None, "cost"):
        cost(args, host, model, pos, neg)


if __name__ == "__main__":
    main()
