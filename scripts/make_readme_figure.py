#!/usr/bin/env python3
"""Make the README's correspondence picture from a real transfer run on a small RANDOM-WEIGHT UNet.

    python scripts/make_readme_figure.py [--out bench/figures/correspondence_random_weights.png]

The target is the reference shifted right by a quarter of its width, so a correct matcher must point each
target spot a quarter-width to the left in the reference. With random weights the UNet's features are not
semantic, so this shows the mechanics (the colour code, masks, several references), not quality.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "bench" / "figures" / "correspondence_random_weights.png"))
    args = ap.parse_args()
    import harness

    harness.setup_host()
    import tiny_models
    import transfer_kit as kit

    model = tiny_models.build_sd15()
    c = kit.conds()
    ref_lat = kit.latent(5, size=32)
    tgt_lat = torch.roll(ref_lat, shifts=8, dims=-1)
    target = kit.invert(model, tgt_lat, c, steps=12, skip=2)
    reference = kit.invert(model, ref_lat, c, steps=12, skip=2, seed=1)
    mask = torch.zeros(256, 256)
    mask[32:224, 96:224] = 1
    patched = kit.patch(model, target, reference, masks=kit.masks(mask, torch.ones(256, 256)))
    kit.sample(patched, c)
    transfer = harness.pack_module("nodes.appearance_transfer_sampler")
    state = harness.pack_module("nodes.attention_hooks").state_of(patched)
    panel = transfer.correspondence_images(state, (256, 256))[0]
    img = Image.fromarray((panel.numpy() * 255).astype(np.uint8))
    canvas = Image.new("RGB", (img.width, img.height + 34), "white")
    canvas.paste(img, (0, 34))
    d = ImageDraw.Draw(canvas)
    d.text((6, 4), "RANDOM-WEIGHT UNet (mechanics only): target colour = where in the reference it takes its "
           "appearance from", fill="black")
    d.text((6, 18), f"left: reference colour code   right: target (grey = outside mask, kept)   layer "
           f"{state.correspondence.layer}, step {state.correspondence.step}", fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(args.out)


if __name__ == "__main__":
    main()
