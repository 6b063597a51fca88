#!/usr/bin/env python3
"""Eye-for-an-eye appearance transfer without the editor: through ComfyUI servers, or in-process.

Server mode (one or more running ComfyUI servers that have this pack installed):

    python scripts/e4e_run.py --server http://127.0.0.1:8188 --reference ref.png --target tgt.png \\
        [--reference-mask ref_mask.png --target-mask tgt_mask.png] [--domain dog] [--out results]

uploads the images, fills the shipped API workflow (workflows/api/sd15_masks.api.json, or
sd15_whole_image.api.json without masks; --sdxl for sdxl.api.json, --flux for flux.api.json), queues it, follows its
progress and writes the saved images to --out. ``--pairs FILE.csv`` (rows: reference,target[,reference_mask,
target_mask]) runs a batch, spread over every ``--server`` given, with bounded retries on another server.

In-process mode (no --server): needs a full ComfyUI checkout (COMFYUI_PATH) to load ``--checkpoint PATH``
and encode the prompt; then runs the pack's nodes directly, in the same graph as the workflow.

Server mode needs only the standard library and Pillow; with websocket-client installed
(pip install websocket-client) it follows each run's progress live, else it polls /history.
In-process mode needs torch too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The runner's parts live in the package next to this file; put this folder on sys.path so that they import
# from any working directory, and when this file is loaded by path (scripts/make_workflows.py, the tests).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from e4e_headless.batch import report, run_batch  # noqa: E402
from e4e_headless.client import ComfyClient  # noqa: E402
from e4e_headless.errors import RunError  # noqa: E402
from e4e_headless.inprocess import run_in_process  # noqa: E402
from e4e_headless.jobs import Job, output_name, prepare_inputs, read_pairs  # noqa: E402
from e4e_headless.settings import (  # noqa: E402  (re-exported: scripts/make_workflows.py and the tests use them)
    API_WORKFLOWS,
    DEFAULTS,
    FLUX_MODEL,
    FLUX_TEXT_ENCODERS,
    FLUX_VAE,
    PROMPT_TEMPLATE,
    SD15_CHECKPOINT,
    SDXL_CHECKPOINT,
    TITLES,
)
from e4e_headless.workflow_fill import drop_masks, load_workflow  # noqa: E402

__all__ = ["DEFAULTS", "FLUX_MODEL", "FLUX_TEXT_ENCODERS", "FLUX_VAE", "PROMPT_TEMPLATE", "SD15_CHECKPOINT",
           "SDXL_CHECKPOINT", "TITLES", "RunError", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="e4e_run.py",
        description="Eye-for-an-eye appearance transfer: the target keeps its structure and takes the "
                    "reference's appearance. Through ComfyUI servers (--server) or in-process (COMFYUI_PATH).")
    p.add_argument("--reference", help="reference image (gives the appearance)")
    p.add_argument("--target", help="target image (gives the structure)")
    p.add_argument("--reference-mask", help="object mask of the reference (white = object)")
    p.add_argument("--target-mask", help="object mask of the target (white = object)")
    p.add_argument("--pairs", help="CSV of reference,target[,reference_mask,target_mask] rows (a batch)")
    p.add_argument("--out", default="e4e_out", help="folder for the results (default: e4e_out)")
    p.add_argument("--server", action="append", default=[], metavar="URL",
                   help="a ComfyUI server with this pack, e.g. http://127.0.0.1:8188; repeat to spread a batch")
    p.add_argument("--workflow", help="API workflow to fill instead of the shipped one (same node titles)")
    family = p.add_mutually_exclusive_group()
    family.add_argument("--sdxl", action="store_true", help="SDXL: workflows/api/sdxl.api.json, 1024 px")
    family.add_argument("--flux", action="store_true",
                        help=f"Flux.1-dev: workflows/api/flux.api.json, 1024 px, {DEFAULTS['flux_steps']} steps, "
                             f"no CFG (server: {FLUX_MODEL}, {' + '.join(FLUX_TEXT_ENCODERS)}, {FLUX_VAE})")
    p.add_argument("--checkpoint", help="server mode: the checkpoint's name on the server (--flux: the diffusion "
                                        "model's); in-process: its path (--flux: an all-in-one Flux checkpoint)")
    p.add_argument("--domain", help=f"what the images show; the prompt becomes '{PROMPT_TEMPLATE}'")
    p.add_argument("--prompt", help="the whole prompt instead of --domain")
    p.add_argument("--negative", help="negative prompt (default: empty)")
    p.add_argument("--steps", type=int, help=f"schedule steps (default {DEFAULTS['steps']})")
    p.add_argument("--skip-steps", type=int, help=f"steps skipped at the start (default {DEFAULTS['skip_steps']})")
    p.add_argument("--inversion-cfg", type=float, help=f"CFG of the inversion (default {DEFAULTS['inversion_cfg']})")
    p.add_argument("--cfg", type=float, help=f"CFG of the transfer (default {DEFAULTS['cfg']})")
    p.add_argument("--size", type=int, help="working size in px, square (default 512, SDXL/Flux 1024); images and "
                                              "masks are stretched to it, as ImageScale with crop 'disabled'")
    p.add_argument("--width", type=int, help="working width in px (overrides --size)")
    p.add_argument("--height", type=int, help="working height in px (overrides --size)")
    p.add_argument("--seed", type=int, help="seed of the inversion noise (mixed with each image: reference and "
                   "target never share noise)")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed transfer, on another server "
                                                          "when there is one (default 2)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one transfer may take (default 3600)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the report")
    return p


def _settings(args) -> dict:
    prompt = args.prompt or (PROMPT_TEMPLATE.format(domain=args.domain) if args.domain else None)
    size = args.size or (DEFAULTS["sdxl_size"] if args.sdxl else DEFAULTS["flux_size"] if args.flux else DEFAULTS["size"])
    width, height = args.width or size, args.height or size
    for name, v in (("width", width), ("height", height)):
        if v < 64 or v % 8:
            raise RunError(f"--{name}: {v} px; use a multiple of 8, at least 64")
    settings = {"prompt": prompt, "negative": args.negative, "steps": args.steps, "skip_steps": args.skip_steps,
                "inversion_cfg": args.inversion_cfg, "cfg": args.cfg, "seed": args.seed, "width": width,
                "height": height, "checkpoint": args.checkpoint if args.server else None}
    if args.sdxl:  # in-process mode; the shipped SDXL workflow carries these values itself
        settings["freeu"] = DEFAULTS["freeu_sdxl"]
    if args.flux:  # in-process mode (the shipped Flux workflow has them): Flux's schedule, no CFG, no FreeU
        settings.update(freeu=(), scheduler=DEFAULTS["flux_scheduler"], flux_guidance=DEFAULTS["flux_guidance"],
                        steps=args.steps or DEFAULTS["flux_steps"],
                        skip_steps=args.skip_steps if args.skip_steps is not None else DEFAULTS["flux_skip_steps"],
                        inversion_cfg=args.inversion_cfg or DEFAULTS["flux_cfg"], cfg=args.cfg or DEFAULTS["flux_cfg"])
    return settings


def _jobs(args, parser) -> list[Job]:
    if args.pairs:
        if args.reference or args.target:
            raise RunError("give either --pairs or --reference/--target")
        jobs = read_pairs(args.pairs)
    else:
        if not args.reference or not args.target:
            parser.print_usage(sys.stderr)
            raise RunError("--reference and --target are required (or --pairs FILE.csv)")
        if bool(args.reference_mask) != bool(args.target_mask):
            raise RunError("give both --reference-mask and --target-mask, or neither")
        jobs = [Job(args.reference, args.target, args.reference_mask, args.target_mask)]
    taken: set = set()
    for job in jobs:
        job.name = output_name(job, taken)
    return jobs


def _workflows(args) -> dict:
    if args.workflow:
        wf = load_workflow(Path(args.workflow))
        return {"masks": wf, "whole": drop_masks(wf)}
    if args.sdxl or args.flux:
        wf = load_workflow(API_WORKFLOWS / ("sdxl.api.json" if args.sdxl else "flux.api.json"))
        return {"masks": wf, "whole": drop_masks(wf)}
    return {"masks": load_workflow(API_WORKFLOWS / "sd15_masks.api.json"),
            "whole": load_workflow(API_WORKFLOWS / "sd15_whole_image.api.json")}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        jobs = _jobs(args, parser)
        settings = _settings(args)
        size = (settings["width"], settings["height"])
        for job in jobs:  # unreadable files fail before any work
            prepare_inputs(job, (8, 8))
        out_dir = Path(args.out)
        if args.server:
            clients = [ComfyClient(u) for u in args.server]
            workflows = _workflows(args)
            run_batch(jobs, [c.url for c in clients], workflows, settings, out_dir, size, retries=args.retries,
                      timeout=args.timeout, log=log)
        else:
            run_in_process(jobs, args, settings, size, out_dir, log)
    except RunError as exc:
        print(f"e4e_run: error: {exc}", file=sys.stderr)
        return 2
    if len(jobs) == 1 and len(args.server) <= 1:
        job = jobs[0]
        if not job.done:
            print(f"e4e_run: error: {job.error}", file=sys.stderr)
            return 1
        for path in job.outputs:
            print(path)
        return 0
    print(report(jobs))
    return 0 if all(j.done for j in jobs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
