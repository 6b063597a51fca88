"""Load Masks: inputs, files, validation and previews."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import pack_module
from PIL import Image


def node():
    return pack_module("nodes.load_masks").LoadMasks()


@pytest.fixture()
def input_dir(tmp_path, monkeypatch):
    """ComfyUI's input folder, here a fresh one for the test (mask files are read from there only)."""
    import folder_paths

    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path))
    return tmp_path


def test_whole_image_by_default():
    masks, pic = node().load("", False)["result"]
    assert masks.objects == 1 and masks.target.shape == (1, 1, 1)
    assert pic.shape[0] == 1 and pic.shape[-1] == 3


def test_mask_batches_pair_by_object():
    t = torch.zeros(2, 32, 32)
    t[0, :, :16] = 1
    t[1, :, 16:] = 1
    masks, pic = node().load("1,1", False, target_mask=t, reference_mask=t.flip(-1))["result"]
    assert masks.objects == 2 and masks.ref_ids == (0, 0)
    assert pic.shape[:1] == (2,) and float(pic.max()) <= 1.0
    assert masks.resolve_ref_ids(1) == (0, 0)


def test_auto_reference_of_object():
    t = torch.ones(2, 8, 8)
    masks = node().load("", False, target_mask=t, reference_mask=t)["result"][0]
    assert masks.resolve_ref_ids(2) == (0, 1) and masks.resolve_ref_ids(1) == (0, 0)


def test_files_alpha_and_luminance(input_dir):
    rgba = np.zeros((16, 24, 4), np.uint8)
    rgba[:, :12, 3] = 255
    Image.fromarray(rgba, "RGBA").save(input_dir / "t.png")
    grey = np.zeros((16, 24), np.uint8)
    grey[:, 12:] = 200
    Image.fromarray(grey, "L").save(input_dir / "r.png")
    masks = node().load("", False, target_mask_file="t.png", reference_mask_file="r.png")["result"][0]
    assert float(masks.target[0, :, :12].min()) == 1.0 and float(masks.target[0, :, 12:].max()) == 0.0
    assert abs(float(masks.reference[0, 0, 20]) - 200 / 255) < 1e-6


def test_invert_flips_masks():
    t = torch.zeros(8, 8)
    t[:4] = 1
    masks = node().load("", True, target_mask=t, reference_mask=t)["result"][0]
    assert float(masks.target[0, 4:].min()) == 1.0 and float(masks.target[0, :4].max()) == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(target_mask=torch.zeros(8, 8), reference_mask=torch.ones(8, 8)), "target_mask: object\\(s\\) \\[1\\] are empty"),
    # (2 target masks for 1 reference mask is one object's masks per frame of a video: tests/test_video.py)
    (dict(target_mask=torch.ones(3, 8, 8), reference_mask=torch.ones(2, 8, 8)), "reference_mask: 2 reference masks for 3"),
    (dict(target_mask=torch.ones(8, 8)), "reference_mask: masks were given for one side only"),
    (dict(target_mask=torch.ones(8, 8), reference_mask=torch.ones(8, 8), target_image=torch.rand(1, 16, 16, 3)),
     "target_mask: masks are 8x8 but target_image is 16x16"),
    (dict(target_mask_file="does-not-exist.png", reference_mask=torch.ones(8, 8)), "target_mask_file: file"),
])
def test_bad_masks_are_named(kwargs, message, input_dir):
    with pytest.raises(ValueError, match=message):
        node().load("", False, **kwargs)


def test_bad_reference_of_object():
    with pytest.raises(ValueError, match="reference_of_object"):
        node().load("one,two", False)
    with pytest.raises(ValueError, match="reference_of_object: 3 entries for 1 objects"):
        node().load("1,1,1", False, target_mask=torch.ones(8, 8), reference_mask=torch.ones(8, 8))


