"""Per-timestep semantic matching: one-way hard nearest neighbour by cosine similarity.

The authors' rule (Eye-for-an-eye, arXiv 2406.07008, released code): for every ``out`` token inside the
target mask, take the ``ref`` token inside the reference mask with the highest cosine similarity. It is
a hard argmax: no softmax, no mutual (cycle) check, no temperature.

Their code loops over target pixels in Python and copies a similarity row to the host per pixel. Here
the same rule is a chunked matrix product and an argmax:

* Only ``ref`` is normalised. ``cos(o, r) = o . r / (|o| |r|)`` and ``|o|`` is constant along a row of the
  similarity matrix, so ``argmax_r cos(o, r) == argmax_r o . (r / |r|)``. Normalising ``out`` would
  change no index and cost a pass over the features. Zero ``ref`` tokens get similarity 0, as with
  :func:`torch.nn.functional.cosine_similarity`.
* Rows of ``out`` are processed in chunks so that one chunk's similarity block
  (``B x rows x M`` float32 values) stays under ``chunk_bytes``. The chunk size is computed from the
  shapes on the host, so nothing waits on the device. The excluded ``ref`` tokens get a ``-inf`` bias
  that is fused into the product (``baddbmm``), then ``argmax`` picks the first maximum.
* Every row's result depends only on that row, and the bias and product are computed the same way for
  every chunk size, so chunked results equal unchunked ones.
* With ``check=False`` the functions read only shapes, dtypes and devices on the host: no ``.item()``,
  no boolean-mask indexing, no ``nonzero``; they run wherever the tensors live (CPU, CUDA, MPS, ``meta``)
  without a host-device synchronisation.

Precision: the similarity is always accumulated *and stored* in float32 (float64 inputs stay float64).
Half-precision (float16 / bfloat16) inputs are upcast: ``ref`` once after normalisation, ``out`` one chunk
at a time (a chunk of ``out`` in float32 is ``rows x C x 4`` bytes, far smaller than the similarity block).
Measured on a 2-core CPU with torch 2.x, a float16 or bfloat16 ``mm`` of 1024x320 by 320x4096 takes about
5 s against 27 ms in float32, so upcasting is the only usable choice there. On CUDA a float32 product of a
64x64 token map (4096 x 4096 x 320) costs well under a millisecond, and keeping float32 results avoids
the ties that rounding the similarity to 8 (bfloat16) or 11 (float16) mantissa bits would create in the
argmax. If TF32 matmul is enabled globally (``torch.backends.cuda.matmul.allow_tf32``) CUDA products use
it; near-ties may then resolve differently from a strict float32 product.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_CHUNK_BYTES", "match_tokens", "match_objects", "SpatialPrior"]

#: Default bound on one chunk's similarity block. At a 128x128 token map (M = 16384 reference tokens)
#: that is 1024 rows per chunk; the extra memory of a call is this block plus the normalised reference
#: (M x C float32) and the index outputs.
DEFAULT_CHUNK_BYTES = 64 * 2**20

_HALF = (torch.float16, torch.bfloat16)


# --------------------------------------------------------------------------------------------------
# validation (host-side metadata only, except the emptiness checks that run when check=True)
# --------------------------------------------------------------------------------------------------


def _tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _features(name: str, value, ndim: int, layout: str) -> torch.Tensor:
    t = _tensor(name, value)
    if t.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout} ({ndim} dims), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    return t


def _same_device(device: torch.device, **named) -> None:
    for name, t in named.items():
        if isinstance(t, torch.Tensor) and t.device != device:
            raise ValueError(f"{name} is on {t.device}, expected {device} (same device as the features)")


def _bool_mask(name: str, value, shape: tuple[int, ...], layout: str) -> torch.Tensor | None:
    if value is None:
        return None
    t = _tensor(name, value)
    if t.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor, got {t.dtype}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {layout} = {tuple(shape)}, got {tuple(t.shape)}")
    return t


def _broadcast_mask(name: str, value, B: int, rest: tuple[int, ...], layout: str) -> torch.Tensor | None:
    """Bool mask ``[B, *rest]`` or ``[1, *rest]`` (one mask for the whole batch); ``None`` stays ``None``."""
    one = isinstance(value, torch.Tensor) and value.ndim == 1 + len(rest) and value.shape[0] == 1
    return _bool_mask(name, value, (1 if one else B, *rest), layout)


def _same_channels(name: str, ref: torch.Tensor, out: torch.Tensor) -> None:
    if ref.shape[-1] != out.shape[-1]:
        raise ValueError(f"{name} has {ref.shape[-1]} channels, out has {out.shape[-1]} (must match)")


def _broadcast_batch(name: str, ref: torch.Tensor, B: int) -> None:
    if ref.shape[0] not in (1, B):
        raise ValueError(f"{name} has batch size {ref.shape[0]}, expected {B} (or 1 to broadcast)")


def _chunk_bytes(chunk_bytes) -> int:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
    return chunk_bytes


def _not_empty(name: str, mask: torch.Tensor | None) -> None:
    """check=True only: a bool mask with no True entry (per batch element) is an error. Syncs."""
    if mask is None:
        return
    if mask.ndim == 1:
        if not bool(mask.any()):
            raise ValueError(f"{name} is empty (no True token)")
        return
    empty = ~mask.reshape(mask.shape[0], -1).any(dim=1)
    if bool(empty.any()):
        which = [i for i, e in enumerate(empty.tolist()) if e]
        raise ValueError(f"{name} is empty (no True token) for batch element(s) {which}")


def _check_not_empty(ref_name: str, M: int, masks: Iterable[tuple[str, torch.Tensor | None]]) -> None:
    """check=True only: the reference has tokens and no ``(name, mask)`` is empty, in order. Syncs."""
    if M == 0:
        raise ValueError(f"{ref_name} has no tokens (M == 0)")
    for name, mask in masks:
        _not_empty(name, mask)


# match_objects' arguments: both layouts come out in the batched one, out [B,N,C], refs [B|1,R,M,C],
# out_masks [B,K,N], ref_masks [B|1,K,M] | None. The unbatched ones are lifted by views, no copy.


def _out_masks(value, ndim: int, layout: str) -> torch.Tensor:
    t = _tensor("out_masks", value)
    if t.ndim != ndim:
        raise ValueError(f"out_masks must have shape {layout}, got {tuple(t.shape)}")
    return t


def _check_objects_batched(out, refs, out_masks, ref_masks):
    """The batched layout of :func:`match_objects`, validated; the tensors come back as given."""
    out = _features("out", out, 3, "[B, N, C]")
    refs = _features("refs", refs, 4, "[B, R, M, C]")
    B, N, _ = out.shape
    _broadcast_batch("refs", refs, B)
    out_masks = _out_masks(out_masks, 3, "[B, K, N]")
    K = out_masks.shape[1]
    _same_device(out.device, refs=refs, out_masks=out_masks, ref_masks=ref_masks)
    out_masks = _bool_mask("out_masks", out_masks, (B, K, N), "[B, K, N]")
    _same_channels("refs", refs, out)
    ref_masks = _broadcast_mask("ref_masks", ref_masks, B, (K, refs.shape[2]), "[B, K, M]")
    return out, refs, out_masks, ref_masks


def _check_objects_unbatched(out, refs, out_masks, ref_masks):
    """The unbatched layout of :func:`match_objects`, validated and lifted to the batched one."""
    out = _features("out", out, 2, "[N, C]")
    refs = _features("refs", refs, 3, "[R, M, C]")
    N = out.shape[0]
    out_masks = _out_masks(out_masks, 2, "[K, N]")
    K = out_masks.shape[0]
    _same_device(out.device, refs=refs, out_masks=out_masks, ref_masks=ref_masks)
    out_masks = _bool_mask("out_masks", out_masks, (K, N), "[K, N]")
    _same_channels("refs", refs, out)
    ref_masks = _bool_mask("ref_masks", ref_masks, (K, refs.shape[1]), "[K, M]")
    lifted_ref_masks = None if ref_masks is None else ref_masks.unsqueeze(0)
    return out.unsqueeze(0), refs.unsqueeze(0), out_masks.unsqueeze(0), lifted_ref_masks


def _ref_id_list(ref_ids, K: int, R: int) -> list[int]:
    """``ref_ids`` as a list of ``K`` Python ints in ``[0, R)``."""
    if isinstance(ref_ids, torch.Tensor) or isinstance(ref_ids, (str, bytes)):
        raise ValueError("ref_ids must be a sequence of Python ints (not a tensor or string)")
    try:
        ids = list(ref_ids)
    except TypeError as exc:
        raise ValueError(f"ref_ids must be a sequence of {K} ints, got {type(ref_ids).__name__}") from exc
    if len(ids) != K:
        raise ValueError(f"ref_ids has {len(ids)} entries but out_masks has K={K} objects")
    for k, r in enumerate(ids):
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < R:
            raise ValueError(f"ref_ids[{k}] = {r!r} must be an int in [0, {R})")
    return ids


def _per_object(out_masks: torch.Tensor, ref_masks: torch.Tensor | None):
    """``(name, mask)`` of each object's target mask, then its reference mask, object by object."""
    for k in range(out_masks.shape[1]):
        yield f"out_masks[{k}]", out_masks[:, k]
        if ref_masks is not None:
            yield f"ref_masks[{k}]", ref_masks[:, k]


