"""The shipped workflows (workflows/TITLE.json, TITLE.jpg, api/NAME.api.json; TITLE from make_workflows.TEMPLATES),
their example inputs and the editor's list of them (web/js/e4e_templates.js).

API files are checked by ComfyUI's own prompt validation (the code behind ``POST /prompt``) of a full checkout;
the editor files by the real editor, in tests/test_web.py. What the pack means by them (the authors' settings,
which image goes where) is checked here on any host.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import e2e_support as es
import pytest

NAMES = es.WORKFLOW_NAMES


@pytest.fixture(scope="module")
def runner():
    return es.load_runner()


def test_shipped_files_are_exactly_the_workflows():
    """Every workflow has its editor file and thumbnail in workflows/ (ComfyUI lists each workflows/*.json as a
    template, with TITLE.jpg as its picture) and its API file in workflows/api/; nothing else lies there (the
    example images in workflows/inputs/ aside)."""
    titles = [es.title(n) for n in NAMES]
    expected = {f"{t}{ext}" for t in titles for ext in (".json", ".jpg")}
    expected |= {f"api/{n}.api.json" for n in NAMES}
    present = {str(p.relative_to(es.WORKFLOWS)) for p in es.WORKFLOWS.rglob("*")
               if p.is_file() and p.relative_to(es.WORKFLOWS).parts[0] != "inputs"}
    assert present == expected
    assert not (es.WORKFLOWS / "index.json").exists()  # ComfyUI 0.3.64 would list it as a broken template


def test_template_titles_read_as_titles():
    """The template browser shows the file name as the card's title, cut after about 24 characters: short titles
    that differ in their first words (the category already says Eye-for-an-eye), the one that runs without a
    checkpoint first, in characters both frontends fetch as they are and every file system takes."""
    templates = es.make_workflows().TEMPLATES
    titles = list(templates.values())
    assert len(set(titles)) == len(titles) == len(NAMES)
    assert next(iter(templates)) == "toy_world" and "no checkpoint" in titles[0]
    assert len({t[:24] for t in titles}) == len(titles), "two titles alike in their first 24 characters"
    assert len({" ".join(t.split()[:2]) for t in titles}) == len(titles), "two titles alike in their first words"
    for t in titles:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 .()-]+", t) and len(t) <= 26, t
        assert "Eye-for-an-eye" not in t and "  " not in t and not t.endswith((".", " ")), t


@pytest.mark.parametrize("name", NAMES)
def test_each_template_says_what_it_does(name):
    """A card description (extra.e4e.summary, which web/js/e4e_templates.js carries to the browser) and a Markdown
    Note in the graph, as ComfyUI's own templates have: what it does, its models with their links and folders, the
    inputs, what the outputs show. The Note is the editor's only: the API file has no such node."""
    workflow = es.load(name)
    e4e = workflow["extra"]["e4e"]
    # one sentence that a card shows whole (1.27 cuts a card's description after two lines, about 60 characters)
    assert 20 < len(e4e["summary"]) <= 60 and e4e["summary"].endswith("."), e4e["summary"]
    (note,) = [n for n in workflow["nodes"] if n["type"] == "MarkdownNote"]
    text = note["widgets_values"][0]
    assert e4e["about"] in text and "**What comes out:**" in text
    for model in workflow["models"]:
        assert f"[{model['name']}]({model['url']})" in text and f"models/{model['directory']}/" in text
    if any(n["type"] in ("LoadImage", "LoadImageMask") for n in workflow["nodes"]):
        assert "input folder" in text and "never overwrites" in text
    if any(n["class_type"] == "E4EAppearanceTransferSampler" for n in es.load(name, "api").values()):
        assert "colour code" in text and "Dark grey: outside the masks" in text
    assert str(note["id"]) not in es.load(name, "api") and note["id"] == workflow["last_node_id"]
    assert "ds" not in workflow["extra"]  # opened fitted to the graph (web/js/e4e_browser.js makes that readable)
    data = (es.REPO / "web" / "js" / "e4e_templates.js").read_text()
    assert json.dumps(e4e["title"]) in data and json.dumps(e4e["summary"]) in data


LOADERS = {"CheckpointLoaderSimple": ("ckpt_name",), "UNETLoader": ("unet_name",), "VAELoader": ("vae_name",),
           "CLIPLoader": ("clip_name",), "DualCLIPLoader": ("clip_name1", "clip_name2")}


@pytest.mark.parametrize("name", NAMES)
def test_every_model_a_template_loads_has_its_download_link(name):
    """Each loader carries properties.models (name, url, directory: where both frontends look when the file is
    missing, as in ComfyUI's own templates) for the file it names, and the workflow's models list holds them all."""
    workflow = es.load(name)
    api = es.load(name, "api")
    declared = []
    for node in workflow["nodes"]:
        if node["type"] not in LOADERS:
            continue
        values = api[str(node["id"])]["inputs"]
        named = [values[w] for w in LOADERS[node["type"]]]
        models = node["properties"]["models"]
        assert [m["name"] for m in models] == named, node["title"]
        for m in models:
            assert m["url"].startswith("https://huggingface.co/") and m["url"].split("?")[0].endswith(m["name"]), m
            assert m["directory"] in ("checkpoints", "diffusion_models", "text_encoders", "vae"), m
        declared += [m for m in models if m not in declared]
    assert workflow["models"] == declared
    assert bool(declared) == (name != "toy_world")


def test_the_download_links_are_comfyuis_own():
    """The links are those of ComfyUI's own templates (the comfyui-workflow-templates package ComfyUI installs);
    SD1.5's full-precision file is in the same Comfy-Org archive as the fp16 file those templates use."""
    templates = pytest.importorskip("comfyui_workflow_templates", reason="ComfyUI's templates package")
    folder = Path(templates.__file__).parent / "templates"
    theirs = set()
    for path in folder.glob("*.json"):
        theirs.update(re.findall(r'"(https://huggingface\.co/[^"]+)"', path.read_text(errors="replace")))
    for name, (url, _) in es.make_workflows().MODEL_LINKS.items():
        if name == "v1-5-pruned-emaonly.safetensors":
            archive = "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
            assert url == archive + name and archive + "v1-5-pruned-emaonly-fp16.safetensors" in theirs
        else:
            assert url in theirs, url


def _example_inputs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("e4e_example_inputs", es.REPO / "nodes" / "example_inputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_inputs_go_into_the_input_folder_and_never_over_a_file(tmp_path, caplog):
    """What the pack does at import: every example image into ComfyUI's input folder when absent; a user's file of
    the same name stays as it is; a second import copies nothing; a folder that cannot be written is logged."""
    import logging

    module = _example_inputs()
    shipped = sorted(p.name for p in module.EXAMPLES.glob("*.png"))
    assert len(shipped) == 10
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "e4e_target.png").write_bytes(b"the user's own picture")
    with caplog.at_level(logging.INFO, logger="eye_for_an_eye"):
        copied = module.copy_example_inputs(folder)
    assert copied == [n for n in shipped if n != "e4e_target.png"]
    assert (folder / "e4e_target.png").read_bytes() == b"the user's own picture"
    assert all((folder / n).read_bytes() == (module.EXAMPLES / n).read_bytes() for n in copied)
    assert "copied 9 example input(s)" in caplog.text
    assert module.copy_example_inputs(folder) == []
    blocked = tmp_path / "a file" / "input"
    blocked.parent.write_text("not a folder")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eye_for_an_eye"):
        assert module.copy_example_inputs(blocked) == []
    assert "could not put the example inputs" in caplog.text and "workflows/inputs" in caplog.text


def test_the_template_category_is_labelled():
    """locales/en/main.json names the pack's category in the template browser, under the folder names a clone
    gets (the server keys templates by the folder under custom_nodes)."""
    import json

    labels = json.loads((es.REPO / "locales" / "en" / "main.json").read_text())["templateWorkflows"]["category"]
    assert labels["eye_for_an_eye"] == "Eye-for-an-eye"
    assert set(labels.values()) == {"Eye-for-an-eye"}


@pytest.mark.parametrize("name", NAMES)
def test_thumbnail(name):
    """Square (the browser shows it square), large enough for its text to be read on a card."""
    from PIL import Image

    data = (es.WORKFLOWS / f"{es.title(name)}.jpg").read_bytes()
    assert len(data) < 50_000
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    assert img.width == img.height == 400


@pytest.mark.server
@pytest.mark.parametrize("name", NAMES)
def test_comfyui_validates_the_api_workflow(name, real_comfy):
    valid, node_errors, error = real_comfy.validate(es.load(name, "api"))
    assert valid and not node_errors, (error, node_errors)


@pytest.mark.server
def test_comfyui_validation_catches_broken_workflows(real_comfy):
    """The check can fail: a bad range, a bad choice, a link into the wrong type, a dangling link."""
    prompt = es.load("sd15_masks", "api")
    inv = next(k for k, n in prompt.items() if n["class_type"] == "E4EDDIMInvertReference")
    prompt[inv]["inputs"]["cfg"] = 0.0
    scale = next(k for k, n in prompt.items() if n["class_type"] == "ImageScale")
    prompt[scale]["inputs"]["crop"] = "sideways"
    valid, node_errors, _ = real_comfy.validate(prompt)
    assert not valid
    kinds = {(e["type"], e["extra_info"]["input_name"]) for n in node_errors.values() for e in n["errors"]}
    assert ("value_smaller_than_min", "cfg") in kinds and ("value_not_in_list", "crop") in kinds
    prompt = es.load("sd15_masks", "api")
    enc = next(k for k, n in prompt.items() if n["class_type"] == "VAEEncode")
    prompt[enc]["inputs"]["vae"] = [prompt[enc]["inputs"]["vae"][0], 0]  # the checkpoint's MODEL into a VAE input
    valid, node_errors, error = real_comfy.validate(prompt)
    assert not valid and "return_type_mismatch" in str(node_errors)


@pytest.mark.parametrize("name", NAMES)
def test_only_this_packs_nodes_and_listed_builtins(name):
    types = {n["class_type"] for n in es.load(name, "api").values()}
    assert types <= set(es.PACK_NODES) | set(es.BUILTINS)
    assert {"E4EDDIMInvertReference", "E4ESemanticMatchPatch"} <= types
    assert types & {"SaveImage", "SaveAnimatedWEBP"}


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
    if name == "toy_world":
        _check_toy_world(prompt)
        return
    if name in ("qwen_image", "wan_t2v"):
        _check_dit_defaults(name, prompt, runner)
        return
    flux = name == "flux"
    size = D["sdxl_size"] if name == "sdxl" else D["flux_size"] if flux else D["size"]
    if flux:
        assert _by_title(prompt, T["unet"])["inputs"]["unet_name"] == runner.FLUX_MODEL
    else:
        ckpt = runner.SDXL_CHECKPOINT if name == "sdxl" else runner.SD15_CHECKPOINT
        assert _by_title(prompt, T["checkpoint"])["inputs"]["ckpt_name"] == ckpt
    assert _by_title(prompt, T["prompt"])["inputs"]["text"].startswith("A photo of a ")
    assert _by_title(prompt, T["negative"])["inputs"]["text"] == ""
    positive = T["guidance"] if flux else T["prompt"]
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "CLIPTextEncode":  # one prompt for every branch: all conditioning from 2 nodes
            assert node["_meta"]["title"] in (T["prompt"], T["negative"])
        if node["class_type"] == "ImageScale":
            assert (inputs["width"], inputs["height"]) == (size, size)
        if node["class_type"] == "VAEEncode":  # both images scaled to the same size first
            assert _source(prompt, inputs["pixels"])["class_type"] == "ImageScale"
        if node["class_type"] == "E4EDDIMInvertReference":
            expected = (D["flux_steps"], D["flux_skip_steps"], D["flux_cfg"]) if flux else (100, 32, 3.5)
            assert (inputs["steps"], inputs["skip_steps"], inputs["cfg"]) == expected
            assert _source(prompt, inputs["positive"])["_meta"]["title"] == positive
            assert _source(prompt, inputs["negative"])["_meta"]["title"] == T["negative"]
        if node["class_type"] == "E4EAppearanceTransferSampler":
            assert inputs["cfg"] == (D["flux_cfg"] if flux else 2.5) and inputs["ending"] == "authors"
    masks = [n for n in prompt.values() if n["class_type"] == "E4ELoadMasks"]
    patch = _by_title(prompt, T["patch"])["inputs"]
    if name in ("sd15_masks", "sdxl", "sd15_two_objects", "flux"):
        assert len(masks) == 1 and patch["masks"][0] in prompt
    else:
        assert not masks and "masks" not in patch


def _check_toy_world(prompt: dict):
    """The bundled toy model make_workflows.TOY_NAME (of the family TOY_FAMILY) and its own prompt; every inversion,
    patch and sampler setting the family's shipped one (the registry's); the method and position matching on the same inversions and
    masks, each with its sampler and decoder, into one sheet: reference | target | result | position matching."""
    module = es.make_workflows()
    family, name = module.TOY_FAMILY, module.TOY_NAME
    from toy_tools import models as toy_models

    assert toy_models.TOYS[name] == family
    shipped = module.FAMILIES.shipped_settings(family)
    by_class = {}
    for node_id, node in prompt.items():
        by_class.setdefault(node["class_type"], []).append((node_id, node["inputs"]))
    assert "CheckpointLoaderSimple" not in by_class and [i for _, i in by_class["E4EToyModel"]] == [{"family": name}]
    assert (es.REPO / "toy_world" / "weights" / f"{name}_toy.safetensors").is_file()
    invs = [i for _, i in by_class["E4EDDIMInvertReference"]]
    assert len(invs) == 2
    for inputs in invs:
        assert {k: inputs[k] for k in ("steps", "skip_steps", "scheduler", "method", "seed")} == \
            {k: shipped[k] for k in ("steps", "skip_steps", "scheduler", "method", "seed")}
        assert inputs["cfg"] == shipped["inversion_cfg"]
    if family == "flux":  # the Flux schedule; the guidance is in the toy's own conditioning (no FluxGuidance)
        assert (shipped["steps"], shipped["skip_steps"], shipped["scheduler"], shipped["cfg"]) == (28, 9, "simple", 1.0)
        assert "FluxGuidance" not in by_class and shipped["guidance"] == 3.5
    patches = dict(by_class["E4ESemanticMatchPatch"])
    assert sorted(i["matching"] for i in patches.values()) == ["positions (baseline)", "semantic"]
    keys = ("layers", "match_block", "start_percent", "end_percent", "structure_every", "structure_end_percent",
            "strength")
    for inputs in patches.values():
        assert {k: inputs[k] for k in keys} == {k: shipped[k] for k in keys}
        assert prompt[inputs["masks"][0]]["class_type"] == "E4ELoadMasks"
    (a, b) = patches.values()
    assert (a["reference"], a["target"], a["masks"]) == (b["reference"], b["target"], b["masks"])  # the same inputs
    samplers = [i for _, i in by_class["E4EAppearanceTransferSampler"]]
    assert sorted(patches[s["model"][0]]["matching"] for s in samplers) == ["positions (baseline)", "semantic"]
    for inputs in samplers:
        assert {k: inputs[k] for k in ("cfg", "adain", "adain_start_percent", "ending")} == \
            {k: shipped[k] for k in ("cfg", "adain", "adain_start_percent", "ending")}
    decoded = {i["samples"][0]: node_id for node_id, i in by_class["E4EToyVAEDecode"]}
    by_matching = {patches[s["model"][0]]["matching"]: decoded[sampler_id]
                   for sampler_id, s in by_class["E4EAppearanceTransferSampler"]}

    def sheet(value) -> list:  # the pictures an ImageStitch chain puts side by side, left to right
        node = prompt[value[0]]
        if node["class_type"] != "ImageStitch":
            return [(node["class_type"], value[0], value[1])]
        assert node["inputs"]["direction"] == "right" and not node["inputs"]["match_image_size"]
        return sheet(node["inputs"]["image1"]) + sheet(node["inputs"]["image2"])

    (save,) = [i for i in prompt.values() if i["class_type"] == "SaveImage" and i["inputs"]["filename_prefix"] == "e4e_toy"]
    enlarge = prompt[save["inputs"]["images"][0]]["inputs"]
    assert enlarge["upscale_method"] == "nearest-exact" and enlarge["scale_by"] >= 4
    creatures = next(k for k, n in prompt.items() if n["class_type"] == "E4EToyCreatures")
    assert sheet(enlarge["image"]) == [("E4EToyCreatures", creatures, 0), ("E4EToyCreatures", creatures, 1),
                                       ("E4EToyVAEDecode", by_matching["semantic"], 0),
                                       ("E4EToyVAEDecode", by_matching["positions (baseline)"], 0)]
    saved = [i["inputs"]["images"] for i in prompt.values() if i["class_type"] == "SaveImage"]
    method_sampler = next(k for k, s in by_class["E4EAppearanceTransferSampler"]
                          if patches[s["model"][0]]["matching"] == "semantic")
    assert [method_sampler, 1] in saved  # the method's correspondence picture


def _check_dit_defaults(name: str, prompt: dict, runner):
    """Qwen-Image and Wan: their loaders and file names, their schedule and CFG (engine/defaults.py), one prompt for
    every branch; Qwen-Image with masks, Wan on whole frames (its target is generated from the prompt)."""
    D, T = runner.DEFAULTS, runner.TITLES
    key = "qwen" if name == "qwen_image" else "wan"
    files = {"qwen": (runner.QWEN_MODEL, runner.QWEN_TEXT_ENCODER, runner.QWEN_VAE),
             "wan": (runner.WAN_MODEL, runner.WAN_TEXT_ENCODER, runner.WAN_VAE)}[key]
    assert _by_title(prompt, T["unet"])["inputs"]["unet_name"] == files[0]
    clip = _by_title(prompt, T["text_encoder"])["inputs"]
    assert (clip["clip_name"], clip["type"]) == (files[1], name if key == "qwen" else "wan")
    assert _by_title(prompt, T["vae"])["inputs"]["vae_name"] == files[2]
    assert _by_title(prompt, T["negative"])["inputs"]["text"] == ""
    schedule = (D[f"{key}_steps"], D[f"{key}_skip_steps"], D[f"{key}_cfg"], D[f"{key}_scheduler"])
    assert round(schedule[1] / schedule[0], 2) == 0.33 and schedule[3] == "simple"  # the authors' share, 32 of 100
    invs = [n["inputs"] for n in prompt.values() if n["class_type"] == "E4EDDIMInvertReference"]
    assert len(invs) == 2 and all((i["steps"], i["skip_steps"], i["cfg"], i["scheduler"]) == schedule for i in invs)
    assert all(i["method"] == "ddpm_edit_friendly" for i in invs)
    sampler = _by_title(prompt, T["sampler"])["inputs"]
    assert sampler["cfg"] == schedule[2] and sampler["ending"] == "authors"
    patch = _by_title(prompt, T["patch"])["inputs"]
    assert patch["layers"] == "auto" and patch["video_matching"] == "per frame"
    assert ("masks" in patch) == (key == "qwen")
    if key == "wan":  # the target video comes from the prompt: the target inversion takes the KSampler's latent
        target = _by_title(prompt, T["invert_target"])["inputs"]
        assert _source(prompt, target["latent"])["class_type"] == "KSampler"
        empty = next(n["inputs"] for n in prompt.values() if n["class_type"] == "EmptyHunyuanLatentVideo")
        assert (empty["width"], empty["height"], empty["length"]) == (*D["wan_size"], D["wan_frames"])


@pytest.mark.parametrize("name", NAMES)
def test_authors_freeu_once_before_both_inversions_and_the_patch(name, runner):
    """The UNet workflows put the authors' FreeU on the MODEL once; inversions and patch all take that MODEL."""
    prompt = es.load(name, "api")
    freeu = [k for k, n in prompt.items() if n["class_type"] == "E4EAuthorsFreeU"]
    users = [n for n in prompt.values() if n["class_type"] in ("E4EDDIMInvertReference", "E4ESemanticMatchPatch")]
    if name in ("flux", "toy_world", "qwen_image", "wan_t2v"):  # FreeU changes UNet decoders (the DiTs have none;
        # the toy UNet trained without)
        assert not freeu
        return
    assert len(freeu) == 1 and all(n["inputs"]["model"][0] == freeu[0] for n in users)
    values = tuple(prompt[freeu[0]]["inputs"][k] for k in ("b1", "b2", "s1", "s2"))
    D = runner.DEFAULTS
    assert values == (tuple(D["freeu_sdxl"]) if name == "sdxl" else tuple(D["freeu"]))
    assert tuple(D["freeu"]) == (1.2, 1.4, 0.9, 0.2)  # the authors' SD1.5 values


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


def test_flux_workflow_uses_the_usual_loaders():
    prompt = es.load("flux", "api")
    types = {n["class_type"] for n in prompt.values()}
    assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance"} <= types
    assert "CheckpointLoaderSimple" not in types
    clip = next(n for n in prompt.values() if n["class_type"] == "DualCLIPLoader")["inputs"]
    assert clip["type"] == "flux"
    inv = next(n for n in prompt.values() if n["class_type"] == "E4EDDIMInvertReference")["inputs"]
    assert inv["scheduler"] == "simple" and inv["method"] == "ddpm_edit_friendly"


@pytest.mark.server
def test_generated_files_are_up_to_date():
    """workflows/ is what scripts/make_workflows.py writes now from the real node definitions (and nothing more)."""
    module = es.make_workflows()
    files = module.render(module.node_specs())
    stale = [n for n, data in files.items() if n.endswith((".json", ".js")) and (es.REPO / n).read_bytes() != data]
    assert not stale, f"out of date (run scripts/make_workflows.py with a full ComfyUI): {stale}"
    assert module.shipped_files() == set(files), "renamed or removed workflows left behind"
    assert "web/js/e4e_templates.js" in files
