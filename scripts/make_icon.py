"""Draw the pack's icon for the Comfy Registry (``[tool.comfy] Icon``): ``web/icon.png``, 400 x 400.

    python scripts/make_icon.py          # writes web/icon.png
    python scripts/make_icon.py --check  # fails if the file differs from what it draws

What the pack does, drawn by the toy world's creature generator: on the left a reference creature, on the right
a target creature in its own pose (facing the other way) wearing the reference's colours part by part (the world
renders that exactly, no model involved). Needs torch and Pillow; toy_world/world.py is loaded by path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "web" / "icon.png"
SIDE, SEED = 400, 2406_07008

sys.path.insert(0, str(REPO / "scripts"))
from make_example_inputs import _world  # noqa: E402


def draw():
    import torch
    from PIL import Image, ImageDraw

    world = _world()
    g = torch.Generator().manual_seed(SEED)
    colours, background = world.sample_colours(1, g)
    _, target_background = world.sample_colours(1, g)
    side = 48  # a creature filling a 48 px picture: facing right (reference), left and tilted (target)
    poses = [world.Poses(torch.tensor([side / 2]), torch.tensor([side / 2 + 2]), torch.tensor([side / 2.1]),
                         torch.tensor([flip]), torch.tensor([angle])) for flip, angle in ((False, 0.0), (True, 0.2))]
    panels = [world.render(p, colours, bg, torch.Generator().manual_seed(SEED), size=side, texture=0.0).images[0]
              for p, bg in zip(poses, (background, target_background))]
    tile = (SIDE - 3 * 16) // 2  # two square tiles with a 16 px margin round them
    icon = Image.new("RGB", (SIDE, SIDE), (24, 26, 33))
    for k, img in enumerate(panels):
        rgb = Image.fromarray((img.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy())
        icon.paste(rgb.resize((tile, tile), Image.NEAREST), (16 + k * (tile + 16), (SIDE - tile) // 2))
    draw = ImageDraw.Draw(icon)
    y = SIDE // 2 + tile // 2 + 12
    draw.polygon([(SIDE // 2 - 6, y - 8), (SIDE // 2 + 8, y), (SIDE // 2 - 6, y + 8)], fill=(230, 230, 230))
    return icon


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with web/icon.png instead of writing")
    args = ap.parse_args(argv)
    import numpy as np
    from PIL import Image

    icon = draw()
    if args.check:
        same = OUT.is_file() and np.array_equal(np.asarray(Image.open(OUT).convert("RGB")), np.asarray(icon))
        if not same:
            print("make_icon: web/icon.png is out of date; run python scripts/make_icon.py")
        return 0 if same else 1
    icon.save(OUT, optimize=True)
    print(f"{OUT}: {OUT.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
