"""Correspondence hints (matching/hints.py and Semantic Match Patch's hints / hint_strength): the text format,
refusals by name, the map fitted per object, a flipped pose fixed by hints, and strength 0 or no hints giving the
plain matching bit for bit."""

from __future__ import annotations

import pytest
import torch
import transfer_kit as kit
from harness import pack_module, pure

matching = pure("matching")
hints_mod = pure("matching.hints")


def test_the_text_format_reads_pairs_and_reference_numbers():
    hs = hints_mod.parse_hints("0.31,0.42 > 0.70,0.41; 0.55,0.2 -> .45,0.22 @2\n\n 0, 1>1,0")
    assert [h.target for h in hs] == [(0.31, 0.42), (0.55, 0.2), (0.0, 1.0)]
    assert [h.reference for h in hs] == [(0.70, 0.41), (0.45, 0.22), (1.0, 0.0)]
    assert [h.ref for h in hs] == [None, 1, None]
    assert hints_mod.parse_hints(hints_mod.format_hints(hs)) == hs  # what the viewer writes reads back
    assert hints_mod.parse_hints("  ") == ()


@pytest.mark.parametrize("text, message", [
    ("0.3,0.4 0.7,0.4", r"hints: pair 1 \('0.3,0.4 0.7,0.4'\) is not like"),
    ("0.3,0.4 > 0.7,0.4; 1.2,0.5 > 0.5,0.5", r"hints: pair 2 .*the target point \(1.2, 0.5\) is outside the image"),
    ("0.3,0.4 > 0.7,-0.1", r"hints: pair 1 .*the reference point \(0.7, -0.1\) is outside the image"),
    ("0.3,0.4 > 0.7,0.4 @0", r"hints: pair 1 .*references are numbered from 1"),
])
def test_bad_hint_text_is_refused_by_name(text, message):
    with pytest.raises(ValueError, match=message):
        hints_mod.parse_hints(text)


