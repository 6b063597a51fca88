"""The command line: ``e4e-run`` (installed) or ``python scripts/e4e_run.py`` (a clone)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import Cancelled, RunError
from .jobs import Job, output_name, prepare_inputs, read_hints, read_pairs
from .settings import API_WORKFLOWS, DEFAULTS, FLUX_MODEL, FLUX_TEXT_ENCODERS, FLUX_VAE, PROMPT_TEMPLATE
from .workflow_fill import drop_masks, load_workflow, schedule_of

DESCRIPTION = """\
Eye-for-an-eye appearance transfer without the editor: the target keeps its structure and takes the
reference's appearance. The shipped API workflow (workflows/api/) runs on ComfyUI, filled with your files.

With no images (or with --demo) it runs the toy world demo: a transfer on the small model this pack trained
on its toy world of creatures (bundled), no checkpoint and no server; it writes the sheet reference | target |
result | position matching's result (enlarged, pixels kept sharp) and the correspondence picture into --out.

Which Python runs it:
  server mode (--server URL): any Python 3.10+ with Pillow (pip install pillow; with websocket-client it
    shows live progress). The servers need this pack in custom_nodes/ and the checkpoint in models/.
  in-process mode (no --server): the Python of a full ComfyUI (with its requirements), with
    COMFYUI_PATH=/path/to/ComfyUI and --checkpoint /path/to/model.safetensors. Without a CUDA GPU the
    defaults (100 inversion steps twice, then 68 sampled steps, at 512 px) take over an hour: try
    --steps 20 --size 256 first.
Ctrl-C stops the run, on the servers too (their queue entry and the running job)."""

EPILOG = """\
examples:
  python scripts/e4e_run.py                      # the toy world demo, with ComfyUI's Python
  e4e-run --server http://127.0.0.1:8188 --reference ref.png --target tgt.png \\
      --reference-mask ref_mask.png --target-mask tgt_mask.png --domain dog
  COMFYUI_PATH=~/ComfyUI ~/ComfyUI/venv/bin/python scripts/e4e_run.py --checkpoint \\
      ~/ComfyUI/models/checkpoints/v1-5-pruned-emaonly.safetensors --reference ref.png --target tgt.png \\
      --steps 20 --size 256
  e4e-run --server http://gpu1:8188 --server http://gpu2:8188 --pairs pairs.csv --out results"""


def build_parser(prog: str = "e4e-run") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", help="reference image (gives the appearance)")
    p.add_argument("--target", help="target image (gives the structure)")
    p.add_argument("--reference-mask", help="object mask of the reference (white = object)")
    p.add_argument("--target-mask", help="object mask of the target (white = object)")
    p.add_argument("--demo", action="store_true", help="the toy world demo (the default when no images are given)")
    p.add_argument("--demo-pair", type=int, metavar="SEED",
                   help="which pair of toy creatures the demo draws (default: the workflow's)")
    p.add_argument("--pairs", help="CSV of reference,target[,reference_mask,target_mask[,hints]] rows (a batch)")
    p.add_argument("--hints", help="correspondence hints for Semantic Match Patch ('0.31,0.42 > 0.70,0.41; ...': "
                                   "target x,y > reference x,y, image-relative), or a file holding them; a "
                                   "pairs file's fifth column overrides it per pair")
    p.add_argument("--out", default="e4e_out", help="folder for the results (default: e4e_out)")
    p.add_argument("--server", action="append", default=[], metavar="URL",
                   help="a ComfyUI server with this pack, e.g. http://127.0.0.1:8188; repeat to spread a batch; "
                        "without --server the workflow runs in this process")
    p.add_argument("--workflow", help="API workflow to fill instead of the shipped one (nodes are found by class "
                                      "and links, titles may differ)")
    family = p.add_mutually_exclusive_group()
    family.add_argument("--sdxl", action="store_true", help="SDXL: workflows/api/sdxl.api.json, 1024 px")
    family.add_argument("--flux", action="store_true",
                        help=f"Flux.1-dev: workflows/api/flux.api.json, 1024 px, {DEFAULTS['flux_steps']} steps, "
                             f"no CFG ({FLUX_MODEL}, {' + '.join(FLUX_TEXT_ENCODERS)}, {FLUX_VAE})")
    p.add_argument("--checkpoint", help="server mode: the checkpoint's file name on the server (--flux: the "
                                        "diffusion model's); in-process: its path (--flux: the diffusion model's, "
                                        "with the text encoders and VAE named above next to it)")
    p.add_argument("--domain", help=f"what the images show; the prompt becomes '{PROMPT_TEMPLATE}'")
    p.add_argument("--prompt", help="the whole prompt instead of --domain")
    p.add_argument("--negative", help="negative prompt (default: empty)")
    p.add_argument("--steps", type=int, help=f"schedule steps (default {DEFAULTS['steps']}, Flux "
                                             f"{DEFAULTS['flux_steps']}); fewer steps run faster")
    p.add_argument("--skip-steps", type=int, help=f"steps skipped at the start (default {DEFAULTS['skip_steps']}; "
                                                  "with --steps: the same share of them)")
    p.add_argument("--inversion-cfg", type=float, help=f"CFG of the inversion (default {DEFAULTS['inversion_cfg']})")
    p.add_argument("--cfg", type=float, help=f"CFG of the transfer (default {DEFAULTS['cfg']})")
    p.add_argument("--size", type=int, help="working size in px, square (default 512, SDXL/Flux 1024); images and "
                                              "masks are stretched to it, as ImageScale with crop 'disabled'")
    p.add_argument("--width", type=int, help="working width in px (overrides --size)")
    p.add_argument("--height", type=int, help="working height in px (overrides --size)")
    p.add_argument("--seed", type=int, help="seed of the inversion noise (mixed with each image: reference and "
                   "target never share noise)")
    p.add_argument("--retries", type=int, default=2, help="server mode: retries of a failed transfer, on another "
                                                          "server when there is one (default 2)")
    p.add_argument("--timeout", type=float, default=3600.0, help="server mode: seconds one transfer may take "
                                                                 "(default 3600)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the report")
    return p


