"""The web extension (web/js): node's unit tests, syntax, import rules, one layer grammar with the pack, and the
editor in headless Chromium against a real ComfyUI server, on the frontend ComfyUI pins and on the newest one
(E4E_NEWEST_FRONTEND, served with --front-end-root), in both node renderers of the newest."""

from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
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
PURE = {"e4e_logic.js", "e4e_draw.js", "e4e_widgets.js", "e4e_templates.js"}  # no DOM either: unit-tested under node
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
        [NODE, "--test", *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "E4E_PYTHON": sys.executable},  # web/tests read the grammar from engine/models/layers.py
    )  # fmt: skip
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


# ---------------------------------------------------------------- (d) one layer grammar


def _layers_module():
    """engine/models/layers.py, its folder loaded as a package of its own: the grammar and its parser need nothing
    but ``re`` and the plain-data registry beside it (no ComfyUI, no torch)."""
    name = "e4e_models_for_web"
    if name not in sys.modules:
        package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(name, None, is_package=True))
        package.__path__ = [str(REPO / "engine" / "models")]
        sys.modules[name] = package
    return importlib.import_module(f"{name}.layers")


def _js_code(path: Path) -> str:
    text = re.sub(r"/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"(?<![:\\])//.*$", "", text, flags=re.M)


@pytest.mark.parametrize("path", _js_files(), ids=lambda p: p.name)
def test_js_writes_no_grammar_of_its_own(path):
    """The editor takes the grammar from the node definition: no file of web/js lists block kinds (as strings,
    object keys or a regex alternation) or has a regex of its own for layer items."""
    code = _js_code(path)
    listed = set()
    for kind in _layers_module().GRAMMAR["kinds"]:
        if re.search(rf"""(["'`]){kind}\1""", code) or re.search(rf"(?<![\w.$]){kind}\s*:\s*[-\d\[{{]", code):
            listed.add(kind)  # one alone is an everyday word: an <input> element
        assert not re.search(rf"[(|]{kind}[|)]", code), f"{path.name}: a regex alternation of block kinds ({kind})"
    assert len(listed) < 2, f"{path.name} lists block kinds {sorted(listed)}: take them from the node definition"
    for literal in re.findall(r"(?<![\w)\]])/((?:\\.|[^/\n])+)/[dgimsuy]*", code):
        assert "\\d" not in literal, f"{path.name} has a regex of its own for layer items: /{literal}/"


# Cases for both parsers: engine/layers.parse_layers and the editor's, given GRAMMAR (as /object_info carries it).
GRAMMAR_CASES = [
    "output.6-11, output.3", "double.0-1, single.34-37", "output.6-11, output.3, input.7", "output 6", "output\t7",
    "output . 6 - 11", " output.3 ; middle.0,, output.4 ", "output.3,output.3", "input.1-2;input.2-4", "output.007",
    "single.0-37, double.0-18", "output.12", "output.6-6", "middle.0", "output\u00a03", "\u00a0output.3 ",
    "", "   ", ",;", None, "Output.3", "OUTPUT.3", "output", "output.", "output.6-", "output.x", "output.11-6",
    "decoder.3", "output6", "output.-1", "output.1.5", "output.6 output.7", "output.6-11-12", "output.+1",
    "output.1e1", "output..3", "output.3,", "double .0", "single\n3", "output.3 # comment", "double.0-1 single.3",
    "output.\u0663", "\ufeffoutput.3", "output.3\n", "\noutput.3", "double.0-4095", "double.0-4094", "double.0-999999999",
]


def _python_parse(layers, text):
    try:
        return {"ok": True, "layers": [list(x) for x in layers.parse_layers(text)]}
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}


JS_PARSE = """
import { readFileSync } from "node:fs";
import { compileGrammar, parseCustomLayers } from %s;
const { grammar, cases } = JSON.parse(readFileSync(0, "utf8"));
const g = compileGrammar(grammar);
console.log(JSON.stringify(cases.map((t) => {
  const { layers, error } = parseCustomLayers(t, g);
  return error ? { ok: false, error } : { ok: true, layers };
})));
"""


def test_js_grammar_accepts_what_the_pack_accepts():
    """Both parsers on the same cases: the same accepted layer lists, the same rejections."""
    _need_node()
    layers = _layers_module()
    expected = [_python_parse(layers, t) for t in GRAMMAR_CASES]
    assert sum(e["ok"] for e in expected) >= 10 and sum(not e["ok"] for e in expected) >= 10
    assert expected[1] == {"ok": True, "layers": [["double", 0], ["double", 1], *[["single", i] for i in range(34, 38)]]}
    script = JS_PARSE % json.dumps((WEB_JS / "e4e_logic.js").as_uri())
    payload = json.dumps({"grammar": json.loads(json.dumps(layers.GRAMMAR)), "cases": GRAMMAR_CASES})
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], input=payload, capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for text, py, js in zip(GRAMMAR_CASES, expected, got):
        assert py["ok"] == js["ok"], f"{text!r}: Python {py}, editor {js}"
        if py["ok"]:
            assert py["layers"] == js["layers"], f"{text!r}: Python {py['layers']}, editor {js['layers']}"


# Cases for both hint parsers: matching/hints.parse_hints and the editor's (web/js/e4e_logic.js parseHints): what the
# viewer writes, what a user may type by hand, and the corners of Python's regex (its \s is str.isspace, its \d any
# decimal digit, which float() and int() read).
HINT_CASES = [
    "0.31,0.42 > 0.70,0.41", "0.31,0.42 > 0.70,0.41; 0.55,0.20 > 0.45,0.22 @2", "0.55,0.2 -> .45,0.22 @2",
    "0,1>1,0", " 0 , 1 > 1 , 0 ", "0.25,0.5 > 0.75,0.333\n0.5,0.5 > 0.1,0.9 @2\n", "\n\n0,0 > 1,1\n\n",
    "1.,0. > +.5,-0", "1e-1,5E-1 > 0.1e+0,1e0", "0.5,0.5 > 0.5,0.5 @ 3", "0.5,0.5>0.5,0.5@1", "0.5,0.5 > 0.5,0.5 @007",
    "0.5,0.5 > 0.5,0.5\t@2\r", "0.5,0.5 > 0.5,0.5;;; ;", "00.500,0.25 > 1.000,0", "0.5,0.5 > 0.5,0.5 @10",
    "0.1234567,0.5 > 0.5,0.5", "\u00a00.5,0.5\u3000>\u20090.5,0.5", "\x1c0.5,0.5 > 0.5,0.5\x85", "\u0660.\u0665,0 > 1,1 @\u0662",
    "\uff10.\uff15,0 > 0,0", "", "   ", ";\n;", None,
    "0.3,0.4 0.7,0.4", "1.2,0.5 > 0.5,0.5", "0.3,0.4 > 0.7,-0.1", "0.3,0.4 > 0.7,0.4 @0", "0.3,0.4 > 0.7,0.4 @",
    "0.3,0.4 > 0.7,0.4 @-1", "0.3,0.4 > 0.7,0.4 @1.5", "0.3;0.4 > 0.7,0.4", "0.3,0.4 >> 0.7,0.4", "0.3,0.4 < 0.7,0.4",
    "0.3,0.4 => 0.7,0.4", "0.3 0.4 > 0.7 0.4", "nan,0 > 0,0", "inf,0 > 0,0", "1e400,0 > 0,0", "0x1,0 > 0,0",
    "1_0,0 > 0,0", ".,0 > 0,0", "0.5,0.5 > 0.5,0.5 @2 @3", "0.5,0.5 > 0.5,0.5 # note", "\ufeff0.5,0.5 > 0.5,0.5",
    "0.5,0.5 > 0.5,0.5\u200b", "0,0 > 1,1\nbad", "0.5,0.5 > 0.5,0.5 @\u0660", "0.5\u066b5,0 > 0,0", "(0.5,0.5) > (0,0)",
]


