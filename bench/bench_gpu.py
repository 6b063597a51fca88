"""GPU figures in one prepared call (issue 11): plain sampling vs. the transfer, inversion, matching, syncs.

    python bench/bench_gpu.py            # one CUDA GPU (H100/H200 class), fp16, stays under --budget (400 s)
    python bench/bench_gpu.py --tiny     # the same code paths on the CPU with tiny UNets, float32, seconds
    options: --only sd15,sdxl,matching  --budget SECONDS  --steps N (no budget scaling)  --repeats R

Models: random-weight UNets built from ComfyUI's own classes with the real shapes (no weights are
downloaded; timing does not need them): SD1.5 (model_channels 320, channel_mult 1,2,4,4, 8 heads,
context 768) at 512 px (64x64 latent) and SDXL (320, 1,2,4, transformer depths 0,0,2,2,10,10, 64-channel
heads, context 2048, adm 2816) at 1024 px (128x128 latent), in float16; ComfyUI's layers skip init, so
every layer gets torch's default init (bench/tiny_models.init_weights). --tiny uses bench/tiny_models'
build_sd15() / build_sdxl() at 64 px with 8 steps (skip 2), in float32.

Settings: the authors' (engine/defaults.py): 100 ddim_uniform steps, sampling from step 32 (68 sampled
steps), edit-friendly inversion at cfg 3.5, transfer at cfg 2.5 with AdaIN and the default layers. Each
model section first measures one UNet step and, if the authors' 100 steps would not fit its share of
--budget, times fewer steps (50, 40, 25, 20 or 10, skip = 32 % of them; shown in the "steps" column and
a note under the table); the ratios are then per-step ratios of the same schedule shape. Every timed row is the median of --repeats runs after a
short warm-up pipeline (4 steps) on the same model and size; torch.cuda.synchronize() brackets each run.

Rows (ratio = wall time / wall time of the row named in "vs"):

* plain sampling: ComfyUI's KSampler path, comfy.sample.sample with sampler ddpm, scheduler ddim_uniform,
  cfg 2.5, from step 32 of 100 (68 UNet calls of batch 2), starting from the target's inverted latent;
* transfer: engine.transfer.transfer() on the patched model (cfg 2.5, AdaIN, ending
  "authors"): the same 68 steps, with the reference / structure rows added to the batch where the method
  acts, matching at the default layers (SD1.5 output 6-11, SDXL output 0-5);
* whole transfer (sum): two inversions + make_plan/patch_model + transfer, from the rows' medians;
* plain sampling, 100 steps: comfy.sample.sample, ddpm, from step 0 at the inversion's cfg 3.5;
* inversion: nodes.ddim_invert_reference.invert(), edit-friendly, 100 steps, cfg 3.5 (target and
  reference runs pooled);
* matching / attn1 patch per matched UNet call: one transfer run (not the timed ones) is probed: CUDA
  events (perf_counter on the CPU) around the UNet forward and around every match_objects call and every
  attn1 patch call at the patched layers; the median over 3 matched UNet calls of (sum of the layer
  calls) / (the UNet call). A matched call holds the positive, negative and reference rows in one batch
  (one sampling step), so this is the share of a step;
* host-device syncs in the attn1 patch: torch.cuda.set_sync_debug_mode("warn") during two matched UNet
  calls of that probe run; every "synchronizing CUDA operation" warning raised while an attn1 patch call
  of a patched layer runs is counted (the whole UNet forward is counted too, for comparison). The first
  matched call builds and uploads the cached token masks (a blocking host-to-device copy counts as a
  sync), so the figure to judge is the second call's, the steady state. CPU: n/a;
* matching at 32x32 (C 640) and 64x64 (C 320) tokens, as SD1.5's decoder: one
  match_tokens(check=False) call in the run's dtype, against the authors' per-pixel loop (per-row
  normalise + cosine + .cpu() + argmax, timed on 64 matched and 64 skipped rows and scaled to the map:
  bench_matching.authors_loop_time) and the dense floor (normalised matmul + argmax,
  bench_matching.dense_floor); elliptic masks covering 60 % of each map.

Peak GPU memory: torch.cuda.max_memory_allocated over the row's runs (weights included), reset per row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (puts scripts/ on sys.path, as for the other benchmarks)

AUTHORS_STEPS, AUTHORS_SKIP = 100, 32
INVERSION_CFG, CFG = 3.5, 2.5
WARMUP_STEPS, WARMUP_SKIP = 4, 1
TRANSFER_COST = 1.6  # a transfer step against a plain one, for the step budget (batch 3 of 2, plus matching)
PROBE_SYNC_CALLS, PROBE_TIMED_CALLS = 2, 3
SECTIONS = ("sd15", "sdxl", "matching")
SHARES = {"sd15": 0.3, "sdxl": 0.6, "matching": 0.1}
GPU = {  # name, image size, extra UNet config (on top of bench/tiny_models' block layouts)
    "sd15": ("SD1.5", 512, dict(model_channels=320, channel_mult=[1, 2, 4, 4], context_dim=768)),
    "sdxl": ("SDXL", 1024, dict(model_channels=320, channel_mult=[1, 2, 4], context_dim=2048)),
}
TINY_SIZE, TINY_STEPS, TINY_SKIP = 64, 8, 2


@dataclasses.dataclass
class Row:
    section: str
    run: str
    steps: str = "-"
    wall: float | None = None  # seconds
    ratio: float | None = None
    ratio_text: str | None = None  # replaces the formatted ratio (shares, sync counts)
    vs: str = "-"
    peak: int | str | None = None  # bytes, or a note


class ProbeDone(BaseException):
    """Ends the probe's transfer run once enough matched UNet calls were seen (not an error)."""


