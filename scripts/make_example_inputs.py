"""Draw the example inputs the shipped workflows load, with the toy world's creature generator.

    python scripts/make_example_inputs.py          # writes workflows/inputs/*.png (512 x 512)
    python scripts/make_example_inputs.py --check  # fails if the files differ from what it draws

The workflows load ``e4e_reference.png`` and ``e4e_target.png`` with their object masks (white on black), and
the two-objects workflow ``e4e_reference_1.png``, ``e4e_reference_2.png`` and one mask per object. The
references face right, the targets face left, with their own colours and backgrounds. The target holds two
creatures (one per half), so the same files serve every workflow: one object mask covers both, the numbered
masks one each. Copy the files into ComfyUI/input/ to open a workflow in the editor and run it as it is.

Needs torch and Pillow (any Python with them; no ComfyUI). toy_world/world.py is loaded by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "workflows" / "inputs"
SIZE = 512
SEED = 2406_07008


def _world():
    spec = importlib.util.spec_from_file_location("e4e_toy_world", REPO / "toy_world" / "world.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _scaled(world, poses, k: float):
    """The world's poses (drawn for its own image size) blown up ``k`` times."""
    return world.Poses(poses.tx * k, poses.ty * k, poses.scale * k, poses.flip, poses.angle)


def _render(world, poses, colours, background, seed: int):
    import torch

    kwargs = {"texture": 0.0} if "texture" in inspect.signature(world.render).parameters else {}
    g = torch.Generator().manual_seed(seed)  # the background's gradient: the same seed, the same background
    out = world.render(poses, colours, background, g, size=SIZE, **kwargs)
    return out.images, out.masks


def draw() -> dict:
    """File name -> PIL image."""
    import torch
    from PIL import Image

    world = _world()
    g = torch.Generator().manual_seed(SEED)
    k = SIZE / world.SIZE
    # references: one creature each, facing right, filling the image as a 32 px world image is filled
    refs = _scaled(world, world.sample_poses(2, g, world.SIZE, flip=False), k)
    ref_colours, ref_bg = world.sample_colours(2, g)
    # target: two creatures facing left, one in the middle of each half, as large as the half allows
    tgt = world.sample_poses(2, g, world.SIZE, flip=True)
    jitter = (torch.rand(2, 2, generator=g) - 0.5) * SIZE / 16
    tgt = world.Poses(torch.tensor([SIZE / 4, 3 * SIZE / 4]) + jitter[0], SIZE / 2 + jitter[1],
                      tgt.scale * k * 0.7, tgt.flip, tgt.angle)
    tgt_colours, tgt_bg = world.sample_colours(1, g)
    for _ in range(100):  # the second creature: its own colours, as far from the shared background as the first's
        second = world.sample_colours(1, g)[0]
        if bool(((second - tgt_bg[:, None]).norm(dim=-1) >= world.MIN_COLOUR_DISTANCE).all()):
            break
    tgt_colours = torch.cat([tgt_colours, second])

    def rgb(t):
        return Image.fromarray((t.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy())

    def mask(t):
        return Image.fromarray((t > 0.5).to(torch.uint8).mul(255).numpy(), mode="L")

    files = {}
    images, masks = _render(world, refs, ref_colours, ref_bg, SEED + 1)
    for i in range(2):
        files[f"e4e_reference_{i + 1}.png"] = rgb(images[i])
        files[f"e4e_reference_{i + 1}_mask.png"] = mask(masks[i])
    files["e4e_reference.png"] = files["e4e_reference_1.png"]
    files["e4e_reference_mask.png"] = files["e4e_reference_1_mask.png"]
    images, masks = _render(world, tgt, tgt_colours, tgt_bg.expand(2, 3), SEED + 2)
    target = torch.where(masks[1][None] > 0.5, images[1], images[0])  # the same background under both
    files["e4e_target.png"] = rgb(target)
    for i in range(2):
        files[f"e4e_target_mask_{i + 1}.png"] = mask(masks[i])
    files["e4e_target_mask.png"] = mask(torch.maximum(masks[0], masks[1]))
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with workflows/inputs/ instead of writing")
    args = ap.parse_args(argv)
    import numpy as np
    from PIL import Image

    files = draw()
    if args.check:
        stale = []
        for name, img in sorted(files.items()):
            path = OUT / name
            if not path.is_file() or not np.array_equal(np.asarray(Image.open(path)), np.asarray(img)):
                stale.append(name)
        extra = sorted(p.name for p in OUT.glob("*") if p.name not in files) if OUT.is_dir() else []
        if stale or extra:
            print(f"make_example_inputs: out of date: {stale + extra}; run python scripts/make_example_inputs.py")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, img in sorted(files.items()):
        img.save(OUT / name, optimize=True)
        print(f"{OUT / name}: {(OUT / name).stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