def _python_hints(hints, text):
    try:
        return {"ok": True, "hints": [[*h.target, *h.reference, h.ref] for h in hints.parse_hints(text)]}
    except ValueError as exc:
        return {"ok": False, "error": str(exc)}


JS_HINTS = """
import { readFileSync } from "node:fs";
import { formatHint, parseHints } from %s;
const { cases, written } = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify({
  parsed: cases.map((t) => {
    const { hints, error } = parseHints(t);
    return error ? { ok: false, error } : { ok: true, hints: hints.map((h) => [...h.target, ...h.reference, h.ref]) };
  }),
  written: written.map(([t, r, ref]) => formatHint(t, r, ref)),
}));
"""


def test_js_hints_grammar_reads_what_the_pack_reads():
    """The viewer's hint parser and matching/hints.parse_hints on the same strings: the same accepted pairs with the
    same numbers, the same refusals (the first bad pair's number too); and what the viewer writes reads back in
    Python as it was clicked."""
    _need_node()
    import harness

    hints = harness.pure("matching.hints")
    expected = [_python_hints(hints, t) for t in HINT_CASES]
    assert sum(e["ok"] for e in expected) >= 20 and sum(not e["ok"] for e in expected) >= 20
    written = [[[0.25, 0.5], [0.75, 1 / 3], None], [[0.0, 1.0], [1.0, 0.0], 1], [[0.12345, 0.9996], [0.0004, 0.5], 0]]
    script = JS_HINTS % json.dumps((WEB_JS / "e4e_logic.js").as_uri())
    payload = json.dumps({"cases": HINT_CASES, "written": written})
    proc = subprocess.run([NODE, "--input-type=module", "-e", script], input=payload, capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for text, py, js in zip(HINT_CASES, expected, got["parsed"], strict=True):
        assert py["ok"] == js["ok"], f"{text!r}: Python {py}, editor {js}"
        if py["ok"]:
            assert py["hints"] == js["hints"], f"{text!r}: Python {py['hints']}, editor {js['hints']}"
        else:  # the same pair refused, named the same way
            assert re.match(r"hints: pair (\d+) ", py["error"])[1] == re.match(r"hints: pair (\d+) ", js["error"])[1], \
                f"{text!r}: Python {py['error']!r}, editor {js['error']!r}"
    for (target, reference, ref), text in zip(written, got["written"], strict=True):
        (h,) = hints.parse_hints(text)
        assert h.ref == ref and h.target == tuple(round(v, 3) for v in target), (text, h)
        assert h.reference == tuple(round(v, 3) for v in reference), (text, h)
    assert got["written"][1] == "0,1 > 1,0 @2"


def test_node_definition_carries_the_grammar(pack):
    """The patch node hands the grammar to the editor as custom_layers' e4e_grammar, as JSON."""
    info = pack.NODE_CLASS_MAPPINGS[PATCH_NODE].INPUT_TYPES()["required"]["custom_layers"][1]
    assert json.loads(json.dumps(info["e4e_grammar"])) == json.loads(json.dumps(_layers_module().GRAMMAR))


# ---------------------------------------------------------------- (e) the editor in headless Chromium
#
# One real ComfyUI server per frontend, started when a test first needs it: "pinned", the frontend the checkout's
# requirements pin (served by default), and "newest", E4E_NEWEST_FRONTEND (a comfyui-frontend-package's static
# folder, served with --front-end-root; scripts/run_tests.sh downloads it). One Chromium drives both, over the
# DevTools protocol (websocket-client). Settings are the server's (POST /api/settings/<id>) and set before each load.

E2E_SKIP = "the editor tests need a full ComfyUI checkout (COMFYUI_PATH) with comfyui-frontend-package and chromium"
FRONTENDS = ("pinned", "newest")
PACK_LABEL = "Eye-for-an-eye"  # the template browser's category label, from locales/en/main.json
SEARCH = "eye-for-an-eye"  # every node's display name is "<Name> (Eye-for-an-eye)"
# noise of ComfyUI 0.3.64 under frontend 1.58, which asks for routes 0.3.64 lacks (/api/jobs): not this pack's; and
# 1.27's missing-model dialog asking huggingface.co for the size of a template's model, and 1.58 asking the Comfy
# Registry about the nodes of a workflow with a missing model: an offline test machine reaches neither
IGNORED = ("[Jobs API]", "JobsApiError", "Error fetching file size", "https://api.comfy.org/")
EXAMPLES = REPO / "workflows" / "inputs"  # the images the shipped workflows load; the pack copies them at import
FIGURES = REPO / "bench" / "figures"  # E4E_WRITE_FIGURES=1: the editor tests save the README's screenshots there


def _chromium() -> str | None:
    for path in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):  # the binary, not Debian's wrapper script
        if Path(path).exists():
            return path
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
    pytest.importorskip("websocket", reason="websocket-client drives the DevTools protocol")
    chromium = _chromium()
    if chromium is None:
        pytest.skip(E2E_SKIP)
    return Path(checkout).resolve(), chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # loopback only
        return json.loads(r.read().decode("utf-8"))


def _post_setting(root: str, key: str, value):
    req = urllib.request.Request(f"{root}/api/settings/{key}", data=json.dumps(value).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


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


def _stop(proc: subprocess.Popen | None, group: bool = False):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM) if group else proc.terminate()  # the browser: its whole process group
        proc.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        proc.kill()
        proc.wait(timeout=15)