# --------------------------------------------------------------------------------------------------
# core
# --------------------------------------------------------------------------------------------------


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in _HALF else dtype


class SpatialPrior:
    """A bonus on the similarity for reference tokens near where a map sends each target token (correspondence
    hints): ``strength * exp(-|T(p_i) - q_j|^2 / (2 scale^2))``, added to the cosine similarity of target token
    ``i`` and reference token ``j``. Per object ``k``: ``targets[k]`` ``[N, 2]`` the target tokens' positions
    already sent through the object's map, ``scale[k]``; ``refs`` ``[M, 2]`` the reference tokens' positions (the
    same units). ``strength`` 0 adds nothing (the plain rule)."""

    def __init__(self, targets: torch.Tensor, refs: torch.Tensor, scale: torch.Tensor, strength: float):
        self.targets, self.refs, self.scale, self.strength = targets, refs, scale, float(strength)

    def to(self, device) -> SpatialPrior:
        return SpatialPrior(self.targets.to(device), self.refs.to(device), self.scale.to(device), self.strength)

    def repeated(self, times: int) -> SpatialPrior:
        """The prior of a clip of ``times`` frames matched as one (tokens frame by frame, the same map each)."""
        return SpatialPrior(self.targets.repeat(1, times, 1), self.refs.repeat(times, 1), self.scale, self.strength)

    def add_bonus(self, sim: torch.Tensor, k: int, rows: slice) -> torch.Tensor:
        """``sim`` ``[B, rows, M]`` plus object ``k``'s bonus for target tokens ``rows``, in place (a few flops per
        pair, no host synchronisation)."""
        t, q = self.targets[k, rows].to(sim.dtype), self.refs.to(sim.dtype)
        d2 = torch.addmm((t * t).sum(-1, keepdim=True) + (q * q).sum(-1), t, q.T, alpha=-2.0)  # [rows, M]
        d2.mul_(-0.5 / self.scale[k].to(sim.dtype) ** 2).exp_().mul_(self.strength)
        return sim.add_(d2)