def test_unreadable_file(input_dir):
    (input_dir / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="target_mask_file: cannot read 'bad.png'"):
        node().load("", False, target_mask_file="bad.png", reference_mask=torch.ones(8, 8))


def test_node_registration(pack):
    m = pack.NODE_CLASS_MAPPINGS
    assert set(m) == {"E4ELoadMasks", "E4EDDIMInvertReference", "E4ESemanticMatchPatch", "E4EAppearanceTransferSampler",
                      "E4EAuthorsFreeU", "E4EToyModel", "E4EToyCreatures", "E4EToyVAEEncode", "E4EToyVAEDecode"}
    for name, cls in m.items():
        assert cls.DESCRIPTION and cls.CATEGORY and hasattr(cls, cls.FUNCTION)
        spec = cls.INPUT_TYPES()
        for group in spec.values():
            for inp, opts in group.items():
                assert isinstance(opts[1], dict) and opts[1].get("tooltip"), f"{name}.{inp} lacks a tooltip"
    assert pack.WEB_DIRECTORY == "./web/js"


def test_resize_like_image_scale():
    mod = pack_module("matching")
    m = torch.zeros(1, 40, 80)
    m[:, :, 45:60] = 1  # object at x 45..60 of 80
    stretched = mod.fit_masks(m, 64, 64, "disabled")  # -> x 36..48 of 64
    assert stretched.shape == (1, 64, 64) and float(stretched[0, :, 38:46].min()) > 0.9
    assert float(stretched[0, :, :34].max()) == 0
    cropped = mod.fit_masks(m, 64, 64, "center")  # keeps x 20..60, the object lands at x 40..64 of 64
    assert cropped.shape == (1, 64, 64) and float(cropped[0, :, 42:62].min()) > 0.9
    assert float(cropped[0, :, :38].max()) == 0
    assert mod.fit_masks(m, 0, 20).shape == (1, 20, 40)
    masks = node().load("", False, 64, 64, "disabled", target_mask=m, reference_mask=m,
                        target_image=torch.rand(1, 64, 64, 3))["result"][0]
    assert masks.target.shape == (1, 64, 64)


def test_mask_files_of_different_sizes(input_dir):
    for name, size in (("a.png", (32, 16)), ("b.png", (64, 64))):
        Image.fromarray(np.full((size[1], size[0]), 255, np.uint8)).save(input_dir / name)
    masks = node().load("", False, target_mask_file="a.png, b.png",
                        reference_mask=torch.ones(2, 8, 8))["result"][0]
    assert masks.target.shape == (2, 16, 32)


def test_opaque_rgba_mask_uses_brightness(input_dir):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255  # fully opaque: painted black/white mask
    rgba[:, 4:, :3] = 255
    Image.fromarray(rgba, "RGBA").save(input_dir / "m.png")
    masks = node().load("", False, target_mask_file="m.png", reference_mask=torch.ones(8, 8))["result"][0]
    assert float(masks.target[0, :, :4].max()) == 0.0 and float(masks.target[0, :, 4:].min()) == 1.0


def test_short_reference_of_object_is_named_before_image_checks():
    with pytest.raises(ValueError, match="reference_of_object: 1 entries for 2 objects"):
        node().load("1", False, target_mask=torch.ones(2, 8, 8), reference_mask=torch.ones(2, 8, 8),
                    reference_image=torch.rand(2, 8, 8, 3))


def test_inside_comfyui_only_the_input_folder_is_read(tmp_path, monkeypatch):
    import folder_paths

    files = pack_module("engine.backends.mask_files")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.png").write_bytes(b"x")
    (tmp_path / "secret.png").write_bytes(b"x")
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path / "in"))
    assert files.resolve_input("ok.png", "target_mask_file").endswith("ok.png")
    for bad in ("../secret.png", str(tmp_path / "secret.png")):
        with pytest.raises(ValueError, match="target_mask_file: .* is outside ComfyUI's input folder"):
            files.resolve_input(bad, "target_mask_file")