class Page:
    """Just enough of the DevTools protocol: evaluate scripts, collect console messages and errors."""

    def __init__(self, ws_url: str):
        import websocket

        self.websocket = websocket
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")

    def _receive(self, timeout: float) -> dict | None:
        self.ws.settimeout(max(0.05, timeout))
        try:
            return json.loads(self.ws.recv())
        except self.websocket.WebSocketTimeoutException:
            return None

    def send(self, method: str, params: dict | None = None, timeout: float = 120.0) -> dict:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data = self._receive(left)
            if data is None:
                break
            if data.get("id") == mid:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                return data.get("result", {})
            if "method" in data:
                self.events.append(data)
        raise AssertionError(f"DevTools: no answer to {method} in {timeout}s")

    def call(self, function: str, arg=None):
        """Run the JS ``function`` (an expression, may be async) with ``arg`` (JSON); its value, as JSON."""
        expression = f"({function})({json.dumps(arg)})"
        res = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise AssertionError(f"page script failed: {d.get('exception', {}).get('description') or d}")
        return res.get("result", {}).get("value")

    def pump(self, seconds: float):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            data = self._receive(left)
            if data is None:
                return
            if "method" in data:
                self.events.append(data)

    def errors(self, since: int = 0) -> list[tuple[int, str, bool]]:
        """(event index, text, is a JS error) of every error the page reported from event ``since`` on; the text
        says "[from eye_for_an_eye]" when a frame of its stack is this pack's code."""
        out = []
        for i, ev in enumerate(self.events[since:], since):
            m, p = ev["method"], ev.get("params", {})
            d = p.get("exceptionDetails", {})
            frames = (p.get("stackTrace") or d.get("stackTrace") or {}).get("callFrames", [])
            mark = f" [from {PACK_FOLDER}]" if any(f"/extensions/{PACK_FOLDER}/" in f.get("url", "") for f in frames) else ""
            if m == "Runtime.exceptionThrown":
                out.append((i, f"exception: {d.get('exception', {}).get('description') or d.get('text')}{mark}", True))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                # warnings count when they come from this pack: its own (console.warn("[eye_for_an_eye]", ...) for
                # the errors it catches) and a frontend's about deprecated APIs that the pack's code called
                if p["type"] != "warning" or f"[{PACK_FOLDER}]" in text or mark:
                    out.append((i, f"console.{p['type']}: {text}{mark}", True))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                text = f"log ({entry.get('source')}): {entry.get('text', '')} {entry.get('url', '')}".strip()
                out.append((i, text, entry.get("source") != "network"))
        return [e for e in out if not any(k in e[1] for k in IGNORED)]


OURS = (PACK_FOLDER, SAMPLER_NODE, PATCH_NODE, "e4e_", "/extensions/" + PACK_FOLDER)

READY_JS = """(names) => {
  const app = window.app;
  const LG = window.LiteGraph;
  if (!app || !app.graph || !LG || !LG.registered_node_types || !app.extensionManager) return null;
  const extensions = Array.from(app.extensions || [], (e) => e && e.name);
  return { extensions, sampler: !!LG.registered_node_types[names.sampler], patch: !!LG.registered_node_types[names.patch] };
}"""


