"""The headless runner scripts/e4e_run.py: in-process on the tiny models, and its HTTP client against
loopback servers (127.0.0.1 only) that answer like ComfyUI's API: upload, prompt, history, view, websocket."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import queue
import struct
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import e2e_support as es
import pytest
import tiny_models
import torch
from PIL import Image

run = es.load_runner()
inprocess = es.runner_part("inprocess")
client = es.runner_part("client")
workflow_fill = es.runner_part("workflow_fill")


def _image(path, seed, size=(64, 64), mode="RGB"):
    g = torch.Generator().manual_seed(seed)
    arr = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(arr).convert(mode).save(path)
    return str(path)


def _mask(path, size=(64, 64)):
    img = Image.new("L", size, 0)
    img.paste(255, (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
    img.save(path)
    return str(path)


@pytest.fixture()
def files(tmp_path):
    return {"reference": _image(tmp_path / "ref.png", 1), "target": _image(tmp_path / "tgt.png", 2),
            "reference_mask": _mask(tmp_path / "ref_mask.png"), "target_mask": _mask(tmp_path / "tgt_mask.png")}


# ------------------------------------------------------------------------------------------ in-process


class _FixedClip:
    """What CLIPTextEncode calls on a CLIP: the prompt gives the tiny model's positive conditioning, the empty
    negative the other."""

    def __init__(self):
        self.pos, self.neg = tiny_models.sd15_conds()

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        return self.pos if tokens.startswith("A photo") else self.neg


@pytest.fixture()
def tiny_checkpoint(monkeypatch, tmp_path, real_comfy, sd15, vae):
    """A checkpoint file for --checkpoint, and ComfyUI's CheckpointLoaderSimple, for this test, loading the tiny
    SD1.5 UNet and VAE from it (a random checkpoint with SD1.5's real shapes is 2 GB: tests/test_e2e_server.py
    runs that one). The loader keeps its INPUT_TYPES, so validation still looks the file name up in
    folder_paths, and it records the path folder_paths gives it."""
    import folder_paths

    base = real_comfy.nodes.NODE_CLASS_MAPPINGS["CheckpointLoaderSimple"]
    loaded = []

    class TinyCheckpointLoader(base):
        def load_checkpoint(self, ckpt_name):
            loaded.append(folder_paths.get_full_path_or_raise("checkpoints", ckpt_name))
            return (sd15, _FixedClip(), vae)

    monkeypatch.setitem(real_comfy.nodes.NODE_CLASS_MAPPINGS, "CheckpointLoaderSimple", TinyCheckpointLoader)
    monkeypatch.setenv("COMFYUI_PATH", str(real_comfy.checkout))
    ckpt = tmp_path / "my models" / "tiny-sd15.safetensors"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"read by the test's loader only")
    return ckpt, loaded


def _in_process_args(files, ckpt, out, masks=True, steps=4):
    args = ["--reference", files["reference"], "--target", files["target"], "--checkpoint", str(ckpt),
            "--size", "64", "--steps", str(steps), "--skip-steps", "1", "--out", str(out)]
    if masks:
        args += ["--reference-mask", files["reference_mask"], "--target-mask", files["target_mask"]]
    return args


def test_in_process_runs_the_shipped_workflow_through_comfyuis_executor(monkeypatch, tmp_path, files, real_comfy,
                                                                        tiny_checkpoint, capsys, request):
    """In-process mode fills the same API file as server mode and runs it with execution.PromptExecutor (validated
    first): the pack registered from its folder by nodes.load_custom_node, the checkpoint found by path through
    folder_paths, the images in a scratch input folder, progress lines named by the workflow's titles."""
    ckpt, loaded = tiny_checkpoint
    nodes, execution = real_comfy.nodes, real_comfy.execution
    for name in es.PACK_NODES:  # not registered yet: the runner must load the pack itself
        monkeypatch.delitem(nodes.NODE_CLASS_MAPPINGS, name, raising=False)
    executed, validated = [], []
    real_execute, real_validate = execution.PromptExecutor.execute, execution.validate_prompt
    monkeypatch.setattr(execution.PromptExecutor, "execute",
                        lambda self, prompt, *a, **k: executed.append(prompt) or real_execute(self, prompt, *a, **k))
    monkeypatch.setattr(execution, "validate_prompt",
                        lambda prompt_id, prompt, partial: validated.append(prompt) or real_validate(prompt_id, prompt, partial))
    import folder_paths

    dirs = (folder_paths.get_input_directory(), folder_paths.get_output_directory())
    out = tmp_path / "out"
    start = time.monotonic()
    rc = run.main(_in_process_args(files, ckpt, out))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.split() == [str(out / "tgt_from_ref.png")]
    img = Image.open(out / "tgt_from_ref.png")
    assert img.size == (64, 64) and img.mode == "RGB"
    print(f"in-process transfer through the executor, 64 px, 4 steps: {time.monotonic() - start:.1f} s")
    (prompt,) = executed
    assert validated == [prompt]
    assert (folder_paths.get_input_directory(), folder_paths.get_output_directory()) == dirs  # put back
    assert str(ckpt.parent) not in folder_paths.get_folder_paths("checkpoints")
    _check_filled(prompt, "sd15_masks", FILES + [
        ("scale_reference", "width"), ("scale_reference", "height"), ("scale_target", "width"),
        ("scale_target", "height"), ("masks", "width"), ("masks", "height"), ("invert_reference", "steps"),
        ("invert_target", "steps"), ("invert_reference", "skip_steps"), ("invert_target", "skip_steps"),
        ("checkpoint", "ckpt_name")], request)
    assert prompt["1"]["inputs"]["ckpt_name"] == ckpt.name and loaded == [str(ckpt)]
    assert prompt["5"]["inputs"]["image"].endswith("_reference.png")
    patch = nodes.NODE_CLASS_MAPPINGS["E4ESemanticMatchPatch"]
    assert patch.__module__.startswith(str(es.REPO).replace(".", "_x_"))  # as load_custom_node names a pack
    assert patch.RELATIVE_PYTHON_MODULE.startswith("custom_nodes.")
    assert "[15 Invert reference] step 1/4" in captured.err and "[16 Invert target] step 4/4" in captured.err
    assert "[18 Appearance Transfer Sampler] step 3/3" in captured.err


