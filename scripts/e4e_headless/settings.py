"""The authors' settings, the shipped checkpoints and prompt, the titles of the shipped workflows' nodes, the paths.

In a clone the runner lives in ``scripts/e4e_headless`` and reads the repository's files; installed
(``pip install .``) it reads the copies packaged with it (pyproject.toml: ``e4e_headless.workflows`` is
``workflows/api``, ``e4e_headless/authors/`` holds ``engine/models/defaults.py`` and ``families.py``: the
authors' settings and the family registry, plain data loaded by path).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parents[1]  # the repository root, when the runner lives in a clone


def _packaged_or_repo(packaged: Path, in_repo: Path) -> Path:
    return packaged if packaged.exists() else in_repo


# API-format copies of the workflows (in the repository one folder down: ComfyUI lists every workflows/*.json as
# an editor template)
API_WORKFLOWS = _packaged_or_repo(PACKAGE / "workflows", REPO / "workflows" / "api")
AUTHORS_FILE = _packaged_or_repo(PACKAGE / "authors" / "defaults.py", REPO / "engine" / "models" / "defaults.py")
PACK_NAME = "eye_for_an_eye"
PROJECT_NAME = "eye-for-an-eye-appearance-transfer"  # pyproject.toml's [project] name: how a pack folder is known


def is_pack(folder: Path) -> bool:
    """Whether ``folder`` holds this node pack (its __init__.py, nodes/ and pyproject.toml)."""
    try:
        project = (folder / "pyproject.toml").read_text()
    except OSError:
        return False
    return (folder / "__init__.py").is_file() and (folder / "nodes").is_dir() and f'"{PROJECT_NAME}"' in project


SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
# Flux.1-dev as ComfyUI's usual loaders take it (UNETLoader, DualCLIPLoader type flux, VAELoader)
FLUX_MODEL = "flux1-dev.safetensors"
FLUX_TEXT_ENCODERS = ("clip_l.safetensors", "t5xxl_fp16.safetensors")
FLUX_VAE = "ae.safetensors"
# Qwen-Image and Wan 2.1 text-to-video 1.3B under the file names of ComfyUI's examples (UNETLoader, CLIPLoader,
# VAELoader)
QWEN_MODEL = "qwen_image_fp8_e4m3fn.safetensors"
QWEN_TEXT_ENCODER = "qwen_2.5_vl_7b_fp8_scaled.safetensors"
QWEN_VAE = "qwen_image_vae.safetensors"
WAN_MODEL = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
DEFAULT_DOMAIN = "dog"


def _models():
    """The pack's plain-data modules (the authors' settings, the family registry) as one small package of their own,
    loaded from their folder (the runner needs neither ComfyUI nor torch)."""
    name = "e4e_headless_models"
    if name not in sys.modules:  # a package of the folder alone (its __init__ is not needed, nor run)
        package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(name, None, is_package=True))
        package.__path__ = [str(AUTHORS_FILE.parent)]
        sys.modules[name] = package
    return importlib.import_module(f"{name}.defaults"), importlib.import_module(f"{name}.families")


AUTHORS, FAMILIES = _models()  # the authors' settings; the family registry (each family's shipped schedule)


def _schedule(family: str, prefix: str) -> dict:
    """A family's shipped schedule as the runner's ``<prefix>_steps``, ``_skip_steps``, ``_scheduler``, ``_cfg``
    (and Flux's ``_guidance``) settings."""
    s = FAMILIES.shipped_settings(family)
    out = {f"{prefix}_steps": s["steps"], f"{prefix}_skip_steps": s["skip_steps"],
           f"{prefix}_scheduler": s["scheduler"], f"{prefix}_cfg": s["cfg"]}
    if s["guidance"] is not None:
        out[f"{prefix}_guidance"] = s["guidance"]
    return out

PROMPT_TEMPLATE = AUTHORS.PROMPT_TEMPLATE  # the authors' prompt, the same for every branch

# The settings of the shipped workflows (scripts/make_workflows.py) and of in-process mode: the authors' ones
# plus how the runner prepares images.
DEFAULTS = {
    "prompt": PROMPT_TEMPLATE.format(domain=DEFAULT_DOMAIN),
    "negative": AUTHORS.NEGATIVE,
    "size": 512,
    "sdxl_size": 1024,
    "upscale_method": "lanczos",
    "crop": "disabled",  # stretch: masks made from the original images stay aligned
    "mask_channel": "red",  # masks as black/white images
    "steps": AUTHORS.STEPS,
    "skip_steps": AUTHORS.SKIP_STEPS,
    "inversion_cfg": AUTHORS.INVERSION_CFG,
    "method": AUTHORS.INVERSION_METHOD,
    "scheduler": AUTHORS.SCHEDULER,
    "seed": AUTHORS.INVERSION_SEED,
    "layers": "auto",
    "custom_layers": "output.6-11",
    "start_percent": AUTHORS.START_PERCENT,
    "end_percent": AUTHORS.END_PERCENT,
    "structure_every": AUTHORS.STRUCTURE_EVERY,
    "structure_end_percent": AUTHORS.STRUCTURE_END_PERCENT,
    "strength": AUTHORS.STRENGTH,
    "cfg": AUTHORS.CFG,
    "adain": AUTHORS.ADAIN,
    "adain_start_percent": AUTHORS.ADAIN_START_PERCENT,
    "ending": AUTHORS.ENDING,
    "freeu": (AUTHORS.FREEU_B1, AUTHORS.FREEU_B2, AUTHORS.FREEU_S1, AUTHORS.FREEU_S2),
    "freeu_sdxl": AUTHORS.FREEU_SDXL,
    "flux_size": 1024,
    **_schedule("flux", "flux"),
    "qwen_size": 1024,
    **_schedule("qwen_image", "qwen"),
    "wan_prompt": "A dog runs across a meadow",
    "wan_size": (832, 480),
    "wan_frames": 33,  # 9 latent frames
    "wan_fps": 16,
    **_schedule("wan", "wan"),
    "filename_prefix": "e4e/transfer",
}

# The titles (``_meta.title``) scripts/make_workflows.py gives the shipped workflows' nodes. The runner finds nodes
# by class and links (workflow_fill.find_nodes), not by these: users rename titles.
TITLES = {
    "checkpoint": "Checkpoint",
    "unet": "Diffusion model",
    "text_encoders": "Text encoders",
    "text_encoder": "Text encoder",
    "target_video": "Target video",
    "vae": "VAE",
    "guidance": "Flux guidance",
    "prompt": "Prompt",
    "negative": "Negative prompt",
    "reference_image": "Reference image",
    "target_image": "Target image",
    "reference_mask": "Reference mask",
    "target_mask": "Target mask",
    "scale_reference": "Scale reference",
    "scale_target": "Scale target",
    "invert_reference": "Invert reference",
    "invert_target": "Invert target",
    "masks": "Object masks",
    "patch": "Semantic Match Patch",
    "sampler": "Appearance Transfer Sampler",
    "freeu": "Authors' FreeU",
    "ksampler": "KSampler (Advanced)",
    "save": "Save result",
}
