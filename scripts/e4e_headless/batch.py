"""Jobs on ComfyUI servers: one at a time per server, failed ones retried elsewhere, Ctrl-C; the report."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from .client import ComfyClient, saved_images
from .errors import Cancelled, Refused, RunError, ServerDown
from .jobs import Job, job_settings, output_path, prepare_inputs, upload_name
from .workflow_fill import fill_workflow


def run_on_server(client: ComfyClient, job: Job, files: dict, workflow: dict, settings: dict, out_dir: Path,
                  timeout: float, log=None) -> list[str]:
    names = {key: client.upload(upload_name(key, data), data) for key, data in files.items()}
    prompt = fill_workflow(workflow, names, job_settings(job, settings))
    entry = client.run(prompt, timeout=timeout, log=log)
    images = saved_images(prompt, entry)
    if not images:
        raise RunError(f"server {client.url}: the run finished without a saved image")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k, image in enumerate(images):
        path = output_path(out_dir, job, k, Path(image["filename"]).suffix)
        path.write_bytes(client.view(image))
        written.append(str(path))
    return written


class _Dispatch:
    """Assigns jobs to servers, one at a time per server, and decides after each attempt whether to retry."""

    def __init__(self, jobs: list[Job], servers: list[str], retries: int, log=None):
        self.pending = list(jobs)
        self.live = set(servers)
        self.busy = 0  # jobs out on a server
        self.retries = retries
        self.log = log
        self.cond = threading.Condition()
        self.cancelled = False

    def take(self, server: str) -> Job | None:
        """The next job for ``server`` (not one that failed there while another live server has not tried it);
        None once there is nothing left to do or ``server`` is down."""
        with self.cond:
            while server in self.live and not self.cancelled:
                others = self.live - {server}
                for i, job in enumerate(self.pending):
                    if server not in job.tried or not (others - job.tried):
                        self.busy += 1
                        return self.pending.pop(i)
                if not self.pending and self.busy == 0:
                    return None
                self.cond.wait(0.2)  # a job may come back from another server
            return None

    def settle(self, job: Job, server: str, failure: Exception | None):
        """After an attempt: a failed job goes back to the queue while it has retries left and a server to go
        to (a refused workflow only to another server); a server found down takes no more jobs."""
        with self.cond:
            self.busy -= 1
            if not job.done and not self.cancelled:
                job.tried.add(server)
                if isinstance(failure, ServerDown):
                    self.live.discard(server)
                elsewhere = bool(self.live - job.tried)
                if job.attempts <= self.retries and self.live and (elsewhere or not isinstance(failure, Refused)):
                    if self.log is not None:
                        self.log(f"retrying {job.name} after: {job.error}")
                    self.pending.append(job)
            self.cond.notify_all()

    def cancel(self):
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def finished(self):
        """A server's worker stops: wake the others, who may be waiting for its job to come back."""
        with self.cond:
            self.cond.notify_all()


def attempt(client: ComfyClient, job: Job, workflows: dict, settings: dict, out_dir: Path,
            size: tuple[int, int], timeout: float, log=None) -> Exception | None:
    """One try of ``job`` on ``client``'s server; fills in the job and returns the failure (None: done)."""
    start = time.monotonic()
    job.attempts += 1
    job.server = client.url
    failure = None
    try:
        files = prepare_inputs(job, size)
        workflow = workflows["masks" if job.reference_mask else "whole"]
        job.outputs = run_on_server(client, job, files, workflow, settings, out_dir, timeout, log)
        job.error, job.done = None, True
    except RunError as exc:
        job.error, failure = str(exc), exc
    except Exception as exc:  # a bug or an unexpected reply: report it with the job, go on
        job.error, failure = f"{type(exc).__name__}: {exc}", exc
    job.seconds += time.monotonic() - start
    return failure


def run_batch(jobs: list[Job], servers: list[str], workflows: dict, settings: dict, out_dir: Path,
              size: tuple[int, int], retries: int = 2, timeout: float = 3600.0, log=None):
    """Spread ``jobs`` over ``servers`` (one job at a time per server); a failed job is retried (at most
    ``retries`` times), on another server when there is one. A server found unreachable takes no more jobs.
    Each job's outcome is filled in."""
    dispatch = _Dispatch(jobs, servers, retries, log)
    clients = {url: ComfyClient(url) for url in dict.fromkeys(servers)}

    def worker(client):
        while (job := dispatch.take(client.url)) is not None:
            failure = attempt(client, job, workflows, settings, out_dir, size, timeout, log)
            dispatch.settle(job, client.url, failure)
        dispatch.finished()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients.values()]
    # Ctrl-C is this runner's while it waits, whatever handler the process had (code imported into the same
    # process, ComfyUI's among them, may have set its own)
    main_thread = threading.current_thread() is threading.main_thread()
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler) if main_thread else None
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:  # Ctrl-C: no new jobs, and this runner's prompts are cancelled on every server
        dispatch.cancel()
        cancelled = [pid for c in clients.values() for pid in c.cancel()]
        for t in threads:
            t.join(5.0)
        raise Cancelled(f"cancelled{f' ({len(cancelled)} run(s) stopped on the servers)' if cancelled else ''}") from None
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, old_handler)
    for job in dispatch.pending:  # left when every server went down
        job.error = job.error or "no server left"


def report(jobs: list[Job]) -> str:
    lines = []
    for job in jobs:
        head = f"{'ok  ' if job.done else 'FAIL'} {Path(job.target).name} <- {Path(job.reference).name}"
        tail = (f"on {job.server}, {job.attempts} attempt(s), {job.seconds:.1f} s")
        lines.append(f"{head}: {', '.join(job.outputs) if job.done else job.error} ({tail})")
    ok = sum(j.done for j in jobs)
    lines.append(f"e4e_run: {ok} of {len(jobs)} transfers done, {len(jobs) - ok} failed")
    return "\n".join(lines)
