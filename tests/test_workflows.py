"""The shipped workflows (workflows/NAME.json, NAME.jpg, api/NAME.api.json) against the real node definitions.

This pack's nodes: their real INPUT_TYPES. ComfyUI's built-ins: tests/comfy_builtins.json, or the real
nodes.py when a full ComfyUI checkout is the host (COMFYUI_PATH).
"""

from __future__ import annotations

import importlib.util
import io
import sys

import e2e_support as es
import harness
import pytest

NAMES = es.WORKFLOW_NAMES


@pytest.fixture(scope="module")
def specs(pack):
    checkout = harness.find_checkout()
    builtins = es.real_builtin_specs(checkout) if checkout is not None else es.builtin_specs()
    return {**builtins, **es.pack_specs(pack)}


@pytest.fixture(scope="module")
def runner():
    path = es.REPO / "scripts" / "e4e_run.py"
    spec = importlib.util.spec_from_file_location("e4e_run", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("e4e_run", module)
    spec.loader.exec_module(module)
    return module


def test_builtin_spec_has_every_builtin_used():
    spec = es.builtin_specs()
    assert set(es.BUILTINS) <= set(spec)
    for name in es.BUILTINS:
        assert {"input", "output", "output_name"} <= set(spec[name])


def test_real_nodes_match_the_checked_in_spec(host):
    """With a full ComfyUI, the checked-in spec must agree with nodes.py on input names and types."""
    if not host.full:
        pytest.skip("needs a full ComfyUI checkout (COMFYUI_PATH) to compare with its nodes.py")
    real, stored = es.real_builtin_specs(host.path), es.builtin_specs()
    for name in es.BUILTINS:
        assert name in real, f"{name} is not in this ComfyUI's NODE_CLASS_MAPPINGS"
        for section in ("required", "optional"):
            r = {k: (v[0] if not isinstance(v[0], list) else "COMBO") for k, v in real[name]["input"].get(section, {}).items()}
            s = {k: (v[0] if not isinstance(v[0], list) else "COMBO") for k, v in stored[name]["input"].get(section, {}).items()}
            assert r == s, f"{name} {section}: nodes.py {r} vs comfy_builtins.json {s}"
        assert real[name]["output"] == stored[name]["output"]


def test_shipped_files_are_exactly_the_workflows():
    """Every workflow has its editor file and thumbnail in workflows/ (ComfyUI lists each workflows/*.json as a
    template, with NAME.jpg as its picture) and its API file in workflows/api/; nothing else lies there."""
    expected = {f"{n}{ext}" for n in NAMES for ext in (".json", ".jpg")}
    expected |= {f"api/{n}.api.json" for n in NAMES}
    present = {str(p.relative_to(es.WORKFLOWS)) for p in es.WORKFLOWS.rglob("*") if p.is_file()}
    assert present == expected


@pytest.mark.parametrize("name", NAMES)
def test_thumbnail(name):
    from PIL import Image

    data = (es.WORKFLOWS / f"{name}.jpg").read_bytes()
    assert len(data) < 50_000
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    assert 200 <= img.width <= 1024 and 100 <= img.height <= 1024


@pytest.mark.parametrize("name", NAMES)
def test_editor_format_matches_node_definitions(name, specs):
    wf = es.load(name, "editor")
    assert es.check_editor(wf, specs) == []


@pytest.mark.parametrize("name", NAMES)
def test_api_format_matches_node_definitions(name, specs):
    prompt = es.load(name, "api")
    assert es.check_api(prompt, specs) == []


@pytest.mark.parametrize("name", NAMES)
def test_editor_and_api_describe_the_same_graph(name, specs):
    assert es.editor_to_api(es.load(name, "editor"), specs) == es.load(name, "api")


@pytest.mark.parametrize("name", NAMES)
def test_only_this_packs_nodes_and_listed_builtins(name):
    types = {n["class_type"] for n in es.load(name, "api").values()}
    assert types <= set(es.PACK_NODES) | set(es.BUILTINS)
    assert {"E4EDDIMInvertReference", "E4ESemanticMatchPatch", "SaveImage"} <= types


def _by_title(prompt: dict, title: str) -> dict:
    found = [n for n in prompt.values() if n["_meta"]["title"] == title]
    assert len(found) == 1, f"{len(found)} nodes titled {title!r}"
    return found[0]


def _source(prompt: dict, value) -> dict:
    return prompt[value[0]]


@pytest.mark.parametrize("name", NAMES)
def test_authors_defaults(name, runner):
    D, T = runner.DEFAULTS, runner.TITLES
    prompt = es.load(name, "api")
    size = D["sdxl_size"] if name == "sdxl" else D["size"]
    ckpt = runner.SDXL_CHECKPOINT if name == "sdxl" else runner.SD15_CHECKPOINT
    assert _by_title(prompt, T["checkpoint"])["inputs"]["ckpt_name"] == ckpt
    assert _by_title(prompt, T["prompt"])["inputs"]["text"].startswith("A photo of a ")
    assert _by_title(prompt, T["negative"])["inputs"]["text"] == ""
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "CLIPTextEncode":  # one prompt for every branch: all conditioning from 2 nodes
            assert node["_meta"]["title"] in (T["prompt"], T["negative"])
        if node["class_type"] == "ImageScale":
            assert (inputs["width"], inputs["height"]) == (size, size)
        if node["class_type"] == "VAEEncode":  # both images scaled to the same size first
            assert _source(prompt, inputs["pixels"])["class_type"] == "ImageScale"
        if node["class_type"] == "E4EDDIMInvertReference":
            assert (inputs["steps"], inputs["skip_steps"], inputs["cfg"]) == (100, 32, 3.5)
            assert _source(prompt, inputs["positive"])["_meta"]["title"] == T["prompt"]
            assert _source(prompt, inputs["negative"])["_meta"]["title"] == T["negative"]
        if node["class_type"] == "E4EAppearanceTransferSampler":
            assert inputs["cfg"] == 2.5
    masks = [n for n in prompt.values() if n["class_type"] == "E4ELoadMasks"]
    patch = _by_title(prompt, T["patch"])["inputs"]
    if name in ("sd15_masks", "sdxl", "sd15_two_objects"):
        assert len(masks) == 1 and patch["masks"][0] in prompt
    else:
        assert not masks and "masks" not in patch


def test_two_objects_take_two_references():
    prompt = es.load("sd15_two_objects", "api")
    patch = next(n for n in prompt.values() if n["class_type"] == "E4ESemanticMatchPatch")["inputs"]
    assert prompt[patch["reference_2"][0]]["class_type"] == "E4EDDIMInvertReference"
    masks = next(n for n in prompt.values() if n["class_type"] == "E4ELoadMasks")["inputs"]
    assert masks["reference_of_object"] == "1,2"
    assert len(masks["target_mask_file"].split(",")) == len(masks["reference_mask_file"].split(",")) == 2


def test_ksampler_advanced_follows_the_target_inversion():
    prompt = es.load("sd15_ksampler_advanced", "api")
    ks = next(n for n in prompt.values() if n["class_type"] == "KSamplerAdvanced")["inputs"]
    start = prompt[ks["latent_image"][0]]
    assert start["class_type"] == "E4EDDIMInvertReference" and ks["latent_image"][1] == 1  # start_latent
    inv = start["inputs"]
    assert inv["method"] == "ddim"
    assert ks["add_noise"] == "disable" and ks["sampler_name"] == "ddim"
    assert ks["start_at_step"] == inv["skip_steps"] and ks["steps"] == inv["steps"]
    assert ks["scheduler"] == inv["scheduler"]
    assert ks["end_at_step"] >= ks["steps"]
    assert prompt[ks["model"][0]]["class_type"] == "E4ESemanticMatchPatch"


def test_generated_files_are_up_to_date():
    """workflows/*.json are what scripts/make_workflows.py writes now (the node definitions did not move)."""
    path = es.REPO / "scripts" / "make_workflows.py"
    spec = importlib.util.spec_from_file_location("make_workflows", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_workflows"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    files = module.render(module.node_specs())
    stale = [n for n, data in files.items() if n.endswith(".json") and (es.WORKFLOWS / n).read_bytes() != data]
    assert not stale, f"out of date (run scripts/make_workflows.py): {stale}"


def test_checks_catch_broken_workflows(specs):
    """The checks themselves: a wrong type, a bad range, a dangling link and a drifted API file are caught."""
    wf = es.load("sd15_masks", "editor")
    inv = next(n for n in wf["nodes"] if n["type"] == "E4EDDIMInvertReference")
    inv["widgets_values"][0] = 1  # steps below min 2
    scale = next(n for n in wf["nodes"] if n["type"] == "ImageScale")
    scale["widgets_values"][0] = "sideways"
    wf["links"][0][5] = "LATENT"
    problems = "\n".join(es.check_editor(wf, specs))
    assert "below min" in problems and "sideways" in problems and "link 1" in problems

    prompt = es.load("sd15_masks", "api")
    node = next(n for n in prompt.values() if n["class_type"] == "VAEEncode")
    node["inputs"]["vae"] = [node["inputs"]["vae"][0], 0]  # MODEL output into a VAE input
    node["inputs"]["bogus"] = 1
    dec = next(n for n in prompt.values() if n["class_type"] == "VAEDecode")
    dec["inputs"]["samples"] = ["999", 0]
    problems = "\n".join(es.check_api(prompt, specs))
    assert "takes VAE" in problems and "bogus" in problems and "missing node 999" in problems

    assert es.editor_to_api(es.load("sd15_masks", "editor"), specs) != es.load("sd15_whole_image", "api")
