"""matching: masks, token grids, rearrange, masked AdaIN, visualisation and every error path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from harness import pure

matching = pure("matching")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------------


def test_mask_to_tokens_bilinear_threshold():
    # align_corners=False bilinear from 4x4 to 2x2 samples the centre of each 2x2 block: the mean of the block
    m = torch.zeros(4, 4)
    m[0, 1] = 0.01  # a faint soft edge counts (> 0)
    m[3, 3] = 1.0
    assert matching.mask_to_tokens(m, 2, 2).tolist() == [True, False, False, True]
    # a single pixel far from a token centre does not reach that token
    m = torch.zeros(8, 8)
    m[0, 0] = 1.0
    assert matching.mask_to_tokens(m, 2, 2).tolist() == [False, False, False, False]
    assert matching.mask_to_tokens(torch.zeros(8, 8), 2, 2).sum() == 0
    assert matching.mask_to_tokens(torch.ones(17, 5), 13, 7).all()


def test_mask_to_tokens_shapes_batch_bool_and_layout():
    g = gen(0)
    m = torch.rand(3, 50, 30, generator=g).round()
    t = matching.mask_to_tokens(m, 13, 7)
    assert t.shape == (3, 91) and t.dtype == torch.bool
    assert torch.equal(t[1], matching.mask_to_tokens(m[1], 13, 7))
    assert torch.equal(matching.mask_to_tokens(m.bool(), 13, 7), t)
    # row-major layout: a mask on the left third marks the first columns of every row
    left = torch.zeros(26, 21)
    left[:, :6] = 1
    t = matching.mask_to_tokens(left, 13, 7).reshape(13, 7)
    assert t[:, 0].all() and t[:, 1].all() and not t[:, 3:].any()
    # same size: pure threshold, no resampling
    same = torch.tensor([[0.0, 0.2], [0.0, 1.0]])
    assert matching.mask_to_tokens(same, 2, 2).tolist() == [False, True, False, True]


def test_mask_to_tokens_half_input():
    m = torch.zeros(64, 64, dtype=torch.float16)
    m[10:40, 20:50] = 1
    assert torch.equal(matching.mask_to_tokens(m, 8, 8), matching.mask_to_tokens(m.float(), 8, 8))


def test_rearrange_replaces_matched_rows_and_keeps_the_rest():
    g = gen(1)
    out = torch.randn(50, 8, generator=g)
    ref = torch.randn(2 * 30, 8, generator=g)
    src = torch.randint(0, 60, (50,), generator=g)
    src[::3] = -1
    keep = src < 0
    res = matching.rearrange(out, ref, src)
    assert res.shape == out.shape and res.dtype == out.dtype and res.data_ptr() != out.data_ptr()
    assert torch.equal(res[keep], out[keep])
    assert torch.equal(res[~keep], ref[src[~keep]])
    half = matching.rearrange(out, ref, src, strength=0.25)
    assert torch.equal(half[keep], out[keep])
    torch.testing.assert_close(half[~keep], out[~keep] + 0.25 * (ref[src[~keep]] - out[~keep]))
    zero = matching.rearrange(out, ref, src, strength=0.0)
    assert torch.equal(zero, out)


def test_rearrange_untouched_rows_bit_identical_with_special_values_and_dtypes():
    out = torch.randn(6, 4).half()
    out[0, 0] = float("nan")
    out[1, 1] = -0.0
    out[2, 2] = float("inf")
    ref = torch.randn(5, 4)  # float32 reference into a float16 sequence
    src = torch.tensor([-1, -1, -1, 4, 0, -1], dtype=torch.int32)
    res = matching.rearrange(out, ref, src, strength=0.5)
    assert res.dtype == torch.float16
    keep = src < 0
    assert torch.equal(res[keep].view(torch.int16), out[keep].view(torch.int16))  # bit for bit


def test_rearrange_batched_and_broadcast():
    g = gen(2)
    out = torch.randn(3, 20, 6, generator=g)
    ref = torch.randn(3, 40, 6, generator=g)
    src = torch.randint(-1, 40, (3, 20), generator=g)
    res = matching.rearrange(out, ref, src)
    for b in range(3):
        assert torch.equal(res[b], matching.rearrange(out[b], ref[b], src[b]))
    res1 = matching.rearrange(out, ref[:1], src)
    assert torch.equal(res1[2], matching.rearrange(out[2], ref[0], src[2]))


def test_match_then_rearrange_end_to_end():
    g = gen(3)
    ref = torch.randn(30, 12, generator=g)
    perm = torch.randperm(30, generator=g)
    out = ref[perm] + 0.01 * torch.randn(30, 12, generator=g)
    om = torch.arange(30) < 20
    src = matching.match_tokens(out, ref, om)
    res = matching.rearrange(out, ref, src)
    assert torch.equal(res[:20], ref[perm[:20]]) and torch.equal(res[20:], out[20:])


# ---------------------------------------------------------------------------------------------------
# masked AdaIN
# ---------------------------------------------------------------------------------------------------


def wstats(x, w, unbiased=True):
    """Weighted mean and std; ``unbiased``: Bessel's correction (sum(w) - 1), as the authors' ``var()``."""
    w = w.expand_as(x[:, :1])
    tot = w.sum(dim=(2, 3), keepdim=True)
    mean = (x * w).sum(dim=(2, 3), keepdim=True) / tot
    std = (((x - mean) ** 2 * w).sum(dim=(2, 3), keepdim=True) / (tot - 1 if unbiased else tot)).sqrt()
    return mean.flatten(), std.flatten()


def test_masked_adain_statistics_inside_and_identity_outside():
    g = gen(4)
    x = torch.randn(2, 4, 16, 12, generator=g) * 0.5 + 1.0
    ref = torch.randn(1, 4, 16, 12, generator=g) * 2.0 - 3.0
    xm = torch.zeros(2, 1, 16, 12)
    xm[0, :, 2:10, 3:9] = 1
    xm[1, :, 5:15, 1:11] = 1
    rm = torch.zeros(16, 12)
    rm[8:, :6] = 1
    res = matching.masked_adain(x, ref, xm, rm)
    assert res.shape == x.shape and res.dtype == x.dtype
    outside = (xm == 0).expand_as(x)
    assert torch.equal(res[outside], x[outside])
    for b in range(2):
        m_got, s_got = wstats(res[b : b + 1], xm[b : b + 1])
        m_ref, s_ref = wstats(ref, rm[None, None])
        torch.testing.assert_close(m_got, m_ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(s_got, s_ref, atol=1e-3, rtol=1e-3)
        m_x, _ = wstats(x[b : b + 1], xm[b : b + 1])
        assert (m_x - m_ref).abs().min() > 1.0  # the change was real
    # the population variance on request: then the population stds match
    res = matching.masked_adain(x, ref, xm, rm, unbiased=False)
    for b in range(2):
        _, s_got = wstats(res[b : b + 1], xm[b : b + 1], unbiased=False)
        _, s_ref = wstats(ref, rm[None, None], unbiased=False)
        torch.testing.assert_close(s_got, s_ref, atol=1e-3, rtol=1e-3)


def test_masked_adain_uses_the_authors_unbiased_variance():
    """The authors' calc_mean_std: mean and ``var()`` (Bessel) of the pixels where the mask is 1, + eps, sqrt."""
    g = gen(7)
    x = torch.randn(1, 4, 8, 8, generator=g)
    ref = torch.randn(1, 4, 8, 8, generator=g) * 2 + 1
    xm, rm = torch.zeros(8, 8), torch.zeros(8, 8)
    xm[1:5, 2:7] = 1
    rm[3:8, 0:3] = 1

    def mean_std(t, m):  # transcription: select the masked pixels, then torch's unbiased var
        flat = t[0].reshape(4, -1)[:, m.reshape(-1) == 1]
        return flat.mean(dim=1).view(4, 1, 1), (flat.var(dim=1) + 1e-5).sqrt().view(4, 1, 1)

    mx, sx = mean_std(x, xm)
    mr, sr = mean_std(ref, rm)
    expected = x[0] * (1 - xm) + ((x[0] - mx) / sx * sr + mr) * xm
    torch.testing.assert_close(matching.masked_adain(x, ref, xm, rm)[0], expected, atol=1e-5, rtol=1e-5)