def test_ctrl_c_stops_an_in_process_run(monkeypatch, tmp_path, files, tiny_checkpoint, capsys):
    """The first Ctrl-C sets ComfyUI's interrupt flag (comfy.model_management.interrupt_current_processing):
    the executor stops at the next step, nothing is saved; the SIGINT handler is put back."""
    import signal

    ckpt, _ = tiny_checkpoint
    progress = es.runner_part("progress")
    received = []
    seen = []
    step = progress.ProgressLines.step

    def step_then_ctrl_c(self, node_id, value, total):
        seen.append((node_id, value, total))
        step(self, node_id, value, total)
        if len(seen) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C in the terminal

    monkeypatch.setattr(progress.ProgressLines, "step", step_then_ctrl_c)

    def recorder(*args):  # Ctrl-C lands here only if the runner has no handler of its own
        received.append(args)

    previous = signal.signal(signal.SIGINT, recorder)
    try:
        rc = run.main(_in_process_args(files, ckpt, tmp_path / "out", masks=False, steps=30))
        handler_after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err
    assert not received, "the runner did not take Ctrl-C"
    assert rc == 130 and err.strip().splitlines()[-1] == "e4e_run: cancelled", err
    assert "stopping at the next step" in err
    assert len(seen) <= 2 and seen[0][2] >= 29  # stopped within a step of the first inversion's 29 or 30
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert handler_after is recorder  # put back


def test_cpu_warning_once(monkeypatch, tmp_path, files, capsys):
    """On a machine without CUDA in-process mode says once that the defaults take over an hour, and how to try
    a small run; not for a small run, not on a GPU."""
    monkeypatch.setattr(inprocess, "_cpu_warned", False)
    monkeypatch.setattr(inprocess, "gpu_available", lambda: False)
    monkeypatch.setattr(inprocess, "comfy_checkout", lambda: tmp_path)

    class Stop:  # what comes after the warning is tested above
        def __init__(self, *args):
            raise run.RunError("stopped here")

    monkeypatch.setattr(inprocess, "Comfy", Stop)
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    args = ["--reference", files["reference"], "--target", files["target"], "--checkpoint", str(ckpt)]
    assert run.main(args + ["--steps", "20", "--size", "256"]) == 2
    assert "warning" not in capsys.readouterr().err
    assert run.main(args) == 2 and run.main(args) == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [inprocess.CPU_WARNING]
    assert "over an hour" in warnings[0] and "--steps 20 --size 256" in warnings[0]
    monkeypatch.setattr(inprocess, "_cpu_warned", False)
    monkeypatch.setattr(inprocess, "gpu_available", lambda: True)
    assert run.main(args) == 2 and "warning" not in capsys.readouterr().err


def test_in_process_needs_comfyui_path(monkeypatch, tmp_path, files, capsys):
    """No COMFYUI_PATH, not in custom_nodes/, no copy made by the test set-up: one line saying what to do."""
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.setattr(inprocess, "REPO", tmp_path / "clone")
    for args in (["--reference", files["reference"], "--target", files["target"], "--checkpoint", "x.safetensors"],
                 []):  # the demo too
        rc = run.main(args)
        err = capsys.readouterr().err.strip()
        assert rc != 0 and "COMFYUI_PATH" in err and "custom_nodes" in err and "run_tests.sh" in err, err
        assert len(err.splitlines()) == 1


def test_comfyui_is_found_where_the_pack_is_installed_or_in_the_test_copy(monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "execution.py").write_text("")
    monkeypatch.setattr(inprocess, "REPO", comfy / "custom_nodes" / "eye-for-an-eye")
    assert inprocess.comfy_checkout() == comfy
    clone = tmp_path / "clone"
    (clone / ".comfyui").mkdir(parents=True)
    comfy.rename(clone / ".comfyui" / "ComfyUI")
    monkeypatch.setattr(inprocess, "REPO", clone)
    assert inprocess.comfy_checkout() == clone / ".comfyui" / "ComfyUI"


@pytest.mark.server
def test_comfyuis_optional_import_failures_are_one_line_not_tracebacks(caplog):
    """In-process, ComfyUI's tracebacks for extra built-in node modules this Python cannot import (torchaudio) are
    held back and summed up in one line; other warnings and every error still reach the log."""
    import logging

    lines = []
    with caplog.at_level(logging.WARNING):
        with inprocess.OptionalImports().held(lines.append):
            logging.warning("torchaudio missing, ACE model will be broken")
            logging.warning("Traceback (most recent call last):\n  File \"x.py\", line 4\n"
                            "ModuleNotFoundError: No module named 'torchaudio'")
            logging.warning("Cannot import /c/comfy_extras/nodes_audio.py module for custom nodes: "
                            "No module named 'torchaudio'")
            logging.warning("a warning of another kind")
            logging.error("an error")
        with inprocess.OptionalImports(every_warning=True).held(lines.append):
            logging.warning("IMPORT FAILED: nodes_audio.py")
            logging.error("another error")
        with inprocess.OptionalImports().held(lines.append):
            logging.warning("nothing failed")
    assert [r.getMessage() for r in caplog.records] == ["a warning of another kind", "an error", "another error",
                                                        "nothing failed"]
    assert lines == ["e4e_run: optional parts of ComfyUI not loaded (this Python lacks what they need): ACE model, "
                     "nodes_audio (No module named 'torchaudio')"]
    assert not logging.getLogger().filters  # the filters are gone after