@torch.no_grad()
def _match_core(
    out: torch.Tensor,
    ref: torch.Tensor,
    out_mask: torch.Tensor | None,
    ref_mask: torch.Tensor | None,
    chunk_bytes: int,
    prior: tuple[SpatialPrior, int] | None = None,
) -> torch.Tensor:
    """out [B,N,C], ref [B or 1,M,C], out_mask [B,N] | None, ref_mask [B or 1,M] | None -> [B,N] long;
    ``prior``: (a SpatialPrior, the object it is for), its bonus added to every similarity row.

    No validation and no host synchronisation.
    """
    B, N, _ = out.shape
    M = ref.shape[1]
    device = out.device
    if N == 0 or M == 0:
        return torch.full((B, N), -1, dtype=torch.long, device=device)
    work = _work_dtype(out.dtype)
    # Normalise the reference once, in the working precision (|o| is constant per row: see module doc).
    ref_t = F.normalize(ref.to(work), dim=-1).transpose(1, 2)  # [B',C,M]
    if ref_t.shape[0] != B:
        ref_t = ref_t.expand(B, -1, -1)
    bias = None
    if ref_mask is not None:
        bias = torch.zeros(ref_mask.shape[0], 1, M, dtype=work, device=device)
        bias.masked_fill_(~ref_mask.unsqueeze(1), float("-inf"))
        if bias.shape[0] != B:
            bias = bias.expand(B, -1, -1)
    itemsize = torch.empty((), dtype=work).element_size()
    rows = max(1, min(N, chunk_bytes // max(1, B * M * itemsize)))

    def similarity(s: slice) -> torch.Tensor:
        o = out[:, s].to(work)
        sim = torch.bmm(o, ref_t) if bias is None else torch.baddbmm(bias, o, ref_t)
        if prior is not None:  # cos(o, r) = o . r / |r| / |o|: the bonus is added to the cosine itself
            sim = prior[0].add_bonus(sim.div_(o.norm(dim=-1, keepdim=True).clamp(min=1e-12)), prior[1], s)
        return sim

    if rows >= N:
        idx = similarity(slice(0, N)).argmax(dim=-1)
    else:
        idx = torch.empty(B, N, dtype=torch.long, device=device)
        for s in range(0, N, rows):
            idx[:, s : s + rows] = similarity(slice(s, s + rows)).argmax(dim=-1)
    valid = None
    if out_mask is not None:
        valid = out_mask if out_mask.shape[0] == B else out_mask.expand(B, -1)
    if ref_mask is not None:
        # An empty reference mask (possible with check=False) leaves the row unmatched instead of pointing
        # at an excluded token. Computed on the device: no sync.
        has_ref = ref_mask.any(dim=-1, keepdim=True)
        valid = has_ref if valid is None else valid & has_ref
    if valid is not None:
        idx = idx.masked_fill(~valid, -1)
    return idx


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def match_tokens(
    out: torch.Tensor,
    ref: torch.Tensor,
    out_mask: torch.Tensor | None = None,
    ref_mask: torch.Tensor | None = None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    check: bool = True,
) -> torch.Tensor:
    """Nearest reference token (cosine similarity, hard argmax) for every target token.

    Args:
        out: ``[N, C]`` target (``out`` branch) features, floating point.
        ref: ``[M, C]`` reference features, same device, same ``C``.
        out_mask: ``[N]`` bool, tokens to match; ``None`` = all. Tokens outside get ``-1``.
        ref_mask: ``[M]`` bool, allowed reference tokens; ``None`` = all.
        chunk_bytes: bound on one chunk's float32 similarity block (``rows x M x 4`` bytes).
        check: validate that the masks are not empty (this synchronises with the device). With
            ``check=False`` nothing waits on the device; an empty ``ref_mask`` then yields ``-1``
            everywhere.

    Returns:
        ``[N]`` long tensor on ``out``'s device: index in ``[0, M)`` of the best reference token inside
        ``ref_mask`` for tokens inside ``out_mask``, ``-1`` elsewhere. Ties resolve to the lowest index.

    Only ``ref`` is normalised (``argmax_r cos(o, r) == argmax_r o . r/|r|``); float16/bfloat16 inputs are
    multiplied and compared in float32 (see the module docstring).
    """
    out = _features("out", out, 2, "[N, C]")
    ref = _features("ref", ref, 2, "[M, C]")
    _same_channels("ref", ref, out)
    _same_device(out.device, ref=ref, out_mask=out_mask, ref_mask=ref_mask)
    out_mask = _bool_mask("out_mask", out_mask, (out.shape[0],), "[N]")
    ref_mask = _bool_mask("ref_mask", ref_mask, (ref.shape[0],), "[M]")
    chunk_bytes = _chunk_bytes(chunk_bytes)
    if check:
        _check_not_empty("ref", ref.shape[0], (("out_mask", out_mask), ("ref_mask", ref_mask)))
    return _match_core(
        out.unsqueeze(0),
        ref.unsqueeze(0),
        None if out_mask is None else out_mask.unsqueeze(0),
        None if ref_mask is None else ref_mask.unsqueeze(0),
        chunk_bytes,
    )[0]


def match_objects(
    out: torch.Tensor,
    refs: torch.Tensor,
    out_masks: torch.Tensor,
    ref_ids: Sequence[int],
    ref_masks: torch.Tensor | None = None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    check: bool = True,
    prior: SpatialPrior | None = None,
) -> torch.Tensor:
    """Multi-object matching: target object ``k`` takes its appearance from reference ``ref_ids[k]``.

    Args:
        out: ``[N, C]`` target features, or ``[B, N, C]``.
        refs: ``[R, M, C]`` reference features (all references share one token map), or ``[B, R, M, C]``
            (``B`` may be 1 to broadcast).
        out_masks: ``[K, N]`` bool target object masks (``[B, K, N]`` when batched).
        ref_ids: ``K`` Python ints in ``[0, R)``: the reference of each object.
        ref_masks: ``[K, M]`` bool (``[B, K, M]`` or ``[1, K, M]`` when batched): where object ``k`` may
            match inside its reference; ``None`` = the whole reference.
        chunk_bytes, check: as in :func:`match_tokens`; with ``check=True`` every ``out_masks[k]`` and
            ``ref_masks[k]`` must be non-empty.
        prior: a :class:`SpatialPrior` (correspondence hints): its bonus for object ``k`` is added to the cosine
            similarity of that object's tokens; ``None`` (or strength 0): the plain rule, bit for bit.

    Returns:
        ``[N]`` (or ``[B, N]``) long FLAT indices into ``refs`` viewed as ``[R * M, C]``
        (``index = r * M + m``), ``-1`` where no object covers the token. A token of object ``k`` only ever
        points inside ``ref_masks[k]`` of reference ``ref_ids[k]``. Where target masks overlap, the later
        object (higher ``k``) wins. With ``check=False``, an object whose reference mask is empty leaves its
        tokens as the earlier objects set them.
    """
    batched = _tensor("out", out).ndim == 3
    check_layout = _check_objects_batched if batched else _check_objects_unbatched
    out, refs, out_masks, ref_masks = check_layout(out, refs, out_masks, ref_masks)
    B, K, N = out_masks.shape
    R, M = refs.shape[1], refs.shape[2]
    ids = _ref_id_list(ref_ids, K, R)
    chunk_bytes = _chunk_bytes(chunk_bytes)
    if check:
        _check_not_empty("refs", M, _per_object(out_masks, ref_masks))

    result = torch.full((B, N), -1, dtype=torch.long, device=out.device)
    for k, r in enumerate(ids):
        src = _match_core(
            out,
            refs[:, r],
            out_masks[:, k],
            None if ref_masks is None else ref_masks[:, k],
            chunk_bytes,
            None if prior is None or prior.strength == 0 else (prior, k),
        )
        result = torch.where(src >= 0, src + r * M, result)  # later objects overwrite earlier ones
    return result if batched else result[0]