def test_masked_adain_soft_mask_none_masks_strength_half():
    g = gen(5)
    x = torch.randn(1, 4, 10, 10, generator=g)
    ref = torch.randn(1, 4, 8, 6, generator=g) * 3 + 2  # another size is fine: statistics are per channel
    soft = torch.zeros(10, 10)
    soft[2:8, 2:8] = 0.5
    soft[4:6, 4:6] = 1.0
    res = matching.masked_adain(x, ref, soft[None], None)
    zero = (soft == 0).expand_as(x[0])[None]
    assert torch.equal(res[zero], x[zero])
    one = (soft == 1).expand_as(x[0])[None]
    assert not torch.allclose(res[one], x[one])
    # no masks: global statistics
    res = matching.masked_adain(x, ref)
    torch.testing.assert_close(res.mean(dim=(2, 3)), ref.mean(dim=(2, 3)), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(res.std(dim=(2, 3)), ref.std(dim=(2, 3)), atol=1e-3, rtol=1e-3)
    full = matching.masked_adain(x, ref)
    torch.testing.assert_close(matching.masked_adain(x, ref, strength=0.5), 0.5 * (x + full))
    assert torch.equal(matching.masked_adain(x, ref, strength=0.0), x)


def test_masked_adain_half_and_unchecked_empty_ref_mask():
    g = gen(6)
    x = torch.randn(2, 4, 8, 8, generator=g)
    ref = torch.randn(2, 4, 8, 8, generator=g) * 2
    res = matching.masked_adain(x.half(), ref.half())
    assert res.dtype == torch.float16
    torch.testing.assert_close(res.float(), matching.masked_adain(x, ref), atol=2e-2, rtol=1e-2)
    empty = torch.zeros(2, 1, 8, 8)
    empty[0] = 1
    res = matching.masked_adain(x, ref, None, empty, check=False)
    assert torch.equal(res[1], x[1]) and not torch.equal(res[0], x[0])


# ---------------------------------------------------------------------------------------------------
# visualisation
# ---------------------------------------------------------------------------------------------------


def test_position_colors():
    pal = matching.position_colors(5, 9)
    assert pal.shape == (5, 9, 3) and pal.dtype == torch.float32
    assert pal.min() >= 0 and pal.max() <= 1
    assert (pal[:, 1:, 0] > pal[:, :-1, 0]).all()  # red grows left to right
    assert (pal[1:, :, 1] > pal[:-1, :, 1]).all()  # green grows top to bottom
    flat = pal.reshape(-1, 3)
    assert torch.unique(flat, dim=0).shape[0] == 45  # every position has its own colour
    assert matching.position_colors(1, 1).shape == (1, 1, 3)


def test_identity_match_reproduces_palette():
    g = gen(7)
    feats = torch.randn(13 * 7, 16, generator=g)
    src = matching.match_tokens(feats, feats)
    img = matching.correspondence_image(src, (13, 7), (13, 7))
    assert torch.equal(img, matching.position_colors(13, 7))
    big = matching.correspondence_image(src, (13, 7), (13, 7), size=(26, 21))
    assert big.shape == (26, 21, 3)
    assert torch.equal(big[::2, ::3], img)


def test_correspondence_image_unmatched_multi_ref_and_panel():
    oh, ow, rh, rw = 4, 6, 3, 5
    M = rh * rw
    src = torch.full((oh * ow,), -1, dtype=torch.long)
    src[0] = 0  # ref 0, top-left
    src[1] = M + M - 1  # ref 1, bottom-right
    img = matching.correspondence_image(src, (oh, ow), (rh, rw), n_refs=2, unmatched=(0.2, 0.3, 0.4))
    assert img.shape == (oh, ow, 3) and img.min() >= 0 and img.max() <= 1
    flat = img.reshape(-1, 3)
    assert torch.equal(flat[2:], torch.tensor([0.2, 0.3, 0.4]).expand(oh * ow - 2, 3))
    p0 = matching.reference_palette(rh, rw, 0, 2)
    p1 = matching.reference_palette(rh, rw, 1, 2)
    assert torch.equal(flat[0], p0[0, 0]) and torch.equal(flat[1], p1[-1, -1])
    assert flat[0, 2] == 0 and flat[1, 2] == 1  # blue = reference id
    assert torch.equal(p0[..., :2], p1[..., :2])
    panel = matching.correspondence_panel(src, (oh, ow), (rh, rw), 2, size=(8, 12))
    assert panel.shape == (8, 12 * 3, 3)
    assert torch.equal(
        panel[:, 24:],
        matching.correspondence_image(src, (oh, ow), (rh, rw), 2, size=(8, 12), unmatched=(0.15, 0.15, 0.15)),
    )
    p1_big = F.interpolate(p1.permute(2, 0, 1)[None], size=(8, 12), mode="nearest")[0].permute(1, 2, 0)
    assert torch.equal(panel[:, 12:24], p1_big)
    assert matching.correspondence_panel(src, (oh, ow), (rh, rw), 2).shape == (oh, ow * 3, 3)


# ---------------------------------------------------------------------------------------------------
# error paths
# ---------------------------------------------------------------------------------------------------

g0 = gen(8)
OUT, REF = torch.randn(10, 4, generator=g0), torch.randn(12, 4, generator=g0)
OM, RM = torch.ones(10, dtype=torch.bool), torch.ones(12, dtype=torch.bool)
META = torch.device("meta")
OB, RB = OUT.expand(2, 10, 4), REF.expand(2, 12, 4)
REFS = torch.randn(2, 12, 4, generator=g0)
OMS = torch.stack([OM, ~OM | (torch.arange(10) < 3)])
RMS = torch.stack([RM, RM])
X = torch.randn(1, 4, 6, 6, generator=g0)

ERRORS = {
    "mt out ndim": (lambda: matching.match_tokens(OUT[None], REF), "out"),
    "mt ref ndim": (lambda: matching.match_tokens(OUT, REF[0]), "ref"),
    "mt channels": (lambda: matching.match_tokens(OUT, REF[:, :3]), "ref has 3 channels"),
    "mt out int": (lambda: matching.match_tokens(OUT.long(), REF), "out must be a floating"),
    "mt ref int": (lambda: matching.match_tokens(OUT, REF.int()), "ref must be a floating"),
    "mt out_mask float": (lambda: matching.match_tokens(OUT, REF, OM.float()), "out_mask must be a bool"),
    "mt ref_mask float": (
        lambda: matching.match_tokens(OUT, REF, None, RM.float()),
        "ref_mask must be a bool",
    ),
    "mt out_mask length": (lambda: matching.match_tokens(OUT, REF, OM[:9]), "out_mask must have shape"),
    "mt ref_mask length": (lambda: matching.match_tokens(OUT, REF, None, OM), "ref_mask must have shape"),
    "mt out_mask list": (
        lambda: matching.match_tokens(OUT, REF, [True] * 10),
        "out_mask must be a torch.Tensor",
    ),
    "mt device": (lambda: matching.match_tokens(OUT, REF.to(META)), "ref is on meta"),
    "mt mask device": (lambda: matching.match_tokens(OUT, REF, OM.to(META)), "out_mask is on meta"),
    "mt empty out_mask": (lambda: matching.match_tokens(OUT, REF, ~OM), "out_mask is empty"),
    "mt empty ref_mask": (lambda: matching.match_tokens(OUT, REF, OM, ~RM), "ref_mask is empty"),
    "mt chunk_bytes": (lambda: matching.match_tokens(OUT, REF, chunk_bytes=0), "chunk_bytes"),
    "mo refs ndim": (lambda: matching.match_objects(OUT, REFS[0], OMS, [0, 1], RMS), "refs"),
    "mo refs channels": (
        lambda: matching.match_objects(OUT, REFS[..., :3], OMS, [0, 1], RMS),
        "refs has 3 channels",
    ),
    "mo ids length": (lambda: matching.match_objects(OUT, REFS, OMS, [0], RMS), "ref_ids has 1 entries"),
    "mo ids range": (lambda: matching.match_objects(OUT, REFS, OMS, [0, 2], RMS), r"ref_ids\[1\]"),
    "mo ids tensor": (lambda: matching.match_objects(OUT, REFS, OMS, torch.tensor([0, 1]), RMS), "ref_ids"),
    "mo out_masks float": (
        lambda: matching.match_objects(OUT, REFS, OMS.float(), [0, 1], RMS),
        "out_masks must be a bool",
    ),
    "mo out_masks ndim": (
        lambda: matching.match_objects(OUT, REFS, OM, [0], RMS),
        "out_masks must have shape",
    ),
    "mo ref_masks K": (
        lambda: matching.match_objects(OUT, REFS, OMS, [0, 1], RMS[:1]),
        "ref_masks must have shape",
    ),
    "mo ref_masks float": (
        lambda: matching.match_objects(OUT, REFS, OMS, [0, 1], RMS.half()),
        "ref_masks must be a bool",
    ),
    "mo empty out mask": (
        lambda: matching.match_objects(OUT, REFS, torch.stack([OM, ~OM]), [0, 1], RMS),
        r"out_masks\[1\] is empty",
    ),
    "mo empty ref mask": (
        lambda: matching.match_objects(OUT, REFS, OMS, [0, 1], torch.stack([~RM, RM])),
        r"ref_masks\[0\] is empty",
    ),
    "mo device": (lambda: matching.match_objects(OUT, REFS.to(META), OMS, [0, 1], RMS), "refs is on meta"),
    "mo batched refs": (lambda: matching.match_objects(OB, REFS, OMS[None].expand(2, 2, 10), [0, 1]), "refs"),
    "m2t ndim": (lambda: matching.mask_to_tokens(torch.ones(4), 2, 2), "mask"),
    "m2t dtype": (
        lambda: matching.mask_to_tokens(torch.ones(4, 4, dtype=torch.long), 2, 2),
        "mask must be a float",
    ),
    "m2t h": (lambda: matching.mask_to_tokens(torch.ones(4, 4), 0, 2), "h must be"),
    "m2t w": (lambda: matching.mask_to_tokens(torch.ones(4, 4), 2, 2.0), "w must be"),
    "re src float": (lambda: matching.rearrange(OUT, REF, torch.zeros(10)), "src must be an integer"),
    "re src shape": (
        lambda: matching.rearrange(OUT, REF, torch.zeros(9, dtype=torch.long)),
        "src must have shape",
    ),
    "re ref channels": (lambda: matching.rearrange(OUT, REF[:, :2], OM.long()), "ref_flat has 2 channels"),
    "re ref ndim": (lambda: matching.rearrange(OUT, RB, OM.long()), "ref_flat must have shape"),
    "re out ndim": (lambda: matching.rearrange(OUT[0], REF, OM.long()), "out must have shape"),
    "re device": (lambda: matching.rearrange(OUT, REF.to(META), OM.long()), "ref_flat is on meta"),
    "re strength": (lambda: matching.rearrange(OUT, REF, OM.long(), strength=torch.tensor(0.5)), "strength"),
    "ad x ndim": (lambda: matching.masked_adain(X[0], X), "x must have shape"),
    "ad x int": (lambda: matching.masked_adain(X.long(), X), "x must be a floating"),
    "ad ref channels": (lambda: matching.masked_adain(X, X[:, :3]), "ref has 3 channels"),
    "ad ref batch": (
        lambda: matching.masked_adain(X.expand(2, -1, -1, -1), X.expand(3, -1, -1, -1)),
        "ref has batch",
    ),
    "ad x_mask size": (lambda: matching.masked_adain(X, X, torch.ones(5, 6)), "x_mask has spatial size"),
    "ad x_mask ndim": (lambda: matching.masked_adain(X, X, torch.ones(1, 1, 1, 6, 6)), "x_mask must be"),
    "ad x_mask dtype": (
        lambda: matching.masked_adain(X, X, torch.ones(6, 6, dtype=torch.long)),
        "x_mask must be float",
    ),
    "ad empty x_mask": (lambda: matching.masked_adain(X, X, torch.zeros(6, 6)), "x_mask is empty"),
    "ad empty ref_mask": (
        lambda: matching.masked_adain(X, X, None, torch.zeros(1, 6, 6)),
        "ref_mask is empty",
    ),
    "ad device": (lambda: matching.masked_adain(X, X.to(META)), "ref is on meta"),
    "viz src ndim": (
        lambda: matching.correspondence_image(OM.long()[None], (2, 5), (3, 4)),
        "src must have shape",
    ),
    "viz src float": (
        lambda: matching.correspondence_image(OM.float(), (2, 5), (3, 4)),
        "src must be an integer",
    ),
    "viz src count": (lambda: matching.correspondence_image(OM.long(), (3, 5), (3, 4)), "src has 10 tokens"),
    "viz src range": (
        lambda: matching.correspondence_image(OM.long() * 12, (2, 5), (3, 4)),
        "src holds indices",
    ),
    "viz ref_hw": (lambda: matching.correspondence_image(OM.long(), (2, 5), (3,)), "ref_hw"),
    "viz n_refs": (lambda: matching.correspondence_image(OM.long(), (2, 5), (3, 4), n_refs=0), "n_refs"),
    "viz size": (lambda: matching.correspondence_image(OM.long(), (2, 5), (3, 4), size=(0, 4)), "size"),
    "viz palette id": (lambda: matching.reference_palette(3, 4, 2, 2), "ref_id"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_name_the_argument(name):
    fn, pattern = ERRORS[name]
    with pytest.raises(ValueError, match=pattern):
        fn()


def test_masked_adain_statistics_mask_is_separate_from_blending():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 8, 8, generator=g)
    ref = torch.randn(1, 4, 8, 8, generator=g) * 3 + 1
    soft = torch.zeros(1, 1, 8, 8)
    soft[..., 2:6, 2:6] = 1.0
    soft[..., 1, 2:6] = 0.5  # a soft edge row
    core = (soft >= 1).float()
    out = matching.masked_adain(x, ref, soft, core, x_stats_mask=core, ref_stats_mask=core)
    inside = out[..., 2:6, 2:6]
    r = ref[..., 2:6, 2:6]
    assert torch.allclose(inside.mean(dim=(2, 3)), r.mean(dim=(2, 3)), atol=1e-4)
    assert torch.allclose(inside.std(dim=(2, 3), unbiased=False), r.std(dim=(2, 3), unbiased=False), atol=1e-3)
    assert torch.equal(out[..., 7, :], x[..., 7, :])  # outside: untouched
    plain = matching.masked_adain(x, ref, soft, core)  # soft statistics on x: a different result inside
    assert not torch.allclose(plain[..., 2:6, 2:6], inside)
    with pytest.raises(ValueError, match="x_stats_mask"):
        matching.masked_adain(x, ref, soft, core, x_stats_mask=torch.ones(1, 1, 4, 4))