def _half_masks(size=32):
    left = torch.zeros(size, size)
    left[:, : size // 2] = 1
    return left


def test_hints_are_checked_against_the_objects_and_references():
    left = _half_masks()
    tgt, ref = torch.stack([left, 1 - left]), torch.stack([left, 1 - left])

    def field(text, n_refs=2, ref_ids=(0, 1)):
        return hints_mod.hint_field(hints_mod.parse_hints(text), tgt, ref, ref_ids, n_refs, 1.0)

    with pytest.raises(ValueError, match=r"hints: pair 1 .*the reference point is outside object 1's reference mask"):
        field("0.2,0.5 > 0.8,0.5")
    with pytest.raises(ValueError, match=r"hints: pair 1 .*names reference 3, but 2 reference\(s\) are connected"):
        field("0.2,0.5 > 0.3,0.5 @3")
    with pytest.raises(ValueError, match=r"names reference 2, but object 1 takes its appearance from reference 1"):
        field("0.2,0.5 > 0.3,0.5 @2")
    empty = torch.zeros(1, 32, 32)
    empty[0, :4, :4] = 1
    with pytest.raises(ValueError, match="the target point is outside every target object mask"):
        hints_mod.hint_field(hints_mod.parse_hints("0.5,0.5 > 0.5,0.5"), empty, empty, (0,), 1, 1.0)
    f = field("0.2,0.5 > 0.3,0.5; 0.8,0.5 > 0.7,0.5 @2")
    assert sorted(f.by_object) == [0, 1]
    assert field("0.2,0.5 > 0.3,0.5", n_refs=2) is not None and field("", n_refs=2) is None
    assert hints_mod.hint_field(hints_mod.parse_hints("0.2,0.5 > 0.3,0.5"), tgt, ref, (0, 1), 2, 0.0) is None


def test_the_map_follows_the_hints_and_mirrors_where_the_masks_say_so():
    """Three hints: the affine map through them. One hint on a mirrored object: the mirrored shift (the masks tell
    the mirrored map from the plain one)."""
    whole = torch.ones(1, 1)
    hs = hints_mod.parse_hints("0.2,0.2 > 0.8,0.2; 0.4,0.2 > 0.6,0.2; 0.2,0.6 > 0.8,0.6")
    affine = hints_mod.fit_map(hs, whole, whole)
    assert torch.allclose(hints_mod.apply(affine, torch.tensor([[0.3, 0.9]])), torch.tensor([[0.7, 0.9]]), atol=1e-5)
    # an L-shaped object and its mirror image: one hint at the corner picks the mirrored map
    tgt = torch.zeros(32, 32)
    tgt[4:28, 4:10] = 1
    tgt[22:28, 4:20] = 1
    ref = tgt.flip(-1)
    one = hints_mod.fit_map(hints_mod.parse_hints("0.2,0.8 > 0.8,0.8"), tgt, ref)
    assert float(one[0, 0]) < 0 and float(one[1, 1]) > 0  # x mirrored, y kept
    assert float(hints_mod.fit_map(hints_mod.parse_hints("0.2,0.8 > 0.2,0.8"), tgt, tgt)[0, 0]) > 0


def _symmetric_features(h=8, w=8, c=6):
    """Features that know the row and the distance from the vertical centre line, not the side: matching cannot
    tell left from right (the 'Telling Left from Right' failure)."""
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    d = (xs - (w - 1) / 2).abs()
    feats = torch.stack([torch.cos(ys), torch.sin(ys), torch.cos(d), torch.sin(d), ys / h, d / w], dim=-1)
    return feats.reshape(h * w, c)


def test_a_flipped_pose_is_fixed_by_hints():
    """The target is the reference mirrored; its features cannot tell the sides apart, so plain matching sends
    left to left. Three hints of the mirror fix it; ignored (strength 0) or mirrored hints do not."""
    h = w = 8
    feats = _symmetric_features(h, w)
    out, refs = feats[None], feats[None, None]
    masks, ids = torch.ones(1, 1, h * w, dtype=torch.bool), (0,)
    whole = torch.ones(1, 1, 1)
    cols = torch.arange(h * w) % w
    mirrored = (w - 1) - cols

    def matched_columns(text, strength=1.0):
        field = hints_mod.hint_field(hints_mod.parse_hints(text), whole, whole, ids, 1, strength)
        prior = None if field is None else field.prior((h, w), 1)
        return matching.match_objects(out, refs, masks, ids, prior=prior)[0] % w

    plain = matched_columns("")
    assert (plain == mirrored).float().mean() < 0.6  # ambiguous: half the tokens on the wrong side
    flip = "0.1,0.2 > 0.9,0.2; 0.3,0.8 > 0.7,0.8; 0.8,0.5 > 0.2,0.5"
    assert bool((matched_columns(flip) == mirrored).all())
    assert torch.equal(matched_columns(flip, strength=0.0), plain)
    wrong = "0.1,0.2 > 0.1,0.2; 0.3,0.8 > 0.3,0.8; 0.8,0.5 > 0.8,0.5"  # the hints mirrored back: no flip
    assert (matched_columns(wrong) == mirrored).float().mean() < 0.6


def test_no_hints_or_strength_zero_give_the_plain_transfer_bit_for_bit(sd15):
    c = kit.conds()
    target, reference = kit.invert(sd15, kit.latent(60), c), kit.invert(sd15, kit.latent(61), c, seed=1)
    plain = kit.sample(kit.patch(sd15, target, reference), c)
    hinted = "0.2,0.3 > 0.8,0.3; 0.4,0.7 > 0.6,0.7; 0.7,0.2 > 0.3,0.2"
    off = kit.patch(sd15, target, reference, hints=hinted, hint_strength=0.0)
    assert kit.plan(off).source is pack_module("engine.patch.sources").SEMANTIC
    assert torch.equal(kit.sample(off, c), plain)
    on = kit.patch(sd15, target, reference, hints=hinted, hint_strength=1.0)
    _, run = kit.sample_run(on, c)
    assert not torch.equal(kit.sample(on, c), plain)
    src = run.correspondence.src[0]  # a hinted token takes its hinted token (at the finest map)
    h, w = run.correspondence.grid
    assert int(src[hints_mod.token_of((0.2, 0.3), h, w)]) == hints_mod.token_of((0.8, 0.3), h, w)
    with pytest.raises(ValueError, match=r"hints: pair 1 \('x'\) is not like"):
        kit.patch(sd15, target, reference, hints="x")
