"""In-process mode: the same API workflow as server mode, run by ComfyUI's own executor in this process.

Needs a full ComfyUI (COMFYUI_PATH, or the ComfyUI whose custom_nodes/ holds this pack) and a Python with its
requirements. The pack is registered from its folder (``nodes.load_custom_node``), the checkpoint is taken by
path (its folder added with ``folder_paths.add_model_folder_path``, the workflow names its file), the images go
into a scratch input folder; then ``execution.validate_prompt`` and ``execution.PromptExecutor``, and the saved
images come from the executor's history. Progress and Ctrl-C work as in server mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .client import saved_images, saved_images_by_node
from .errors import Cancelled, RunError, failure_message, last_line, refused_message
from .host import NoComfyUI, find_comfyui
from .jobs import Job, job_settings, output_path, prepare_inputs, upload_name
from .progress import ProgressLines
from .settings import API_WORKFLOWS, REPO, is_pack
from .workflow_fill import fill_workflow, load_workflow

CPU_WARNING = ("e4e_run: warning: no CUDA GPU, running on the CPU: the defaults (100 inversion steps for each of "
               "the two images, then 68 sampled steps, at 512 px) take over an hour there; try a small run first, "
               "e.g. --steps 20 --size 256")
_cpu_warned = False  # CPU_WARNING is printed once per process
# the folders (folder_paths kinds) the file named by --checkpoint is looked up in; Flux: its text encoders and VAE
# by the workflow's names, next to it
MODEL_KINDS = {False: ("checkpoints",), True: ("diffusion_models", "text_encoders", "vae")}


def comfy_checkout() -> Path:
    """The full ComfyUI to run in (``host.find_comfyui``); RunError when there is none."""
    try:
        return find_comfyui(full=True, repo=REPO)
    except NoComfyUI as e:
        raise RunError(f"in-process mode needs {e}; or pass --server URL") from None


def pack_folder(checkout: Path) -> Path:
    """This pack's folder: the clone the runner lives in, else a copy in the checkout's custom_nodes/."""
    if is_pack(REPO):
        return REPO
    custom = checkout / "custom_nodes"
    for folder in sorted(custom.iterdir()) if custom.is_dir() else ():
        if is_pack(folder):
            return folder
    raise RunError(f"in-process mode needs the node pack: run scripts/e4e_run.py from a clone of it, or install it "
                   f"in {custom}/")


def check_checkpoint(path: str | None):
    if not path:
        raise RunError("in-process mode needs --checkpoint PATH (a checkpoint file; with --flux the diffusion model)")
    if not Path(path).is_file():
        raise RunError(f"--checkpoint: file not found: {path}")


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def warn_if_cpu(settings: dict, log):
    """Once per process, on a machine without CUDA, unless the run is already a small one."""
    global _cpu_warned
    small = (settings.get("steps") or 100) <= 20 and settings["width"] * settings["height"] <= 256 * 256
    if _cpu_warned or small or gpu_available():
        return
    _cpu_warned = True
    log(CPU_WARNING)


class InProcessServer:
    """What ComfyUI's executor and progress handler use of its PromptServer (v0.3.64): events come to
    ``on_event``."""

    def __init__(self, on_event):
        self.client_id = None  # set by the executor from extra_data["client_id"]
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.on_event = on_event
        try:
            from aiohttp import web

            self.routes = web.RouteTableDef()  # packs decorate PromptServer.instance.routes at import time
        except ImportError:
            self.routes = None

    def send_sync(self, event, data, sid=None):
        self.on_event(event, data)

    def send_progress_text(self, text, node_id, sid=None):
        pass

    def queue_updated(self):
        pass


class OptionalImports(logging.Filter):
    """While ComfyUI imports its modules: its warnings about what this Python lacks for optional parts (a
    traceback for each extra built-in node module that needs torchaudio, "torchaudio missing, ACE model will be
    broken"; with ``every_warning``, all its warnings: init_extra_nodes warns of nothing else) are held back and
    summed up in one line; errors pass. A node the workflow needs and could not get is still refused by name
    after."""

    _FAILED = re.compile(r"Cannot import (.+?) module for custom nodes: (.*)", re.S)
    _BROKEN = re.compile(r"(\S+) missing, (.+) will be broken$")
    _TRACEBACK = "Traceback (most recent call last)"

    def __init__(self, every_warning: bool = False):
        super().__init__()
        self.every_warning = every_warning  # init_extra_nodes: its warnings are all about modules that failed
        self.failed: dict[str, str] = {}  # module (or model) -> why

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        msg = record.getMessage()
        if m := self._FAILED.match(msg):
            self.failed[Path(m.group(1)).stem] = last_line(m.group(2))
        elif m := self._BROKEN.match(msg):
            self.failed[m.group(2)] = f"No module named '{m.group(1)}'"
        elif not (self.every_warning or msg.startswith(self._TRACEBACK)):
            return True
        return False

    @contextlib.contextmanager
    def held(self, log):
        root = logging.getLogger()
        root.addFilter(self)
        try:
            yield self
        finally:
            root.removeFilter(self)
            if self.failed:
                log(self.summary())

    def summary(self) -> str:
        reasons: dict[str, list[str]] = {}
        for name, why in self.failed.items():
            reasons.setdefault(why, []).append(name)
        parts = "; ".join(f"{', '.join(sorted(names))} ({why})" for why, names in sorted(reasons.items()))
        return f"e4e_run: optional parts of ComfyUI not loaded (this Python lacks what they need): {parts}"


class Comfy:
    """ComfyUI's modules, imported from ``checkout`` with its folders at ``base``; ``close()`` puts back what it
    changed in modules it did not import (when the runner shares a process with other ComfyUI code)."""

    def __init__(self, checkout: Path, base: Path, log):
        self.log, self.base = log, base
        for sub in ("input", "output", "temp", "user"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        # ComfyUI is no installed package: its modules import from its folder, as main.py run from there does
        if str(checkout) not in sys.path:
            sys.path.insert(0, str(checkout))
        import comfy.cli_args  # never comfy.options.enable_args_parsing(): ComfyUI would parse our argv

        if not gpu_available():
            comfy.cli_args.args.cpu = True  # read when comfy.model_management is imported
        if "folder_paths" not in sys.modules:
            comfy.cli_args.args.base_directory = str(base)  # read when folder_paths is imported
        import folder_paths

        self.folder_paths = fp = folder_paths
        self.saved_dirs = (fp.get_input_directory(), fp.get_output_directory(), fp.get_temp_directory(),
                           fp.get_user_directory())
        fp.set_input_directory(str(base / "input"))
        fp.set_output_directory(str(base / "output"))
        fp.set_temp_directory(str(base / "temp"))
        fp.set_user_directory(str(base / "user"))
        self.added_model_dirs: list[tuple[str, str]] = []
        import comfy.model_management
        import comfy.utils

        try:  # before nodes.py puts comfy/ on sys.path: server.py needs the package utils, not comfy/utils.py
            import utils.extra_config  # noqa: F401
        except ImportError:
            pass
        with OptionalImports().held(log):
            import execution

            import nodes

        if Path(nodes.__file__).resolve() != (checkout / "nodes.py").resolve():
            raise RunError(f"'import nodes' gave {nodes.__file__}, not {checkout / 'nodes.py'}: run from another folder")
        self.mm, self.utils, self.execution, self.nodes = comfy.model_management, comfy.utils, execution, nodes
        from comfy_execution.progress import get_progress_state
        from comfy_execution.utils import get_executing_context

        self.get_progress_state, self.get_executing_context = get_progress_state, get_executing_context

    def output_file(self, image: dict) -> Path:
        """The file of a saved image as the executor's history names it."""
        return Path(self.folder_paths.get_directory_by_type(image.get("type", "output")), image.get("subfolder", ""),
                    image["filename"])

    def add_model_folder(self, kind: str, folder: str):
        paths = self.folder_paths.folder_names_and_paths.get(kind, ([],))[0]
        if folder not in paths:
            self.added_model_dirs.append((kind, folder))
        self.folder_paths.add_model_folder_path(kind, folder, is_default=True)

    def register_pack(self, pack: Path):
        """The pack's nodes in ComfyUI's registry, loaded from its folder as ComfyUI loads custom_nodes/ (unless
        they are there already: the runner inside ComfyUI, a second run)."""
        registry = self.nodes.NODE_CLASS_MAPPINGS
        init = (pack / "__init__.py").resolve()
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve() == init:
                mapping = getattr(module, "NODE_CLASS_MAPPINGS", None) or {}
                if mapping and all(registry.get(k) is v for k, v in mapping.items()):
                    return
        ok = asyncio.run(self.nodes.load_custom_node(str(pack), ignore=set(registry)))
        if not ok:
            raise RunError(f"ComfyUI could not load the node pack from {pack} (its log above says why)")

    @staticmethod
    def prompt_server():
        """ComfyUI's server.PromptServer class (None where server.py cannot be imported: no node then needs it)."""
        try:
            import server
        except ImportError:
            return None
        return server.PromptServer

    def require(self, prompt: dict):
        """ComfyUI's extra built-in nodes (comfy_extras: FluxGuidance...) when the workflow uses one."""
        missing = {n["class_type"] for n in prompt.values()} - set(self.nodes.NODE_CLASS_MAPPINGS)
        if missing:
            with OptionalImports(every_warning=True).held(self.log):
                asyncio.run(self.nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        missing = {n["class_type"] for n in prompt.values()} - set(self.nodes.NODE_CLASS_MAPPINGS)
        if missing:
            raise RunError(f"workflow: ComfyUI has no node types {sorted(missing)}")

    def close(self):
        fp = self.folder_paths
        for setter, folder in zip((fp.set_input_directory, fp.set_output_directory, fp.set_temp_directory,
                                   fp.set_user_directory), self.saved_dirs):
            setter(folder)
        for kind, folder in self.added_model_dirs:
            paths = fp.folder_names_and_paths[kind][0]
            if folder in paths:
                paths.remove(folder)


class Runner:
    """ComfyUI's executor with the 'server' it reports to, for every job of a run (its cache keeps the loaded
    checkpoint between jobs)."""

    def __init__(self, comfy: Comfy, log):
        self.comfy, self.log = comfy, log
        self.progress = None
        self.server = InProcessServer(self.on_event)
        self.executor = comfy.execution.PromptExecutor(self.server, cache_type=comfy.execution.CacheType.CLASSIC)
        self.pressed = False  # Ctrl-C

    def on_event(self, event, data):
        if event == "progress" and self.progress is not None:
            self.progress.step(data.get("node"), data.get("value"), data.get("max"))

    def hook(self, value, total, preview_image, prompt_id=None, node_id=None):
        """comfy.utils' progress-bar hook, as main.py's: a step of a node (and where Ctrl-C stops a sampler)."""
        comfy, server = self.comfy, self.server
        context = comfy.get_executing_context()
        if context is not None:
            prompt_id, node_id = prompt_id or context.prompt_id, node_id or context.node_id
        comfy.mm.throw_exception_if_processing_interrupted()
        node_id = node_id or server.last_node_id
        comfy.get_progress_state().update_progress(node_id, value, total, preview_image)
        server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id or server.last_prompt_id,
                                      "node": node_id}, server.client_id)

    def on_sigint(self, signum, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        self.log("e4e_run: stopping at the next step (Ctrl-C again to stop at once)")
        self.comfy.mm.interrupt_current_processing(True)

    def execute(self, prompt: dict) -> dict:
        """Validate and run ``prompt``; its history outputs ({node id: ui dict}). The first Ctrl-C stops the run at
        the next step (ComfyUI's interrupt flag), a second one at once."""
        comfy = self.comfy
        prompt_id = str(uuid.uuid4())
        ok, error, outputs, node_errors = asyncio.run(comfy.execution.validate_prompt(prompt_id, prompt, None))
        if not ok or node_errors:  # ComfyUI runs the outputs that validate; a transfer needs all of them
            raise RunError(refused_message({"error": error, "node_errors": node_errors}, "ComfyUI"))
        self.progress = ProgressLines(prompt, self.log)
        self.server.last_prompt_id = prompt_id
        prompt_server = comfy.prompt_server()  # nodes reach the server as server.PromptServer.instance
        saved = (comfy.utils.PROGRESS_BAR_HOOK, getattr(prompt_server, "instance", None))
        main_thread = threading.current_thread() is threading.main_thread()
        old_handler = signal.signal(signal.SIGINT, self.on_sigint) if main_thread else None
        comfy.utils.set_progress_bar_global_hook(self.hook)
        if prompt_server is not None:
            prompt_server.instance = self.server
        try:
            self.executor.execute(prompt, prompt_id, extra_data={"client_id": "e4e-run"}, execute_outputs=outputs)
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, old_handler)
            comfy.utils.set_progress_bar_global_hook(saved[0])
            if prompt_server is not None:
                prompt_server.instance = saved[1]
        events = dict(self.executor.status_messages)
        if self.pressed or "execution_interrupted" in events:
            raise Cancelled("cancelled")
        if "execution_error" in events:
            raise RunError(failure_message(events["execution_error"]))
        if "execution_success" not in events:
            raise RunError("ComfyUI's executor ended without success")
        return self.executor.history_result["outputs"]


