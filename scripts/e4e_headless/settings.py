"""The authors' settings, the shipped checkpoints and prompt, the node titles the runner fills, the paths."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
# API-format copies live one folder down: ComfyUI lists every workflows/*.json as an editor template.
API_WORKFLOWS = WORKFLOWS / "api"
PACK_NAME = "eye_for_an_eye"

SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
PROMPT_TEMPLATE = "A photo of a {domain}"  # the authors' prompt, the same for every branch
DEFAULT_DOMAIN = "dog"

# The authors' settings, shared by the shipped workflows (scripts/make_workflows.py) and in-process mode.
DEFAULTS = {
    "prompt": PROMPT_TEMPLATE.format(domain=DEFAULT_DOMAIN),
    "negative": "",
    "size": 512,
    "sdxl_size": 1024,
    "upscale_method": "lanczos",
    "crop": "disabled",  # stretch: masks made from the original images stay aligned
    "mask_channel": "red",  # masks as black/white images
    "steps": 100,
    "skip_steps": 32,
    "inversion_cfg": 3.5,
    "method": "ddpm_edit_friendly",
    "scheduler": "ddim_uniform",
    "seed": 0,
    "layers": "auto",
    "custom_layers": "output.6-11",
    "start_percent": 0.16,
    "end_percent": 1.0,
    "structure_every": 5,
    "structure_end_percent": 0.60,
    "strength": 1.0,
    "cfg": 2.5,
    "adain": True,
    "adain_start_percent": 0.73,
    "filename_prefix": "e4e/transfer",
}

# Node titles (``_meta.title`` in API workflows) that the runner fills.
TITLES = {
    "checkpoint": "Checkpoint",
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
    "ksampler": "KSampler (Advanced)",
    "save": "Save result",
}
