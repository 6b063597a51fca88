"""One transfer (a Job), the pairs file of a batch, output names and the inputs to upload."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RunError
from .images import png_bytes, read_image, read_mask


@dataclass
class Job:
    reference: str
    target: str
    reference_mask: str | None = None
    target_mask: str | None = None
    hints: str | None = None  # correspondence hints for Semantic Match Patch (None: the run's --hints)
    name: str = ""
    attempts: int = 0
    tried: set = field(default_factory=set)
    server: str | None = None
    outputs: list = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    done: bool = False


def read_pairs(path: str) -> list[Job]:
    base = Path(path).resolve().parent
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RunError(f"--pairs: cannot read {path} ({exc.strerror})") from None
    jobs = []
    for i, row in enumerate(csv.reader(text.splitlines()), start=1):
        row = [c.strip() for c in row]
        if not row or not any(row) or row[0].startswith("#"):
            continue
        if i == 1 and row[0].lower() in ("reference", "reference_image", "ref"):
            continue  # header
        if len(row) not in (2, 4, 5):
            raise RunError(f"--pairs: {path} line {i}: expected reference,target[,reference_mask,target_mask"
                           "[,hints]] (hints in double quotes: they hold commas)")
        hints = row[4] if len(row) == 5 else None
        paths = [str((base / c).resolve()) if c else None for c in row[:4]]
        if len(paths) == 4 and bool(paths[2]) != bool(paths[3]):
            raise RunError(f"--pairs: {path} line {i}: give both masks or none")
        jobs.append(Job(paths[0], paths[1], *(paths[2:4] if len(paths) == 4 else (None, None)), hints=hints or None))
    if not jobs:
        raise RunError(f"--pairs: {path} has no rows")
    return jobs


def job_settings(job: Job, settings: dict) -> dict:
    """The run's settings with the job's own (its hints, from the pairs file, over the run's --hints)."""
    return dict(settings, hints=job.hints) if job.hints is not None else settings


def read_hints(value: str | None) -> str | None:
    """``--hints``: the hints themselves, or a file holding them (as the node's input takes them)."""
    if value is None:
        return None
    path = Path(value)
    if path.is_file():
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise RunError(f"--hints: cannot read {value} ({exc.strerror})") from None
    return value


def output_name(job: Job, taken: set) -> str:
    base = f"{Path(job.target).stem}_from_{Path(job.reference).stem}"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def prepare_inputs(job: Job, size: tuple[int, int]) -> dict:
    """The job's images (and masks) as PNG bytes at the working size; RunError if a file cannot be read."""
    files = {"reference": png_bytes(read_image(job.reference, "reference", size)),
             "target": png_bytes(read_image(job.target, "target", size))}
    if job.reference_mask:
        files["reference_mask"] = png_bytes(read_mask(job.reference_mask, "reference mask", size))
        files["target_mask"] = png_bytes(read_mask(job.target_mask, "target mask", size))
    return files


def upload_name(key: str, data: bytes) -> str:
    """The name an input file gets on a server or in the scratch input folder (by content: no clashes)."""
    return f"e4e_{hashlib.sha1(data).hexdigest()[:12]}_{key}.png"


def output_path(out_dir: Path, job: Job, k: int, suffix: str) -> Path:
    """Where the ``k``-th saved image of ``job`` goes."""
    return out_dir / (job.name + (f"_{k + 1}" if k else "") + (suffix or ".png"))
