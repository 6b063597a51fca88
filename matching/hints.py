"""Correspondence hints: a few pairs of points, "this target spot takes its appearance from that reference spot",
that steer the semantic matching where it goes wrong (left and right swapped, a symmetric part taken for its
twin, a pose too far from the reference's).

Text format (Semantic Match Patch's ``hints`` input; the editor's viewer writes it): pairs separated by ``;`` or new
lines, each ``tx,ty > rx,ry`` (``->`` also works), coordinates relative to the image (0..1, x from the left, y from
the top), optionally ``@r`` for the reference number (1, 2, ...; by default the object's own reference)::

    0.31,0.42 > 0.70,0.41; 0.55,0.20 > 0.45,0.22 @2

What they do (per object: a hint belongs to the target object whose mask holds its target point):

1. a map ``T`` from the target image to the reference image is fitted to the object's hints: one hint, a shift
   (with the objects' size ratio), two hints, a similarity (turn, scale, shift), three or more an affine map by
   least squares; with one or two hints the map may also mirror, whichever lays the target object's mask better
   onto the reference object's (so one hint can fix a flipped pose);
2. at every matched layer and step, a reference token near ``T(p)`` gets a bonus on its cosine similarity to the
   target token at ``p``: ``strength * exp(-d^2 / (2 s^2))``, ``d`` the distance (image-relative), ``s`` 0.15 of
   the reference object's larger side (``SpatialPrior``);
3. the target token under a hint's target point takes the token under its reference point, at every layer.

``strength`` 0, or no hints, is the plain rule, bit for bit. Pure torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .match import SpatialPrior

SCALE = 0.15  # the prior's width, as a share of the reference object's larger side
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*(?:->|>)\s*({_NUMBER})\s*,\s*({_NUMBER})\s*(?:@\s*(\d+))?\s*$")
_GRID = 64  # the raster on which a map's fit of the masks is judged


@dataclass(frozen=True)
class Hint:
    target: tuple[float, float]  # (x, y), image-relative
    reference: tuple[float, float]
    ref: int | None = None  # 0-based reference number; None: the object's own

    def text(self) -> str:
        tail = f" @{self.ref + 1}" if self.ref is not None else ""
        return f"{self.target[0]:.4g},{self.target[1]:.4g} > {self.reference[0]:.4g},{self.reference[1]:.4g}{tail}"


def parse_hints(text: str, name: str = "hints") -> tuple[Hint, ...]:
    """The hints of ``text`` (see the module's format); a clear error naming ``name`` and the bad pair."""
    hints = []
    items = [p for p in re.split(r"[;\n]", text or "") if p.strip()]
    for n, item in enumerate(items, 1):
        m = _PAIR.match(item)
        if m is None:
            raise ValueError(f"{name}: pair {n} ({item.strip()!r}) is not like '0.31,0.42 > 0.70,0.41' (target x,y > "
                             "reference x,y, image-relative; '@2' at the end for reference 2)")
        tx, ty, rx, ry = (float(v) for v in m.groups()[:4])
        for what, (x, y) in (("target", (tx, ty)), ("reference", (rx, ry))):
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"{name}: pair {n} ({item.strip()!r}): the {what} point ({x:g}, {y:g}) is outside "
                                 "the image; coordinates go from 0 to 1 (x from the left, y from the top)")
        ref = int(m.group(5)) - 1 if m.group(5) is not None else None
        if ref is not None and ref < 0:
            raise ValueError(f"{name}: pair {n} ({item.strip()!r}): references are numbered from 1")
        hints.append(Hint((tx, ty), (rx, ry), ref))
    return tuple(hints)


def format_hints(hints) -> str:
    return "; ".join(h.text() for h in hints)


def _inside(mask: torch.Tensor, x: float, y: float) -> bool:
    """Whether the image-relative point lies on the mask ``[H, W]`` (a 1x1 mask: everywhere it is 1)."""
    h, w = mask.shape[-2:]
    return bool(mask[min(h - 1, int(y * h)), min(w - 1, int(x * w))] > 0.5)


