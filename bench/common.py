"""Shared bits of the benchmark scripts: host set-up, models of benchmark size, timing and peak memory."""

from __future__ import annotations

import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))  # e4e_headless: the one rule for finding ComfyUI and the pack

# model presets: SD1.5 block layout; "sd15" has SD1.5's real widths (860 M parameters, random weights)
PRESETS = {
    "small": dict(model_channels=64, context_dim=64),
    "medium": dict(model_channels=160, context_dim=256, channel_mult=[1, 2, 4, 4]),
    "sd15": dict(model_channels=320, context_dim=768, channel_mult=[1, 2, 4, 4]),
}


def parser(doc: str, cfg: float):
    """The options every benchmark shares (model preset, size, steps, CFG, device, repeats)."""
    import argparse

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--preset", default="small", choices=list(PRESETS))
    ap.add_argument("--size", type=int, default=256, help="image size in pixels (latent = size / 8)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=cfg)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    return ap


def toy_parser(doc: str, pairs: int):
    """The options the toy-world benchmarks share: which trained toy, and which held-out creatures."""
    import argparse

    from toy_tools import models
    from toy_tools.train import pattern_arg

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--family", choices=tuple(models.TOYS), default="sd1",
                    help="which bundled toy: sd1, flux, or flux_taught (the Flux toy with both halves, of the flux "
                         "family: its settings are Flux's)")
    ap.add_argument("--weights", type=Path, default=None, help="another trained fixture of the family")
    ap.add_argument("--pairs", type=int, default=pairs)
    ap.add_argument("--seed", type=int, default=1000, help="seed of the held-out pairs (training never uses it)")
    ap.add_argument("--pattern", type=pattern_arg, default=None,
                    help="the held-out creatures' part patterns (default: the model card's, 0 for the bundled ones)")
    ap.add_argument("--threads", type=int, default=2)
    return ap


def toy_and_pairs(args):
    """``(toy, (reference, target))``: the toy model of ``toy_parser``'s options, on the host found as the demo
    finds it, and its held-out pairs, drawn in the world it was trained on. ``args.family`` becomes the toy's
    family (``flux_taught`` -> ``flux``: the family's settings and levels), ``args.toy`` the toy's name."""
    torch.set_num_threads(args.threads)
    from toy_tools import models, world

    toy = models.load(args.family, path=args.weights)
    args.toy, args.family = args.family, toy.family
    pattern = toy.pattern if args.pattern is None else args.pattern
    return toy, world.pairs(args.pairs, args.seed, pattern=pattern)


def setup(device: str):
    """ComfyUI's core (on the CPU when there is no GPU, else ComfyUI picks the GPU) and the pack: the host module
    (``e4e_headless.host``: ``pack_module``, ``load_pack``)."""
    from e4e_headless import host

    host.setup_comfyui()
    return host


def build(preset: str, device: str, dtype=torch.float32):
    import comfy.model_patcher
    import tiny_models

    m = tiny_models.build_sd15(**PRESETS[preset])
    model = m.model.to(device)
    if dtype != torch.float32:
        model.diffusion_model.to(dtype)
    dev = torch.device(device)
    return comfy.model_patcher.ModelPatcher(model, load_device=dev, offload_device=torch.device("cpu"))


def conds(preset: str, tokens: int = 77):
    ctx = PRESETS[preset]["context_dim"]
    g = torch.Generator().manual_seed(0)
    return [[torch.randn(1, tokens, ctx, generator=g), {}]], [[torch.randn(1, tokens, ctx, generator=g), {}]]


class PeakMemory:
    """Peak extra memory of a block: CUDA allocator peak, or process RSS sampled every 2 ms on the CPU."""

    def __init__(self, device: str):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            import psutil

            self.proc = psutil.Process()
            self.base = self.proc.memory_info().rss
            self.stop = False
            self.max_rss = self.base
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self):
        while not self.stop:
            self.max_rss = max(self.max_rss, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop = True
            self.thread.join()
            self.peak = self.max_rss - self.base
        return False


def timed(fn, device: str, repeats: int = 3):
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads (torch {torch.__version__})"


def object_masks(host, size: int):
    """One object: the centre of the image (an eighth of the side kept as background all round)."""
    mask = torch.zeros(size, size)
    mask[size // 8: -size // 8, size // 8: -size // 8] = 1
    return host.pack_module("matching").ObjectMasks(mask[None], mask[None])


def invert_pair(host, model, pos, neg, tgt, ref, steps: int, cfg: float, skip: int, scheduler: str):
    """Edit-friendly inversions of a target and a reference latent."""
    invert = host.pack_module("engine.backends.invert").invert
    return (invert(model, pos, neg, tgt, steps, cfg, "ddpm_edit_friendly", skip, scheduler),
            invert(model, pos, neg, ref, steps, cfg, "ddpm_edit_friendly", skip, scheduler, seed=1))


def patched_model(host, model, target, reference, masks, strength: float = 1.0, **settings):
    """Semantic Match Patch's clone of ``model`` (default layers and window unless ``settings`` say otherwise)."""
    plan = host.pack_module("engine.patch.plan").make_plan(model, target, reference, masks, strength=strength,
                                                           **settings)
    return host.pack_module("engine.patch.install").patch_model(model, plan)


def measure_rows(runs, device: str, repeats: int) -> list[tuple[str, float, int]]:
    """``(name, median wall s, peak extra memory bytes)`` of each ``(name, fn)``."""
    rows = []
    for name, fn in runs:
        t = timed(fn, device, repeats)
        with PeakMemory(device) as pm:
            fn()
        rows.append((name, t, pm.peak))
    return rows


def print_rows(rows):
    """The markdown table of ``measure_rows``, ratios against the first row."""
    base = rows[0][1]
    print("| run | wall s | ratio to plain | peak extra memory MB |")
    print("|---|---:|---:|---:|")
    for name, t, peak in rows:
        print(f"| {name} | {t:.2f} | {t / base:.2f} | {peak / 2**20:.0f} |")