# ------------------------------------------------------------------------------------------------ set-up


HOST = None  # e4e_headless.host once set up


def setup(cuda: bool):
    """The ComfyUI core as the other benchmarks set it up (bench/common.py); on the GPU ComfyUI's device handling
    stays on (``host.setup_comfyui`` sets ``args.cpu`` only where torch sees no CUDA device)."""
    global HOST
    HOST = common.setup("cuda" if cuda else "cpu")
    return HOST


def build_model(family: str, tiny: bool, device: torch.device, dtype: torch.dtype):
    """A ModelPatcher around a random-weight UNet: tiny_models' tiny ones, or the real shapes on ``device``."""
    import tiny_models

    if tiny:
        return tiny_models.build_sd15() if family == "sd15" else tiny_models.build_sdxl()
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models

    over = GPU[family][2]
    if family == "sd15":  # SD15's own extra config gives 8 heads (tiny_models sets 40-channel heads instead)
        mc = comfy.supported_models.SD15(tiny_models.sd15_unet_config(**over))
        cls = comfy.model_base.BaseModel
    else:  # SDXL's own extra config gives 64-channel heads
        mc = comfy.supported_models.SDXL(dict(tiny_models.sdxl_unet_config(), **over))
        cls = comfy.model_base.SDXL
    mc.set_inference_dtype(dtype, None)
    model = cls(mc, model_type=comfy.model_base.ModelType.EPS, device=device)
    tiny_models.init_weights(model, 0, out_gain=0.1)
    model = model.to(device).eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=torch.device("cpu"))


def make_conds(patcher, size: int, tokens: int):
    """Random positive / negative conditioning of the model's context width (and SDXL's pooled output)."""
    import comfy.model_base

    ctx = patcher.model.model_config.unet_config["context_dim"]
    sdxl = isinstance(patcher.model, comfy.model_base.SDXL)
    g = torch.Generator().manual_seed(0)

    def one():
        extra = {}
        if sdxl:
            extra = {"pooled_output": torch.randn(1, 1280, generator=g), "width": size, "height": size,
                     "crop_w": 0, "crop_h": 0, "target_width": size, "target_height": size}
        return [[torch.randn(1, tokens, ctx, generator=g), extra]]

    return one(), one()


# ------------------------------------------------------------------------------------------------ timing