class Editor:
    """A ComfyUI server with this pack and one frontend, and the shared page to load its editor in."""

    def __init__(self, name: str, checkout: Path, base: Path, page_of, front_end_root: Path | None):
        self.name, self.checkout, self.base, self.page_of = name, checkout, base, page_of
        self.front_end_root = front_end_root
        self.server = None
        self.page: Page | None = None
        self.mark = 0  # events before this index belong to the page load
        self.warned: set[str] = set()

    def start(self):
        for sub in ("custom_nodes", "input", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO, target_is_directory=True)
        # a fresh input folder: the images the shipped workflows load come from the pack (nodes/example_inputs.py)
        port = _free_port()
        self.root = f"http://127.0.0.1:{port}"
        self.log = self.base / "server.log"
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(self.base), "--disable-auto-launch", "--database-url", "sqlite:///:memory:"]
        if self.front_end_root is not None:
            cmd += ["--front-end-root", str(self.front_end_root)]
        with open(self.log, "wb") as log:
            self.server = subprocess.Popen(cmd, cwd=self.checkout, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.object_info = _wait_for(lambda: _get_json(f"{self.root}/object_info", 30), 300,
                                     f"the ComfyUI server ({self.name} frontend)", self.server, self.log)
        assert SAMPLER_NODE in self.object_info and PATCH_NODE in self.object_info, self.log.read_text()[-3000:]
        return self

    def stop(self):
        _stop(self.server)

    def open(self, vue: bool = False) -> Page:
        """Load the editor afresh (in the Vue node renderer when asked) and wait for this pack's extension."""
        _post_setting(self.root, "Comfy.TutorialCompleted", True)  # no first-run template dialog
        _post_setting(self.root, "Comfy.Workflow.Persist", False)  # not the last test's workflow (nor its dialogs)
        _post_setting(self.root, "Comfy.RightSidePanel.IsOpen", False)  # nor 1.58's issues panel it opened
        _post_setting(self.root, "Comfy.VueNodes.Enabled", vue)
        # no "Leave site?" when the next open navigates away from a workflow a test changed (the viewer's hints)
        _post_setting(self.root, "Comfy.Window.UnloadConfirmation", False)
        page = self.page = self.page_of()
        page.events.clear()
        # the editor's own state in the browser (open panels, the last workflow) is not the last test's
        page.send("Storage.clearDataForOrigin", {"origin": self.root, "storageTypes": "local_storage,session_storage"})
        page.send("Page.navigate", {"url": f"{self.root}/"})
        names = {"sampler": SAMPLER_NODE, "patch": PATCH_NODE}
        deadline = time.monotonic() + 180
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = page.call(READY_JS, names)
            except AssertionError:
                ready = None  # still loading
            if ready and EXTENSION_NAME in ready["extensions"] and ready["sampler"] and ready["patch"]:
                break
            page.pump(1.0)
        assert ready and EXTENSION_NAME in ready["extensions"], f"{self.name}: the editor never became ready: " + \
            "\n".join(t for _, t, _ in page.errors())
        page.pump(2.0)  # let the page settle: what comes after is charged to the test
        self.mark = len(page.events)
        return page

    def our_errors(self) -> list[str]:
        """Errors of this pack: any that names it, and any JS error after the page loaded. The rest (the frontend's
        noise on a fresh profile, 404s of optional user files, blocked internet requests) becomes a warning."""
        self.page.pump(1.0)
        ours = []
        for i, text, js in self.page.errors():
            if any(k in text for k in OURS) or (js and i >= self.mark):
                ours.append(text)
            elif text not in self.warned:  # each load repeats the frontend's noise: say it once
                self.warned.add(text)
                warnings.warn(f"ComfyUI editor ({self.name} frontend, not this pack): {text[:300]}", stacklevel=2)
        return ours


@pytest.fixture(scope="module")
def editors(tmp_path_factory):
    """``editors(name)``: the Editor of frontend ``name``, its server started on first use, shut at the end."""
    checkout, chromium = _e2e_setup()
    started: dict[str, Editor] = {}
    browser = page = None

    def page_of() -> Page:
        nonlocal browser, page
        if page is None:
            profile = tmp_path_factory.mktemp("chromium")
            browser = subprocess.Popen(
                [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                 "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1600,1000",
                 "--remote-allow-origins=*", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 f"--user-data-dir={profile}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            active = profile / "DevToolsActivePort"
            port = int(_wait_for(lambda: active.exists() and active.read_text().split()[0], 60, "Chromium", browser))
            targets = _wait_for(
                lambda: [t for t in _get_json(f"http://127.0.0.1:{port}/json/list") if t.get("type") == "page"],
                30, "a Chromium page",
            )  # fmt: skip
            page = Page(targets[0]["webSocketDebuggerUrl"])
        return page

    def get(name: str) -> Editor:
        if name not in started:
            root = None
            if name == "newest":
                root = os.environ.get("E4E_NEWEST_FRONTEND")
                if not root or not (Path(root) / "index.html").is_file():
                    pytest.skip("E4E_NEWEST_FRONTEND names no frontend folder (scripts/run_tests.sh downloads one)")
                root = Path(root).resolve()
            started[name] = Editor(name, checkout, tmp_path_factory.mktemp(f"editor_{name}"), page_of, root)
            started[name].start()
        return started[name]

    yield get
    if page is not None:
        page.ws.close()
    _stop(browser, group=True)
    for editor in started.values():
        editor.stop()


def _sample_entry() -> dict:
    src = base64.b64encode(struct.pack("<6i", -1, 0, 3, 4, 6, 3)).decode()
    return {"grid": [2, 3], "ref_grids": [[2, 2], [1, 3]], "n_refs": 2, "src": src, "layer": "output.9", "step": 67,
            "target": None, "references": [None, None]}


SDXL_BLOCKS = sorted([f"input.{i}" for i in (4, 5, 7, 8)] + ["middle.0"] + [f"output.{i}" for i in range(6)])

# The pack's nodes in the editor, as a user meets them: the viewer (drawn, and redrawn under the pointer), the
# patch node's custom_layers (shown for "custom" only) and its info line, checked with the pack's grammar.
EXERCISE_JS = """async (a) => {
  const app = window.app;
  const LG = window.LiteGraph;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const redraw = () => app.canvas && app.canvas.setDirty && app.canvas.setDirty(true, true);
  app.graph.clear();
  const s = LG.createNode(a.sampler);
  s.pos = [40, 40];
  app.graph.add(s);
  const p = LG.createNode(a.patch);
  p.pos = [560, 40];
  app.graph.add(p);
  const viewer = (s.widgets || []).find((w) => w.name === "e4e_viewer");
  const info = (p.widgets || []).find((w) => w.name === "e4e_model_info");
  const out = { viewer: !!viewer, info: !!info };
  if (!viewer || !info) return out;
  const root = viewer.element;
  // text that must show whole: wrapped inside the viewer, not cut at its right or bottom edge
  const whole = (e) => !!e && e.offsetHeight > 0 && e.scrollWidth <= e.clientWidth + 1 &&
    e.scrollHeight <= e.clientHeight + 1 && e.getBoundingClientRect().bottom <= root.getBoundingClientRect().bottom + 1;
  redraw();
  await wait(1000);
  // before a run: the hint, painted on the picture (the same module instance as the extension's)
  const view = (await import(a.viewerModule)).viewerOf(s);
  view.redraw();
  out.hint = view.lastMessage && { fits: view.lastMessage.fits, text: view.lastMessage.lines.join(" "),
    lines: view.lastMessage.lines.length };
  out.captionBefore = root.lastChild.textContent;
  s.onExecuted({ e4e_correspondence: [a.entry, a.entry], e4e_notices: a.notices });
  redraw();
  await wait(1500);
  const noticeLine = root.children[1];
  out.notices = { text: noticeLine.innerText, whole: whole(noticeLine), colour: noticeLine.style.color };
  out.captionWhole = whole(root.lastChild);
  const canvas = root.querySelector("canvas");
  const vueNode = (n) => document.querySelector(`[data-node-id="${n.id}"]`);
  out.vueNodes = !!vueNode(s);
  out.viewerInNode = out.vueNodes ? vueNode(s).contains(root) : document.body.contains(root);
  out.canvasSize = [canvas.clientWidth, canvas.clientHeight];
  out.caption = root.lastChild.textContent;
  out.selects = root.querySelectorAll("select").length;
  const drawn = canvas.toDataURL();
  const b = canvas.getBoundingClientRect();
  out.hoverRedraws = 0;
  for (const [fx, fy] of [[0.1, 0.3], [0.3, 0.6], [0.5, 0.5], [0.75, 0.25], [0.85, 0.75]]) {
    canvas.dispatchEvent(new PointerEvent("pointermove", { clientX: b.left + b.width * fx, clientY: b.top + b.height * fy, bubbles: true }));
    if (canvas.toDataURL() !== drawn) out.hoverRedraws++;
  }
  canvas.dispatchEvent(new PointerEvent("pointerleave"));
  out.afterLeave = canvas.toDataURL() === drawn;

  const lw = p.widgets.find((w) => w.name === "layers");
  const cw = p.widgets.find((w) => w.name === "custom_layers");
  const shown = () => (out.vueNodes ? vueNode(p).innerText.includes("custom_layers") : !cw.hidden);
  out.hiddenAtStart = !shown() && !!cw.hidden;
  lw.value = "custom";
  lw.callback && lw.callback(lw.value);
  await wait(500);
  out.shownForCustom = shown() && !cw.hidden;
  out.texts = {};
  for (const [key, value] of Object.entries(a.custom)) {
    cw.value = value;
    cw.callback && cw.callback(value);
    out.texts[key] = [info.element.textContent, info.element.style.color];
  }
  p.onExecuted({ e4e_model: [a.model] });
  out.texts.afterRun = [info.element.textContent, info.element.style.color];
  cw.value = a.lacking;
  cw.callback && cw.callback(cw.value);
  out.texts.lacking = [info.element.textContent, info.element.style.color];
  out.infoHeight = info.element.clientHeight;
  lw.value = "auto";
  lw.callback && lw.callback(lw.value);
  await wait(500);
  out.hiddenAgain = !shown() && !!cw.hidden;
  redraw();
  await wait(300);
  return out;
}"""

CUSTOM = {"unet": "output.6-11, output.3", "dit": "double.0-1, single.34-37", "bad": "output.11-6",
          "nowhere": "output.12"}


NOTICES = ["FreeU_V2 after Semantic Match Patch changes the UNet's decoder: the matching sees its features",
           "a LoRA-like weight patch after Semantic Match Patch changes the model the images were inverted with"]


def _check_exercise(out: dict, vue: bool):
    assert out["viewer"] and out["info"], out
    assert out["vueNodes"] == vue, out
    hint = out["hint"]  # before a run: the whole hint, wrapped into the picture (it was cut at the right edge)
    assert hint and hint["fits"] and hint["lines"] > 1, hint
    assert hint["text"].startswith("Run the sampler to see which reference part each target part copies."), hint
    assert out["captionBefore"] == "", out["captionBefore"]
    notices = out["notices"]  # the run's notices: a warning line each, whole
    assert notices["whole"] and notices["colour"] == "rgb(255, 187, 85)", notices
    assert all(n in notices["text"].replace("\n", " ") for n in NOTICES), notices
    assert out["captionWhole"], "the caption is cut off"
    assert out["viewerInNode"], "the viewer's element is not on the page (inside its node in the Vue renderer)"
    assert out["canvasSize"][0] > 100 and out["canvasSize"][1] > 100, out["canvasSize"]
    assert out["selects"] == 1 and "image 1/2" in out["caption"], out
    assert out["hoverRedraws"] >= 2, "the viewer does not follow the pointer"
    assert out["hiddenAtStart"] and out["shownForCustom"] and out["hiddenAgain"], out
    green, red = "rgb(153, 204, 153)", "rgb(255, 136, 136)"
    t = out["texts"]
    assert t["unet"] == ["custom: output.6-11, output.3", green], t
    assert t["dit"] == ["custom: double.0-1, single.34-37", green], t
    assert "empty range" in t["bad"][0] and t["bad"][1] == red, t
    assert t["nowhere"] == ["no model has output.12", red], t
    assert t["afterRun"] == ["SDXL · output.0-5 · steps 12-67", green], t
    assert t["lacking"][0].startswith("not in this SDXL model: output.9-11 (it has ") and t["lacking"][1] == red, t
    assert out["infoHeight"] >= 16, out


def _no_console_errors(editor: Editor):
    errors = editor.our_errors()
    assert not errors, f"console errors from this pack ({editor.name} frontend):\n" + "\n".join(errors)


def _exercise(editor: Editor, vue: bool):
    page = editor.open(vue=vue)
    arg = {"sampler": SAMPLER_NODE, "patch": PATCH_NODE, "entry": _sample_entry(), "custom": CUSTOM,
           "lacking": "output.9-11", "model": {"family": "sdxl", "layers": [f"output.{i}" for i in range(6)],
                                               "blocks": SDXL_BLOCKS, "steps": [12, 67]},
           "notices": NOTICES, "viewerModule": f"/extensions/{PACK_FOLDER}/e4e_sampler_view.js"}
    out = page.call(EXERCISE_JS, arg)
    _check_exercise(out, vue)
    _no_console_errors(editor)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_viewer_and_widgets_in_the_editor(editors, frontend):
    editor = editors(frontend)
    assert f"/extensions/{PACK_FOLDER}/{GLUE}" in _get_json(f"{editor.root}/extensions")
    _exercise(editor, vue=False)


@pytest.mark.server
@pytest.mark.slow
def test_viewer_and_widgets_in_the_vue_node_renderer(editors):
    """Frontend 1.58's node renderer ("Nodes 2.0", Comfy.VueNodes.Enabled): DOM widgets are moved into the Vue
    node; node drawing and mouse hooks are not called (1.27's Vue renderer does not show DOM widgets at all)."""
    _exercise(editors("newest"), vue=True)


# Correspondence hints clicked in the viewer, as a user does it (the browser's own mouse input, over whatever the
# frontend puts above the canvas): a Semantic Match Patch feeds the sampler's model through FreeU_V2; after a run's
# correspondence reaches the viewer, a click on the target and one on the reference write the pair into the patch
# node's hints (after what the user wrote there), a right-click on it takes it out again; the pair is in the saved
# workflow, in the prompt the editor queues, and still there when the saved workflow is loaded back.
HINTS_SETUP_JS = """async (a) => {
  const app = window.app;
  const LG = window.LiteGraph;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  app.graph.clear();
  const add = (type, pos) => {
    const n = LG.createNode(type);
    n.pos = pos;
    app.graph.add(n);
    return n;
  };
  const p = add(a.patch, [40, 40]);
  const f = add("FreeU_V2", [40, 640]);
  const s = add(a.sampler, [480, 40]);
  p.connect(0, f, f.findInputSlot("model"));
  f.connect(0, s, s.findInputSlot("model"));
  const hw = p.widgets.find((w) => w.name === "hints");
  hw.value = a.before;
  const c = app.canvas;
  c.ds.scale = 1;
  c.ds.offset[0] = 160 - 480;  // the sampler at the canvas's x 160, clear of 1.58's side bar
  c.ds.offset[1] = 80 - 40;
  s.onExecuted({ e4e_correspondence: [a.entry] });
  c.setDirty(true, true);
  await wait(1500);
  const view = (await import(a.viewerModule)).viewerOf(s);
  view.redraw();
  const canvas = view.dom.canvas;
  const b = canvas.getBoundingClientRect();
  const k = b.width / canvas.clientWidth;  // the canvas's zoom
  const at = (r, fx, fy) => [b.left + (r.x + r.w * fx) * k, b.top + (r.y + r.h * fy) * k];
  const sc = view.scene;
  const points = { target: at(sc.targetRect, a.target[0], a.target[1]), ref: at(sc.refRects[a.ref], a.spot[0], a.spot[1]),
                   gap: at(sc.targetRect, 1.02, 0.5) };
  const hit = Object.fromEntries(Object.entries(points).map(([k, [x, y]]) => [k, document.elementFromPoint(x, y) === canvas]));
  window.__e4eHints = { s, p, view };
  return { points, hit, ids: [p.id, f.id, s.id], caption: view.dom.caption.textContent };
}"""

HINTS_STATE_JS = """async () => {
  const { p, view } = window.__e4eHints;
  await new Promise((r) => setTimeout(r, 300));
  const hw = p.widgets.find((w) => w.name === "hints");
  const shown = Array.from(document.querySelectorAll("textarea")).map((t) => t.value);
  // an editor's context menu (LiteGraph's, or 1.58's node menu) that the right-click opened
  const menus = Array.from(document.querySelectorAll(".litecontextmenu, [role=menu]")).filter((m) => m.offsetParent)
    .map((m) => m.innerText.slice(0, 80));
  const wf = window.app.extensionManager?.workflow?.activeWorkflow;  // 1.27 has none for a cleared graph
  return { value: hw.value, pending: view.pending, caption: view.dom.caption.textContent, shown, menus,
           drawn: view.hintState.hints.length, notice: view.hintNotice, modified: wf ? !!wf.isModified : null,
           tracked: wf?.changeTracker?.activeState?.nodes?.find((n) => String(n.id) === String(p.id))?.widgets_values ?? null };
}"""

HINTS_SAVE_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const { p } = window.__e4eHints;
  const saved = JSON.parse(JSON.stringify(app.graph.serialize()));
  const prompt = (await app.graphToPrompt()).output;
  const savedPatch = saved.nodes.find((n) => String(n.id) === String(p.id));  // 1.58: string ids, saved as numbers
  await app.loadGraphData(saved, true, true, "hints");
  await wait(1000);
  const again = app.graph.nodes.find((n) => n.type === a.patch);
  const s = app.graph.nodes.find((n) => n.type === a.sampler);
  s.onExecuted({ e4e_correspondence: [a.entry] });  // the reloaded viewer draws the hint again
  const view = (await import(a.viewerModule)).viewerOf(s);
  view.redraw();
  return { widgetsValues: savedPatch.widgets_values, prompt: prompt[String(p.id)]?.inputs?.hints ?? null,
           reloaded: again?.widgets?.find((w) => w.name === "hints")?.value ?? null, drawn: view.hintState.hints.length };
}"""


def _mouse(page: Page, point, button: str = "left"):
    """A click as the browser gets it from the mouse: move there, press, release."""
    x, y = point
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    for kind in ("mousePressed", "mouseReleased"):
        page.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": button, "clickCount": 1,
                                               "buttons": 0 if kind == "mouseReleased" else (1 if button == "left" else 2)})
    page.pump(0.3)


def _viewer_writes_hints(editor: Editor, vue: bool):
    import harness

    hints = harness.pure("matching.hints")
    page = editor.open(vue=vue)
    before = "0.1,0.1 > 0.2,0.2 @1"  # what the user wrote: kept
    args = {"sampler": SAMPLER_NODE, "patch": PATCH_NODE, "entry": _sample_entry(), "before": before,
            "target": [0.25, 0.5], "ref": 1, "spot": [0.75, 0.25],
            "viewerModule": f"/extensions/{PACK_FOLDER}/e4e_sampler_view.js"}
    setup = page.call(HINTS_SETUP_JS, args)
    assert all(setup["hit"].values()), f"the viewer's canvas is not under the pointer there: {setup}"
    assert "1 hint: right-click one to remove" in setup["caption"], setup
    _mouse(page, setup["points"]["gap"])  # between the pictures: nothing
    _mouse(page, setup["points"]["target"])
    state = page.call(HINTS_STATE_JS)
    assert state["value"] == before and state["pending"], state
    assert abs(state["pending"]["x"] - 0.25) < 0.01 and abs(state["pending"]["y"] - 0.5) < 0.01, state
    assert "now click its reference spot" in state["caption"], state
    _mouse(page, setup["points"]["ref"])
    state = page.call(HINTS_STATE_JS)
    text = state["value"]
    assert text.startswith(f"{before}\n"), state
    first, new = hints.parse_hints(text)  # the mouse lands on whole pixels: the spots within a pixel or so
    assert new.ref == 1 and re.fullmatch(r"[\d.]+,[\d.]+ > [\d.]+,[\d.]+ @2", text.split("\n")[1]), text
    assert max(abs(a - b) for a, b in zip((*new.target, *new.reference), (0.25, 0.5, 0.75, 0.25))) < 0.015, text
    assert state["pending"] is None and state["drawn"] == 2 and not state["notice"], state
    assert text in state["shown"], f"the patch node's hints box does not show the pair: {state['shown']}"
    if state["tracked"] is not None:  # 1.58's change tracking took the edit (written before the mouseup it hears)
        assert text in state["tracked"] and state["modified"], state
    _mouse(page, setup["points"]["target"], "right")  # right on the new hint's target spot: it goes
    state = page.call(HINTS_STATE_JS)
    assert state["value"] == before and state["drawn"] == 1, state
    assert not state["menus"], f"the right-click that removed a hint opened a menu: {state['menus']}"
    _mouse(page, setup["points"]["target"])
    _mouse(page, setup["points"]["ref"])
    assert page.call(HINTS_STATE_JS)["value"] == text
    saved = page.call(HINTS_SAVE_JS, args)
    assert text in saved["widgetsValues"], saved
    assert saved["prompt"] == text, saved
    assert saved["reloaded"] == text, saved
    assert saved["drawn"] == 2, saved
    _no_console_errors(editor)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_the_viewer_writes_hints_that_survive_a_save_and_reload(editors, frontend):
    """Hints surviving a save and reload of the workflow, the viewer writing a hint (the LiteGraph canvas)."""
    _viewer_writes_hints(editors(frontend), vue=False)


@pytest.mark.server
@pytest.mark.slow
def test_the_viewer_writes_hints_in_the_vue_node_renderer(editors):
    """The same in frontend 1.58's Vue node renderer, where the viewer takes the pointer inside the Vue node."""
    _viewer_writes_hints(editors("newest"), vue=True)


# Each shipped editor workflow through the real editor: load it, then ask the editor for the prompt it would
# queue ("Save (API)" / "Queue" both use graphToPrompt).
CONVERT_JS = """async (workflows) => {
  const app = window.app;
  const out = {};
  for (const [name, wf] of Object.entries(workflows)) {
    await app.loadGraphData(wf, true, false, name);
    out[name] = (await app.graphToPrompt()).output;
  }
  return out;
}"""


def _templates() -> dict[str, str]:
    """short name -> title (the editor file's name) of every shipped workflow."""
    import e2e_support as es

    return {name: es.title(name) for name in es.WORKFLOW_NAMES}


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_editor_queues_the_shipped_api_workflows(editors, frontend):
    editor = editors(frontend)
    page = editor.open()
    titles = _templates()
    workflows = {n: json.loads((REPO / "workflows" / f"{t}.json").read_text()) for n, t in titles.items()}
    converted = page.call(CONVERT_JS, workflows)
    for name in titles:  # the editor queues exactly the shipped API workflow
        api = json.loads((REPO / "workflows" / "api" / f"{name}.api.json").read_text())
        assert converted[name] == api, f"{name}: the editor's prompt differs from workflows/api/{name}.api.json"
    errors = [t for t in editor.our_errors() if "/api/view" not in t]  # previews of the example images' names
    assert not errors, "\n".join(errors)


# The template browser as a user opens it: the pack's category (its label from locales/), its cards (their order,
# titles and descriptions), a click, and the view the graph opens with.
TEMPLATE_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (fn, ms = 15000) => {
    for (let t = 0; t < ms; t += 250) {
      const v = fn();
      if (v) return v;
      await wait(250);
    }
    return fn();
  };
  app.graph.clear();
  await app.extensionManager.command.execute("Comfy.BrowseTemplates");
  const label = await until(() => Array.from(document.querySelectorAll("[role=dialog] *"))
    .find((e) => e.children.length === 0 && e.textContent.trim() === a.label));
  if (!label) return { label: false, dialog: document.querySelector("[role=dialog]")?.innerText?.slice(0, 2000) };
  label.click();
  const cardsOf = () => Array.from(document.querySelectorAll('[data-testid^="template-workflow-"]'))
    .map((c) => c.getAttribute("data-testid").slice("template-workflow-".length));
  await until(() => a.titles.every((t) => cardsOf().includes(t)));
  await until(() => document.querySelectorAll(".e4e-card-description").length >= a.titles.length, 5000);
  const cards = cardsOf();
  const texts = Object.fromEntries(Array.from(document.querySelectorAll('[data-testid^="template-workflow-"]'))
    .map((c) => [c.getAttribute("data-testid").slice("template-workflow-".length), c.innerText]));
  const card = document.querySelector(`[data-testid="template-workflow-${a.click}"]`);
  if (!card) return { label: true, cards, texts };
  card.click();
  await until(() => app.graph.nodes.some((n) => n.type === a.patch));
  await wait(1500);
  const c = app.canvas;
  const box = c.canvas.getBoundingClientRect();
  const scale = c.ds.scale;
  const onScreen = (n) => {
    const [x, y, w, h] = Array.from(n.getBounding ? n.getBounding() : [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30]);
    return [n.title, box.left + (x + c.ds.offset[0]) * scale, box.top + (y + c.ds.offset[1]) * scale, w * scale, h * scale];
  };
  const minimap = document.querySelector(".litegraph-minimap");
  const mm = minimap && minimap.offsetParent ? minimap.getBoundingClientRect() : null;
  const note = app.graph.nodes.find((n) => n.type === "MarkdownNote");
  return { label: true, cards, texts, nodes: app.graph.nodes.length, types: app.graph.nodes.map((n) => n.type).sort(),
           dialogOpen: !!document.querySelector("[role=dialog]"), scale, lowQuality: !!c.low_quality,
           screen: app.graph.nodes.map(onScreen), minimap: mm && [mm.left, mm.top, mm.width, mm.height],
           note: note ? note.widgets?.[0]?.value ?? "" : null };
}"""


def _overlap(a, b) -> bool:
    """Whether two rectangles [x, y, w, h] overlap (touching edges do not)."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _figure(page: Page, name: str, clip: list | None = None):
    """With E4E_WRITE_FIGURES=1, the page (or the ``clip`` [x, y, w, h] of it) as bench/figures/<name>: the README's
    screenshots of the editor, made by the tests that check what they show."""
    if os.environ.get("E4E_WRITE_FIGURES") != "1":
        return
    params = {"format": "png"}
    if clip:
        params["clip"] = {"x": clip[0], "y": clip[1], "width": clip[2], "height": clip[3], "scale": 1}
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / name).write_bytes(base64.b64decode(page.send("Page.captureScreenshot", params)["data"]))


