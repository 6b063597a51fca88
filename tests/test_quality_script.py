"""The quality script's mechanics on synthetic images (its figures need real weights to mean anything)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import evaluate_quality as q  # noqa: E402


def _scene(colour, bg=(0.2, 0.2, 0.2), size=48):
    img = np.zeros((size, size, 3)) + np.array(bg)
    img[12:36, 12:36] = colour
    return img


def test_identity_scores_perfectly():
    t = _scene((0.9, 0.1, 0.1))
    s = q.score(t, t, t)
    assert s["structure"] > 0.999 and s["appearance"] > 0.999
    assert np.isnan(s["background_psnr"])  # no mask: no background to compare


def test_recoloured_object_keeps_structure_and_gains_appearance():
    target, reference = _scene((0.9, 0.1, 0.1)), _scene((0.1, 0.2, 0.9))
    good = _scene((0.1, 0.2, 0.9))  # target's shape, reference's colour
    mask = np.zeros((48, 48), bool)
    mask[12:36, 12:36] = True
    s_good = q.score(good, target, reference, [mask], [mask])
    s_none = q.score(target, target, reference, [mask], [mask])
    blurred = np.full_like(target, target.mean())
    s_flat = q.score(blurred, target, reference, [mask], [mask])
    assert s_good["appearance_gain"] > 0.5 and abs(s_none["appearance_gain"]) < 1e-9
    assert s_good["structure"] > 0.9 > s_flat["structure"]
    assert s_good["background_psnr"] == float("inf")


def test_cli_over_files(tmp_path, capsys):
    for name, colour in (("ref", (0.1, 0.2, 0.9)), ("tgt", (0.9, 0.1, 0.1)), ("out", (0.1, 0.2, 0.9))):
        Image.fromarray((_scene(colour) * 255).astype(np.uint8)).save(tmp_path / f"{name}.png")
    m = np.zeros((48, 48), np.uint8)
    m[12:36, 12:36] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    (tmp_path / "pairs.csv").write_text(f"{tmp_path/'ref.png'},{tmp_path/'tgt.png'},{tmp_path/'m.png'},{tmp_path/'m.png'}\n")
    q.main(["--pairs", str(tmp_path / "pairs.csv"), "--outputs", str(tmp_path / "out.png"),
            "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert "| out.png |" in out and "**mean**" in out and (tmp_path / "s.json").is_file()
