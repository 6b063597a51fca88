"""The web extension (web/js): node's unit tests, syntax, import rules, and an end-to-end load
in headless Chromium against a real ComfyUI server (only where a full checkout is available)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WEB_JS = REPO / "web" / "js"
WEB_TESTS = REPO / "web" / "tests"
GLUE = "e4e_viewer.js"  # the only module importing from ComfyUI and registering the extension
PURE = {"e4e_logic.js", "e4e_draw.js", "e4e_widgets.js"}  # no DOM either: unit-tested under node
COMFY_IMPORTS = {"../../scripts/app.js", "../../scripts/api.js"}
PACK_FOLDER = "eye_for_an_eye"
EXTENSION_NAME = "eye_for_an_eye.viewer"
SAMPLER_NODE = "E4EAppearanceTransferSampler"
PATCH_NODE = "E4ESemanticMatchPatch"

NODE = shutil.which("node")


def _node_major() -> int:
    if NODE is None:
        return 0
    out = subprocess.run([NODE, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.match(r"v(\d+)", out.strip())
    return int(m.group(1)) if m else 0


def _need_node():
    if NODE is None:
        pytest.skip("node (Node.js >= 18) is not on PATH; the web extension's JS checks need it")
    if _node_major() < 18:
        pytest.skip("node is older than 18: no built-in test runner")


def _js_files() -> list[Path]:
    return sorted(WEB_JS.glob("*.js"))


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$", "", text)


_STATIC = re.compile(r"""(?:^|[;\s])(?:import|export)\s+(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']""")
_DYNAMIC = re.compile(r"""\bimport\s*\(\s*["']([^"']+)["']\s*\)""")


def _specifiers(path: Path) -> list[str]:
    text = _strip_comments(path.read_text(encoding="utf-8"))
    return _STATIC.findall(text) + _DYNAMIC.findall(text)


# ---------------------------------------------------------------- (a) node's unit tests


def test_node_unit_tests():
    _need_node()
    files = sorted(WEB_TESTS.glob("*.test.mjs"))
    assert files, "no web/tests/*.test.mjs"
    proc = subprocess.run(
        [NODE, "--test", *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"node --test failed:\n{out[-6000:]}"
    tests = re.search(r"^# tests (\d+)", out, re.M)
    assert tests and int(tests.group(1)) > 0, out[-2000:]
    assert re.search(r"^# fail 0$", out, re.M), out[-2000:]


# ---------------------------------------------------------------- (b) syntax


@pytest.mark.parametrize("path", _js_files(), ids=lambda p: p.name)
def test_js_syntax(path):
    _need_node()
    proc = subprocess.run(
        [NODE, "--input-type=module", "--check"],
        input=path.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{path.name}: {proc.stderr}"


# ---------------------------------------------------------------- (c) import rules


def test_web_directory_layout():
    assert re.search(r"""WEB_DIRECTORY\s*=\s*["']\./web/js["']""", (REPO / "__init__.py").read_text())
    files = _js_files()
    assert {p.name for p in files} >= PURE | {GLUE}
    nested = [p for p in WEB_JS.rglob("*.js") if p.parent != WEB_JS]
    # ComfyUI serves nested files too, where "../../scripts/app.js" would resolve elsewhere
    assert not nested, f"keep extension files flat in web/js: {nested}"


@pytest.mark.parametrize("path", _js_files(), ids=lambda p: p.name)
def test_imports_are_relative_and_comfy_only_in_glue(path):
    specs = _specifiers(path)
    text = path.read_text(encoding="utf-8")
    assert "node_modules" not in text
    for spec in specs:
        assert spec.startswith(("./", "../")), f"{path.name}: bare or absolute import {spec!r}"
        if spec.startswith("./"):
            assert (WEB_JS / spec[2:]).is_file(), f"{path.name}: {spec!r} does not exist in web/js"
        else:
            assert path.name == GLUE, f"{path.name}: only {GLUE} may import from ComfyUI ({spec!r})"
            assert spec in COMFY_IMPORTS, f"{path.name}: unexpected ComfyUI import {spec!r}"
    if path.name == GLUE:
        assert re.search(r"""import\s*\{\s*app\s*\}\s*from\s*["']\.\./\.\./scripts/app\.js["']""", text)
        assert text.count("registerExtension(") == 1
    else:
        assert "registerExtension" not in _strip_comments(text), f"{path.name} must have no side effects"
    if path.name in PURE:
        assert not re.search(r"\b(document|window)\.", _strip_comments(text)), f"{path.name} touches the DOM"


# ---------------------------------------------------------------- (d) headless Chromium on a real server

E2E_SKIP = "end-to-end web test needs a full ComfyUI checkout (COMFYUI_PATH) with comfyui-frontend-package and chromium"


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _e2e_setup() -> tuple[Path, str]:
    checkout = os.environ.get("COMFYUI_PATH")
    if not checkout or not (Path(checkout) / "main.py").is_file():
        pytest.skip(E2E_SKIP)
    try:
        import comfyui_frontend_package  # noqa: F401
    except ImportError:
        pytest.skip(E2E_SKIP)
    chromium = _chromium()
    if chromium is None:
        pytest.skip(E2E_SKIP)
    cli_args = Path(checkout) / "comfy" / "cli_args.py"
    if "--base-directory" not in cli_args.read_text(encoding="utf-8"):
        pytest.skip(E2E_SKIP + " (a checkout recent enough to have --base-directory)")
    return Path(checkout).resolve(), chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return json.loads(r.read().decode("utf-8"))


def _wait_for(fn, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what} (last error: {last})\n{tail}")


def _stop(proc: subprocess.Popen | None):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def _sample_entry() -> dict:
    src = base64.b64encode(struct.pack("<6i", -1, 0, 3, 4, 6, 3)).decode()
    return {
        "grid": [2, 3],
        "ref_grids": [[2, 2], [1, 3]],
        "n_refs": 2,
        "src": src,
        "layer": "output.9",
        "step": 67,
        "target": None,
        "references": [None, None],
        "output": None,
    }


# window.app / window.LiteGraph: set by both the legacy and the current frontend. No import() of
# /scripts/app.js here: a failed early import would be cached and poison the page's own.
READY_JS = """(() => {
  const app = window.app;
  const LG = window.LiteGraph;
  if (!app || !app.graph || !LG || !LG.registered_node_types) return null;
  const names = Array.from(app.extensions || [], (e) => e && e.name);
  return { names, sampler: !!LG.registered_node_types[%(sampler)s], patch: !!LG.registered_node_types[%(patch)s] };
})()"""

EXERCISE_JS = """(async () => {
  const app = window.app;
  const LG = window.LiteGraph;
  const s = LG.createNode(%(sampler)s);
  app.graph.add(s);
  const viewer = (s.widgets || []).find((w) => w.name === "e4e_viewer");
  s.onExecuted({ e4e_correspondence: [%(entry)s, %(entry)s] });
  const p = LG.createNode(%(patch)s);
  app.graph.add(p);
  const lw = (p.widgets || []).find((w) => w.name === "layers");
  const cw = (p.widgets || []).find((w) => w.name === "custom_layers");
  const hiddenAtStart = !!(cw && cw.hidden);
  if (lw) { lw.value = "custom"; lw.callback && lw.callback(lw.value); }
  const shownForCustom = !!(cw && !cw.hidden);
  p.onExecuted({ e4e_model: [{ family: "sd1", layers: ["output.6", "output.7"], steps: [0, 49] }] });
  app.graph.setDirtyCanvas && app.graph.setDirtyCanvas(true, true);
  app.canvas && app.canvas.draw && app.canvas.draw(true, true);
  await new Promise((r) => setTimeout(r, 500));
  const canvas = viewer && viewer.element && viewer.element.querySelector("canvas");
  if (canvas) {
    const b = canvas.getBoundingClientRect();
    for (const f of [0.1, 0.3, 0.5, 0.7, 0.9]) {
      canvas.dispatchEvent(new PointerEvent("pointermove", { clientX: b.left + b.width * f, clientY: b.top + b.height * f }));
    }
    canvas.dispatchEvent(new PointerEvent("pointerleave"));
  }
  return { viewer: !!viewer, hiddenAtStart, shownForCustom };
})()"""


# Each shipped editor workflow through the real editor: load it, then ask the editor for the prompt it would
# queue ("Save (API)" / "Queue" both use graphToPrompt).
CONVERT_JS = """(async () => {
  const app = window.app;
  const out = {};
  for (const [name, wf] of Object.entries(%s)) {
    await app.loadGraphData(wf, true, false, name);
    out[name] = (await app.graphToPrompt()).output;
  }
  return out;
})()"""
WORKFLOWS = ("sd15_masks", "sd15_whole_image", "sdxl", "sd15_two_objects", "sd15_ksampler_advanced", "flux")


class _CDP:
    """Just enough of the Chrome DevTools Protocol over aiohttp's websocket client."""

    def __init__(self, ws, aiohttp):
        self.ws = ws
        self.aiohttp = aiohttp
        self.next_id = 0
        self.events: list[dict] = []

    async def _receive(self, timeout: float) -> dict | None:
        try:
            msg = await asyncio.wait_for(self.ws.receive(), timeout)
        except asyncio.TimeoutError:
            return None
        if msg.type != self.aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"DevTools connection closed: {msg.type}")
        return json.loads(msg.data)

    async def send(self, method: str, params: dict | None = None, timeout: float = 60.0) -> dict:
        self.next_id += 1
        mid = self.next_id
        await self.ws.send_json({"id": mid, "method": method, "params": params or {}})
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data = await self._receive(left)
            if data is None:
                break
            if data.get("id") == mid:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return data.get("result", {})
            if "method" in data:
                self.events.append(data)
        raise AssertionError(f"DevTools: no answer to {method} in {timeout}s")

    async def evaluate(self, expression: str):
        res = await self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in res:
            raise AssertionError(f"page script failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    async def pump(self, seconds: float):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            data = await self._receive(left)
            if data is None:
                return
            if "method" in data:
                self.events.append(data)

    def errors(self) -> list[tuple[int, str, bool]]:
        """(event index, text, is a JS error) of every error the page reported."""
        out = []
        for i, ev in enumerate(self.events):
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(
                    (i, f"exception: {d.get('exception', {}).get('description') or d.get('text')}", True)
                )
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                # the glue catches its own errors and reports them with console.warn("[eye_for_an_eye]", ...)
                if p["type"] != "warning" or f"[{PACK_FOLDER}]" in args:
                    out.append((i, f"console.{p['type']}: {args}", True))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                text = f"log ({entry.get('source')}): {entry.get('text', '')} {entry.get('url', '')}".strip()
                out.append((i, text, entry.get("source") != "network"))
        return out


OURS = (PACK_FOLDER, SAMPLER_NODE, PATCH_NODE, "e4e_")


def _split_errors(errors: list[tuple[int, str, bool]], exercise_from: int) -> tuple[list[str], list[str]]:
    """Errors of this pack: any that names it, and any JS error from the moment its nodes were
    exercised. The rest (the frontend's own noise on a fresh profile, 404s of optional user files,
    blocked internet requests) is returned apart and does not fail the test."""
    ours, other = [], []
    for i, text, js in errors:
        (ours if any(k in text for k in OURS) or (js and i >= exercise_from) else other).append(text)
    return ours, other


async def _drive_browser(cdp_port: int, url: str) -> tuple[dict, dict, list[str], list[str]]:
    import aiohttp

    targets = _wait_for(
        lambda: [t for t in _get_json(f"http://127.0.0.1:{cdp_port}/json/list") if t.get("type") == "page"],
        30,
        "a Chromium page target",
    )
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(targets[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _CDP(ws, aiohttp)
            for domain in ("Runtime", "Log", "Page"):
                await cdp.send(f"{domain}.enable")
            await cdp.send("Page.navigate", {"url": url})
            names = {"sampler": json.dumps(SAMPLER_NODE), "patch": json.dumps(PATCH_NODE)}
            ready = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    ready = await cdp.evaluate(READY_JS % names)
                except AssertionError:
                    ready = None  # page still loading
                if ready and EXTENSION_NAME in ready["names"] and ready["sampler"] and ready["patch"]:
                    break
                await cdp.pump(1.0)
            assert ready, f"the ComfyUI editor never became ready; errors: {cdp.errors()}"
            await cdp.pump(2.0)  # let the page settle: what comes after is charged to the exercise
            exercise_from = len(cdp.events)
            exercised = await cdp.evaluate(EXERCISE_JS % {**names, "entry": json.dumps(_sample_entry())})
            await cdp.pump(2.0)
            ours, noise = _split_errors(cdp.errors(), exercise_from)
            converted_from = len(cdp.events)
            workflows = {name: json.loads((REPO / "workflows" / f"{name}.json").read_text()) for name in WORKFLOWS}
            converted = await cdp.evaluate(CONVERT_JS % json.dumps(workflows))
            await cdp.pump(1.0)
            ours += [text for i, text, _js in cdp.errors() if i >= converted_from and any(k in text for k in OURS)]
            return ready, exercised, converted, ours, noise


@pytest.mark.server
@pytest.mark.slow
def test_extension_loads_in_comfyui_editor(tmp_path):
    checkout, chromium = _e2e_setup()
    pytest.importorskip("aiohttp", reason="aiohttp (a ComfyUI dependency) drives the DevTools websocket")

    base = tmp_path / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
    (base / "input").mkdir()
    from PIL import Image

    for name in WORKFLOWS:  # the images the shipped workflows name, as a user would have them
        for node in json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text()).values():
            if node["class_type"] in ("LoadImage", "LoadImageMask"):
                Image.new("RGB", (64, 64), (120, 120, 120)).save(base / "input" / node["inputs"]["image"])
    port = _free_port()
    server_log = tmp_path / "server.log"
    server = browser = None
    try:
        with open(server_log, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                 "--base-directory", str(base), "--disable-auto-launch"],
                cwd=checkout, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        root = f"http://127.0.0.1:{port}"
        info = _wait_for(
            lambda: _get_json(f"{root}/object_info"), 240, "the ComfyUI server", server, server_log
        )
        assert SAMPLER_NODE in info and PATCH_NODE in info, "the pack's nodes did not load (see server log)"
        extensions = _get_json(f"{root}/extensions")
        assert f"/extensions/{PACK_FOLDER}/{GLUE}" in extensions, extensions

        profile = tmp_path / "chromium"
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--remote-allow-origins=*", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        active = profile / "DevToolsActivePort"
        cdp_port = int(
            _wait_for(lambda: active.exists() and active.read_text().split()[0], 30, "Chromium", browser)
        )
        ready, exercised, converted, errors, noise = asyncio.run(_drive_browser(cdp_port, f"{root}/"))
    finally:
        _stop(browser)
        _stop(server)

    assert EXTENSION_NAME in ready["names"]
    assert exercised["viewer"], "the sampler node has no e4e_viewer DOM widget"
    assert exercised["hiddenAtStart"] and exercised["shownForCustom"], exercised
    for name in WORKFLOWS:  # the editor queues exactly the shipped API workflow
        api = json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())
        assert converted[name] == api, f"{name}: the editor's prompt differs from workflows/api/{name}.api.json"
    for text in noise:
        warnings.warn(f"ComfyUI editor (not this pack): {text[:300]}", stacklevel=1)
    assert not errors, "console errors from this pack in the ComfyUI editor:\n" + "\n".join(errors)