@contextlib.contextmanager
def comfy_session(checkout: Path, pack: Path, prefix: str, log, model_folders: tuple = ()):
    """ComfyUI imported from ``checkout`` with scratch folders, ``model_folders`` ((kind, folder) pairs) added and
    the pack registered; everything put back and the scratch removed afterwards. A second Ctrl-C is Cancelled."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    comfy = None
    try:
        try:
            comfy = Comfy(checkout, base, log)
        except ImportError as exc:
            raise RunError(f"ComfyUI does not import in {sys.executable} ({exc}): run with ComfyUI's Python, or "
                           f"pip install -r {checkout / 'requirements.txt'}") from None
        for kind, folder in model_folders:
            comfy.add_model_folder(kind, folder)
        comfy.register_pack(pack)
        yield comfy
    except KeyboardInterrupt:  # a second Ctrl-C
        raise Cancelled("cancelled") from None
    finally:
        if comfy is not None:
            comfy.close()
        shutil.rmtree(base, ignore_errors=True)


def require_torch():
    if importlib.util.find_spec("torch") is None:
        raise RunError(f"in-process mode runs with ComfyUI's Python; {sys.executable} has no torch (or pass "
                       "--server URL)")


def run_demo(out_dir: Path, log, pair_seed: int | None = None) -> list[str]:
    """The toy world demo (workflows/api/toy_world.api.json): the bundled toy model, a generated pair of creatures,
    no checkpoint, no server; the method and position matching on the same inversions. Writes the sheet (reference
    | target | the method's result | position matching's result, enlarged without smoothing) and the method's
    correspondence picture into ``out_dir``; returns their paths (every image the workflow saves, in its order)."""
    checkout = comfy_checkout()
    pack = pack_folder(checkout)
    require_torch()
    prompt = load_workflow(API_WORKFLOWS / "toy_world.api.json")
    if pair_seed is not None:
        creatures = [k for k, n in prompt.items() if n["class_type"] == "E4EToyCreatures"]
        if len(creatures) != 1:
            raise RunError("workflows/api/toy_world.api.json: expected one Toy Creatures node")
        prompt[creatures[0]]["inputs"]["seed"] = pair_seed
    log(f"e4e_run: the toy world demo (no checkpoint, no server) on the ComfyUI at {checkout}")
    paths = []
    with comfy_session(checkout, pack, "e4e_demo_", log) as comfy:
        comfy.require(prompt)
        start = time.monotonic()
        outputs = Runner(comfy, log).execute(prompt)
        out_dir.mkdir(parents=True, exist_ok=True)
        for node_id, k, image in saved_images_by_node(prompt, {"outputs": outputs}):
            source = comfy.output_file(image)
            path = out_dir / f"{prompt[node_id]['inputs']['filename_prefix']}{f'_{k}' if k else ''}{source.suffix}"
            shutil.copyfile(source, path)
            paths.append(str(path))
        if not paths:
            raise RunError("the demo finished without a saved image")
        log(f"done: the toy world demo ({time.monotonic() - start:.1f} s)")
    return paths


def run_in_process(jobs: list[Job], workflows: dict, settings: dict, size: tuple[int, int], out_dir: Path, log,
                   checkpoint: str | None, flux: bool = False):
    """Each job through ComfyUI's executor in this process; each job's outcome is filled in. Raises Cancelled
    after Ctrl-C."""
    checkout = comfy_checkout()
    check_checkpoint(checkpoint)
    pack = pack_folder(checkout)
    require_torch()
    warn_if_cpu(settings, log)
    folders = tuple((kind, str(Path(checkpoint).resolve().parent)) for kind in MODEL_KINDS[flux])
    with comfy_session(checkout, pack, "e4e_inprocess_", log, folders) as comfy:
        settings = dict(settings, checkpoint=Path(checkpoint).name)
        out_dir.mkdir(parents=True, exist_ok=True)
        runner = Runner(comfy, log)
        for job in jobs:
            if runner.pressed:
                raise Cancelled("cancelled")
            start = time.monotonic()
            job.attempts += 1
            job.server = "in-process"
            try:
                names = {}
                for key, data in prepare_inputs(job, size).items():
                    names[key] = upload_name(key, data)
                    (comfy.base / "input" / names[key]).write_bytes(data)
                prompt = fill_workflow(workflows["masks" if job.reference_mask else "whole"], names,
                                       job_settings(job, settings))
                comfy.require(prompt)
                outputs = runner.execute(prompt)
                images = saved_images(prompt, {"outputs": outputs})
                if not images:
                    raise RunError("the run finished without a saved image")
                for k, image in enumerate(images):
                    source = comfy.output_file(image)
                    path = output_path(out_dir, job, k, source.suffix)
                    shutil.copyfile(source, path)
                    job.outputs.append(str(path))
                job.error, job.done = None, True
            except Cancelled:
                raise
            except RunError as exc:
                job.error = str(exc)
            except Exception as exc:  # anything else, in one line, with the job; go on with the next one
                job.error = f"{type(exc).__name__}: {last_line(exc)}"
            job.seconds = time.monotonic() - start
            log(f"{'done' if job.done else 'failed'}: {job.name} ({job.seconds:.1f} s)")
            comfy.mm.soft_empty_cache()
