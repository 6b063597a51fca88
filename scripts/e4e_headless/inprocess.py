"""In-process mode: ComfyUI's checkpoint loader and CLIP from a full checkout, then the pack's nodes
in the same graph as the workflow (torch needed)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

from .errors import RunError, last_line
from .images import read_image, read_mask
from .jobs import Job
from .settings import DEFAULTS, PACK_NAME, REPO


def comfy_checkout() -> Path:
    """The full ComfyUI checkout named by COMFYUI_PATH; RunError when there is none."""
    checkout = os.environ.get("COMFYUI_PATH")
    if not checkout:
        raise RunError("in-process mode needs a full ComfyUI checkout: set COMFYUI_PATH (or pass --server URL)")
    path = Path(checkout).expanduser().resolve()
    if not (path / "comfy").is_dir() or not (path / "folder_paths.py").is_file():
        raise RunError(f"COMFYUI_PATH={checkout} is not a full ComfyUI checkout (no comfy/ and folder_paths.py)")
    return path


def check_checkpoint(path: str | None):
    if not path:
        raise RunError("in-process mode needs --checkpoint PATH (an SD1.5 or SDXL checkpoint file)")
    if not Path(path).is_file():
        raise RunError(f"--checkpoint: file not found: {path}")


def setup_comfy(path: Path):
    """Put the checkout on sys.path and import its core (on CPU when there is no GPU)."""
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import comfy.cli_args
    import torch

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (after args.cpu)


def load_pack():
    """Import this repository as the pack package (as ComfyUI does from custom_nodes/)."""
    for module in sys.modules.values():
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == REPO / "__init__.py":
            return module
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def load_checkpoint(path: str):
    """(model, clip, vae) from a checkpoint file (checked by check_checkpoint), as CheckpointLoaderSimple does."""
    import comfy.sd
    import folder_paths

    try:
        out = comfy.sd.load_checkpoint_guess_config(
            path, output_vae=True, output_clip=True,
            embedding_directory=folder_paths.get_folder_paths("embeddings"))
    except Exception as exc:
        raise RunError(f"--checkpoint: cannot load {path} ({type(exc).__name__}: {exc})") from None
    model, clip, vae = out[:3]
    if model is None or clip is None or vae is None:
        raise RunError(f"--checkpoint: {path} lacks a UNet, text encoder or VAE")
    return model, clip, vae


def encode_prompt(clip, text: str):
    """CONDITIONING for ``text``, as CLIPTextEncode makes it."""
    tokens = clip.tokenize(text)
    if hasattr(clip, "encode_from_tokens_scheduled"):
        return clip.encode_from_tokens_scheduled(tokens)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def to_tensor(img):
    """PIL image -> IMAGE ``[1, H, W, 3]`` or MASK ``[H, W]`` (0..1 floats)."""
    import numpy as np
    import torch

    arr = np.asarray(img, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy())
    return t if t.ndim == 2 else t[None]


def to_image(tensor):
    """IMAGE ``[H, W, 3]`` (0..1) -> PIL image."""
    import numpy as np
    from PIL import Image

    arr = (tensor.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def transfer_pipeline(pack, model, vae, positive, negative, reference, target, reference_mask=None,
                      target_mask=None, settings: dict | None = None):
    """The workflow's graph on node classes: images (``[1, H, W, 3]``, same size) -> output IMAGE ``[B, H, W, 3]``.

    VAE Encode both images, DDIM Invert Reference both, Load Masks (if masks), Semantic Match Patch,
    Appearance Transfer Sampler, VAE Decode. ``settings`` overrides DEFAULTS.
    """
    import torch

    s = dict(DEFAULTS, **(settings or {}))
    nodes = pack.NODE_CLASS_MAPPINGS
    if tuple(reference.shape) != tuple(target.shape):
        raise RunError(f"reference is {list(reference.shape)} but target is {list(target.shape)}: same size needed")
    with torch.inference_mode():
        if s.get("freeu"):  # the authors' FreeU, once, before both inversions and the patch (as the workflows)
            model = nodes["E4EAuthorsFreeU"]().patch(model, *s["freeu"])[0]
        invert = nodes["E4EDDIMInvertReference"]()
        inversions = []
        for image in (reference, target):
            latent = {"samples": vae.encode(image[:, :, :, :3])}
            inv, _start = invert.run(model, positive, latent, s["steps"], s["skip_steps"], s["inversion_cfg"],
                                     s["method"], s["scheduler"], s["seed"], negative=negative)
            inversions.append(inv)
        masks = None
        if reference_mask is not None or target_mask is not None:
            if reference_mask is None or target_mask is None:
                raise RunError("masks: give both --reference-mask and --target-mask, or neither")
            out = nodes["E4ELoadMasks"]().load("", False, target_mask=target_mask, reference_mask=reference_mask,
                                               target_image=target, reference_image=reference)
            masks = out["result"][0]
        patched = nodes["E4ESemanticMatchPatch"]().patch(
            model, inversions[0], inversions[1], s["layers"], s["custom_layers"], s["start_percent"],
            s["end_percent"], s["structure_every"], s["structure_end_percent"], s["strength"],
            masks=masks)["result"][0]
        out = nodes["E4EAppearanceTransferSampler"]().sample(patched, positive, negative, s["cfg"], s["adain"],
                                                              s["adain_start_percent"], s["ending"])
        latent = out["result"][0]["samples"]
        images = vae.decode(latent)
        if images.ndim == 5:  # some VAEs decode with a frame axis
            images = images.reshape(-1, *images.shape[-3:])
        return images


def run_in_process(jobs: list[Job], args, settings: dict, size: tuple[int, int], out_dir: Path, log):
    """Each job through transfer_pipeline in this process; each job's outcome is filled in."""
    checkout = comfy_checkout()
    check_checkpoint(args.checkpoint)
    setup_comfy(checkout)
    model, clip, vae = load_checkpoint(args.checkpoint)
    try:
        import tempfile

        import folder_paths  # previews of the nodes go to a throw-away folder, not ComfyUI's temp

        folder_paths.set_temp_directory(tempfile.mkdtemp(prefix="e4e_previews_"))
    except ImportError:
        pass
    pack = load_pack()
    positive = encode_prompt(clip, settings.get("prompt") or DEFAULTS["prompt"])
    if settings.get("flux_guidance") is not None:  # as the Flux workflow's FluxGuidance node
        positive = [[t, dict(extra, guidance=settings["flux_guidance"])] for t, extra in positive]
    negative = encode_prompt(clip, settings.get("negative") or DEFAULTS["negative"])
    s = {k: v for k, v in settings.items() if v is not None}
    out_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        start = time.monotonic()
        job.attempts += 1
        job.server = "in-process"
        try:
            ref = to_tensor(read_image(job.reference, "reference", size))
            tgt = to_tensor(read_image(job.target, "target", size))
            rm = to_tensor(read_mask(job.reference_mask, "reference mask", size)) if job.reference_mask else None
            tm = to_tensor(read_mask(job.target_mask, "target mask", size)) if job.target_mask else None
            images = transfer_pipeline(pack, model, vae, positive, negative, ref, tgt, rm, tm, s)
            for k in range(images.shape[0]):
                path = out_dir / (job.name + (f"_{k + 1}" if k else "") + ".png")
                to_image(images[k]).save(path)
                job.outputs.append(str(path))
            job.done = True
        except RunError as exc:
            job.error = str(exc)
        except Exception as exc:  # the nodes' own input errors (ValueError) and anything else, in one line
            job.error = f"{type(exc).__name__}: {last_line(exc)}"
        job.seconds = time.monotonic() - start
        log(f"{'done' if job.done else 'failed'}: {job.name} ({job.seconds:.1f} s)")
