"""Benchmark of matching.match_tokens against the authors' per-pixel loop and a dense-matmul floor.

    python bench/bench_matching.py [--sizes 32,64,128] [--device cpu|cuda] [--json out.json]

For each square token map (32x32 with C=640, 64x64 and 128x128 with C=320, as in SD1.5/SDXL decoders) it
times, on random features with elliptic masks covering about 60 % of each map:

* ours: ``match_tokens(out, ref, out_mask, ref_mask, check=False)`` with the default ``chunk_bytes``;
* authors' loop: the released code's procedure, re-implemented here for timing: for every target pixel,
  skip it if its (mask-multiplied) feature is all zero, else normalise it, re-normalise the whole
  reference map, one matrix-vector product, copy the similarities to the CPU (``.cpu()``), argmax.
  Timed on a subset of matched and skipped pixels and scaled to the map's counts;
* dense floor: normalise both maps, one dense ``N x M`` matmul, ``-inf`` outside the reference mask,
  argmax (skipped where the ``N x M`` float32 block would exceed ``--dense-limit-gb``).

It also reports the peak extra memory of one ``match_tokens`` call (CPU: peak RSS via
``/proc/self/clear_refs`` + ``VmHWM``, measured after the timings with glibc told to mmap every block of
256 KiB or more so that freed temporaries leave the RSS; CUDA: ``torch.cuda.max_memory_allocated``) and
the share of target tokens whose index equals the dense floor's.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from matching import DEFAULT_CHUNK_BYTES, match_objects, match_tokens  # noqa: E402
from matching.hints import hint_field, parse_hints  # noqa: E402

CHANNELS = {32: 640, 64: 320, 128: 320}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn, device, min_time=1.0, min_reps=3, max_reps=50) -> float:
    """Seconds per call (median), after one warm-up call."""
    fn()
    sync(device)
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def ellipse_mask(h: int, w: int, area: float, cy: float, cx: float, device) -> torch.Tensor:
    """Bool [h*w]: an axis-aligned ellipse centred at (cy, cx) (fractions) covering `area` of the map."""
    r = math.sqrt(area / math.pi)  # semi-axes as fractions of h and w
    y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    d = ((y[:, None] - cy) / r) ** 2 + ((x[None, :] - cx) / r) ** 2
    return (d <= 1).reshape(-1)


# ---------------------------------------------------------------------------------------------------
# baselines
# ---------------------------------------------------------------------------------------------------


def authors_loop_time(out, ref, out_mask, ref_mask, side, n_sample=64):
    """Estimated seconds for the authors' per-pixel loop over the whole map (see module doc)."""
    C = out.shape[1]
    out_map = (out * out_mask[:, None]).T.reshape(C, side, side)  # [C, h, w], zero outside the mask
    style_map = (ref * ref_mask[:, None]).T.reshape(C, side, side)
    inside = out_mask.nonzero()[:, 0].tolist()
    outside = (~out_mask).nonzero()[:, 0].tolist()
    step_in = max(1, len(inside) // n_sample)
    step_out = max(1, len(outside) // n_sample)
    sample_in = inside[::step_in][:n_sample]
    sample_out = outside[::step_out][:n_sample]

    def one_pixel(p):
        y, x = divmod(p, side)
        vec = out_map[:, y, x].view(1, -1)
        if torch.all(vec == 0):
            return None
        style = style_map.reshape(C, side * side).unsqueeze(0)  # re-normalised for every pixel, as they do
        vec = F.normalize(vec)
        style = F.normalize(style)
        cos_map = torch.matmul(vec, style).view(1, side, side).cpu()
        return int(cos_map[0].argmax())

    def run(pixels):
        if not pixels:
            return 0.0
        one_pixel(pixels[0])  # warm-up
        t0 = time.perf_counter()
        for p in pixels:
            one_pixel(p)
        return (time.perf_counter() - t0) / len(pixels)

    t_in, t_out = run(sample_in), run(sample_out)
    return t_in * len(inside) + t_out * len(outside)


def dense_floor(out, ref, out_mask, ref_mask):
    sim = F.normalize(out, dim=-1) @ F.normalize(ref, dim=-1).T
    sim.masked_fill_(~ref_mask[None, :], float("-inf"))
    return sim.argmax(dim=-1).masked_fill_(~out_mask, -1)


# ---------------------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_extra_mb(fn, device) -> tuple[float | None, str]:
    """Peak extra memory of one call of fn, in MiB, and how it was measured."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (
            torch.cuda.max_memory_allocated(device) - base
        ) / 2**20, "torch.cuda.max_memory_allocated delta"
    release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM (peak RSS) to the current RSS
    except OSError:
        return None, "n/a (no /proc/self/clear_refs)"
    base = _status_kb("VmRSS")
    result = fn()
    del result
    peak = _status_kb("VmHWM")
    if base is None or peak is None:
        return None, "n/a"
    return (peak - base) / 1024, "peak RSS (VmHWM) delta"


# ---------------------------------------------------------------------------------------------------


def make_data(side: int, device: torch.device, seed: int = 0):
    C = CHANNELS.get(side, 320)
    N = M = side * side
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(N, C, generator=g).to(device)
    ref = torch.randn(M, C, generator=g).to(device)
    out_mask = ellipse_mask(side, side, 0.6, 0.5, 0.5, device)
    ref_mask = ellipse_mask(side, side, 0.6, 0.48, 0.53, device)
    return out, ref, out_mask, ref_mask


def bench_size(side: int, device: torch.device, dense_limit_gb: float) -> dict:
    out, ref, out_mask, ref_mask = make_data(side, device)
    N, C = out.shape
    M = ref.shape[0]

    def ours():
        return match_tokens(out, ref, out_mask, ref_mask, check=False)

    row = {"map": f"{side}x{side}", "N": N, "M": M, "C": C, "out_mask_frac": out_mask.float().mean().item()}
    row["ours_ms"] = timeit(ours, device) * 1e3
    # with correspondence hints (three, a mirror): the prior's bonus inside the same chunked argmax
    whole = torch.ones(1, 1, 1)
    field = hint_field(parse_hints("0.1,0.2 > 0.9,0.2; 0.3,0.8 > 0.7,0.8; 0.8,0.5 > 0.2,0.5"), whole, whole, (0,), 1, 1.0)
    prior = field.prior((side, side), 1).to(device)
    masks, ref_masks = out_mask.view(1, 1, -1), ref_mask.view(1, 1, -1)

    def plain_objects():
        return match_objects(out[None], ref[None, None], masks, (0,), ref_masks, check=False)

    def hinted():
        return match_objects(out[None], ref[None, None], masks, (0,), ref_masks, check=False, prior=prior)

    row["objects_ms"] = timeit(plain_objects, device) * 1e3
    row["hints_ms"] = timeit(hinted, device) * 1e3
    row["authors_loop_ms"] = authors_loop_time(out, ref, out_mask, ref_mask, side) * 1e3
    row["speedup_vs_authors"] = row["authors_loop_ms"] / row["ours_ms"]
    dense_gb = N * M * 4 / 2**30
    if dense_gb <= dense_limit_gb:
        row["dense_ms"] = timeit(lambda: dense_floor(out, ref, out_mask, ref_mask), device) * 1e3
        row["ours_over_dense"] = row["ours_ms"] / row["dense_ms"]
        a, b = ours(), dense_floor(out, ref, out_mask, ref_mask)
        row["identical_pct"] = 100.0 * (a == b).float().mean().item()
    else:
        row["dense_ms"] = row["ours_over_dense"] = row["identical_pct"] = None
    return row


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def strict_malloc() -> bool:
    """glibc only: serve every block >= 256 KiB by mmap and return it to the OS on free, so that the peak
    RSS sees each large temporary (by default glibc keeps blocks up to 32 MiB in its heap for reuse).
    Called after the timings, which therefore run with the default allocator settings."""
    libc = _libc()
    try:
        m_mmap_threshold, m_trim_threshold = -3, -1
        ok = libc is not None and libc.mallopt(m_mmap_threshold, 256 * 1024) == 1
        return ok and libc.mallopt(m_trim_threshold, 256 * 1024) == 1
    except AttributeError:
        return False


def release_free_memory() -> None:
    """glibc only: give free heap pages back to the OS, so that reusing them shows up in the RSS."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def memory_pass(rows: list[dict], sizes: list[int], device: torch.device) -> None:
    strict = device.type == "cuda" or strict_malloc()
    for row, side in zip(rows, sizes):
        out, ref, out_mask, ref_mask = make_data(side, device)

        def ours(out=out, ref=ref, out_mask=out_mask, ref_mask=ref_mask):
            return match_tokens(out, ref, out_mask, ref_mask, check=False)

        ours()
        row["peak_extra_mb"], method = peak_extra_mb(ours, device)
        row["memory_method"] = method if strict else method + " (glibc heap reuse may hide blocks < 32 MiB)"


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def cpu_name() -> str:
    name = platform.processor()
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return " / ".join(x for x in (name or platform.machine(), model) if x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="32,64,128", help="comma-separated token-map sides")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    ap.add_argument("--dense-limit-gb", type=float, default=4.0, help="skip the dense floor above this")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    machine = cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    header = (
        f"machine: {machine}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"device {device}; chunk_bytes {DEFAULT_CHUNK_BYTES // 2**20} MiB"
    )
    rows = []
    for side in sizes:
        rows.append(bench_size(side, device, args.dense_limit_gb))
        print(f"timed {side}x{side}", file=sys.stderr, flush=True)
    memory_pass(rows, sizes, device)
    print(header)
    print()
    print(
        "| token map | C | ours (ms) | authors' loop (ms, est.) | speed-up | dense floor (ms) "
        "| ours / floor | peak extra mem (MiB) | identical vs floor | with 3 hints (ms, x plain) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['map']} | {r['C']} | {r['ours_ms']:.1f} | {r['authors_loop_ms']:.0f} "
            f"| {r['speedup_vs_authors']:.0f}x | {fmt(r['dense_ms'], '.1f')} | {fmt(r['ours_over_dense'], '.2f')} "
            f"| {fmt(r['peak_extra_mb'], '.0f')} | {fmt(r['identical_pct'], '.2f')} % "
            f"| {r['hints_ms']:.1f} ({r['hints_ms'] / r['objects_ms']:.2f}x) |"
        )
    print()
    cover = ", ".join(format(r["out_mask_frac"], ".0%") for r in rows)
    method = rows[0]["memory_method"] if rows else "n/a"
    print(f"target masks cover {cover} of the maps; memory measured as {method}")
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
