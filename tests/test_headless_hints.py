"""Correspondence hints through the headless runner: ``--hints TEXT|FILE`` for a run, a pairs file's fifth column
per pair; they land in Semantic Match Patch's ``hints`` input of the shipped workflow, which ComfyUI's own
prompt validation accepts."""

from __future__ import annotations

import e2e_support as es

jobs = es.runner_part("jobs")
workflow_fill = es.runner_part("workflow_fill")
cli = es.runner_part("cli")

HINTS = "0.31,0.42 > 0.70,0.41; 0.55,0.20 > 0.45,0.22"


def test_a_pairs_file_carries_hints_per_pair(tmp_path):
    (tmp_path / "pairs.csv").write_text(
        "reference,target,reference_mask,target_mask,hints\n"
        f'a.png,b.png,am.png,bm.png,"{HINTS}"\n'
        "c.png,d.png\n"
        'e.png,f.png,,,"0.5,0.5 > 0.5,0.5"\n')
    rows = jobs.read_pairs(str(tmp_path / "pairs.csv"))
    assert [r.hints for r in rows] == [HINTS, None, "0.5,0.5 > 0.5,0.5"]
    assert rows[2].reference_mask is None
    settings = {"hints": "global"}
    assert jobs.job_settings(rows[0], settings)["hints"] == HINTS
    assert jobs.job_settings(rows[1], settings)["hints"] == "global"  # the run's --hints where a pair has none


def test_hints_come_as_text_or_from_a_file(tmp_path):
    path = tmp_path / "hints.txt"
    path.write_text(HINTS.replace("; ", "\n") + "\n")
    assert jobs.read_hints(str(path)) == HINTS.replace("; ", "\n")
    assert jobs.read_hints(HINTS) == HINTS and jobs.read_hints(None) is None
    args = cli.build_parser().parse_args(["--reference", "a.png", "--target", "b.png", "--hints", str(path)])
    assert cli._settings(args, cli._workflows(args))["hints"] == HINTS.replace("; ", "\n")


def test_the_filled_workflow_carries_the_hints_and_validates(real_comfy):
    prompt = workflow_fill.load_workflow(es.WORKFLOWS / "api" / "sd15_masks.api.json")
    names = {"reference": "e4e_reference.png", "target": "e4e_target.png",
             "reference_mask": "e4e_reference_mask.png", "target_mask": "e4e_target_mask.png"}
    filled = workflow_fill.fill_workflow(prompt, names, {"hints": HINTS})
    (patch,) = [n for n in filled.values() if n["class_type"] == "E4ESemanticMatchPatch"]
    assert patch["inputs"]["hints"] == HINTS
    ok, error, node_errors = real_comfy.validate(filled)
    assert ok, (error, node_errors)
