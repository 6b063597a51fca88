#!/usr/bin/env python3
"""Eye-for-an-eye appearance transfer without the editor: through ComfyUI servers, or in-process.

Server mode (one or more running ComfyUI servers that have this pack installed):

    python scripts/e4e_run.py --server http://127.0.0.1:8188 --reference ref.png --target tgt.png \\
        [--reference-mask ref_mask.png --target-mask tgt_mask.png] [--domain dog] [--out results]

uploads the images, fills the shipped API workflow (workflows/api/sd15_masks.api.json, or
sd15_whole_image.api.json without masks; --sdxl for sdxl.api.json), queues it, follows its
progress and writes the saved images to --out. ``--pairs FILE.csv`` (rows: reference,target[,reference_mask,
target_mask]) runs a batch, spread over every ``--server`` given, with bounded retries on another server.

In-process mode (no --server): needs a full ComfyUI checkout (COMFYUI_PATH) to load ``--checkpoint PATH``
and encode the prompt; then runs the pack's nodes directly, in the same graph as the workflow.

Only the standard library and Pillow are needed for server mode (torch too for in-process mode).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import http.client
import importlib.util
import io
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
# API-format copies live one folder down: ComfyUI lists every workflows/*.json as an editor template.
API_WORKFLOWS = WORKFLOWS / "api"
PACK_NAME = "eye_for_an_eye"

SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
SDXL_CHECKPOINT = "sd_xl_base_1.0.safetensors"
PROMPT_TEMPLATE = "A photo of a {domain}"  # the authors' prompt, the same for every branch
DEFAULT_DOMAIN = "dog"

# The authors' settings, shared by the shipped workflows (scripts/make_workflows.py) and in-process mode.
DEFAULTS = {
    "prompt": PROMPT_TEMPLATE.format(domain=DEFAULT_DOMAIN),
    "negative": "",
    "size": 512,
    "sdxl_size": 1024,
    "upscale_method": "lanczos",
    "crop": "disabled",  # stretch: masks made from the original images stay aligned
    "mask_channel": "red",  # masks as black/white images
    "steps": 100,
    "skip_steps": 32,
    "inversion_cfg": 3.5,
    "method": "ddpm_edit_friendly",
    "scheduler": "ddim_uniform",
    "seed": 0,
    "layers": "auto",
    "custom_layers": "output.6-11",
    "start_percent": 0.15,
    "end_percent": 1.0,
    "structure_every": 5,
    "structure_end_percent": 0.59,
    "strength": 1.0,
    "cfg": 2.5,
    "adain": True,
    "adain_start_percent": 0.72,
    "filename_prefix": "e4e/transfer",
}

# Node titles (``_meta.title`` in API workflows) that the runner fills.
TITLES = {
    "checkpoint": "Checkpoint",
    "prompt": "Prompt",
    "negative": "Negative prompt",
    "reference_image": "Reference image",
    "target_image": "Target image",
    "reference_mask": "Reference mask",
    "target_mask": "Target mask",
    "scale_reference": "Scale reference",
    "scale_target": "Scale target",
    "invert_reference": "Invert reference",
    "invert_target": "Invert target",
    "masks": "Object masks",
    "patch": "Semantic Match Patch",
    "sampler": "Appearance Transfer Sampler",
    "ksampler": "KSampler (Advanced)",
    "save": "Save result",
}


class RunError(Exception):
    """An error with a one-line message for the user."""


class ServerDown(RunError):
    """The server cannot be reached: it takes no more jobs."""


class Refused(RunError):
    """The server refused the workflow (node errors): retrying on the same server would not help."""


def _last_line(text) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1].strip() if lines else ""


# ----------------------------------------------------------------------------------------------- images


def _open(path: str | Path, what: str):
    from PIL import Image, ImageOps

    try:
        img = Image.open(path)
        img.load()
        return ImageOps.exif_transpose(img)
    except FileNotFoundError:
        raise RunError(f"{what}: file not found: {path}") from None
    except Exception as exc:  # PIL raises many kinds for unreadable files
        raise RunError(f"{what}: cannot read {path} as an image ({type(exc).__name__}: {exc})") from None


def read_image(path, what: str, size: tuple[int, int] | None = None):
    """RGB image, stretched to ``size`` (width, height) if given (as ImageScale with crop 'disabled')."""
    from PIL import Image

    img = _open(path, what).convert("RGB")
    return img.resize(size, Image.Resampling.LANCZOS) if size and img.size != tuple(size) else img


def read_mask(path, what: str, size: tuple[int, int] | None = None):
    """Greyscale mask: the alpha channel if the file has one, else its brightness (as Load Masks reads files)."""
    from PIL import Image

    img = _open(path, what)
    mask = img.getchannel("A") if "A" in img.getbands() else img.convert("L")
    return mask.resize(size, Image.Resampling.BILINEAR) if size and mask.size != tuple(size) else mask


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- websocket

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    """A minimal RFC 6455 client: text/binary messages in, pong and close out (frames from us are masked)."""

    def __init__(self, host: str, port: int, path: str, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.io_timeout = timeout
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the websocket handshake")
            self.buf += chunk
            if len(self.buf) > 65536:
                raise ConnectionError("websocket handshake reply too long")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if len(lines[0].split()) < 2 or lines[0].split()[1] != "101":
            self.sock.close()
            raise ConnectionError(f"no websocket here ({lines[0]})")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            self.sock.close()
            raise ConnectionError("bad Sec-WebSocket-Accept in the websocket handshake")

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode: int, payload: bytes = b""):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self, timeout: float | None = None):
        """The next message (str for text, bytes for binary); None once the server closed.

        Raises TimeoutError when nothing arrives within ``timeout``; a message once begun is read whole."""
        if not self.buf:
            self.sock.settimeout(timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed by the server")
            self.buf += chunk
        self.sock.settimeout(self.io_timeout)
        parts, kind = [], None
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:  # close
                try:
                    self.send(0x8, payload[:2])
                except OSError:
                    pass
                return None
            if opcode == 0x9:  # ping
                self.send(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode in (0x1, 0x2):
                kind, parts = opcode, [payload]
            elif opcode == 0x0 and kind is not None:
                parts.append(payload)
            if b0 & 0x80 and kind is not None:
                data = b"".join(parts)
                return data.decode("utf-8") if kind == 0x1 else data

    def close(self):
        try:
            self.send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------------------------------------- client


def node_errors_message(body: dict) -> str:
    """One line from a /prompt 400 reply: each failing node's id, class and messages."""
    parts = []
    for node_id, entry in (body.get("node_errors") or {}).items():
        msgs = []
        for err in entry.get("errors", []):
            msg = err.get("message", "error")
            if err.get("details"):
                msg += f": {err['details']}"
            msgs.append(msg)
        parts.append(f"node {node_id} ({entry.get('class_type', '?')}): {'; '.join(msgs) or 'invalid'}")
    if not parts:
        err = body.get("error") or {}
        text = err.get("message", "invalid prompt") if isinstance(err, dict) else str(err)
        details = err.get("details") if isinstance(err, dict) else ""
        parts.append(text + (f": {details}" if details and details != text else ""))
    return "the server refused the workflow: " + " | ".join(parts)


