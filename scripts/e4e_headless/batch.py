"""Jobs on ComfyUI servers: one at a time per server, failed ones retried elsewhere; the report."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from .client import ComfyClient, saved_images
from .errors import Refused, RunError, ServerDown
from .jobs import Job, prepare_inputs
from .workflow_fill import fill_workflow


def run_on_server(client: ComfyClient, job: Job, files: dict, workflow: dict, settings: dict, out_dir: Path,
                  timeout: float, log=None) -> list[str]:
    names = {}
    for key, data in files.items():
        digest = hashlib.sha1(data).hexdigest()[:12]
        names[key] = client.upload(f"e4e_{digest}_{key}.png", data)
    prompt = fill_workflow(workflow, names, settings)
    entry = client.run(prompt, timeout=timeout, log=log)
    images = saved_images(prompt, entry)
    if not images:
        raise RunError(f"server {client.url}: the run finished without a saved image")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, image in enumerate(images):
        suffix = Path(image["filename"]).suffix or ".png"
        path = out_dir / (job.name + (f"_{k + 1}" if k else "") + suffix)
        path.write_bytes(client.view(image))
        written.append(str(path))
    return written


def run_batch(jobs: list[Job], servers: list[str], workflows: dict, settings: dict, out_dir: Path,
              size: tuple[int, int], retries: int = 2, timeout: float = 3600.0, log=None) -> list[Job]:
    """Spread ``jobs`` over ``servers`` (one job at a time per server); a failed job is retried (at most
    ``retries`` times), on another server when there is one. A server found unreachable takes no more jobs."""
    pending = list(jobs)
    live = set(servers)
    busy = [0]
    cond = threading.Condition()

    def take(server):
        with cond:
            while server in live:
                others = live - {server}
                for i, job in enumerate(pending):
                    if server not in job.tried or not (others - job.tried):
                        busy[0] += 1
                        return pending.pop(i)
                if not pending and busy[0] == 0:
                    return None
                cond.wait(0.2)  # a job may come back from another server
            return None

    def worker(url):
        client = ComfyClient(url)
        while True:
            job = take(url)
            if job is None:
                with cond:
                    cond.notify_all()
                return
            start = time.monotonic()
            job.attempts += 1
            job.server = url
            try:
                files = prepare_inputs(job, size)
                workflow = workflows["masks" if job.reference_mask else "whole"]
                job.outputs = run_on_server(client, job, files, workflow, settings, out_dir, timeout, log)
                job.error, job.done = None, True
                failure = None
            except RunError as exc:
                job.error, failure = str(exc), exc
            except Exception as exc:  # a bug or an unexpected reply: report it with the job, go on
                job.error, failure = f"{type(exc).__name__}: {exc}", exc
            job.seconds += time.monotonic() - start
            with cond:
                busy[0] -= 1
                if not job.done:
                    job.tried.add(url)
                    if isinstance(failure, ServerDown):
                        live.discard(url)
                    elsewhere = bool(live - job.tried)
                    if job.attempts <= retries and live and (elsewhere or not isinstance(failure, Refused)):
                        if log is not None:
                            log(f"retrying {job.name} after: {job.error}")
                        pending.append(job)
                cond.notify_all()

    threads = [threading.Thread(target=worker, args=(url,), daemon=True) for url in dict.fromkeys(servers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job in pending:  # left when every server went down
        job.error = job.error or "no server left"
    return jobs


def report(jobs: list[Job]) -> str:
    lines = []
    for job in jobs:
        head = f"{'ok  ' if job.done else 'FAIL'} {Path(job.target).name} <- {Path(job.reference).name}"
        tail = (f"on {job.server}, {job.attempts} attempt(s), {job.seconds:.1f} s")
        lines.append(f"{head}: {', '.join(job.outputs) if job.done else job.error} ({tail})")
    ok = sum(j.done for j in jobs)
    lines.append(f"e4e_run: {ok} of {len(jobs)} transfers done, {len(jobs) - ok} failed")
    return "\n".join(lines)