class Clock:
    """CUDA events (nothing waits on the device until ``seconds``), or perf_counter on the CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def start(self):
        if not self.cuda:
            return time.perf_counter()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def stop(self, start):
        if not self.cuda:
            return time.perf_counter() - start
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return start, ev

    def seconds(self, handle) -> float:
        if not self.cuda:
            return handle
        return handle[0].elapsed_time(handle[1]) / 1e3  # needs a synchronize() first


def sync(cuda: bool):
    if cuda:
        torch.cuda.synchronize()


def measure(fn, repeats: int, cuda: bool):
    """Wall seconds of ``repeats`` runs of ``fn`` (no warm-up here), peak GPU bytes over them (None on the
    CPU), and the last result."""
    times, result = [], None
    if cuda:
        sync(cuda)
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        sync(cuda)
        t0 = time.perf_counter()
        result = fn()
        sync(cuda)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    return times, peak, result


# step counts for which ddim_uniform gives exactly that many steps (1000 // n divides the schedule evenly)
STEP_CHOICES = (100, 50, 40, 25, 20, 10)


def plan_steps(t_step: float, budget: float, repeats: int) -> int:
    """The most steps (the authors' 100 first) whose timed runs fit ``budget`` seconds at ``t_step`` per
    plain step: plain + transfer + plain-100 + inversion ``repeats`` times, one more inversion, the probe."""
    for n in STEP_CHOICES:
        run = n - round(0.32 * n)
        calls = repeats * (run * (1 + TRANSFER_COST) + 2 * n) + n + TRANSFER_COST * (round(0.16 * run) + 8)
        if calls * t_step <= budget:
            return n
    return STEP_CHOICES[-1]


# ------------------------------------------------------------------------------------------------ probe


def _is_sync_warning(w) -> bool:
    return "synchroniz" in str(w.message)


class Probe:
    """One transfer run with timers around the UNet forward, match_objects and the attn1 patch at matched
    UNet calls; the first ``PROBE_SYNC_CALLS`` matched calls run under the CUDA sync debug mode instead."""

    def __init__(self, host, patched, cuda: bool):
        self.host, self.cuda, self.clock = host, cuda, Clock(cuda)
        self.plan = host.pack_module("engine.patch.install").plan_of(patched)
        self.call_of = host.pack_module("engine.patch.call").call_of
        self.calls: list[dict] = []
        self.current: dict | None = None
        self.caught: list | None = None  # the warnings list while a sync-checked call runs
        self.model = patched.clone()
        patches = self.model.model_options["transformer_options"]["patches"]
        patches["attn1_patch"] = [self._wrap_patch(p) for p in patches["attn1_patch"]]

    def _wrap_patch(self, patch):
        def wrapped(n, context, value, extra):
            rec = self.current
            if rec is None or extra.get("block") not in self.plan.layers:
                return patch(n, context, value, extra)
            rec["layer_calls"] += 1
            if self.caught is not None:
                before = len(self.caught)
                out = patch(n, context, value, extra)
                rec["patch_syncs"] += sum(map(_is_sync_warning, self.caught[before:]))
                return out
            t = self.clock.start()
            out = patch(n, context, value, extra)
            rec["patch"].append(self.clock.stop(t))
            return out

        return wrapped

    def _wrap_match(self, match):
        def wrapped(*args, **kwargs):
            rec = self.current
            if rec is None or self.caught is not None:
                return match(*args, **kwargs)
            t = self.clock.start()
            out = match(*args, **kwargs)
            rec["match"].append(self.clock.stop(t))
            return out

        return wrapped

    def _wrap_forward(self, forward):
        def wrapped(x, *args, **kwargs):
            call, _ = self.call_of(kwargs.get("transformer_options"))
            if call is None or not call.match:
                return forward(x, *args, **kwargs)
            if len(self.calls) >= PROBE_SYNC_CALLS + PROBE_TIMED_CALLS:
                raise ProbeDone
            rec = {"batch": x.shape[0], "layer_calls": 0, "patch": [], "match": [], "patch_syncs": 0,
                   "forward_syncs": None, "forward": None}
            self.calls.append(rec)
            self.current = rec
            try:
                if len(self.calls) <= PROBE_SYNC_CALLS:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        self.caught = caught
                        if self.cuda:
                            torch.cuda.set_sync_debug_mode("warn")
                        try:
                            out = forward(x, *args, **kwargs)
                        finally:
                            if self.cuda:
                                torch.cuda.set_sync_debug_mode("default")
                            self.caught = None
                    rec["forward_syncs"] = sum(map(_is_sync_warning, caught))
                    return out
                t = self.clock.start()
                out = forward(x, *args, **kwargs)
                rec["forward"] = self.clock.stop(t)
                return out
            finally:
                self.current = None

        return wrapped

    def run(self, transfer, pos, neg) -> dict:
        unet = self.model.model.diffusion_model
        matcher = self.host.pack_module("engine.patch.sources")  # the method's source calls match_objects
        real_match = matcher.match_objects
        unet.forward = self._wrap_forward(unet.forward)  # an instance attribute: shadows the class's forward
        matcher.match_objects = self._wrap_match(real_match)
        try:
            with contextlib.suppress(ProbeDone):
                transfer(self.model, pos, neg, CFG)
        finally:
            del unet.forward
            matcher.match_objects = real_match
            self.current, self.caught = None, None
        sync(self.cuda)
        return self.summary()

    def summary(self) -> dict:
        checked = self.calls[:PROBE_SYNC_CALLS]
        timed = [c for c in self.calls[PROBE_SYNC_CALLS:] if c["forward"] is not None]
        if not timed:
            raise RuntimeError("probe: the transfer run had no matched UNet call to time; use more steps")
        sec = self.clock.seconds
        fwd = [sec(c["forward"]) for c in timed]
        match = [sum(map(sec, c["match"])) for c in timed]
        patch = [sum(map(sec, c["patch"])) for c in timed]
        return {
            "calls": len(timed),
            "batch": timed[0]["batch"],
            "layers": timed[0]["layer_calls"],
            "match_calls": len(timed[0]["match"]),
            "forward": statistics.median(fwd),
            "match": statistics.median(match),
            "patch": statistics.median(patch),
            "match_share": statistics.median(m / f for m, f in zip(match, fwd)),
            "patch_share": statistics.median(p / f for p, f in zip(patch, fwd)),
            "syncs": [(c["patch_syncs"], c["layer_calls"], c["forward_syncs"]) for c in checked],
        }


# ------------------------------------------------------------------------------------------------ sections


def model_section(family: str, args, cuda: bool, device: torch.device, dtype, budget: float, notes: list):
    host = HOST
    import comfy.sample

    invert = host.pack_module("engine.backends.invert").invert
    make_plan = host.pack_module("engine.patch.plan").make_plan
    install = host.pack_module("engine.patch.install").patch_model
    transfer = host.pack_module("engine.backends.sample").transfer
    latent_out = host.pack_module("engine.backends.sampling").latent_out
    ObjectMasks = host.pack_module("matching").ObjectMasks

    t_section = time.perf_counter()
    name, size = (GPU[family][0], TINY_SIZE if args.tiny else GPU[family][1])
    model = build_model(family, args.tiny, device, dtype)
    pos, neg = make_conds(model, size, 8 if args.tiny else 77)
    n = size // 8
    g = torch.Generator().manual_seed(0)
    tgt, ref = torch.randn(1, 4, n, n, generator=g), torch.randn(1, 4, n, n, generator=g)
    mask = torch.zeros(size, size)
    mask[size // 8: -size // 8, size // 8: -size // 8] = 1  # one object, 56 % of the image
    masks = ObjectMasks(mask[None], mask[None])

    def inversions_one(latent, seed, steps, skip):
        return invert(model, pos, neg, latent, steps, INVERSION_CFG, "ddpm_edit_friendly", skip, "ddim_uniform",
                      seed=seed)

    def inversions(steps, skip):
        return inversions_one(tgt, 0, steps, skip), inversions_one(ref, 1, steps, skip)

    def plain(steps, skip, cfg, latent):
        return comfy.sample.sample(model, torch.randn_like(latent), steps, cfg, "ddpm", "ddim_uniform", pos, neg,
                                   latent, start_step=skip, seed=0, disable_pbar=True)

    # warm-up: the whole pipeline on a short schedule (every kernel, the allocator at this size)
    w_inv = inversions(WARMUP_STEPS, WARMUP_SKIP)
    transfer(install(model, make_plan(model, *w_inv, masks)), pos, neg, CFG)
    plain(WARMUP_STEPS, 0, INVERSION_CFG, tgt)
    sync(cuda)

    repeats = args.repeats or (1 if args.tiny else 2)
    if args.tiny:
        steps, skip = TINY_STEPS, TINY_SKIP
    else:
        if args.steps:
            steps = args.steps
        else:
            t_step = measure(lambda: plain(WARMUP_STEPS, 0, INVERSION_CFG, tgt), 1, cuda)[0][0] / WARMUP_STEPS
            steps = plan_steps(t_step, budget - (time.perf_counter() - t_section), repeats)
        skip = round(steps * AUTHORS_SKIP / AUTHORS_STEPS)
    # inversions: the target `repeats` times, the reference once; the median of all
    t_times, p_inv, t_inv = measure(lambda: inversions_one(tgt, 0, steps, skip), repeats, cuda)
    r_times, _, r_inv = measure(lambda: inversions_one(ref, 1, steps, skip), 1, cuda)
    inv_s = statistics.median(t_times + r_times)
    n_run = t_inv.steps - skip
    if (t_inv.steps, skip) != (AUTHORS_STEPS, AUTHORS_SKIP):
        why = "tiny run" if args.tiny else ("--steps" if args.steps else f"its share of the budget, {budget:.0f} s")
        notes.append(f"{name}: {t_inv.steps} steps, sampling from step {skip} (the authors': {AUTHORS_STEPS} "
                     f"from {AUTHORS_SKIP}; {why}); the ratios are per-step ratios of the same schedule shape")
    patch_times, _, m_on = measure(lambda: install(model, make_plan(model, t_inv, r_inv, masks)), 1, cuda)
    patch_s = patch_times[0]
    start = latent_out(model, t_inv.start_latent())

    times, p_plain, _ = measure(lambda: plain(steps, skip, CFG, start), repeats, cuda)
    plain_s = statistics.median(times)
    times, p_tr, _ = measure(lambda: transfer(m_on, pos, neg, CFG), repeats, cuda)
    tr_s = statistics.median(times)
    times, p_full, _ = measure(lambda: plain(steps, 0, INVERSION_CFG, tgt), repeats, cuda)
    full_s = statistics.median(times)
    probe = Probe(host, m_on, cuda).run(transfer, pos, neg)

    sec = f"{name}{' layout, tiny' if args.tiny else ''} {size} px ({n}x{n} latent), {str(dtype).replace('torch.', '')}"
    run_steps = f"{n_run} of {t_inv.steps}"
    layers = _layer_names(host.pack_module("engine.patch.install").plan_of(m_on).settings.layers)
    rows = [
        Row(sec, f"plain sampling (comfy.sample.sample, ddpm, ddim_uniform, cfg {CFG}, from step {skip})",
            run_steps, plain_s, 1.0, vs="plain", peak=p_plain),
        Row(sec, f"transfer (transfer(), cfg {CFG}, AdaIN, layers {layers})", run_steps, tr_s, tr_s / plain_s,
            vs="plain", peak=p_tr),
        Row(sec, "whole transfer (2 inversions + patch + transfer; sum of medians)",
            f"{n_run} + 2x{t_inv.steps}", 2 * inv_s + patch_s + tr_s, (2 * inv_s + patch_s + tr_s) / plain_s,
            vs="plain", peak="-"),
        Row(sec, f"plain sampling, all steps (ddpm, cfg {INVERSION_CFG}, from step 0)", str(t_inv.steps), full_s,
            1.0, vs=f"plain {t_inv.steps}", peak=p_full),
        Row(sec, f"inversion (invert(), edit-friendly, cfg {INVERSION_CFG})", str(t_inv.steps), inv_s,
            inv_s / full_s, vs=f"plain {t_inv.steps}", peak=p_inv),
        Row(sec, f"matching: {probe['match_calls']} match_objects calls in one matched UNet call "
                 f"(batch {probe['batch']})", "1", probe["match"], probe["match_share"],
            ratio_text=f"{100 * probe['match_share']:.2f} %",
            vs=f"the UNet call ({_fmt_time(probe['forward'])})", peak="-"),
        Row(sec, f"attn1 patch at {probe['layers']} layers (matching + rearrange + copies), same call", "1",
            probe["patch"], probe["patch_share"], ratio_text=f"{100 * probe['patch_share']:.2f} %",
            vs=f"the UNet call ({_fmt_time(probe['forward'])})", peak="-"),
    ]
    (p1, l1, f1), (p2, l2, f2) = (probe["syncs"] + [(0, 0, None)] * 2)[:2]
    if cuda:
        text = f"{p2} in {l2} layer calls (first call: {p1} in {l1})"
        vs = f"whole UNet forward: {f2} (first: {f1})"
    else:
        text, vs = "n/a (CPU)", "n/a (CPU)"
    rows.append(Row(sec, "host-device syncs in the attn1 patch, one matched UNet call (sync debug mode)", "1",
                    None, None, ratio_text=text, vs=vs, peak="-"))
    unload(cuda)
    return rows, {"transfer_ratio": tr_s / plain_s, "match_share": probe["match_share"],
                  "patch_syncs": p2 if cuda else None, "name": name}


def matching_rows(side: int, C: int, args, cuda: bool, device: torch.device, dtype):
    """One token map: match_tokens, the authors' loop (estimated) and the dense floor; seconds of one call."""
    import bench_matching as bm

    match_tokens = HOST.pack_module("matching").match_tokens
    g = torch.Generator().manual_seed(side)
    out = torch.randn(side * side, C, generator=g).to(device, dtype)
    ref = torch.randn(side * side, C, generator=g).to(device, dtype)
    out_mask = bm.ellipse_mask(side, side, 0.6, 0.5, 0.5, device)
    ref_mask = bm.ellipse_mask(side, side, 0.6, 0.48, 0.53, device)

    def timed(fn):
        if cuda:
            sync(cuda)
            torch.cuda.reset_peak_memory_stats()
        t = bm.timeit(fn, device, min_time=0.1 if args.tiny else 0.5)
        return t, (torch.cuda.max_memory_allocated() if cuda else None)

    ours, p_ours = timed(lambda: match_tokens(out, ref, out_mask, ref_mask, check=False))
    dense, p_dense = timed(lambda: bm.dense_floor(out, ref, out_mask, ref_mask))
    rows_sampled = 16 if args.tiny else 64
    loop = bm.authors_loop_time(out, ref, out_mask, ref_mask, side, n_sample=rows_sampled)
    sec = f"matching {side}x{side} tokens, C {C}, {str(dtype).replace('torch.', '')}"
    return [
        Row(sec, "match_tokens(check=False), one call", "-", ours, 1.0, vs="match_tokens", peak=p_ours),
        Row(sec, f"authors' per-pixel loop (estimated from 2x{rows_sampled} rows)", "-", loop, loop / ours,
            vs="match_tokens", peak="-"),
        Row(sec, "dense floor (normalised matmul + argmax)", "-", dense, dense / ours, vs="match_tokens",
            peak=p_dense),
    ], ours


def matching_section(args, cuda: bool, device: torch.device, dtype):
    sides = ((16, 640), (32, 320)) if args.tiny else ((32, 640), (64, 320))
    rows, ours = [], None
    for side, C in sides:
        r, ours = matching_rows(side, C, args, cuda, device, dtype)
        rows += r
    return rows, {"match_tokens": ours, "side": sides[-1][0]}


def unload(cuda: bool):
    """GPU: let ComfyUI drop the section's model, so that the next section's peak memory is its own."""
    if cuda:
        import comfy.model_management

        comfy.model_management.unload_all_models()
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ output


def _layer_names(layers) -> str:
    """("output", 6) ... ("output", 11) -> "output 6-11" (runs of consecutive blocks)."""
    parts, by_block = [], {}
    for block, i in sorted(layers):
        by_block.setdefault(block, []).append(i)
    for block, ids in by_block.items():
        runs, first = [], ids[0]
        for prev, cur in zip(ids, ids[1:] + [None]):
            if cur != prev + 1:
                runs.append(f"{first}" if first == prev else f"{first}-{prev}")
                first = cur
        parts.append(f"{block} {', '.join(runs)}")
    return "; ".join(parts)


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e3:.3f} ms"


