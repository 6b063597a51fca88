"""End to end: a real ComfyUI server (``main.py --cpu``) with this pack in custom_nodes, driven by the
headless runner over HTTP and the websocket, on a random-weight checkpoint with SD1.5's real shapes.

Needs a full ComfyUI checkout (COMFYUI_PATH) and a Python with its requirements (E4E_COMFY_PYTHON, default:
this Python), and ~2.2 GB of disk for the checkpoint (cached in the temp
folder between runs, never in the repository). Run it as

    COMFYUI_PATH=/path/to/ComfyUI E4E_COMFY_PYTHON=/venv/bin/python /venv/bin/python -m pytest tests/test_e2e_server.py
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import e2e_support as es
import harness
import pytest
from PIL import Image

pytestmark = [pytest.mark.server]

SIZE, STEPS, SKIP = 64, 4, 1
CACHE = Path(tempfile.gettempdir()) / "e4e_e2e_random_sd15_fp16.safetensors"


run = es.load_runner()
api = es.runner_part("client")
workflow_fill = es.runner_part("workflow_fill")


def _checkout() -> Path:
    """The full ComfyUI the tests run on (tests/harness.py: there is always one, or the tests do not start)."""
    return harness.setup_host().path


def _skip_reason() -> str | None:
    python = es.comfy_python()
    missing = [m for m in ("aiohttp", "torchsde", "safetensors", "av", "alembic", "requests") if not es.has_module(python, m)]
    if missing:
        return f"end-to-end: {python} lacks ComfyUI's requirements {missing} (set E4E_COMFY_PYTHON)"
    if not CACHE.is_file() and es.disk_free_gb(Path(tempfile.gettempdir())) < 6:
        return "end-to-end: needs ~6 GB of free disk for the random SD1.5 checkpoint"
    return None


@pytest.fixture(scope="module")
def checkpoint():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    start = time.monotonic()
    if not CACHE.is_file():
        es.write_random_sd15(CACHE.with_suffix(".tmp"), _checkout())
        CACHE.with_suffix(".tmp").rename(CACHE)
    print(f"\nrandom SD1.5 checkpoint ready in {time.monotonic() - start:.1f} s")
    return CACHE


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint):
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "models" / "checkpoints").mkdir(parents=True)
    os.symlink(checkpoint, base / "models" / "checkpoints" / run.SD15_CHECKPOINT)
    comfy = es.ComfyServer(_checkout(), base)
    start = time.monotonic()
    try:
        comfy.start()
    except RuntimeError as exc:
        comfy.stop()
        pytest.fail(str(exc))
    print(f"server up in {time.monotonic() - start:.1f} s at {comfy.url}")
    yield comfy
    comfy.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e_images")
    out = {}
    for name, colour in (("reference", (200, 60, 40)), ("reference_2", (40, 60, 200)), ("target", (90, 160, 90))):
        img = Image.new("RGB", (SIZE, SIZE), colour)
        img.paste((250, 250, 250), (SIZE // 4, SIZE // 4, SIZE // 2, SIZE // 2))
        img.save(d / f"{name}.png")
        out[name] = str(d / f"{name}.png")
    for name, box in (("mask_1", (0, 0, SIZE // 2, SIZE)), ("mask_2", (SIZE // 2, 0, SIZE, SIZE))):
        m = Image.new("L", (SIZE, SIZE), 0)
        m.paste(255, box)
        m.save(d / f"{name}.png")
        out[name] = str(d / f"{name}.png")
    return out


def test_object_info_shows_the_pack_nodes_with_tooltips(server):
    info = server.object_info()
    for name in es.PACK_NODES:
        assert name in info, f"{name} not loaded; server log:\n{server.tail()}"
        node = info[name]
        assert node["description"] and node["category"].startswith("appearance transfer")
        for section in ("required", "optional"):
            for key, entry in node["input"].get(section, {}).items():
                assert len(entry) > 1 and entry[1].get("tooltip"), f"{name}.{key} has no tooltip"
        assert node.get("output_tooltips") and all(node["output_tooltips"])


def test_workflows_are_served_as_templates(server):
    """The template browser lists exactly the editor workflows (not the API copies), each with its picture."""
    import json
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(server.url + "/api/workflow_templates", timeout=30) as r:
        listed = json.loads(r.read())
    assert sorted(listed.get("eye_for_an_eye", [])) == sorted(es.title(n) for n in es.WORKFLOW_NAMES)
    for name in es.WORKFLOW_NAMES:
        base = f"{server.url}/api/workflow_templates/eye_for_an_eye/{urllib.parse.quote(es.title(name))}"
        with urllib.request.urlopen(base + ".json", timeout=30) as r:
            assert json.loads(r.read()) == es.load(name, "editor")
        with urllib.request.urlopen(base + ".jpg", timeout=30) as r:
            assert r.headers["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize("masks", [True, False], ids=["sd15_masks", "sd15_whole_image"])
def test_runner_cli_on_a_real_server(server, images, tmp_path, masks, capsys):
    args = ["--server", server.url, "--reference", images["reference"], "--target", images["target"],
            "--size", str(SIZE), "--steps", str(STEPS), "--skip-steps", str(SKIP), "--out", str(tmp_path)]
    if masks:
        args += ["--reference-mask", images["mask_1"], "--target-mask", images["mask_1"]]
    start = time.monotonic()
    rc = run.main(args)
    captured = capsys.readouterr()
    assert rc == 0, f"{captured.err}\nserver log:\n{server.tail()}"
    (path,) = captured.out.split()
    assert Image.open(path).size == (SIZE, SIZE)
    print(f"{'masks' if masks else 'whole image'}: {time.monotonic() - start:.1f} s")


def _run_prompt(server, name: str, uploads: dict, extra=None) -> list[bytes]:
    client = api.ComfyClient(server.url, timeout=120)
    names = {k: client.upload(f"e2e_{name}_{k}.png", Path(v).read_bytes()) for k, v in uploads.items()}
    prompt = workflow_fill.fill_workflow(es.load(name, "api"), names,
                                         {"width": SIZE, "height": SIZE, "steps": STEPS, "skip_steps": SKIP})
    for node in prompt.values():
        (extra or (lambda n, names: None))(node, names)
    entry = client.run(prompt, timeout=1800)
    return [client.view(i) for i in api.saved_images(prompt, entry)]


def test_two_objects_workflow(server, images):
    def extra(node, names):
        title, inputs = node["_meta"]["title"], node["inputs"]
        if title == "Reference image 2":
            inputs["image"] = names["reference_2"]
        if title in ("Scale reference 2",):
            inputs["width"] = inputs["height"] = SIZE
        if title == "Invert reference 2":
            inputs["steps"], inputs["skip_steps"] = STEPS, SKIP
        if node["class_type"] == "E4ELoadMasks":
            inputs["width"] = inputs["height"] = SIZE
            inputs["target_mask_file"] = f"{names['mask_1']},{names['mask_2']}"
            inputs["reference_mask_file"] = f"{names['mask_1']},{names['mask_2']}"

    start = time.monotonic()
    uploads = {k: images[k] for k in ("reference", "reference_2", "target", "mask_1", "mask_2")}
    (png,) = _run_prompt(server, "sd15_two_objects", uploads, extra)
    assert Image.open(io.BytesIO(png)).size == (SIZE, SIZE)
    print(f"two objects: {time.monotonic() - start:.1f} s")


def test_ksampler_advanced_workflow(server, images):
    start = time.monotonic()
    (png,) = _run_prompt(server, "sd15_ksampler_advanced", {k: images[k] for k in ("reference", "target")})
    assert Image.open(io.BytesIO(png)).size == (SIZE, SIZE)
    print(f"KSamplerAdvanced: {time.monotonic() - start:.1f} s")


def test_node_errors_from_a_real_server(server, images, tmp_path, capsys):
    rc = run.main(["--server", server.url, "--reference", images["reference"], "--target", images["target"],
                   "--checkpoint", "no_such_model.safetensors", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "(CheckpointLoaderSimple)" in err and "no_such_model.safetensors" in err


def test_ctrl_c_cancels_the_run_on_a_real_server(server, images, tmp_path, capsys):
    """Ctrl-C while the server samples: the runner interrupts its prompt there (POST /interrupt with the prompt
    id, POST /queue delete), the server stops it (history: execution_interrupted) and runs nothing more of it."""
    import json
    import signal
    import threading
    import urllib.request

    def get(path):
        with urllib.request.urlopen(server.url + path, timeout=30) as r:
            return json.loads(r.read())

    running = []
    main_thread = threading.main_thread().ident

    def ctrl_c_once_running():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            queue = get("/queue")
            if queue["queue_running"]:
                running.append(queue["queue_running"][0][1])
                time.sleep(2.0)  # into the inversion's steps
                signal.pthread_kill(main_thread, signal.SIGINT)  # Ctrl-C: a real SIGINT to the main thread
                return
            time.sleep(0.2)

    threading.Thread(target=ctrl_c_once_running, daemon=True).start()
    try:
        rc = run.main(["--server", server.url, "--reference", images["reference"], "--target", images["target"],
                       "--size", str(SIZE), "--steps", "200", "--skip-steps", str(SKIP), "--out", str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped the runner")
    err = capsys.readouterr().err
    assert rc == 130 and "cancelled" in err.strip().splitlines()[-1], err
    (pid,) = running
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        entry = get(f"/history/{pid}").get(pid)
        if entry is not None:
            break
        time.sleep(0.5)
    messages = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in messages, messages
    assert not get("/queue")["queue_running"] and not list(tmp_path.iterdir())


def test_runner_in_process_with_a_real_checkpoint(checkpoint, images, tmp_path):
    """In-process mode in a fresh Python: the shipped workflow through ComfyUI's executor, the checkpoint by path
    (CheckpointLoaderSimple, the real CLIP), progress lines named by the workflow's titles."""
    import subprocess

    env = dict(os.environ, COMFYUI_PATH=str(_checkout()))
    cmd = [es.comfy_python(), str(es.REPO / "scripts" / "e4e_run.py"), "--reference", images["reference"],
           "--target", images["target"], "--reference-mask", images["mask_1"], "--target-mask", images["mask_1"],
           "--checkpoint", str(checkpoint), "--size", str(SIZE), "--steps", str(STEPS), "--skip-steps", str(SKIP),
           "--out", str(tmp_path)]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = done.stdout.split()
    assert Image.open(path).size == (SIZE, SIZE)
    assert f"[15 Invert reference] step {STEPS}/{STEPS}" in done.stderr, done.stderr[-3000:]
    assert f"[18 Appearance Transfer Sampler] step {STEPS - SKIP}/{STEPS - SKIP}" in done.stderr
    print(f"in-process: {time.monotonic() - start:.1f} s")