class ComfyClient:
    """The parts of ComfyUI's HTTP API the runner uses."""

    def __init__(self, url: str, timeout: float = 60.0):
        if "://" not in url:
            url = "http://" + url
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RunError(f"--server: {url!r} is not an http URL like http://127.0.0.1:8188")
        self.url = f"{parsed.scheme}://{parsed.netloc}"
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.https else 80)
        self.timeout = timeout

    def _conn(self):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except ConnectionRefusedError:
            raise ServerDown(f"server {self.url} is not reachable (connection refused)") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ServerDown(f"server {self.url} is not reachable ({type(exc).__name__}: {exc})") from None
        finally:
            conn.close()

    def get_json(self, path: str):
        status, data = self.request("GET", path)
        if status != 200:
            raise RunError(f"server {self.url}: GET {path} answered {status}")
        return json.loads(data)

    def upload(self, name: str, data: bytes, kind: str = "input") -> str:
        """POST /upload/image (multipart); returns the name the server stored it under."""
        boundary = uuid.uuid4().hex
        fields = [("overwrite", "true"), ("type", kind)]
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields)
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                 "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        status, reply = self.request("POST", "/upload/image", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise RunError(f"server {self.url}: uploading {name} failed (HTTP {status})")
        info = json.loads(reply)
        return f"{info['subfolder']}/{info['name']}" if info.get("subfolder") else info["name"]

    def queue(self, prompt: dict, client_id: str) -> str:
        body = json.dumps({"prompt": prompt, "client_id": client_id}).encode()
        status, reply = self.request("POST", "/prompt", body, {"Content-Type": "application/json"})
        try:
            data = json.loads(reply)
        except ValueError:
            data = None
        if status == 400 and isinstance(data, dict):
            raise Refused(node_errors_message(data))
        if status != 200 or not isinstance(data, dict) or "prompt_id" not in data:
            raise RunError(f"server {self.url}: POST /prompt answered {status}: {reply[:200]!r}")
        return data["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)

    def view(self, image: dict) -> bytes:
        query = urllib.parse.urlencode({"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                                        "type": image.get("type", "output")})
        status, data = self.request("GET", f"/view?{query}")
        if status != 200:
            raise RunError(f"server {self.url}: downloading {image['filename']} failed (HTTP {status})")
        return data

    def websocket(self, client_id: str) -> WebSocket | None:
        """The progress websocket, or None when the server has none (then the runner polls /history)."""
        if self.https:
            return None
        try:
            return WebSocket(self.host, self.port, f"/ws?clientId={client_id}", timeout=self.timeout)
        except ConnectionRefusedError:
            raise ServerDown(f"server {self.url} is not reachable (connection refused)") from None
        except (OSError, ValueError):
            return None

    def run(self, prompt: dict, timeout: float = 3600.0, log=None) -> dict:
        """Queue ``prompt``, wait for it, return its history entry; raises RunError on failure."""
        client_id = uuid.uuid4().hex
        ws = self.websocket(client_id)
        deadline = time.monotonic() + timeout
        try:
            prompt_id = self.queue(prompt, client_id)
            if ws is not None:
                try:
                    self._follow(ws, prompt_id, deadline, log)
                except (OSError, ConnectionError, ValueError):
                    pass  # the websocket broke: the history below tells what happened
        finally:
            if ws is not None:
                ws.close()
        return self._poll(prompt_id, deadline)

    def _follow(self, ws: WebSocket, prompt_id: str, deadline: float, log):
        last = 0.0
        while time.monotonic() < deadline:
            try:
                msg = ws.recv(timeout=min(30.0, max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                if self.history(prompt_id) is not None:  # missed messages: the history has it
                    return
                continue
            if msg is None:
                return
            if isinstance(msg, bytes):
                continue  # preview images
            event = json.loads(msg)
            kind, data = event.get("type"), event.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "execution_error":
                raise RunError(f"node {data.get('node_id')} ({data.get('node_type')}) failed on {self.url}: "
                               f"{data.get('exception_type', 'error')}: {_last_line(data.get('exception_message'))}")
            if kind == "execution_interrupted":
                raise RunError(f"the run was interrupted on {self.url} at node {data.get('node_id')}")
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return
            if kind == "execution_success":
                return
            if kind == "progress" and log is not None and time.monotonic() - last > 5.0:
                last = time.monotonic()
                log(f"{self.url}: node {data.get('node')}: {data.get('value')}/{data.get('max')}")
        raise RunError(f"server {self.url}: no result within the timeout")

    def _poll(self, prompt_id: str, deadline: float) -> dict:
        delay = 0.05
        while True:
            entry = self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                break
            if entry is not None and entry.get("outputs"):
                break
            if time.monotonic() > deadline:
                raise RunError(f"server {self.url}: no result within the timeout")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            for name, data in status.get("messages", []):
                if name == "execution_error":
                    raise RunError(f"node {data.get('node_id')} ({data.get('node_type')}) failed on {self.url}: "
                                   f"{data.get('exception_type', 'error')}: {_last_line(data.get('exception_message'))}")
            raise RunError(f"server {self.url}: the run failed")
        return entry


def saved_images(prompt: dict, entry: dict) -> list[dict]:
    """The images of the workflow's SaveImage nodes in a history entry (previews left out)."""
    images = []
    for node_id, out in sorted((entry.get("outputs") or {}).items()):
        if prompt.get(node_id, {}).get("class_type") != "SaveImage":
            continue
        images.extend(i for i in out.get("images", []) if i.get("type", "output") == "output")
    return images


# -------------------------------------------------------------------------------------------- workflows


def load_workflow(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise RunError(f"--workflow: cannot read {path} ({exc.strerror})") from None
    except ValueError as exc:
        raise RunError(f"--workflow: {path} is not JSON ({exc})") from None


def find_node(prompt: dict, key: str, required: bool = True) -> dict | None:
    title = TITLES[key]
    for node in prompt.values():
        if (node.get("_meta") or {}).get("title") == title:
            return node
    if required:
        raise RunError(f"workflow: no node titled {title!r} (the runner fills the pack's shipped API workflows)")
    return None


def drop_masks(prompt: dict) -> dict:
    """The whole-image variant of a masks workflow: remove the mask nodes and the masks input."""
    prompt = json.loads(json.dumps(prompt))
    gone = set()
    for key in ("reference_mask", "target_mask", "masks"):
        for node_id, node in list(prompt.items()):
            if (node.get("_meta") or {}).get("title") == TITLES[key]:
                gone.add(node_id)
                del prompt[node_id]
    changed = True
    while changed:  # nodes fed only by removed ones (the masks preview)
        changed = False
        for node_id, node in list(prompt.items()):
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and str(value[0]) in gone:
                    if node["class_type"] in ("PreviewImage", "SaveImage") and name == "images":
                        gone.add(node_id)
                        del prompt[node_id]
                        changed = True
                        break
                    del node["inputs"][name]
    return prompt


def fill_workflow(prompt: dict, names: dict, settings: dict) -> dict:
    """A copy of an API workflow with the uploaded file names and the settings given (None: keep).

    Nodes are found by title (see TITLES); a setting given for a node the workflow lacks is an error.
    """
    prompt = json.loads(json.dumps(prompt))

    def put(keys, name, value):
        if value is None:
            return
        nodes = [n for n in (find_node(prompt, k, required=False) for k in keys) if n is not None]
        if not nodes:
            raise RunError(f"workflow: no node titled {' or '.join(repr(TITLES[k]) for k in keys)} to set {name}")
        for node in nodes:
            node["inputs"][name] = value

    put(["reference_image"], "image", names["reference"])
    put(["target_image"], "image", names["target"])
    put(["reference_mask"], "image", names.get("reference_mask"))
    put(["target_mask"], "image", names.get("target_mask"))
    s = settings
    put(["checkpoint"], "ckpt_name", s.get("checkpoint"))
    put(["prompt"], "text", s.get("prompt"))
    put(["negative"], "text", s.get("negative"))
    put(["scale_reference", "scale_target"], "width", s.get("width"))
    put(["scale_reference", "scale_target"], "height", s.get("height"))
    put(["invert_reference", "invert_target"], "steps", s.get("steps"))
    put(["invert_reference", "invert_target"], "skip_steps", s.get("skip_steps"))
    put(["invert_reference", "invert_target"], "cfg", s.get("inversion_cfg"))
    put(["invert_reference", "invert_target"], "seed", s.get("seed"))
    put(["sampler", "ksampler"], "cfg", s.get("cfg"))
    ks = find_node(prompt, "ksampler", required=False)
    if ks is not None:  # KSamplerAdvanced follows the inversion's schedule
        put(["ksampler"], "steps", s.get("steps"))
        put(["ksampler"], "start_at_step", s.get("skip_steps"))
    put(["save"], "filename_prefix", s.get("filename_prefix"))
    return prompt


# ------------------------------------------------------------------------------------------------ jobs


@dataclass
class Job:
    reference: str
    target: str
    reference_mask: str | None = None
    target_mask: str | None = None
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
        if len(row) not in (2, 4):
            raise RunError(f"--pairs: {path} line {i}: expected reference,target[,reference_mask,target_mask]")
        paths = [str((base / c).resolve()) if c else None for c in row]
        if len(paths) == 4 and bool(paths[2]) != bool(paths[3]):
            raise RunError(f"--pairs: {path} line {i}: give both masks or none")
        jobs.append(Job(paths[0], paths[1], *(paths[2:4] if len(paths) == 4 else (None, None))))
    if not jobs:
        raise RunError(f"--pairs: {path} has no rows")
    return jobs


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


# ------------------------------------------------------------------------------------------ in-process


def comfy_checkout() -> Path:
    """The full ComfyUI checkout named by COMFYUI_PATH; RunError when there is none."""
    checkout = os.environ.get("COMFYUI_PATH")
    if not checkout:
        raise RunError("in-process mode needs a full ComfyUI checkout: set COMFYUI_PATH (or pass --server URL)")
    path = Path(checkout).expanduser().resolve()
    if not (path / "comfy").is_dir() or not (path / "folder_paths.py").is_file():
        raise RunError(f"COMFYUI_PATH={checkout} is not a full ComfyUI checkout (no comfy/ and folder_paths.py)")
    return path


def check_checkpoint(path: str | None):
    if not path:
        raise RunError("in-process mode needs --checkpoint PATH (an SD1.5 or SDXL checkpoint file)")
    if not Path(path).is_file():
        raise RunError(f"--checkpoint: file not found: {path}")


def setup_comfy(path: Path):
    """Put the checkout on sys.path and import its core (on CPU when there is no GPU)."""
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    import comfy.cli_args
    import torch

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401  (after args.cpu)


def load_pack():
    """Import this repository as the pack package (as ComfyUI does from custom_nodes/)."""
    for module in sys.modules.values():
        if getattr(module, "__file__", None) and Path(module.__file__).resolve() == REPO / "__init__.py":
            return module
    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


def load_checkpoint(path: str):
    """(model, clip, vae) from a checkpoint file, as CheckpointLoaderSimple does."""
    check_checkpoint(path)
    import comfy.sd
    import folder_paths

    try:
        out = comfy.sd.load_checkpoint_guess_config(
            path, output_vae=True, output_clip=True,
            embedding_directory=folder_paths.get_folder_paths("embeddings"))
    except Exception as exc:
        raise RunError(f"--checkpoint: cannot load {path} ({type(exc).__name__}: {exc})") from None
    model, clip, vae = out[:3]
    if model is None or clip is None or vae is None:
        raise RunError(f"--checkpoint: {path} lacks a UNet, text encoder or VAE")
    return model, clip, vae


def encode_prompt(clip, text: str):
    """CONDITIONING for ``text``, as CLIPTextEncode makes it."""
    tokens = clip.tokenize(text)
    if hasattr(clip, "encode_from_tokens_scheduled"):
        return clip.encode_from_tokens_scheduled(tokens)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def to_tensor(img):
    """PIL image -> IMAGE ``[1, H, W, 3]`` or MASK ``[H, W]`` (0..1 floats)."""
    import numpy as np
    import torch

    arr = np.asarray(img, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy())
    return t if t.ndim == 2 else t[None]


def to_image(tensor):
    """IMAGE ``[H, W, 3]`` (0..1) -> PIL image."""
    import numpy as np
    from PIL import Image

    arr = (tensor.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def transfer_pipeline(pack, model, vae, positive, negative, reference, target, reference_mask=None,
                      target_mask=None, settings: dict | None = None):
    """The workflow's graph on node classes: images (``[1, H, W, 3]``, same size) -> output IMAGE ``[B, H, W, 3]``.

    VAE Encode both images, DDIM Invert Reference both, Load Masks (if masks), Semantic Match Patch,
    Appearance Transfer Sampler, VAE Decode. ``settings`` overrides DEFAULTS.
    """
    import torch

    s = dict(DEFAULTS, **(settings or {}))
    nodes = pack.NODE_CLASS_MAPPINGS
    if tuple(reference.shape) != tuple(target.shape):
        raise RunError(f"reference is {list(reference.shape)} but target is {list(target.shape)}: same size needed")
    with torch.inference_mode():
        invert = nodes["E4EDDIMInvertReference"]()
        inversions = []
        for image in (reference, target):
            latent = {"samples": vae.encode(image[:, :, :, :3])}
            inv, _start = invert.run(model, positive, latent, s["steps"], s["skip_steps"], s["inversion_cfg"],
                                     s["method"], s["scheduler"], s["seed"], negative=negative)
            inversions.append(inv)
        masks = None
        if reference_mask is not None or target_mask is not None:
            if reference_mask is None or target_mask is None:
                raise RunError("masks: give both --reference-mask and --target-mask, or neither")
            out = nodes["E4ELoadMasks"]().load("", False, target_mask=target_mask, reference_mask=reference_mask,
                                               target_image=target, reference_image=reference)
            masks = out["result"][0]
        patched = nodes["E4ESemanticMatchPatch"]().patch(
            model, inversions[0], inversions[1], s["layers"], s["custom_layers"], s["start_percent"],
            s["end_percent"], s["structure_every"], s["structure_end_percent"], s["strength"],
            masks=masks)["result"][0]
        out = nodes["E4EAppearanceTransferSampler"]().sample(patched, positive, negative, s["cfg"], s["adain"],
                                                              s["adain_start_percent"])
        latent = out["result"][0]["samples"]
        images = vae.decode(latent)
        if images.ndim == 5:  # some VAEs decode with a frame axis
            images = images.reshape(-1, *images.shape[-3:])
        return images


def run_in_process(jobs: list[Job], args, settings: dict, size: tuple[int, int], out_dir: Path, log) -> list[Job]:
    checkout = comfy_checkout()
    check_checkpoint(args.checkpoint)
    setup_comfy(checkout)
    model, clip, vae = load_checkpoint(args.checkpoint)
    try:
        import tempfile

        import folder_paths  # previews of the nodes go to a throw-away folder, not ComfyUI's temp

        folder_paths.set_temp_directory(tempfile.mkdtemp(prefix="e4e_previews_"))
    except ImportError:
        pass
    pack = load_pack()
    positive = encode_prompt(clip, settings.get("prompt") or DEFAULTS["prompt"])
    negative = encode_prompt(clip, settings.get("negative") or DEFAULTS["negative"])
    s = {k: v for k, v in settings.items() if v is not None}
    out_dir.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        start = time.monotonic()
        job.attempts += 1
        job.server = "in-process"
        try:
            ref = to_tensor(read_image(job.reference, "reference", size))
            tgt = to_tensor(read_image(job.target, "target", size))
            rm = to_tensor(read_mask(job.reference_mask, "reference mask", size)) if job.reference_mask else None
            tm = to_tensor(read_mask(job.target_mask, "target mask", size)) if job.target_mask else None
            images = transfer_pipeline(pack, model, vae, positive, negative, ref, tgt, rm, tm, s)
            for k in range(images.shape[0]):
                path = out_dir / (job.name + (f"_{k + 1}" if k else "") + ".png")
                to_image(images[k]).save(path)
                job.outputs.append(str(path))
            job.done = True
        except RunError as exc:
            job.error = str(exc)
        except Exception as exc:  # the nodes' own input errors (ValueError) and anything else, in one line
            job.error = f"{type(exc).__name__}: {_last_line(exc)}"
        job.seconds = time.monotonic() - start
        log(f"{'done' if job.done else 'failed'}: {job.name} ({job.seconds:.1f} s)")
    return jobs


# ------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="e4e_run.py",
        description="Eye-for-an-eye appearance transfer: the target keeps its structure and takes the "
                    "reference's appearance. Through ComfyUI servers (--server) or in-process (COMFYUI_PATH).")
    p.add_argument("--reference", help="reference image (gives the appearance)")
    p.add_argument("--target", help="target image (gives the structure)")
    p.add_argument("--reference-mask", help="object mask of the reference (white = object)")
    p.add_argument("--target-mask", help="object mask of the target (white = object)")
    p.add_argument("--pairs", help="CSV of reference,target[,reference_mask,target_mask] rows (a batch)")
    p.add_argument("--out", default="e4e_out", help="folder for the results (default: e4e_out)")
    p.add_argument("--server", action="append", default=[], metavar="URL",
                   help="a ComfyUI server with this pack, e.g. http://127.0.0.1:8188; repeat to spread a batch")
    p.add_argument("--workflow", help="API workflow to fill instead of the shipped one (same node titles)")
    p.add_argument("--sdxl", action="store_true", help="SDXL: workflows/api/sdxl.api.json, 1024 px")
    p.add_argument("--checkpoint", help="server mode: the checkpoint's name on the server; in-process: its path")
    p.add_argument("--domain", help=f"what the images show; the prompt becomes '{PROMPT_TEMPLATE}'")
    p.add_argument("--prompt", help="the whole prompt instead of --domain")
    p.add_argument("--negative", help="negative prompt (default: empty)")
    p.add_argument("--steps", type=int, help=f"schedule steps (default {DEFAULTS['steps']})")
    p.add_argument("--skip-steps", type=int, help=f"steps skipped at the start (default {DEFAULTS['skip_steps']})")
    p.add_argument("--inversion-cfg", type=float, help=f"CFG of the inversion (default {DEFAULTS['inversion_cfg']})")
    p.add_argument("--cfg", type=float, help=f"CFG of the transfer (default {DEFAULTS['cfg']})")
    p.add_argument("--size", type=int, help="working size in px, square (default 512, SDXL 1024); images and "
                                              "masks are stretched to it, as ImageScale with crop 'disabled'")
    p.add_argument("--width", type=int, help="working width in px (overrides --size)")
    p.add_argument("--height", type=int, help="working height in px (overrides --size)")
    p.add_argument("--seed", type=int, help="seed of the inversion noise")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed transfer, on another server "
                                                          "when there is one (default 2)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one transfer may take (default 3600)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the report")
    return p


def _settings(args) -> dict:
    prompt = args.prompt or (PROMPT_TEMPLATE.format(domain=args.domain) if args.domain else None)
    size = args.size or (DEFAULTS["sdxl_size"] if args.sdxl else DEFAULTS["size"])
    width, height = args.width or size, args.height or size
    for name, v in (("width", width), ("height", height)):
        if v < 64 or v % 8:
            raise RunError(f"--{name}: {v} px; use a multiple of 8, at least 64")
    return {"prompt": prompt, "negative": args.negative, "steps": args.steps, "skip_steps": args.skip_steps,
            "inversion_cfg": args.inversion_cfg, "cfg": args.cfg, "seed": args.seed, "width": width,
            "height": height, "checkpoint": args.checkpoint if args.server else None}


def _jobs(args, parser) -> list[Job]:
    if args.pairs:
        if args.reference or args.target:
            raise RunError("give either --pairs or --reference/--target")
        jobs = read_pairs(args.pairs)
    else:
        if not args.reference or not args.target:
            parser.print_usage(sys.stderr)
            raise RunError("--reference and --target are required (or --pairs FILE.csv)")
        if bool(args.reference_mask) != bool(args.target_mask):
            raise RunError("give both --reference-mask and --target-mask, or neither")
        jobs = [Job(args.reference, args.target, args.reference_mask, args.target_mask)]
    taken: set = set()
    for job in jobs:
        job.name = output_name(job, taken)
    return jobs


def _workflows(args) -> dict:
    if args.workflow:
        wf = load_workflow(Path(args.workflow))
        return {"masks": wf, "whole": drop_masks(wf)}
    if args.sdxl:
        wf = load_workflow(API_WORKFLOWS / "sdxl.api.json")
        return {"masks": wf, "whole": drop_masks(wf)}
    return {"masks": load_workflow(API_WORKFLOWS / "sd15_masks.api.json"),
            "whole": load_workflow(API_WORKFLOWS / "sd15_whole_image.api.json")}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        jobs = _jobs(args, parser)
        settings = _settings(args)
        size = (settings["width"], settings["height"])
        for job in jobs:  # unreadable files fail before any work
            prepare_inputs(job, (8, 8))
        out_dir = Path(args.out)
        if args.server:
            clients = [ComfyClient(u) for u in args.server]
            workflows = _workflows(args)
            run_batch(jobs, [c.url for c in clients], workflows, settings, out_dir, size, retries=args.retries,
                      timeout=args.timeout, log=log)
        else:
            run_in_process(jobs, args, settings, size, out_dir, log)
    except RunError as exc:
        print(f"e4e_run: error: {exc}", file=sys.stderr)
        return 2
    if len(jobs) == 1 and len(args.server) <= 1:
        job = jobs[0]
        if not job.done:
            print(f"e4e_run: error: {job.error}", file=sys.stderr)
            return 1
        for path in job.outputs:
            print(path)
        return 0
    print(report(jobs))
    return 0 if all(j.done for j in jobs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