def require_pillow():
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise RunError(f"Pillow is missing in {sys.executable}: pip install pillow (server mode needs Python 3.10+ "
                       "with Pillow; in-process mode runs with ComfyUI's Python)") from None


def _workflows(args) -> dict:
    if args.workflow:
        wf = load_workflow(Path(args.workflow))
        return {"masks": wf, "whole": drop_masks(wf)}
    if args.sdxl or args.flux:
        wf = load_workflow(API_WORKFLOWS / ("sdxl.api.json" if args.sdxl else "flux.api.json"))
        return {"masks": wf, "whole": drop_masks(wf)}
    return {"masks": load_workflow(API_WORKFLOWS / "sd15_masks.api.json"),
            "whole": load_workflow(API_WORKFLOWS / "sd15_whole_image.api.json")}


def _settings(args, workflows: dict) -> dict:
    prompt = args.prompt or (PROMPT_TEMPLATE.format(domain=args.domain) if args.domain else None)
    size = args.size or (DEFAULTS["sdxl_size"] if args.sdxl else DEFAULTS["flux_size"] if args.flux else DEFAULTS["size"])
    width, height = args.width or size, args.height or size
    for name, v in (("width", width), ("height", height)):
        if v < 64 or v % 8:
            raise RunError(f"--{name}: {v} px; use a multiple of 8, at least 64")
    skip_steps = args.skip_steps
    if args.steps is not None:
        if args.steps < 2:
            raise RunError(f"--steps: {args.steps}; use at least 2")
        schedule = schedule_of(workflows["masks"])
        if skip_steps is None and schedule and all(isinstance(v, int) for v in schedule) and schedule[0]:
            skip_steps = round(args.steps * schedule[1] / schedule[0])  # the workflow's share of skipped steps
        if skip_steps is not None and not 0 <= skip_steps < args.steps:
            raise RunError(f"--skip-steps: {skip_steps}; use 0 to {args.steps - 1} with --steps {args.steps}")
    return {"prompt": prompt, "negative": args.negative, "steps": args.steps, "skip_steps": skip_steps,
            "inversion_cfg": args.inversion_cfg, "cfg": args.cfg, "seed": args.seed, "width": width,
            "height": height, "checkpoint": args.checkpoint if args.server else None,
            "hints": read_hints(args.hints)}


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


def main(argv=None, prog: str = "e4e-run") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        if args.demo or not (args.reference or args.target or args.pairs or args.server):
            from .inprocess import run_demo

            for path in run_demo(Path(args.out), log, args.demo_pair):
                print(path)
            return 0
        require_pillow()
        jobs = _jobs(args, parser)
        workflows = _workflows(args)
        settings = _settings(args, workflows)
        size = (settings["width"], settings["height"])
        for job in jobs:  # unreadable files fail before any work
            prepare_inputs(job, (8, 8))
        out_dir = Path(args.out)
        if args.server:
            from .batch import run_batch
            from .client import ComfyClient

            urls = [ComfyClient(u).url for u in args.server]  # a bad URL fails before any work
            run_batch(jobs, urls, workflows, settings, out_dir, size, retries=args.retries, timeout=args.timeout,
                      log=log)
        else:
            from .inprocess import run_in_process

            run_in_process(jobs, workflows, settings, size, out_dir, log, args.checkpoint, flux=args.flux)
    except Cancelled as exc:
        print(f"e4e_run: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("e4e_run: cancelled", file=sys.stderr)
        return 130
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
    from .batch import report

    print(report(jobs))
    return 0 if all(j.done for j in jobs) else 1