@pytest.mark.slow
def test_the_demo_runs_the_toy_world_with_no_checkpoint_and_no_server(monkeypatch, tmp_path, real_comfy, capsys):
    """`python scripts/e4e_run.py` with no images: workflows/api/toy_world.api.json through ComfyUI's executor, the
    bundled toy model, generated creatures; the sheet (reference | target | the method's result | position
    matching's result, enlarged without smoothing) and the correspondence picture land in --out, and both results
    keep the target's shape with other colours."""
    import numpy as np

    nodes = real_comfy.nodes
    for name in es.PACK_NODES:  # not registered yet: the runner must load the pack itself
        monkeypatch.delitem(nodes.NODE_CLASS_MAPPINGS, name, raising=False)
    monkeypatch.setenv("COMFYUI_PATH", str(real_comfy.checkout))
    out = tmp_path / "demo"
    start = time.monotonic()
    rc = run.main(["--out", str(out), "--demo-pair", "3"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.split() == [str(out / "e4e_toy.png"), str(out / "e4e_toy_correspondence.png")]
    print(f"the toy world demo through the executor: {time.monotonic() - start:.1f} s")
    prompt = es.load("toy_world", "api")
    samplers = {k: n for k, n in prompt.items() if n["class_type"] == "E4EAppearanceTransferSampler"}
    inversion = next(n["inputs"] for n in prompt.values() if n["class_type"] == "E4EDDIMInvertReference")
    sampled = inversion["steps"] - inversion["skip_steps"]
    assert "toy world demo" in captured.err and len(samplers) == 2 and "Traceback" not in captured.err
    for node_id, node in samplers.items():  # both transfers ran to their last step
        assert f"[{node_id} {node['_meta']['title']}] step {sampled}/{sampled}" in captured.err
    scale = int(next(n["inputs"]["scale_by"] for n in prompt.values() if n["class_type"] == "ImageScaleBy"))
    sheet = np.asarray(Image.open(out / "e4e_toy.png").convert("RGB")).astype(float) / 255
    assert sheet.shape == (32 * scale, (4 * 32 + 3 * 2) * scale, 3)  # four 32 px images, 2 px apart, enlarged
    block = sheet[: scale * 32, : scale * 32]  # nearest-neighbour: each pixel a scale x scale block
    assert np.array_equal(block, np.repeat(np.repeat(block[::scale, ::scale], scale, 0), scale, 1))
    ref, tgt, result, by_place = (sheet[::scale, (34 * k) * scale::scale][:, :32] for k in range(4))
    gaps = [sheet[:, (34 * k - 2) * scale:(34 * k) * scale] for k in (1, 2, 3)]
    assert all(np.all(g == 1.0) for g in gaps)  # white strips between the pictures
    assert np.abs(result - tgt).mean() > 0.02 and np.abs(by_place - tgt).mean() > 0.02  # both transferred
    assert np.abs(result - by_place).mean() > 0.002  # two transfers, not one picture twice
    assert Image.open(out / "e4e_toy_correspondence.png").size[0] >= 64


def test_in_process_missing_checkpoint(monkeypatch, tmp_path, files, capsys):
    monkeypatch.setattr(inprocess, "comfy_checkout", lambda: tmp_path)
    rc = run.main(["--reference", files["reference"], "--target", files["target"],
                   "--checkpoint", str(tmp_path / "nope.safetensors")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "nope.safetensors" in err and "not found" in err and len(err.splitlines()) == 1


def test_unreadable_image(tmp_path, files, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG but not really")
    with FakeComfy() as server:
        rc = run.main(["--server", server.url, "--reference", str(bad), "--target", files["target"]])
        assert not server.uploads  # nothing was sent
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "broken.png" in err and "cannot read" in err and len(err.splitlines()) == 1
    rc = run.main(["--server", "http://127.0.0.1:9", "--reference", str(tmp_path / "absent.png"),
                   "--target", files["target"]])
    assert rc != 0 and "absent.png" in capsys.readouterr().err


# ------------------------------------------------------------------------------ a loopback ComfyUI API


def _png(color=(200, 40, 40), size=(16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def _read_frame(rfile) -> tuple[int, bytes, bool]:
    """One frame from a client: (opcode, unmasked payload, whether it was masked)."""
    b0, b1 = rfile.read(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", rfile.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if b1 & 0x80 else None
    payload = rfile.read(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload, mask is not None


class FakeComfy:
    """ComfyUI's HTTP API as the runner uses it. mode: 'ok', 'fail' (every run ends in execution_error), 'hang'
    (a run starts, shows a step and never ends: for Ctrl-C)."""

    def __init__(self, mode: str = "ok", websocket: bool = True):
        self.mode, self.websocket = mode, websocket
        self.uploads: dict[str, bytes] = {}
        self.prompts: list[dict] = []
        self.prompt_ids: list[str] = []
        self.cancels: list[tuple[str, dict]] = []  # (path, JSON body) of POST /interrupt and POST /queue
        self.history: dict[str, dict] = {}
        self.outputs: dict[str, bytes] = {}
        self.clients: dict[str, queue.Queue] = {}
        self.ws_opened = 0
        self.ws_frames: list[tuple[int, bytes, bool]] = []  # (opcode, payload, masked) from the clients
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, obj, status=200):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/upload/image":
                    return self._json(fake.upload(self.headers["Content-Type"], body))
                if self.path == "/prompt":
                    status, reply = fake.queue_prompt(json.loads(body))
                    return self._json(reply, status)
                if self.path in ("/interrupt", "/queue"):
                    with fake.lock:
                        fake.cancels.append((self.path, json.loads(body or b"{}")))
                    return self._json({})
                self._json({}, 404)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/ws" and fake.websocket:
                    return fake.serve_websocket(self, query.get("clientId", ""))
                if url.path.startswith("/history/"):
                    pid = url.path.rsplit("/", 1)[1]
                    with fake.lock:
                        entry = fake.history.get(pid)
                    return self._json({pid: entry} if entry else {})
                if url.path == "/view":
                    data = fake.outputs.get(f"{query.get('type')}/{query.get('subfolder')}/{query.get('filename')}")
                    if data is None:
                        return self._json({}, 404)
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                self._json({}, 404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    # -- endpoints

    def upload(self, content_type: str, body: bytes) -> dict:
        boundary = content_type.split("boundary=", 1)[1].encode()
        fields, name = {}, None
        for part in body.split(b"--" + boundary)[1:-1]:
            head, _, data = part.strip(b"\r\n").partition(b"\r\n\r\n")
            disposition = head.decode().split("\r\n")[0]
            key = disposition.split('name="', 1)[1].split('"', 1)[0]
            if 'filename="' in disposition:
                name = disposition.split('filename="', 1)[1].split('"', 1)[0]
            fields[key] = data
        assert fields["type"] == b"input" and name
        with self.lock:
            self.uploads[name] = fields["image"]
        return {"name": name, "subfolder": "", "type": "input"}

    def queue_prompt(self, body: dict):
        prompt, client_id = body["prompt"], body.get("client_id")
        with self.lock:
            self.prompts.append(prompt)
        errors = {}
        for node_id, node in prompt.items():
            inputs = node["inputs"]
            if node["class_type"] == "CheckpointLoaderSimple" and inputs["ckpt_name"] == "missing.safetensors":
                errors[node_id] = {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                               "details": "ckpt_name: 'missing.safetensors' not in []",
                                               "extra_info": {}}],
                                   "dependent_outputs": [], "class_type": node["class_type"]}
            if node["class_type"] in ("LoadImage", "LoadImageMask") and inputs["image"] not in self.uploads:
                errors[node_id] = {"errors": [{"type": "custom_validation_failed", "message": "Invalid image file",
                                               "details": f"image - {inputs['image']}", "extra_info": {}}],
                                   "dependent_outputs": [], "class_type": node["class_type"]}
        if errors:
            return 400, {"error": {"type": "prompt_outputs_failed_validation",
                                   "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
                         "node_errors": errors}
        pid = str(uuid.uuid4())
        self.prompt_ids.append(pid)
        events = [("execution_start", {"prompt_id": pid})]
        outputs, messages = {}, [["execution_start", {"prompt_id": pid}]]
        if self.mode == "hang":  # running: one step shown, no history entry until it ends (never)
            sampler = next(k for k, n in prompt.items() if n["class_type"] == "E4EAppearanceTransferSampler")
            events.append(("progress", {"value": 1, "max": 68, "prompt_id": pid, "node": sampler}))
            for event in events if client_id in self.clients else ():
                self.clients[client_id].put(event)
            return 200, {"prompt_id": pid, "number": len(self.prompts), "node_errors": {}}
        if self.mode == "fail":
            err = {"prompt_id": pid, "node_id": "14", "node_type": "E4EDDIMInvertReference", "executed": [],
                   "exception_message": "Allocation failed\nout of memory", "exception_type": "RuntimeError",
                   "traceback": [], "current_inputs": {}, "current_outputs": []}
            events.append(("execution_error", err))
            messages.append(["execution_error", err])
            status = {"status_str": "error", "completed": False, "messages": messages}
        else:
            for node_id, node in prompt.items():
                events.append(("executing", {"node": node_id, "display_node": node_id, "prompt_id": pid}))
                if node["class_type"] in ("SaveImage", "PreviewImage"):
                    kind = "output" if node["class_type"] == "SaveImage" else "temp"
                    image = {"filename": f"{pid[:8]}_{node_id}.png", "subfolder": "e4e", "type": kind}
                    self.outputs[f"{kind}/e4e/{image['filename']}"] = _png()
                    outputs[node_id] = {"images": [image]}
                    events.append(("executed", {"node": node_id, "output": outputs[node_id], "prompt_id": pid}))
                if node["class_type"] == "E4EAppearanceTransferSampler":
                    events.append(("progress", {"value": 1, "max": 3, "prompt_id": pid, "node": node_id}))
            events.append(("execution_success", {"prompt_id": pid}))
            status = {"status_str": "success", "completed": True, "messages": messages}
        with self.lock:
            self.history[pid] = {"prompt": [0, pid, prompt, {"client_id": client_id}, []], "outputs": outputs,
                                 "status": status, "meta": {}}
        events.append(("executing", {"node": None, "prompt_id": pid}))
        if client_id in self.clients:
            for event in events:
                self.clients[client_id].put(event)
        return 200, {"prompt_id": pid, "number": len(self.prompts), "node_errors": {}}

    def serve_websocket(self, handler, client_id: str):
        key = handler.headers.get("Sec-WebSocket-Key", "")
        assert handler.headers.get("Upgrade", "").lower() == "websocket" and len(base64.b64decode(key)) == 16
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        handler.send_response(101)
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", accept.decode())
        handler.end_headers()
        handler.close_connection = True
        with self.lock:
            self.ws_opened += 1
        events = self.clients.setdefault(client_id, queue.Queue())
        out, write_lock, closed = handler.wfile, threading.Lock(), threading.Event()

        def send(frames: bytes):
            with write_lock:
                out.write(frames)
                out.flush()

        def read_client():  # pongs and the close handshake; a client must mask its frames
            try:
                while True:
                    opcode, payload, masked = _read_frame(handler.rfile)
                    with self.lock:
                        self.ws_frames.append((opcode, payload, masked))
                    if opcode == 0x8:
                        send(_frame(0x8, payload[:2]))  # the server's half of the close handshake
                        return
            except (OSError, ValueError):
                pass  # the client went away
            finally:
                closed.set()

        threading.Thread(target=read_client, daemon=True).start()
        status = json.dumps({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                         "sid": client_id}}).encode()
        deadline = time.monotonic() + 20  # bounded
        try:
            send(_frame(0x9, b"hi"))  # a ping: the client must answer and go on
            send(_frame(0x1, status[:10], fin=False) + _frame(0x0, status[10:]))  # fragmented
            while time.monotonic() < deadline and not self.stopping.is_set() and not closed.is_set():
                try:
                    kind, data = events.get(timeout=0.05)
                except queue.Empty:
                    continue
                if kind == "executed":
                    send(_frame(0x2, b"\x00\x00\x00\x01" + _png()))  # a binary preview first
                send(_frame(0x1, json.dumps({"type": kind, "data": data}).encode()))
        except OSError:
            pass


# --------------------------------------------------------------------------------------- HTTP tests


def _check_filled(prompt, shipped_name, allowed, request):
    """The runner kept the shipped graph and changed only ``allowed`` (title, input) values; ComfyUI's own
    validation takes the prompt too."""
    T = run.TITLES
    changed = es.changed_inputs(es.load(shipped_name, "api"), prompt)
    assert changed <= {(T[key], name) for key, name in allowed}, changed
    valid, node_errors, error = request.getfixturevalue("real_comfy").validate(prompt)
    assert valid, (error, node_errors)


FILES = [("reference_image", "image"), ("target_image", "image"), ("reference_mask", "image"),
         ("target_mask", "image")]


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_server_mode_with_masks(tmp_path, files, websocket, pack, capsys, request):
    if websocket and client.websocket is None:
        pytest.skip("websocket-client is not installed (tests/requirements.txt)")
    out = tmp_path / "out"
    with FakeComfy(websocket=websocket) as server:
        rc = run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                       "--reference-mask", files["reference_mask"], "--target-mask", files["target_mask"],
                       "--domain", "cat", "--size", "64", "--steps", "6", "--skip-steps", "1", "--out", str(out)])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        (prompt,) = server.prompts
        uploads = dict(server.uploads)
        frames = list(server.ws_frames)
    assert captured.out.strip() == str(out / "tgt_from_ref.png")
    if client.websocket is not None:  # the hint is about the library only, not about a server without /ws
        assert "pip install websocket-client" not in captured.err
    if websocket:  # followed live: the ping answered, the client's frames masked, the close handshake done
        sampler = next(k for k, n in prompt.items() if n["class_type"] == "E4EAppearanceTransferSampler")
        assert f"[{sampler} Appearance Transfer Sampler] step 1/3 on {server.url}" in captured.err  # by title
        assert (0xA, b"hi", True) in frames and frames[-1][0] == 0x8 and all(masked for *_, masked in frames)
    else:
        assert frames == []
    assert (out / "tgt_from_ref.png").read_bytes() == _png()
    _check_filled(prompt, "sd15_masks", FILES + [
        ("prompt", "text"), ("scale_reference", "width"), ("scale_reference", "height"), ("scale_target", "width"),
        ("scale_target", "height"), ("masks", "width"), ("masks", "height"), ("invert_reference", "steps"),
        ("invert_target", "steps"), ("invert_reference", "skip_steps"), ("invert_target", "skip_steps")], request)
    by_title = {n["_meta"]["title"]: n for n in prompt.values()}
    T = run.TITLES
    for key in ("reference_image", "target_image", "reference_mask", "target_mask"):
        name = by_title[T[key]]["inputs"]["image"]
        assert name in uploads and Image.open(io.BytesIO(uploads[name])).size == (64, 64)
    assert Image.open(io.BytesIO(uploads[by_title[T["target_mask"]]["inputs"]["image"]])).mode == "L"
    assert by_title[T["prompt"]]["inputs"]["text"] == "A photo of a cat"
    assert by_title[T["scale_target"]]["inputs"]["width"] == 64
    assert by_title[T["invert_target"]]["inputs"]["steps"] == 6
    assert by_title[T["invert_reference"]]["inputs"]["skip_steps"] == 1
    assert any(n["class_type"] == "E4ELoadMasks" for n in prompt.values())


def test_without_websocket_client_the_runner_polls(monkeypatch, tmp_path, files, capsys):
    """websocket-client missing: every run is followed by polling /history, and one line says how to get live
    progress."""
    monkeypatch.setattr(client, "websocket", None)
    monkeypatch.setattr(client, "_polling_noted", False)
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("ref.png,tgt.png\nref.png,tgt.png,ref_mask.png,tgt_mask.png\n" * 2)
    with FakeComfy() as a, FakeComfy() as b:
        rc = run.main(["--server", a.url, "--server", b.url, "--pairs", str(csv_path), "--size", "64",
                       "--out", str(tmp_path / "out")])
        assert len(a.prompts) + len(b.prompts) == 4 and a.ws_opened == b.ws_opened == 0
    captured = capsys.readouterr()
    assert rc == 0 and "4 of 4 transfers done, 0 failed" in captured.out
    hints = [line for line in captured.err.splitlines() if "pip install websocket-client" in line]
    assert len(hints) == 1 and "live progress" in hints[0]
    assert "1/3" not in captured.err  # no live progress without the websocket


def test_server_mode_whole_image_sdxl_and_flux_variants(tmp_path, files, pack, request):
    with FakeComfy() as server:
        assert run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                         "--size", "64", "--out", str(tmp_path / "a"), "--quiet"]) == 0
        assert run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                         "--sdxl", "--out", str(tmp_path / "b"), "--quiet"]) == 0
        assert run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                         "--flux", "--checkpoint", "my-flux.safetensors", "--out", str(tmp_path / "c"),
                         "--quiet"]) == 0
        whole, sdxl, flux = server.prompts
    sized = [(k, n) for k in ("scale_reference", "scale_target") for n in ("width", "height")]
    _check_filled(whole, "sd15_whole_image", FILES + sized, request)
    workflow_fill = es.runner_part("workflow_fill")
    for prompt, name in ((sdxl, "sdxl"), (flux, "flux")):  # without masks: the shipped graph minus its masks
        shipped = workflow_fill.drop_masks(es.load(name, "api"))
        changed = es.changed_inputs(shipped, prompt)
        assert changed <= {(run.TITLES[k], n) for k, n in FILES + sized + [("unet", "unet_name")]}, changed
        types = [n["class_type"] for n in prompt.values()]
        assert "E4ELoadMasks" not in types and "LoadImageMask" not in types
        assert request.getfixturevalue("real_comfy").validate(prompt)[0]
    ckpt = next(n for n in sdxl.values() if n["class_type"] == "CheckpointLoaderSimple")
    assert ckpt["inputs"]["ckpt_name"] == run.SDXL_CHECKPOINT
    assert next(n for n in sdxl.values() if n["class_type"] == "ImageScale")["inputs"]["width"] == 1024
    unet = next(n for n in flux.values() if n["class_type"] == "UNETLoader")
    assert unet["inputs"]["unet_name"] == "my-flux.safetensors"
    assert next(n for n in flux.values() if n["class_type"] == "ImageScale")["inputs"]["width"] == 1024


