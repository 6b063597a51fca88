"""The parts of ComfyUI's HTTP API the runner uses: upload, queue, follow, history, view, cancel."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import uuid

from .errors import Cancelled, Refused, RunError, ServerDown, failure_message, refused_message
from .progress import ProgressLines

try:  # websocket-client, the library ComfyUI's script examples use: live progress
    import websocket
except ImportError:  # then the runner follows each run by polling /history
    websocket = None
if websocket is not None and not hasattr(websocket, "WebSocketTimeoutException"):
    websocket = None  # another package that installs a module named websocket

NO_WEBSOCKET = ("e4e_run: following runs by polling /history; pip install websocket-client enables live "
                "progress")
_polling_noted = False  # NO_WEBSOCKET is printed once per process
_polling_noted_lock = threading.Lock()


def _note_polling(log):
    global _polling_noted
    with _polling_noted_lock:
        if _polling_noted:
            return
        _polling_noted = True
    log(NO_WEBSOCKET)


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
        self.active: dict[str, object] = {}  # prompt id -> its websocket (or None) while the runner follows it
        self.lock = threading.Lock()
        self.stopped = threading.Event()  # set by cancel(): no more waiting on this server

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

    def upload(self, name: str, data: bytes) -> str:
        """POST /upload/image (multipart); returns the name the server stored it under."""
        boundary = uuid.uuid4().hex
        fields = [("overwrite", "true"), ("type", "input")]
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
            raise Refused(refused_message(data))
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

    def progress_socket(self, client_id: str, log=None):
        """ComfyUI's progress websocket (/ws), or None when there is none: then the runner polls /history."""
        if websocket is None:
            if log is not None:
                _note_polling(log)
            return None
        ws = websocket.WebSocket()
        scheme = "wss" if self.https else "ws"
        try:  # no proxy: the websocket goes where the HTTP requests go (http.client uses none)
            host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address in a URL
            ws.connect(f"{scheme}://{host}:{self.port}/ws?clientId={client_id}", timeout=self.timeout,
                       http_no_proxy=[self.host])
        except ConnectionRefusedError:
            raise ServerDown(f"server {self.url} is not reachable (connection refused)") from None
        except (OSError, ValueError, websocket.WebSocketException):
            return None
        return ws

    def run(self, prompt: dict, timeout: float = 3600.0, log=None) -> dict:
        """Queue ``prompt``, wait for it, return its history entry; raises RunError on failure, Cancelled after
        cancel()."""
        client_id = uuid.uuid4().hex
        ws = self.progress_socket(client_id, log)
        deadline = time.monotonic() + timeout
        prompt_id = None
        try:
            if self.stopped.is_set():
                raise Cancelled("cancelled")
            prompt_id = self.queue(prompt, client_id)
            with self.lock:
                self.active[prompt_id] = ws
            if self.stopped.is_set():  # Ctrl-C came while it was being queued
                self.cancel()
            if ws is not None:
                try:
                    self._follow(ws, prompt_id, deadline, ProgressLines(prompt, log, f" on {self.url}"))
                except (OSError, ValueError, websocket.WebSocketException):
                    pass  # the websocket broke (or cancel() closed it): the history below tells what happened
            return self._poll(prompt_id, deadline)
        finally:
            with self.lock:
                self.active.pop(prompt_id, None)
            if ws is not None:
                try:
                    ws.close(timeout=1.0)
                except (OSError, websocket.WebSocketException):
                    pass  # aborted by cancel()

    def cancel(self) -> list[str]:
        """Stop following and cancel this runner's prompts on the server: ``POST /queue {"delete": [id]}`` takes a
        waiting one off the queue, ``POST /interrupt {"prompt_id": id}`` stops a running one (each is a no-op where
        it does not apply, and neither touches anybody else's prompts). Returns the ids cancelled."""
        self.stopped.set()
        with self.lock:
            active = dict(self.active)
        for prompt_id, ws in active.items():
            for path, body in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
                try:
                    self.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
                except RunError:
                    pass  # the server is gone: nothing runs there any more
            if ws is not None:
                try:
                    ws.abort()  # wakes the thread waiting in recv
                except Exception:
                    pass
        return list(active)

    def _follow(self, ws, prompt_id: str, deadline: float, progress: ProgressLines):
        """Read the progress messages until ``prompt_id`` ends; RunError when it failed on a node."""
        while time.monotonic() < deadline and not self.stopped.is_set():
            ws.settimeout(min(30.0, max(0.1, deadline - time.monotonic())))
            try:
                opcode, data = ws.recv_data()  # pings are answered inside
            except websocket.WebSocketTimeoutException:
                if self.history(prompt_id) is not None:  # missed messages: the history has it
                    return
                continue
            except websocket.WebSocketConnectionClosedException:
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue  # binary frames are preview images
            event = json.loads(data)
            kind, data = event.get("type"), event.get("data") or {}
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "execution_error":
                raise RunError(failure_message(data, f" on {self.url}"))
            if kind == "execution_interrupted":
                raise RunError(f"the run was interrupted on {self.url} at node {data.get('node_id')}")
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return
            if kind == "execution_success":
                return
            if kind == "progress":
                progress.step(data.get("node"), data.get("value"), data.get("max"))
        if self.stopped.is_set():
            raise Cancelled("cancelled")
        raise RunError(f"server {self.url}: no result within the timeout")

    def _poll(self, prompt_id: str, deadline: float) -> dict:
        delay = 0.05
        while True:
            if self.stopped.is_set():
                raise Cancelled("cancelled")
            entry = self.history(prompt_id)
            if entry is not None and (entry.get("status") or {}).get("completed") is not None:
                break
            if entry is not None and entry.get("outputs"):
                break
            if time.monotonic() > deadline:
                raise RunError(f"server {self.url}: no result within the timeout")
            self.stopped.wait(delay)
            delay = min(delay * 2, 1.0)
        status = entry.get("status") or {}
        if status.get("status_str") == "error":
            for name, data in status.get("messages", []):
                if name == "execution_error":
                    raise RunError(failure_message(data, f" on {self.url}"))
            raise RunError(f"server {self.url}: the run failed")
        return entry


def saved_images_by_node(prompt: dict, entry: dict) -> list[tuple[str, int, dict]]:
    """``(node id, index, image)`` of the images of the workflow's SaveImage nodes in a history entry (previews
    left out), in node order."""
    images = []
    for node_id, out in sorted((entry.get("outputs") or {}).items()):
        if prompt.get(node_id, {}).get("class_type") != "SaveImage":
            continue
        saved = [i for i in out.get("images", []) if i.get("type", "output") == "output"]
        images.extend((node_id, k, image) for k, image in enumerate(saved))
    return images


def saved_images(prompt: dict, entry: dict) -> list[dict]:
    """The images of the workflow's SaveImage nodes in a history entry (previews left out)."""
    return [image for _, _, image in saved_images_by_node(prompt, entry)]
