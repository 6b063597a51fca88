"""matching.match_*: equivalence with a per-token cosine loop, chunking, batching, objects, precision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from harness import pure

matching = pure("matching")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def loop_match(out, ref, out_mask=None, ref_mask=None):
    """The rule written the plain way: for each target token, F.cosine_similarity to every allowed
    reference token (float64), argmax; -1 outside the target mask."""
    N, M = out.shape[0], ref.shape[0]
    allowed = torch.arange(M) if ref_mask is None else torch.arange(M)[ref_mask]
    result = torch.full((N,), -1, dtype=torch.long)
    for i in range(N):
        if out_mask is not None and not out_mask[i]:
            continue
        sims = F.cosine_similarity(out[i].double()[None, :], ref[allowed].double(), dim=-1)
        result[i] = allowed[int(sims.argmax())]
    return result


def random_case(seed, N=120, M=150, C=24, p_out=0.6, p_ref=0.5):
    g = gen(seed)
    out = torch.randn(N, C, generator=g)
    ref = torch.randn(M, C, generator=g)
    out_mask = torch.rand(N, generator=g) < p_out
    ref_mask = torch.rand(M, generator=g) < p_ref
    return out, ref, out_mask, ref_mask


def soft_blob(H, W, cy, cx, r, seed=0):
    """Float mask in 0..1 with a soft (linear ramp) edge."""
    y = torch.arange(H, dtype=torch.float32)[:, None] / H
    x = torch.arange(W, dtype=torch.float32)[None, :] / W
    d = ((y - cy) ** 2 + (x - cx) ** 2).sqrt()
    return ((r - d) / 0.08).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------
# single pair
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_out_mask", [False, True])
@pytest.mark.parametrize("use_ref_mask", [False, True])
def test_match_tokens_equals_cosine_loop(use_out_mask, use_ref_mask):
    out, ref, om, rm = random_case(1)
    om = om if use_out_mask else None
    rm = rm if use_ref_mask else None
    got = matching.match_tokens(out, ref, om, rm)
    want = loop_match(out, ref, om, rm)
    assert got.dtype == torch.long and got.shape == (out.shape[0],)
    assert torch.equal(got, want)
    if om is not None:
        assert (got[~om] == -1).all() and (got[om] >= 0).all()
    if rm is not None:
        assert rm[got[got >= 0]].all()


def test_scaling_out_or_ref_changes_nothing():
    """Cosine rule: per-token scale of out or ref must not change the match (only ref is normalised)."""
    out, ref, om, rm = random_case(2)
    g = gen(3)
    base = matching.match_tokens(out, ref, om, rm)
    s_out = torch.rand(out.shape[0], 1, generator=g) * 100 + 0.01
    s_ref = torch.rand(ref.shape[0], 1, generator=g) * 100 + 0.01
    assert torch.equal(matching.match_tokens(out * s_out, ref, om, rm), base)
    assert torch.equal(matching.match_tokens(out, ref * s_ref, om, rm), base)


def test_matches_itself_and_permutation():
    g = gen(4)
    feats = torch.randn(90, 16, generator=g)
    assert torch.equal(matching.match_tokens(feats, feats), torch.arange(90))
    perm = torch.randperm(90, generator=g)
    # out token i is ref token perm[i] (plus a little noise): must be found
    got = matching.match_tokens(feats[perm] + 0.01 * torch.randn(90, 16, generator=g), feats)
    assert torch.equal(got, perm)


def test_soft_masks_through_mask_to_tokens_equal_loop():
    # odd, non-square token maps: target 13x7, reference 9x11, masks drawn at image size with soft edges
    g = gen(5)
    out = torch.randn(13 * 7, 32, generator=g)
    ref = torch.randn(9 * 11, 32, generator=g)
    out_img = soft_blob(104, 56, 0.5, 0.45, 0.3)
    ref_img = soft_blob(72, 88, 0.4, 0.6, 0.35)
    assert ((out_img > 0) & (out_img < 1)).any()  # really soft
    om = matching.mask_to_tokens(out_img, 13, 7)
    rm = matching.mask_to_tokens(ref_img, 9, 11)
    assert om.dtype == torch.bool and om.shape == (91,) and rm.shape == (99,)
    assert 0 < om.sum() < 91 and 0 < rm.sum() < 99
    got = matching.match_tokens(out, ref, om, rm)
    assert torch.equal(got, loop_match(out, ref, om, rm))


def test_empty_ref_mask_unchecked_gives_minus_one():
    out, ref, om, _ = random_case(6)
    rm = torch.zeros(ref.shape[0], dtype=torch.bool)
    got = matching.match_tokens(out, ref, om, rm, check=False)
    assert (got == -1).all()


# ---------------------------------------------------------------------------------------------------
# chunking and batching
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [1, 150 * 4 * 7 + 3, 150 * 4 * 64, 2**30])
def test_chunked_equals_unchunked(chunk_bytes):
    out, ref, om, rm = random_case(7)
    full = matching.match_tokens(out, ref, om, rm, chunk_bytes=2**40)
    assert torch.equal(matching.match_tokens(out, ref, om, rm, chunk_bytes=chunk_bytes), full)
    assert torch.equal(
        matching.match_tokens(out, ref, chunk_bytes=chunk_bytes), matching.match_tokens(out, ref)
    )


def test_chunked_equals_unchunked_half():
    out, ref, om, rm = random_case(8)
    for dt in (torch.float16, torch.bfloat16):
        o, r = out.to(dt), ref.to(dt)
        assert torch.equal(
            matching.match_tokens(o, r, om, rm, chunk_bytes=1), matching.match_tokens(o, r, om, rm)
        )


# ---------------------------------------------------------------------------------------------------
# objects
# ---------------------------------------------------------------------------------------------------


def objects_case(seed, B=None):
    g = gen(seed)
    N, R, M, C, K = 100, 2, 60, 16, 3
    lead = () if B is None else (B,)
    out = torch.randn(*lead, N, C, generator=g)
    refs = torch.randn(*lead, R, M, C, generator=g)
    pos = torch.arange(N)
    out_masks = torch.stack([pos < 50, (pos >= 40) & (pos < 80), (pos >= 70) & (pos < 90)])  # overlaps
    ref_masks = torch.stack([torch.arange(M) < 30, torch.arange(M) >= 30, torch.arange(M) % 3 == 0])
    if B is not None:
        out_masks = out_masks.expand(B, K, N).clone()
        out_masks[1, 0, :10] = False  # batch elements differ
        ref_masks = ref_masks.expand(B, K, M).clone()
    return out, refs, out_masks, [0, 1, 0], ref_masks


def test_match_objects_stays_inside_each_object():
    out, refs, out_masks, ref_ids, ref_masks = objects_case(10)
    R, M = refs.shape[:2]
    got = matching.match_objects(out, refs, out_masks, ref_ids, ref_masks, chunk_bytes=256)
    assert got.shape == (out.shape[0],) and got.dtype == torch.long
    # the winner of each token: the last object covering it
    owner = torch.full((out.shape[0],), -1)
    for k in range(len(ref_ids)):
        owner[out_masks[k]] = k
    assert torch.equal(got < 0, owner < 0)
    for i in torch.nonzero(owner >= 0)[:, 0].tolist():
        k = int(owner[i])
        r, m = divmod(int(got[i]), M)
        assert r == ref_ids[k], f"token {i} of object {k} crossed to reference {r}"
        assert ref_masks[k, m], f"token {i} of object {k} left its reference mask"
    # each object's tokens equal a plain match against its own reference and mask (later wins on overlap)
    for k, r in enumerate(ref_ids):
        sel = owner == k
        alone = matching.match_tokens(out, refs[r], out_masks[k], ref_masks[k])
        assert torch.equal(got[sel], alone[sel] + r * M)
    assert torch.equal(got, matching.match_objects(out, refs, out_masks, ref_ids, ref_masks))


def test_match_objects_later_object_wins():
    out, refs, out_masks, _, ref_masks = objects_case(11)
    M = refs.shape[1]
    both = out_masks[0] & out_masks[1]
    assert both.any()
    a = matching.match_objects(out, refs, out_masks[:2], [0, 1], ref_masks[:2])
    b = matching.match_objects(out, refs, out_masks[[1, 0]], [1, 0], ref_masks[[1, 0]])
    assert (a[both] // M == 1).all() and (b[both] // M == 0).all()


def test_match_objects_without_ref_masks_and_batched():
    out, refs, out_masks, ref_ids, ref_masks = objects_case(12, B=2)
    got = matching.match_objects(out, refs, out_masks, ref_ids, ref_masks)
    want = torch.stack(
        [matching.match_objects(out[b], refs[b], out_masks[b], ref_ids, ref_masks[b]) for b in range(2)]
    )
    assert got.shape == (2, out.shape[1]) and torch.equal(got, want)
    got = matching.match_objects(out[0], refs[0], out_masks[0], ref_ids)
    M = refs.shape[2]
    covered = out_masks[0].any(0)
    assert (got[~covered] == -1).all() and (got[covered] >= 0).all()
    assert ((got[out_masks[0, 2]] // M) == 0).all()
    # broadcast refs over the batch
    got = matching.match_objects(out, refs[:1], out_masks, ref_ids, ref_masks[:1])
    assert torch.equal(got[1], matching.match_objects(out[1], refs[0], out_masks[1], ref_ids, ref_masks[0]))


# ---------------------------------------------------------------------------------------------------
# half precision
# ---------------------------------------------------------------------------------------------------


def cos_margin(out, ref, ref_mask):
    sims = F.normalize(out.double(), dim=-1) @ F.normalize(ref.double(), dim=-1).T
    sims[:, ~ref_mask] = float("-inf")
    top2 = sims.topk(2, dim=-1).values
    return top2[:, 0] - top2[:, 1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_agrees_with_fp32(dtype):
    g = gen(13)
    N, M, C = 600, 500, 64
    ref = torch.randn(M, C, generator=g)
    # half the targets resemble some reference token (clear matches), half are unrelated (close calls)
    out = torch.randn(N, C, generator=g)
    out[: N // 2] = ref[torch.randint(0, M, (N // 2,), generator=g)] + 0.7 * out[: N // 2]
    om = torch.rand(N, generator=g) < 0.8
    rm = torch.rand(M, generator=g) < 0.7
    want = matching.match_tokens(out, ref, om, rm)
    got = matching.match_tokens(out.to(dtype), ref.to(dtype), om, rm)
    assert got.dtype == torch.long
    assert torch.equal(got < 0, want < 0)
    agree = (got == want)[om].float().mean().item()
    assert agree >= 0.99, agree
    clear = om & (cos_margin(out, ref, rm) > 0.02)
    assert clear.sum() > 0.5 * om.sum()  # the exactness check below covers most tokens
    assert torch.equal(got[clear], want[clear])


def test_float64_inputs():
    out, ref, om, rm = random_case(14)
    assert torch.equal(
        matching.match_tokens(out.double(), ref.double(), om, rm), loop_match(out, ref, om, rm)
    )


# ---------------------------------------------------------------------------------------------------
# no host synchronisation: the hot path must run on the meta device (which has no data at all, so any
# .item(), bool(), nonzero or boolean-mask indexing raises there)
# ---------------------------------------------------------------------------------------------------


def test_hot_path_runs_on_meta_device_without_sync():
    meta = torch.device("meta")
    out = torch.empty(300, 32, device=meta)
    ref = torch.empty(200, 32, device=meta)
    om = torch.empty(300, dtype=torch.bool, device=meta)
    rm = torch.empty(200, dtype=torch.bool, device=meta)
    src = matching.match_tokens(out, ref, om, rm, chunk_bytes=200 * 4 * 64, check=False)  # 5 chunks
    assert src.device == meta and src.shape == (300,) and src.dtype == torch.long
    assert matching.match_tokens(out.half(), ref.half(), om, rm, check=False).shape == (300,)
    refs = torch.empty(3, 200, 32, device=meta)
    osrc = matching.match_objects(
        out,
        refs,
        torch.empty(2, 300, dtype=torch.bool, device=meta),
        [2, 0],
        torch.empty(2, 200, dtype=torch.bool, device=meta),
        check=False,
    )
    assert osrc.shape == (300,)
    assert matching.rearrange(out, refs.reshape(-1, 32), osrc).shape == (300, 32)
    assert matching.mask_to_tokens(torch.empty(2, 64, 48, device=meta), 15, 20).shape == (2, 300)
    x = torch.empty(2, 4, 16, 16, device=meta)
    assert (
        matching.masked_adain(x, x[:1], torch.empty(2, 1, 16, 16, device=meta), None, check=False).shape
        == x.shape
    )
    # and check=True does need data: it synchronises on purpose
    with pytest.raises((NotImplementedError, RuntimeError)):
        matching.match_tokens(out, ref, om, rm, check=True)