def assign(hints, target_masks: torch.Tensor, reference_masks: torch.Tensor, ref_ids, n_refs: int,
           name: str = "hints") -> dict[int, list[Hint]]:
    """``{object: its hints}``: each hint goes to the (last) target object whose mask holds its target point, and
    its reference point must lie on that object's reference mask, in that object's reference."""
    out: dict[int, list[Hint]] = {}
    for n, h in enumerate(hints, 1):
        objects = [k for k in range(target_masks.shape[0]) if _inside(target_masks[k], *h.target)]
        if not objects:
            raise ValueError(f"{name}: pair {n} ({h.text()}): the target point is outside every target object mask; "
                             "put it on the object")
        k = objects[-1]  # where target masks overlap the later object wins, as in the matching
        if h.ref is not None and h.ref >= n_refs:
            raise ValueError(f"{name}: pair {n} ({h.text()}) names reference {h.ref + 1}, but {n_refs} reference(s) "
                             "are connected; connect it or change the number")
        if h.ref is not None and h.ref != ref_ids[k]:
            raise ValueError(f"{name}: pair {n} ({h.text()}) names reference {h.ref + 1}, but object {k + 1} takes its "
                             f"appearance from reference {ref_ids[k] + 1} (Load Masks' reference_of_object)")
        if not _inside(reference_masks[k], *h.reference):
            raise ValueError(f"{name}: pair {n} ({h.text()}): the reference point is outside object {k + 1}'s "
                             "reference mask; put it on the reference object")
        out.setdefault(k, []).append(h)
    return out


def _box(mask: torch.Tensor) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)``, image-relative, of where the mask is on (the whole image for an empty or 1x1 mask)."""
    on = (mask > 0.5).nonzero()
    if mask.shape[-2:] == (1, 1) or len(on) == 0:
        return 0.0, 0.0, 1.0, 1.0
    h, w = mask.shape[-2:]
    return (float(on[:, 1].min()) / w, float(on[:, 0].min()) / h, float(on[:, 1].max() + 1) / w,
            float(on[:, 0].max() + 1) / h)


def _points(mask: torch.Tensor) -> torch.Tensor:
    """``[n, 2]`` image-relative centres of the on-cells of the mask on a ``_GRID`` raster."""
    m = F.interpolate(mask[None, None].float(), size=(_GRID, _GRID), mode="bilinear", align_corners=False)[0, 0]
    on = (m > 0.5).nonzero().float()
    return torch.stack([(on[:, 1] + 0.5) / _GRID, (on[:, 0] + 0.5) / _GRID], dim=1)


def _overlap(affine: torch.Tensor, tgt_points: torch.Tensor, ref_mask: torch.Tensor) -> float:
    """The share of the target object's points that ``affine`` sends onto the reference object."""
    if len(tgt_points) == 0:
        return 0.0
    moved = apply(affine, tgt_points)
    m = F.interpolate(ref_mask[None, None].float(), size=(_GRID, _GRID), mode="bilinear", align_corners=False)[0, 0]
    cells = (moved * _GRID).floor().long()
    ok = (cells >= 0).all(dim=1) & (cells < _GRID).all(dim=1)
    hits = torch.zeros(len(moved), dtype=torch.bool)
    hits[ok] = m[cells[ok, 1], cells[ok, 0]] > 0.5
    return float(hits.float().mean())