def _post_prompt(server, prompt: dict) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"prompt": prompt, "client_id": "e4e-validation"}).encode()
    req = urllib.request.Request(server.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("bad", [("cfg", 0.0), ("steps", 1), ("method", "sideways")], ids=lambda b: b[0])
def test_comfyui_range_checks_stay_active_on_the_inversion_node(server, bad):
    """No VALIDATE_INPUTS on DDIM Invert Reference: ComfyUI itself refuses an out-of-range or unknown value,
    with one error, on the input it concerns (the prompt is refused, so nothing runs)."""
    prompt = es.load("sd15_whole_image", "api")
    for node in prompt.values():  # the images it names, in the server's input folder
        if node["class_type"] == "LoadImage":
            Image.new("RGB", (SIZE, SIZE)).save(server.base / "input" / node["inputs"]["image"])
    inv = next(k for k, n in prompt.items() if n["class_type"] == "E4EDDIMInvertReference")
    name, value = bad
    prompt[inv]["inputs"][name] = value
    status, answer = _post_prompt(server, prompt)
    assert status == 400, answer
    errors = answer["node_errors"][inv]["errors"]
    assert len(errors) == 1 and errors[0]["extra_info"]["input_name"] == name, errors
    assert all(k == inv for k in answer["node_errors"]), answer["node_errors"]