OPEN_BROWSER_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  app.graph.clear();
  await app.extensionManager.command.execute("Comfy.BrowseTemplates");
  for (let t = 0; t < 60; t++) {
    const label = Array.from(document.querySelectorAll("[role=dialog] *"))
      .find((e) => e.children.length === 0 && e.textContent.trim() === a.label);
    if (label) { label.click(); break; }
    await wait(250);
  }
  for (let t = 0; t < 60 && document.querySelectorAll(".e4e-card-description").length < a.count; t++) await wait(250);
  await wait(1000);  // the thumbnails
  return document.querySelectorAll(".e4e-card-description").length;
}"""


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_template_browser_lists_and_loads_the_workflows(editors, frontend):
    """ComfyUI lists workflows/*.json as the pack's templates; the browser shows each under the pack's label: the
    one that runs without a checkpoint first, then TEMPLATES' order, each card titled with its file name (unique in
    its first 24 characters, about what a card shows) and described; a click loads the graph, with its Note, at a
    view where the editor draws text, the minimap over no node."""
    import e2e_support as es

    editor = editors(frontend)
    titles = _templates()
    listed = _get_json(f"{editor.root}/api/workflow_templates")
    assert sorted(listed[PACK_FOLDER]) == sorted(titles.values())
    order = list(es.make_workflows().TEMPLATES.values())
    assert order[0] == titles["toy_world"]
    assert len({t[:24] for t in order}) == len(order), "two titles alike in their first 24 characters"
    page = editor.open()
    if frontend == "newest":  # the README's picture of the browser
        assert page.call(OPEN_BROWSER_JS, {"label": PACK_LABEL, "count": len(order)}) == len(order)
        _figure(page, "editor_templates.png")
    pick = titles["toy_world"]  # parentheses in its name
    out = page.call(TEMPLATE_JS, {"label": PACK_LABEL, "titles": list(titles.values()), "click": pick,
                                  "patch": PATCH_NODE})
    assert out["label"], f"no category {PACK_LABEL!r} in the template browser: {out.get('dialog')}"
    ours = [c for c in out["cards"] if c in order]
    assert ours == order, f"the pack's cards in the browser: {ours}"
    descriptions = {t: json.loads((REPO / "workflows" / f"{t}.json").read_text())["extra"]["e4e"]["summary"]
                    for t in order}
    for name in order:  # the card's title is the file name; its description says what the template does
        assert name in out["texts"][name] and descriptions[name] in out["texts"][name], out["texts"][name]
    shipped = json.loads((REPO / "workflows" / f"{pick}.json").read_text())
    assert out["nodes"] == len(shipped["nodes"]), out
    assert out["types"] == sorted(n["type"] for n in shipped["nodes"]), out
    assert not out["dialogOpen"], "the template browser stayed open"
    assert shipped["extra"]["e4e"]["about"] in out["note"], "the graph's Note does not carry the about text"
    assert not out["lowQuality"] and out["scale"] >= 0.65, f"the template opens at {out['scale']:.2f}: no text"
    if out["minimap"]:  # 1.58 shows a minimap in a window this wide
        covered = [n[0] for n in out["screen"] if _overlap(n[1:], out["minimap"])]
        assert not covered, f"the minimap covers {covered}"
    errors = [t for t in editor.our_errors() if "/api/view" not in t]
    assert not errors, "\n".join(errors)


@pytest.mark.server
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_fresh_server_finds_the_example_inputs(editors, frontend):
    """A ComfyUI with the pack installed and an empty input folder: the pack put the images the templates load there
    (byte for byte, as workflows/inputs/ ships them), so LoadImage lists them and the editor's previews load."""
    editor = editors(frontend)
    shipped = sorted(EXAMPLES.glob("*.png"))
    assert shipped
    for source in shipped:
        copy = editor.base / "input" / source.name
        assert copy.is_file() and copy.read_bytes() == source.read_bytes(), copy
    options = editor.object_info["LoadImage"]["input"]["required"]["image"][0]
    assert {"e4e_reference.png", "e4e_target.png"} <= set(options), options
    with urllib.request.urlopen(f"{editor.root}/api/view?filename=e4e_reference.png&type=input", timeout=30) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
    assert "copied 10 example input(s)" in editor.log.read_text(errors="replace")


# A template whose model is missing: the frontend offers the download (1.27: the Missing Models dialog; 1.58: its
# issues panel, behind the toast's "View details"), from the link the workflow carries.
MISSING_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const wf = await (await fetch(`/api/workflow_templates/${a.pack}/${encodeURIComponent(a.name)}.json`)).json();
  await app.loadGraphData(wf, true, true, a.name);
  let offer = null;
  for (let t = 0; t < 40 && !offer; t++) {
    await wait(250);
    const details = Array.from(document.querySelectorAll("button")).find((b) => /view details/i.test(b.innerText));
    if (details) details.click();
    for (const e of document.querySelectorAll("body *")) {
      if (e.children.length || !e.textContent.includes(a.model) || e.closest(".comfy-markdown, [class*=markdown]")) continue;
      let box = e;
      for (let up = 0; up < 5 && box && !offer; up++, box = box.parentElement) {
        const button = Array.from(box.querySelectorAll("button")).find((b) => /^download(?! all)/i.test(b.innerText.trim()));
        if (button) offer = { text: button.innerText.trim(), title: button.title || "", row: box.innerText.slice(0, 300) };
      }
      if (offer) break;
    }
  }
  document.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
  return offer;
}"""


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_template_without_its_model_offers_the_download(editors, frontend):
    """"SD1.5 with masks" on a server without the checkpoint: the editor names the missing file and offers to
    download it into models/checkpoints (the workflow carries its link), not just to copy its name."""
    import e2e_support as es

    editor = editors(frontend)
    page = editor.open()
    workflow = es.load("sd15_masks")
    (model,) = workflow["models"]
    out = page.call(MISSING_JS, {"pack": PACK_FOLDER, "name": es.title("sd15_masks"), "model": model["name"]})
    assert out, f"{frontend}: no download offered for {model['name']}"
    assert "checkpoints" in out["row"], out
    if frontend == "pinned":  # 1.27's button carries the link itself
        assert out["title"] == model["url"], out
    errors = [t for t in editor.our_errors() if "/api/view" not in t]
    assert not errors, "\n".join(errors)


# The toy world as a newcomer runs it in the editor: load the template, queue it, wait for it; then nothing may lie
# over anything (nodes that show pictures after the run were laid out at their size with them), and the viewer has
# what the sampler matched.
LOAD_AND_QUEUE_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const wf = await (await fetch(`/api/workflow_templates/${a.pack}/${encodeURIComponent(a.name)}.json`)).json();
  await app.loadGraphData(wf, true, true, a.name);
  await wait(1500);
  await app.queuePrompt(0, 1);
  return app.graph.nodes.length;
}"""

AFTER_RUN_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  app.canvas.setDirty(true, true);
  await wait(2500);  // the outputs' pictures load and the nodes take their size
  app.canvas.setDirty(true, true);
  await wait(500);
  const bounding = (n) => Array.from(n.getBounding ? n.getBounding() : [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30]);
  const sampler = app.graph.nodes.find((n) => n.type === a.sampler);
  const view = (await import(a.viewerModule)).viewerOf(sampler);
  return { nodes: app.graph.nodes.map((n) => [n.title, ...bounding(n)]), entries: view ? view.entries.length : 0,
           caption: view ? view.dom.caption.textContent : null,
           sizes: Object.fromEntries(app.graph.nodes.map((n) => [n.title, Array.from(n.size).map(Math.round)])) };
}"""

# the README's picture of the viewer: the sampler node close up, the pointer on the target's head
VIEWER_SHOT_JS = """async (a) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  const s = app.graph.nodes.find((n) => n.type === a.sampler);
  const c = app.canvas;
  const box = c.canvas.getBoundingClientRect();
  const [x, y, w, h] = Array.from(s.getBounding());
  c.ds.scale = Math.min(1.6, (box.height - 80) / h);
  c.ds.offset[0] = (box.width / 2) / c.ds.scale - (x + w / 2);
  c.ds.offset[1] = (box.height / 2 + 20) / c.ds.scale - (y + h / 2);
  c.setDirty(true, true);
  await wait(1500);
  const view = (await import(a.viewerModule)).viewerOf(s);
  const canvas = view.dom.canvas;
  const r = canvas.getBoundingClientRect();
  const t = view.scene?.targetRect;
  if (t) {  // a spot in the upper middle of the target picture (the creature's body)
    const k = r.width / canvas.clientWidth;
    canvas.dispatchEvent(new PointerEvent("pointermove", { clientX: r.left + (t.x + t.w * 0.5) * k,
      clientY: r.top + (t.y + t.h * 0.55) * k, bubbles: true }));
  }
  await wait(500);
  return [box.left + (x + c.ds.offset[0]) * c.ds.scale, box.top + (y + c.ds.offset[1]) * c.ds.scale,
          w * c.ds.scale, h * c.ds.scale];
}"""


def _wait_for_the_queue(editor: Editor, timeout: float) -> dict:
    """The server's history entry of the one prompt run, when the queue is empty again."""
    def done():
        queue = _get_json(f"{editor.root}/api/queue")
        if queue["queue_running"] or queue["queue_pending"]:
            return None
        history = _get_json(f"{editor.root}/api/history")
        return next(iter(history.values()), None)

    return _wait_for(done, timeout, f"the toy world run ({editor.name} frontend)", editor.server, editor.log)


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_the_toy_world_runs_in_the_editor_and_no_node_covers_another(editors, frontend):
    import e2e_support as es

    editor = editors(frontend)
    page = editor.open()
    start = time.monotonic()
    page.call(LOAD_AND_QUEUE_JS, {"pack": PACK_FOLDER, "name": es.title("toy_world")})
    entry = _wait_for_the_queue(editor, 900)
    seconds = time.monotonic() - start
    assert entry["status"]["status_str"] == "success", entry["status"]
    print(f"the toy world in the editor ({editor.name} frontend): {seconds:.0f} s")
    args = {"sampler": SAMPLER_NODE, "viewerModule": f"/extensions/{PACK_FOLDER}/e4e_sampler_view.js"}
    out = page.call(AFTER_RUN_JS, args)
    nodes = out["nodes"]
    covered = [(a[0], b[0]) for i, a in enumerate(nodes) for b in nodes[i + 1:] if _overlap(a[1:], b[1:])]
    assert not covered, f"after the run, nodes lie over others: {covered}\n{out['sizes']}"
    assert out["entries"] == 1 and "ref 1" in out["caption"], out["caption"]
    said = [line for line in editor.log.read_text(errors="replace").splitlines() if "Load Masks:" in line]
    assert said and all("frame" not in line for line in said), said  # a still image has no frames
    if frontend == "newest":
        _figure(page, "editor_toy_after_run.png")
        _figure(page, "editor_viewer.png", page.call(VIEWER_SHOT_JS, args))
    errors = [t for t in editor.our_errors() if "/api/view" not in t]
    assert not errors, "\n".join(errors)


SEARCH_JS = """async (query) => {
  const app = window.app;
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  await app.extensionManager.command.execute("Workspace.SearchBox.Toggle");
  let input = null;
  for (let t = 0; t < 40 && !input; t++) {
    await wait(250);
    input = Array.from(document.querySelectorAll("input")).find((i) => i.offsetParent && /node/i.test(i.placeholder || ""));
  }
  if (!input) return null;
  input.focus();
  input.value = query;
  input.dispatchEvent(new Event("input", { bubbles: true }));
  let last = "";
  let options = [];
  for (let t = 0; t < 40; t++) {
    await wait(250);
    options = Array.from(document.querySelectorAll("[role=option]")).filter((o) => o.offsetParent)
      .map((o) => o.innerText.split("\\n")[0].replace(/\\u00a0/g, " ").trim()).filter((t) => t);
    const now = options.join("|");
    if (options.length && now === last) break;
    last = now;
  }
  return options;
}"""


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_node_search_finds_all_the_packs_nodes(editors, frontend):
    """Typing "eye-for-an-eye" in the editor's node search lists the pack's nine nodes (the four toy world ones
    included) first."""
    editor = editors(frontend)
    names = {n: editor.object_info[n]["display_name"] for n in editor.object_info if n.startswith("E4E")}
    assert len(names) == 9 and all(v.endswith(" (Eye-for-an-eye)") for v in names.values()), names
    page = editor.open()
    options = page.call(SEARCH_JS, SEARCH)
    assert options, "the node search box did not open or found nothing"
    assert set(options[:9]) == set(names.values()), options[:12]
    errors = editor.our_errors()
    assert not errors, "\n".join(errors)