def _fmt_peak(p, cuda: bool) -> str:
    if isinstance(p, str):
        return p
    if p is None:
        return "-" if cuda else "n/a (CPU)"
    return f"{p / 2**20:.0f} MiB"


def _fmt_ratio(r: Row) -> str:
    if r.ratio_text is not None:
        return r.ratio_text
    return "-" if r.ratio is None else f"{r.ratio:.2f}x"


def print_table(rows: list[Row], cuda: bool):
    print("| model / map | run | steps | wall time | ratio | vs | peak GPU memory |")
    print("|---|---|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r.section} | {r.run} | {r.steps} | {_fmt_time(r.wall)} | {_fmt_ratio(r)} | {r.vs} "
              f"| {_fmt_peak(r.peak, cuda)} |")


def print_goals(goals: dict, tiny: bool):
    def verdict(ok):
        return "n/a (tiny CPU run)" if tiny else ("met" if ok else "NOT met")

    print("\nGoals" + (" (tiny random UNets on the CPU: these check the script, not the goals)" if tiny else ""))
    for g in (goals.get("sd15"), goals.get("sdxl")):
        if g:
            print(f"* {g['name']}: transfer {g['transfer_ratio']:.2f}x plain (goal <= 1.25x): "
                  f"{verdict(g['transfer_ratio'] <= 1.25)}")
            print(f"* {g['name']}: matching {100 * g['match_share']:.2f} % of a matched step (goal < 5 %): "
                  f"{verdict(g['match_share'] < 0.05)}")
            syncs = g["patch_syncs"]
            print(f"* {g['name']}: host-device syncs in the attn1 patch per matched call (steady state): "
                  f"{'n/a (CPU)' if syncs is None else syncs} (goal 0): {verdict(syncs == 0)}")
    m = goals.get("matching")
    if m:
        side = m["side"]
        print(f"* match_tokens at {side}x{side} tokens: {_fmt_time(m['match_tokens'])} per call (goal < 1 ms at "
              f"64x64 on an H100): {verdict(m['match_tokens'] < 1e-3)}")