def apply(affine: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``affine`` ``[2, 3]`` on ``points`` ``[..., 2]``."""
    return points @ affine[:, :2].T + affine[:, 2]


def _similarity(p: torch.Tensor, q: torch.Tensor, mirror: bool) -> torch.Tensor:
    """The similarity (turn, uniform scale, shift; mirrored in x first with ``mirror``) sending ``p[0], p[1]`` to
    ``q[0], q[1]``."""
    s = torch.tensor([[-1.0, 0.0], [0.0, 1.0]]) if mirror else torch.eye(2)
    a, b = p @ s.T, q
    da, db = a[1] - a[0], b[1] - b[0]
    za, zb = torch.complex(da[0], da[1]), torch.complex(db[0], db[1])
    z = zb / za if abs(za) > 1e-9 else torch.complex(torch.tensor(1.0), torch.tensor(0.0))
    rot = torch.tensor([[z.real, -z.imag], [z.imag, z.real]])
    lin = rot @ s
    return torch.cat([lin, (b[0] - lin @ p[0])[:, None]], dim=1)


def fit_map(hints, target_mask: torch.Tensor, reference_mask: torch.Tensor) -> torch.Tensor:
    """``[2, 3]``: the map from the target image to the reference image that the object's ``hints`` give (see the
    module's doc); with one or two hints the mirrored candidate is taken where it lays the target object's mask
    better onto the reference object's."""
    p = torch.tensor([h.target for h in hints], dtype=torch.float32)
    q = torch.tensor([h.reference for h in hints], dtype=torch.float32)
    if len(hints) >= 3:
        design = torch.cat([p, torch.ones(len(p), 1)], dim=1)  # [k, 3]
        if torch.linalg.matrix_rank(design) == 3:
            return torch.linalg.lstsq(design, q).solution.T.contiguous()  # [2, 3]
        p, q = p[:2], q[:2]  # the points on one line: as two hints
    if len(p) >= 2 and float((p[1] - p[0]).norm()) > 1e-6:
        candidates = [_similarity(p[:2], q[:2], mirror) for mirror in (False, True)]
    else:  # one hint: a shift, with the objects' size ratio, mirrored or not
        tb, rb = _box(target_mask), _box(reference_mask)
        scale = max(rb[2] - rb[0], rb[3] - rb[1]) / max(1e-6, max(tb[2] - tb[0], tb[3] - tb[1]))
        candidates = []
        for sx in (scale, -scale):
            lin = torch.tensor([[sx, 0.0], [0.0, scale]])
            candidates.append(torch.cat([lin, (q[0] - lin @ p[0])[:, None]], dim=1))
    points = _points(target_mask)
    scores = [_overlap(c, points, reference_mask) for c in candidates]
    return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -i))]


def token_centres(h: int, w: int) -> torch.Tensor:
    """``[h * w, 2]`` image-relative centres of the tokens of an ``h x w`` map, row by row."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def token_of(point: tuple[float, float], h: int, w: int) -> int:
    x, y = point
    return min(h - 1, int(y * h)) * w + min(w - 1, int(x * w))


@dataclass(frozen=True)
class HintField:
    """Every object's hints and fitted map, ready for any token map: :meth:`prior` and :meth:`forced`."""

    by_object: dict  # object -> tuple of Hint
    maps: dict  # object -> [2, 3] map from the target image to the reference image
    scales: tuple[float, ...]  # per object (every object, hinted or not): the prior's width
    strength: float

    def prior(self, grid: tuple[int, int], objects: int) -> SpatialPrior:
        """The bonus on an ``h x w`` map (target and reference tokens on the same map), ``objects`` objects."""
        centres = token_centres(*grid)
        far = torch.full_like(centres, 1e3)  # objects without hints: no bonus anywhere
        targets = torch.stack([apply(self.maps[k], centres) if k in self.maps else far for k in range(objects)])
        return SpatialPrior(targets, centres, torch.tensor(self.scales, dtype=torch.float32), self.strength)

    def forced(self, grid: tuple[int, int]) -> list[tuple[int, int, int]]:
        """``(object, target token, reference token)`` of every hint on an ``h x w`` map."""
        return [(k, token_of(h.target, *grid), token_of(h.reference, *grid))
                for k, hints in sorted(self.by_object.items()) for h in hints]


def hint_field(hints, target_masks: torch.Tensor, reference_masks: torch.Tensor, ref_ids, n_refs: int,
               strength: float, name: str = "hints") -> HintField | None:
    """The hints of every object, checked against the masks and references, with their maps; ``None`` when there
    is nothing to do (no hints, or ``strength`` 0: the plain rule)."""
    if not hints or strength <= 0:
        return None
    by_object = assign(hints, target_masks, reference_masks, ref_ids, n_refs, name)
    maps = {k: fit_map(hs, target_masks[k], reference_masks[k]) for k, hs in by_object.items()}
    scales = []
    for k in range(target_masks.shape[0]):
        x0, y0, x1, y1 = _box(reference_masks[k])
        scales.append(SCALE * max(x1 - x0, y1 - y0))
    return HintField({k: tuple(v) for k, v in by_object.items()}, maps, tuple(scales), float(strength))