def test_drop_masks_gives_the_whole_image_graph():
    masks, whole = es.load("sd15_masks", "api"), es.load("sd15_whole_image", "api")
    dropped = workflow_fill.drop_masks(masks)
    assert sorted(n["class_type"] for n in dropped.values()) == sorted(n["class_type"] for n in whole.values())
    patch = next(n for n in dropped.values() if n["class_type"] == "E4ESemanticMatchPatch")
    assert "masks" not in patch["inputs"]


def test_node_errors_are_reported(tmp_path, files, capsys):
    with FakeComfy() as server:
        rc = run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                       "--checkpoint", "missing.safetensors", "--out", str(tmp_path), "--quiet"])
        assert len(server.prompts) == 1  # a refused workflow is not retried on the same server
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1
    assert "node 1 (CheckpointLoaderSimple)" in err and "Value not in list" in err and "missing.safetensors" in err


def test_execution_error_is_reported(tmp_path, files, capsys):
    with FakeComfy(mode="fail") as server:
        rc = run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                       "--retries", "1", "--out", str(tmp_path), "--quiet"])
        assert len(server.prompts) == 2  # bounded: one try and one retry
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "node 14 (E4EDDIMInvertReference)" in err and "out of memory" in err


def test_server_down(tmp_path, files, capsys):
    port = es.free_port()  # nothing listens there
    start = time.monotonic()
    rc = run.main(["--server", f"http://127.0.0.1:{port}", "--reference", files["reference"],
                   "--target", files["target"], "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1
    assert f"127.0.0.1:{port}" in err and "not reachable" in err and "connection refused" in err
    assert time.monotonic() - start < 5


def test_pairs_spread_over_two_servers_with_retry(tmp_path, files, capsys):
    rows = ["reference,target,reference_mask,target_mask"]
    for i in range(4):
        _image(tmp_path / f"r{i}.png", 10 + i)
        _image(tmp_path / f"t{i}.png", 20 + i)
        rows.append(f"r{i}.png,t{i}.png" + (",ref_mask.png,tgt_mask.png" if i % 2 else ""))
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    with FakeComfy(mode="fail") as bad, FakeComfy() as good:
        rc = run.main(["--server", bad.url, "--server", good.url, "--pairs", str(csv_path), "--size", "64",
                       "--out", str(out), "--quiet"])
        tried_bad, done_good = len(bad.prompts), len(good.prompts)
    report = capsys.readouterr().out
    assert rc == 0, report
    assert "4 of 4 transfers done, 0 failed" in report
    assert tried_bad >= 1 and done_good == 4  # whatever failed on one went to the other
    assert sorted(p.name for p in out.iterdir()) == [f"t{i}_from_r{i}.png" for i in range(4)]
    assert report.count(f"on {good.url}") == 4
    assert "2 attempt(s)" in report


def test_pairs_fail_when_every_server_fails(tmp_path, files, capsys):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("ref.png,tgt.png\n")
    with FakeComfy(mode="fail") as a, FakeComfy(mode="fail") as b:
        rc = run.main(["--server", a.url, "--server", b.url, "--pairs", str(csv_path), "--retries", "2",
                       "--out", str(tmp_path / "out"), "--quiet"])
        assert len(a.prompts) + len(b.prompts) == 3  # bounded: 1 + 2 retries
    report = capsys.readouterr().out
    assert rc == 1 and "FAIL" in report and "0 of 1 transfers done, 1 failed" in report


# ------------------------------------------------------------------------------------------ Ctrl-C, titles


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_ctrl_c_cancels_the_job_on_the_server(tmp_path, files, websocket, capsys):
    """Ctrl-C while a server runs the transfer: the runner takes its prompt off the server's queue and interrupts
    it there (POST /queue {"delete": [id]}, POST /interrupt {"prompt_id": id}), says so in one line and exits 130."""
    import signal

    if websocket and client.websocket is None:
        pytest.skip("websocket-client is not installed (tests/requirements.txt)")
    main_thread = threading.main_thread().ident
    with FakeComfy(mode="hang", websocket=websocket) as server:

        def ctrl_c_once_running():
            deadline = time.monotonic() + 20
            while not server.prompt_ids and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)  # the runner is following the run now
            # what Ctrl-C in a terminal does: a real SIGINT to the main thread, which also breaks a blocking read
            # (_thread.interrupt_main only sets a flag: a main thread waiting in a socket read never saw it)
            signal.pthread_kill(main_thread, signal.SIGINT)

        threading.Thread(target=ctrl_c_once_running, daemon=True).start()
        start = time.monotonic()
        try:
            rc = run.main(["--server", server.url, "--reference", files["reference"], "--target", files["target"],
                           "--size", "64", "--out", str(tmp_path / "out")])
        except KeyboardInterrupt:
            pytest.fail("Ctrl-C escaped the runner")
        took = time.monotonic() - start
        (pid,) = server.prompt_ids
        cancels = list(server.cancels)
    err = capsys.readouterr().err
    assert rc == 130 and err.strip().splitlines()[-1] == "e4e_run: cancelled (1 run(s) stopped on the servers)"
    assert cancels == [("/queue", {"delete": [pid]}), ("/interrupt", {"prompt_id": pid})]
    assert took < 10 and not (tmp_path / "out").exists()
    if websocket:
        assert "[14 Appearance Transfer Sampler] step 1/68" in err


def test_nodes_are_found_by_class_and_links_not_by_title(tmp_path, files):
    """Users rename titles: a workflow whose every title differs is filled the same (same node ids, same values)."""
    shipped = es.load("sd15_masks", "api")
    renamed = json.loads(json.dumps(shipped))
    for node_id, node in renamed.items():
        node["_meta"]["title"] = f"my node {node_id}"
    (tmp_path / "mine.api.json").write_text(json.dumps(renamed))
    args = ["--reference", files["reference"], "--target", files["target"], "--reference-mask",
            files["reference_mask"], "--target-mask", files["target_mask"], "--domain", "cat", "--size", "64",
            "--steps", "10", "--checkpoint", "other.safetensors", "--out", str(tmp_path / "out"), "--quiet"]
    with FakeComfy() as server:
        assert run.main(["--server", server.url, "--workflow", str(tmp_path / "mine.api.json")] + args) == 0
        assert run.main(["--server", server.url] + args) == 0
        mine, theirs = server.prompts
    for node_id, node in mine.items():
        assert node["inputs"] == theirs[node_id]["inputs"], node_id
    changed = {(title, name) for title, name in es.changed_inputs(shipped, theirs)}
    assert ("Reference mask", "image") in changed and ("Prompt", "text") in changed
    assert theirs["16"]["inputs"]["steps"] == 10 and theirs["16"]["inputs"]["skip_steps"] == 3  # 32 of 100


# node ids of each role in the shipped files (stable: scripts/make_workflows.py numbers nodes in order)
SHIPPED_IDS = {
    "sd15_masks": {"checkpoint": ["1"], "prompt": ["3"], "negative": ["4"], "reference_image": ["5"],
                   "reference_mask": ["6"], "target_image": ["7"], "target_mask": ["8"], "scale": ["9", "10"],
                   "masks": ["11"], "invert": ["15", "16"], "patch": ["17"], "sampler": ["18"], "save": ["20"]},
    "sd15_whole_image": {"checkpoint": ["1"], "reference_image": ["5"], "target_image": ["6"],
                         "invert": ["11", "12"], "sampler": ["14"], "save": ["16"]},
    "sd15_ksampler_advanced": {"reference_image": ["5"], "target_image": ["6"], "ksampler": ["14"], "save": ["16"]},
    "sd15_two_objects": {"reference_image": ["5"], "target_image": ["7"], "invert": ["16", "17", "18"]},
    "sdxl": {"checkpoint": ["1"], "reference_image": ["5"], "target_image": ["7"], "sampler": ["18"]},
    "flux": {"unet": ["1"], "prompt": ["4"], "guidance": ["5"], "negative": ["6"], "reference_image": ["7"],
             "reference_mask": ["8"], "target_image": ["9"], "target_mask": ["10"], "sampler": ["20"]},
    "qwen_image": {"unet": ["1"], "prompt": ["4"], "negative": ["5"], "reference_image": ["6"], "reference_mask": ["7"],
                   "target_image": ["8"], "target_mask": ["9"], "masks": ["12"], "sampler": ["19"], "save": ["21"]},
}
# roles played by one node title each (scale and invert: one node per image)
TITLED_ROLES = ("checkpoint", "unet", "prompt", "negative", "guidance", "reference_image", "target_image",
                "reference_mask", "target_mask", "masks", "patch", "sampler", "ksampler", "save")


# the demo has nothing to fill; the Wan workflow makes its target video from the prompt (no target image to fill)
@pytest.mark.parametrize("name", [n for n in es.WORKFLOW_NAMES if n not in ("toy_world", "wan_t2v")])
def test_roles_of_the_shipped_workflows(name):
    """find_nodes gives the pinned ids, and the titles scripts/make_workflows.py gave those nodes."""
    prompt = es.load(name, "api")
    found = workflow_fill.find_nodes(prompt)
    for role, ids in SHIPPED_IDS[name].items():
        assert found[role] == ids, role
    for role in TITLED_ROLES:
        for node_id in found[role]:
            assert prompt[node_id]["_meta"]["title"] == run.TITLES[role], (role, node_id)
    assert len(found["reference_image"]) == len(found["target_image"]) == 1


def test_steps_alone_keep_the_workflows_share_of_skipped_steps(tmp_path, files):
    with FakeComfy() as server:
        for extra in (["--steps", "20"], ["--flux", "--steps", "14"], ["--steps", "20", "--skip-steps", "0"]):
            assert run.main(["--server", server.url, "--reference", files["reference"], "--target",
                             files["target"], "--out", str(tmp_path), "--quiet"] + extra) == 0
        schedules = [workflow_fill.schedule_of(p) for p in server.prompts]
    assert schedules == [(20, 6), (14, 4), (20, 0)]  # 32 of 100, 9 of 28


# ------------------------------------------------------------------------------------ Python, packaging


def test_without_pillow_one_line(monkeypatch, files, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "PIL.Image", None)  # as where Pillow is not installed
    rc = run.main(["--server", "http://127.0.0.1:9", "--reference", files["reference"], "--target", files["target"]])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Pillow is missing" in err and "pip install pillow" in err


def test_help_says_which_python_runs_it(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    out = capsys.readouterr().out
    assert "Python 3.10+ with Pillow" in out and "COMFYUI_PATH" in out and "--steps 20 --size 256" in out


def test_importing_the_runner_leaves_sys_path_alone():
    """The runner is a package: importing it (by path, as scripts/e4e_run.py does, and every part of it) edits no
    sys.path and imports neither torch nor ComfyUI; `python scripts/e4e_run.py --help` works from anywhere."""
    import subprocess
    import sys

    code = f"""
import importlib, importlib.util, sys
before = list(sys.path)
spec = importlib.util.spec_from_file_location("e4e_run", {str(es.REPO / "scripts" / "e4e_run.py")!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
for part in ("batch", "cli", "client", "errors", "images", "inprocess", "jobs", "progress", "settings",
             "workflow_fill"):
    importlib.import_module("e4e_headless." + part)
assert sys.path == before, sorted(set(sys.path) ^ set(before))
heavy = sorted(m for m in ("torch", "comfy", "folder_paths", "nodes", "PIL") if m in sys.modules)
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, str(es.REPO / "scripts" / "e4e_run.py"), "--help"], capture_output=True,
                          text=True, timeout=120, cwd="/")
    assert done.returncode == 0 and done.stdout.startswith("usage: e4e_run.py"), done.stderr


@pytest.mark.slow
def test_pip_install_gives_the_e4e_run_command(tmp_path):
    """`pip install .` (no dependencies, the build backend at hand) installs the e4e-run command with the workflow
    files and the authors' settings it reads; in a Python without Pillow it says so in one line."""
    import shutil
    import subprocess
    import sys

    try:
        import setuptools
    except ImportError:
        pytest.skip("no setuptools in this Python to build with")
    if int(setuptools.__version__.split(".")[0]) < 68:
        pytest.skip(f"setuptools {setuptools.__version__} is older than the build needs (68)")
    src = tmp_path / "src"  # a copy: building in the repository would leave build/ and *.egg-info there
    for name in ("pyproject.toml", "README.md", "LICENSE", "engine/models/defaults.py", "engine/models/families.py"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(es.REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(es.REPO / "scripts" / "e4e_headless", src / "scripts" / "e4e_headless", ignore=ignore)
    shutil.copytree(es.WORKFLOWS / "api", src / "workflows" / "api")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    done = subprocess.run(pip + ["wheel", "--no-index", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
                                 str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    venv = tmp_path / "venv"  # sees the base Python's packages (--system-site-packages), not this one's
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(pip + ["--python", str(python), "install", "--no-index", "--no-deps", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    e4e_run = venv / "bin" / "e4e-run"
    done = subprocess.run([str(e4e_run), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("usage: e4e-run"), done.stderr
    code = ("import e4e_headless.settings as s; print(s.API_WORKFLOWS); print(s.AUTHORS_FILE); "
            "print(sorted(p.name for p in s.API_WORKFLOWS.glob('*.api.json'))); print(s.DEFAULTS['steps'])")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and str(venv) in lines[0] and str(venv) in lines[1], done.stdout + done.stderr
    assert lines[2] == str(sorted(f"{n}.api.json" for n in es.WORKFLOW_NAMES)) and lines[3] == "100"
    has_pil = subprocess.run([str(python), "-c", "import PIL"], capture_output=True, timeout=60).returncode == 0
    if not has_pil:
        done = subprocess.run([str(e4e_run), "--server", "http://127.0.0.1:9", "--reference", "a.png", "--target",
                               "b.png"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
        assert "Pillow is missing" in done.stderr


# -------------------------------------------------------------------------------------- example inputs


def test_example_inputs_are_the_files_the_workflows_load():
    """workflows/inputs/ holds every image and mask file the shipped workflows name, 512 px, masks white on black,
    each small enough to commit; scripts/make_example_inputs.py draws exactly them."""
    import importlib.util

    import numpy as np

    named = set()
    for name in es.WORKFLOW_NAMES:
        for node in es.load(name, "api").values():
            inputs = node["inputs"]
            if node["class_type"] in ("LoadImage", "LoadImageMask"):
                named.add(inputs["image"])
            for key in ("reference_mask_file", "target_mask_file"):
                named.update(f.strip() for f in inputs.get(key, "").split(",") if f.strip())
    inputs_dir = es.WORKFLOWS / "inputs"
    assert {p.name for p in inputs_dir.iterdir()} == named
    for file in named:
        path = inputs_dir / file
        assert path.stat().st_size < 300_000
        img = Image.open(path)
        assert img.size == (512, 512)
        if "mask" in file:
            assert img.mode == "L" and set(np.unique(np.asarray(img))) == {0, 255}
            assert 0.02 < (np.asarray(img) > 0).mean() < 0.5  # an object, on black
        else:
            assert img.mode == "RGB"
    spec = importlib.util.spec_from_file_location("make_example_inputs", es.REPO / "scripts" / "make_example_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