def _version(folder) -> str:
    text = (folder / "comfyui_version.py").read_text() if (folder / "comfyui_version.py").is_file() else ""
    return next((line.split("=", 1)[1].strip().strip("\"'") for line in text.splitlines()
                 if line.startswith("__version__")), "unknown")


def header(cuda: bool, dtype, tiny: bool, budget: float) -> list[str]:
    comfy_folder = HOST.setup_comfyui()
    if cuda:
        dev = (f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}, "
               f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)")
        tf32 = torch.backends.cuda.matmul.allow_tf32
    else:
        dev = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        tf32 = None
    lines = [
        "## Eye-for-an-eye: GPU figures (bench/bench_gpu.py" + (" --tiny)" if tiny else ")"),
        "",
        f"- device: {dev}",
        f"- torch {torch.__version__}; dtype {str(dtype).replace('torch.', '')}"
        + ("" if tf32 is None else f"; TF32 matmul {'on' if tf32 else 'off'}"),
        f"- ComfyUI host: {_version(comfy_folder)} at {comfy_folder}",
        "- models: " + ("bench/tiny_models build_sd15() / build_sdxl(), 64 px, random weights" if tiny else
                        "random-weight UNets with SD1.5 (512 px) and SDXL (1024 px) shapes"),
        f"- budget {budget:.0f} s" if not tiny else "- budget: none (tiny run)",
    ]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--tiny", action="store_true", help="tiny UNets on the CPU, float32 (checks the script)")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma list of: sd15, sdxl, matching")
    ap.add_argument("--budget", type=float, default=400.0, help="seconds for the whole run (GPU; steps shrink)")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps instead of the budget's (skip = 32 %%); 100, 50, 40, 25, 20 or 10 are exact "
                         "with ddim_uniform")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per row (GPU 2, tiny 1)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad or not only:
        ap.error(f"--only: {', '.join(bad) or 'nothing'} not among {', '.join(SECTIONS)}")
    if args.steps is not None and args.steps < 10:
        ap.error("--steps: at least 10")
    cuda = not args.tiny
    if cuda and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device; run with --tiny on a CPU", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    setup(cuda)
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float16 if cuda else torch.float32
    share = sum(SHARES[s] for s in only)

    rows, goals, notes = [], {}, []
    for s in SECTIONS:
        if s not in only:
            continue
        budget = args.budget * SHARES[s] / share
        print(f"bench_gpu: {s} ...", file=sys.stderr, flush=True)
        if s == "matching":
            r, goals[s] = matching_section(args, cuda, device, dtype)
        else:
            r, goals[s] = model_section(s, args, cuda, device, dtype, budget, notes)
        rows += r

    print("\n".join(header(cuda, dtype, args.tiny, args.budget)))
    print()
    print_table(rows, cuda)
    if any(s in only for s in ("sd15", "sdxl")):
        print()
        for note in notes:
            print(f"Note: {note}")
        print("Sync check: " + (
            'torch.cuda.set_sync_debug_mode("warn") during 2 matched UNet calls of a probe run; counted: the '
            '"synchronizing CUDA operation" warnings raised inside attn1 patch calls at the patched layers, and '
            "in the whole UNet forward. The first matched call uploads the cached token masks once."
            if cuda else "n/a on the CPU (the same probe runs, without the CUDA sync debug mode)."))
    print_goals(goals, args.tiny)
    print(f"\ntotal wall time of this run: {time.perf_counter() - t0:.0f} s")
    return 0 if all(math.isfinite(r.wall) for r in rows if r.wall is not None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
