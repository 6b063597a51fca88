import assert from "node:assert/strict";
import { describe, test } from "node:test";

import * as L from "../js/e4e_logic.js";
import { encodeSrc, packGrammar, patchNodeData, sampleRaw } from "./helpers.mjs";

const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);
const REF_GRIDS = [
  [2, 2],
  [1, 3],
];

describe("decodeSrc", () => {
  test("decodes little-endian int32 including -1 and large values", () => {
    const values = [-1, 0, 1, 255, 256, 65536, 2147483647, -2147483648];
    assert.deepEqual(Array.from(L.decodeSrc(encodeSrc(values))), values);
  });

  test("checks the expected length", () => {
    assert.equal(L.decodeSrc(encodeSrc([1, 2, 3]), 3).length, 3);
    assert.throws(() => L.decodeSrc(encodeSrc([1, 2, 3]), 4), /3 entries, expected 4/);
  });

  test("empty string is an empty array", () => {
    assert.equal(L.decodeSrc("").length, 0);
  });

  test("rejects byte counts that are not a multiple of 4", () => {
    assert.throws(() => L.decodeSrc(Buffer.from([1, 2, 3]).toString("base64")), /not a multiple of 4/);
  });

  test("rejects non-strings and bad base64", () => {
    assert.throws(() => L.decodeSrc(null), /base64 string/);
    assert.throws(() => L.decodeSrc("@@@!"), /base64/);
  });

  test("tolerates whitespace and line breaks", () => {
    const b64 = encodeSrc([7, -1, 9]);
    const wrapped = `${b64.slice(0, 5)}\n ${b64.slice(5)}`;
    assert.deepEqual(Array.from(L.decodeSrc(wrapped)), [7, -1, 9]);
  });

  test("falls back to Buffer when atob is missing", () => {
    const saved = globalThis.atob;
    try {
      delete globalThis.atob;
      assert.equal(typeof globalThis.atob, "undefined");
      assert.deepEqual(Array.from(L.decodeSrc(encodeSrc([5, -1, 42]))), [5, -1, 42]);
    } finally {
      globalThis.atob = saved;
    }
  });
});

describe("parseEntry / parseEntries", () => {
  test("normalises a valid entry", () => {
    const e = L.parseEntry(sampleRaw());
    assert.deepEqual(e.grid, [2, 3]);
    assert.deepEqual(e.refGrids, REF_GRIDS);
    assert.equal(e.nRefs, 2);
    assert.deepEqual(Array.from(e.src), [-1, 0, 3, 4, 6, 3]);
    assert.equal(e.layer, "output.9");
    assert.equal(e.step, 67);
    assert.equal(e.references.length, 2);
    assert.equal(e.references[1], null);
    assert.ok(!("output" in e)); // the left panel is the target; Python sends no output image
  });

  test("missing references list becomes nulls, missing n_refs is inferred", () => {
    const raw = sampleRaw();
    delete raw.references;
    delete raw.n_refs;
    const e = L.parseEntry(raw);
    assert.deepEqual(e.references, [null, null]);
    assert.equal(e.nRefs, 2);
  });

  test("rejects bad shapes with clear messages", () => {
    assert.throws(() => L.parseEntry(null), /not an object/);
    assert.throws(() => L.parseEntry(sampleRaw({ grid: [2] })), /grid/);
    assert.throws(() => L.parseEntry(sampleRaw({ grid: [0, 3] })), /grid/);
    assert.throws(() => L.parseEntry(sampleRaw({ ref_grids: [] })), /ref_grids/);
    assert.throws(() => L.parseEntry(sampleRaw({ ref_grids: [[2, "x"]] })), /ref_grids/);
    assert.throws(() => L.parseEntry(sampleRaw({ n_refs: 3 })), /n_refs is 3/);
    assert.throws(() => L.parseEntry(sampleRaw({ src: encodeSrc([1, 2]) })), /expected 6/);
  });

  test("parseEntries keeps good entries and reports bad ones", () => {
    const { entries, errors } = L.parseEntries([sampleRaw(), { grid: "x" }]);
    assert.equal(entries.length, 1);
    assert.equal(errors.length, 1);
    assert.match(errors[0], /^image 2: /);
  });

  test("parseEntries on missing or non-list data", () => {
    assert.deepEqual(L.parseEntries(undefined), { entries: [], errors: [] });
    assert.deepEqual(L.parseEntries(null), { entries: [], errors: [] });
    assert.equal(L.parseEntries({}).errors.length, 1);
  });
});

describe("fitContain", () => {
  test("wide image in a square box is letterboxed top and bottom", () => {
    assert.deepEqual(L.fitContain({ x: 0, y: 0, w: 100, h: 100 }, 200, 100), { x: 0, y: 25, w: 100, h: 50 });
  });
  test("tall image in a wide box is pillarboxed and keeps the box offset", () => {
    assert.deepEqual(L.fitContain({ x: 10, y: 20, w: 300, h: 100 }, 50, 100), { x: 135, y: 20, w: 50, h: 100 });
  });
  test("degenerate inputs give null", () => {
    assert.equal(L.fitContain(null, 1, 1), null);
    assert.equal(L.fitContain({ x: 0, y: 0, w: 0, h: 10 }, 1, 1), null);
    assert.equal(L.fitContain({ x: 0, y: 0, w: 10, h: 10 }, 0, 1), null);
  });
});

// a pointer over a box showing an image of size [w, h] (default: the grid's shape), as hoverAt sees it
const pointerToToken = (px, py, box, grid, size) =>
  grid ? L.pointToToken(px, py, L.fitContain(box, ...(size ?? [grid[1], grid[0]])), grid) : null;

describe("pointToToken on letterboxed images", () => {
  const rect = { x: 10, y: 20, w: 60, h: 40 }; // grid [2, 3]: tokens are 20 x 20
  test("maps to row-major tokens", () => {
    assert.deepEqual(L.pointToToken(11, 21, rect, [2, 3]), { index: 0, x: 0, y: 0 });
    assert.deepEqual(L.pointToToken(35, 21, rect, [2, 3]), { index: 1, x: 1, y: 0 });
    assert.deepEqual(L.pointToToken(69, 59, rect, [2, 3]), { index: 5, x: 2, y: 1 });
  });
  test("far edges clamp into the last token", () => {
    assert.deepEqual(L.pointToToken(70, 60, rect, [2, 3]), { index: 5, x: 2, y: 1 });
  });
  test("outside the rect, NaN, bad grid give null", () => {
    assert.equal(L.pointToToken(9.9, 30, rect, [2, 3]), null);
    assert.equal(L.pointToToken(30, 60.1, rect, [2, 3]), null);
    assert.equal(L.pointToToken(NaN, 30, rect, [2, 3]), null);
    assert.equal(L.pointToToken(30, 30, rect, [0, 3]), null);
    assert.equal(L.pointToToken(30, 30, null, [2, 3]), null);
  });
  test("letterbox margins give null, content maps to tokens", () => {
    const box = { x: 0, y: 0, w: 100, h: 100 };
    // 2:1 image -> content rect y in [25, 75]
    assert.equal(pointerToToken(50, 10, box, [2, 4], [200, 100]), null);
    assert.equal(pointerToToken(50, 90, box, [2, 4], [200, 100]), null);
    assert.deepEqual(pointerToToken(1, 26, box, [2, 4], [200, 100]), { index: 0, x: 0, y: 0 });
    assert.deepEqual(pointerToToken(99, 74, box, [2, 4], [200, 100]), { index: 7, x: 3, y: 1 });
  });
  test("without an image size the grid's aspect ratio is used", () => {
    const box = { x: 0, y: 0, w: 100, h: 100 };
    // grid [1, 2] -> 2:1 content rect y in [25, 75]
    assert.equal(pointerToToken(10, 20, box, [1, 2]), null);
    assert.deepEqual(pointerToToken(60, 50, box, [1, 2]), { index: 1, x: 1, y: 0 });
    assert.equal(pointerToToken(60, 50, box, null), null);
  });
  test("image aspect differing from the grid (non-square tokens)", () => {
    const box = { x: 0, y: 0, w: 90, h: 30 };
    // 3:1 image on a 2x2 grid: tokens 45 x 15
    assert.deepEqual(pointerToToken(50, 20, box, [2, 2], [300, 100]), { index: 3, x: 1, y: 1 });
  });
});

describe("tokenRect / tokenCentre", () => {
  const rect = { x: 10, y: 20, w: 60, h: 40 };
  test("rect and centre of a token", () => {
    assert.deepEqual(L.tokenRect(4, [2, 3], rect), { x: 30, y: 40, w: 20, h: 20 });
    assert.deepEqual(L.tokenCentre(4, [2, 3], rect), { x: 40, y: 50 });
  });
  test("round trip pointer -> token -> centre -> token", () => {
    for (let i = 0; i < 6; i++) {
      const c = L.tokenCentre(i, [2, 3], rect);
      assert.equal(L.pointToToken(c.x, c.y, rect, [2, 3]).index, i);
    }
  });
  test("out of range, negative, fractional indices give null", () => {
    assert.equal(L.tokenRect(6, [2, 3], rect), null);
    assert.equal(L.tokenRect(-1, [2, 3], rect), null);
    assert.equal(L.tokenRect(1.5, [2, 3], rect), null);
    assert.equal(L.tokenCentre(0, [2, 3], null), null);
  });
});

describe("refOffsets / locateSource / sourceToPoint", () => {
  test("offsets accumulate in order", () => {
    assert.deepEqual(L.refOffsets(REF_GRIDS), [0, 4, 7]);
    assert.deepEqual(L.refOffsets([]), [0]);
    assert.deepEqual(L.refOffsets(undefined), [0]);
  });
  test("flat index -> reference and cell, with different grids", () => {
    assert.deepEqual(L.locateSource(0, REF_GRIDS), { ref: 0, index: 0, x: 0, y: 0 });
    assert.deepEqual(L.locateSource(3, REF_GRIDS), { ref: 0, index: 3, x: 1, y: 1 });
    assert.deepEqual(L.locateSource(4, REF_GRIDS), { ref: 1, index: 0, x: 0, y: 0 });
    assert.deepEqual(L.locateSource(6, REF_GRIDS), { ref: 1, index: 2, x: 2, y: 0 });
  });
  test("-1, out of range and non-integers give null", () => {
    for (const v of [-1, -5, 7, 100, 1.5, NaN, null, undefined]) assert.equal(L.locateSource(v, REF_GRIDS), null);
    assert.equal(L.locateSource(0, null), null);
  });
  test("pixel centre in the displayed reference rect", () => {
    const rects = [
      { x: 100, y: 0, w: 40, h: 40 }, // 2x2 -> 20 px cells
      { x: 100, y: 50, w: 60, h: 20 }, // 1x3 -> 20 px cells
    ];
    assert.deepEqual(L.sourceToPoint(3, REF_GRIDS, rects), { ref: 0, x: 130, y: 30 });
    assert.deepEqual(L.sourceToPoint(5, REF_GRIDS, rects), { ref: 1, x: 130, y: 60 });
    assert.equal(L.sourceToPoint(-1, REF_GRIDS, rects), null);
    assert.equal(L.sourceToPoint(7, REF_GRIDS, rects), null);
    assert.equal(L.sourceToPoint(5, REF_GRIDS, [rects[0]]), null); // rect of ref 1 missing
  });
});

describe("matchedTargets / inverseLookup", () => {
  const src = Int32Array.from([-1, 0, 3, 4, 6, 3]);
  test("targets copying from one reference cell", () => {
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 0, 3), [2, 5]);
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 0, 0), [1]);
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 1, 0), [3]);
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 1, 1), []);
  });
  test("radius widens the neighbourhood inside that reference only", () => {
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 0, 0, 1), [1, 2, 5]);
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 1, 1, 1), [3, 4]);
  });
  test("bad reference or cell gives an empty list", () => {
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 2, 0), []);
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 0, 4), []);
    assert.deepEqual(L.matchedTargets(src, REF_GRIDS, 0, -1), []);
    assert.deepEqual(L.matchedTargets(null, REF_GRIDS, 0, 0), []);
  });
  test("centres on the target rect", () => {
    const rect = { x: 0, y: 0, w: 60, h: 40 };
    assert.deepEqual(L.inverseLookup(src, [2, 3], REF_GRIDS, 0, 3, rect), [
      { index: 2, x: 50, y: 10 },
      { index: 5, x: 50, y: 30 },
    ]);
  });
});

describe("matchSummary / formatSummary / entryCaption", () => {
  test("shares per reference, unmatched and invalid apart", () => {
    const s = L.matchSummary(Int32Array.from([-1, 0, 3, 4, 6, 3, 99, -7]), REF_GRIDS);
    assert.equal(s.total, 8);
    assert.equal(s.unmatched, 1);
    assert.equal(s.invalid, 2);
    assert.equal(s.matched, 5);
    near(s.matchedShare, 5 / 8);
    assert.deepEqual(
      s.perRef.map((p) => p.count),
      [3, 2],
    );
    near(s.perRef[0].share, 3 / 8);
    assert.equal(L.formatSummary(s), "ref 1 38% · ref 2 25% · kept (outside masks) 13% · invalid 2");
    // whole images: nothing outside a mask, nothing said about it
    assert.equal(L.formatSummary(L.matchSummary(Int32Array.from([0, 3, 4]), REF_GRIDS)), "ref 1 67% · ref 2 33%");
  });
  test("empty src", () => {
    const s = L.matchSummary(new Int32Array(0), REF_GRIDS);
    assert.equal(s.total, 0);
    assert.equal(s.perRef[0].share, 0);
    assert.equal(L.formatSummary(s), "no tokens");
    assert.equal(L.formatSummary(null), "no tokens");
  });
  test("caption", () => {
    const e = L.parseEntry(sampleRaw());
    assert.equal(L.entryCaption(e), "ref 1 50% · ref 2 33% · kept (outside masks) 17% · output.9 · step 67");
    assert.match(L.entryCaption(e, 1, 3), /image 2\/3$/);
    assert.match(L.entryCaption(null), /run the sampler/);
  });
});

const G = L.grammarOf(patchNodeData());
const SDXL_BLOCKS = ["input.4", "input.5", "input.7", "input.8", "middle.0", "output.0", "output.1", "output.2",
  "output.3", "output.4", "output.5"].reverse();

describe("the pack's grammar, from the node definition", () => {
  test("grammarOf reads custom_layers' e4e_grammar", () => {
    assert.ok(G && G.item instanceof RegExp && G.separators instanceof RegExp);
    assert.deepEqual(G.kinds, packGrammar().kinds);
    assert.ok(G.known.has("single.37") && !G.known.has("single.38"));
    for (const bad of [undefined, {}, { input: {} }, { input: { required: { custom_layers: ["STRING", {}] } } }]) {
      assert.equal(L.grammarOf(bad), null);
    }
    assert.equal(L.compileGrammar({ item: "(", separators: "," }), null);
    assert.equal(L.compileGrammar({ item: "x", separators: "" }), null);
  });
});

describe("parseCustomLayers / formatLayers", () => {
  test("ranges, single layers, several blocks, UNet and DiT", () => {
    const { layers, error } = L.parseCustomLayers("output.6-11, output.3, input.7", G);
    assert.equal(error, null);
    assert.deepEqual(layers, [
      ["output", 6],
      ["output", 7],
      ["output", 8],
      ["output", 9],
      ["output", 10],
      ["output", 11],
      ["output", 3],
      ["input", 7],
    ]);
    assert.deepEqual(L.parseCustomLayers("double.0-1, single.34-37", G), {
      layers: [["double", 0], ["double", 1], ["single", 34], ["single", 35], ["single", 36], ["single", 37]],
      error: null,
    });
  });
  test("spacing, separators and duplicates as the pack reads them", () => {
    assert.deepEqual(L.parseCustomLayers(" output 3 - 4 ;middle.0,, output.4 ", G).layers, [
      ["output", 3],
      ["output", 4],
      ["middle", 0],
    ]);
  });
  test("bad input gives clear errors", () => {
    const err = (t) => L.parseCustomLayers(t, G).error;
    assert.match(err(""), /empty/);
    assert.match(err("   "), /empty/);
    assert.match(err(null), /empty/);
    assert.match(err(", ,"), /empty/);
    assert.match(err("decoder.3"), /not a layer: write e\.g\. "output\.6-11, output\.3" or "double\.0-1, single\.34-37"/);
    assert.match(err("Output.3"), /not a layer/); // the pack's grammar is case-sensitive
    assert.match(err("output"), /not a layer/);
    assert.match(err("output.6-"), /not a layer/);
    assert.match(err("output.x"), /not a layer/);
    assert.match(err("output.11-6"), /empty range \(write output\.6-11\)/);
    assert.match(err("output.0-99999"), /more blocks than any model has/);
    assert.match(L.parseCustomLayers("output.3", null).error, /no layer grammar/);
  });
  test("formatLayers compacts runs and accepts strings; sortLayers orders by the grammar's kinds", () => {
    assert.equal(L.formatLayers(L.parseCustomLayers("output.6-11, output.3, input.7", G).layers), "output.6-11, output.3, input.7");
    assert.equal(L.formatLayers(["output.0", "output.1", "output.2", "middle.0"]), "output.0-2, middle.0");
    assert.equal(L.formatLayers([]), "");
    assert.equal(L.formatLayers(undefined), "");
    assert.equal(L.formatLayers(["junk"]), "");
    assert.equal(L.formatLayers(L.sortLayers(SDXL_BLOCKS, G)), "input.4-5, input.7-8, middle.0, output.0-5");
    assert.equal(L.formatLayers(L.sortLayers(["output.10", "output.3", "output.11", "output.9"], G)), "output.3, output.9-11");
  });
});

describe("layer widgets and model info", () => {
  test("custom_layers shows only for 'custom'", () => {
    assert.deepEqual(L.layerWidgetVisibility("custom"), { custom_layers: true });
    for (const v of ["auto", "output 6-11 (SD1/SD2, paper)", "output 0-5 (SDXL)", "output 3-5 (SDXL 64x64)", "output 0-2 (SDXL 32x32)", undefined]) {
      assert.deepEqual(L.layerWidgetVisibility(v), { custom_layers: false });
    }
  });
  test("describeModel", () => {
    const info = { family: "sdxl", layers: ["output.0", "output.1", "output.2"], steps: [10, 40] };
    assert.equal(L.describeModel(info), "SDXL · output.0-2 · steps 10-40");
    assert.equal(L.describeModel({ family: "sd1" }), "SD1");
    assert.equal(L.describeModel(null), "");
  });
  test("patchInfo before a run: syntax, then blocks no family has", () => {
    assert.deepEqual(L.patchInfo("auto", "", G), { text: "", error: false });
    assert.deepEqual(L.patchInfo("custom", "output.3-4", G), { text: "custom: output.3-4", error: false });
    assert.deepEqual(L.patchInfo("custom", "double.0-1, single.34-37", G), {
      text: "custom: double.0-1, single.34-37",
      error: false,
    });
    assert.equal(L.patchInfo("custom", "nope", G).error, true);
    assert.deepEqual(L.patchInfo("custom", "output.11-12, single.38", G), {
      text: "no model has output.12, single.38",
      error: true,
    });
    assert.deepEqual(L.patchInfo("custom", "output.3", null), { text: "", error: false });
  });
  test("patchInfo after a run: the resolved layers, then the model's own blocks", () => {
    const sdxl = { family: "sdxl", layers: ["output.0", "output.1"], blocks: SDXL_BLOCKS, steps: [5, 45] };
    assert.deepEqual(L.patchInfo("auto", "", G, sdxl, true), { text: "SDXL · output.0-1 · steps 5-45", error: false });
    assert.deepEqual(L.patchInfo("auto", "", G, sdxl, false), { text: "", error: false });
    assert.deepEqual(L.patchInfo("custom", "output.3-5", G, sdxl), { text: "custom: output.3-5", error: false });
    assert.deepEqual(L.patchInfo("custom", "output.6-11", G, sdxl), {
      text: "not in this SDXL model: output.6-11 (it has input.4-5, input.7-8, middle.0, output.0-5)",
      error: true,
    });
    const sd1 = { family: "sd1", blocks: ["output.10", "output.11", "output.6", "output.7", "output.8", "output.9"] };
    assert.match(L.patchInfo("custom", "output.5-6", G, sd1).text, /^not in this SD1 model: output\.5 \(it has output\.6-11\)$/);
    assert.deepEqual(L.patchInfo("custom", "output.6", G, { family: "sd1" }), { text: "custom: output.6", error: false });
  });
});

describe("display helpers", () => {
  test("refColour is deterministic, distinct and clamps alpha", () => {
    const cols = Array.from({ length: 8 }, (_, r) => L.refColour(r));
    assert.equal(new Set(cols).size, 8);
    assert.equal(L.refColour(3), L.refColour(3));
    for (const c of cols) assert.match(c, /^hsla\(\d+, 85%, 60%, 1\)$/);
    assert.match(L.refColour(0, 5), /, 1\)$/);
    assert.match(L.refColour(0, -1), /, 0\)$/);
    assert.match(L.refColour(0, 0.25), /, 0\.25\)$/);
    assert.match(L.refColour(-1), /0%, 60%/);
    assert.match(L.refColour(1.5), /0%, 60%/);
  });
  test("viewPath", () => {
    assert.equal(L.viewPath({ filename: "a b&c.png", subfolder: "x/y", type: "temp" }), "/view?filename=a%20b%26c.png&subfolder=x%2Fy&type=temp");
    assert.equal(L.viewPath({ filename: "a.png" }), "/view?filename=a.png&subfolder=");
    assert.equal(L.viewPath(null), null);
    assert.equal(L.viewPath({ filename: "" }), null);
  });
  test("layoutPanels", () => {
    const lay = L.layoutPanels(206, 100, 2, 6);
    assert.deepEqual(lay.target, { x: 0, y: 0, w: 120, h: 100 });
    assert.deepEqual(lay.refs, [
      { x: 126, y: 0, w: 80, h: 47 },
      { x: 126, y: 53, w: 80, h: 47 },
    ]);
    assert.equal(L.layoutPanels(0, 100, 1), null);
    assert.equal(L.layoutPanels(100, 100, 0).refs.length, 1);
  });
  test("sceneRects and hoverAt", () => {
    const e = L.parseEntry(sampleRaw());
    const scene = L.sceneRects(206, 100, e, { target: [300, 200] });
    // target box 120 x 100, 3:2 image -> 120 x 80 at y 10
    assert.deepEqual(scene.targetRect, { x: 0, y: 10, w: 120, h: 80 });
    // ref 0 uses its grid (square) in an 80 x 47 box
    assert.deepEqual(scene.refRects[0], { x: 126 + 16.5, y: 0, w: 47, h: 47 });
    assert.equal(L.hoverAt(60, 5, scene, e), null); // letterbox margin
    assert.deepEqual(L.hoverAt(1, 11, scene, e), { kind: "target", token: 0, source: -1 });
    assert.deepEqual(L.hoverAt(119, 89, scene, e), { kind: "target", token: 5, source: 3 });
    assert.deepEqual(L.hoverAt(126 + 16.5 + 40, 40, scene, e), { kind: "ref", ref: 0, token: 3 });
    assert.equal(L.hoverAt(1, 1, null, e), null);
    assert.equal(L.sceneRects(100, 100, null), null);
  });
});

describe("module hygiene", () => {
  test("exports only functions and constants", () => {
    for (const [k, v] of Object.entries(L)) {
      assert.ok(["function", "string", "number"].includes(typeof v), `${k} is ${typeof v}`);
      assert.ok(!/^(BLOCK|KIND)/.test(k), `${k}: the grammar comes from the node definition`);
    }
    assert.equal(L.EXTENSION_NAME, "eye_for_an_eye.viewer");
    assert.equal(L.SAMPLER_NODE, "E4EAppearanceTransferSampler");
    assert.equal(L.PATCH_NODE, "E4ESemanticMatchPatch");
  });
});

describe("wrapText", () => {
  const measure = (t) => t.length * 6;
  test("wraps at word boundaries, every line within the width", () => {
    const text = "Run the sampler to see which reference part each target part copies.";
    const lines = L.wrapText(text, 100, measure);
    assert.ok(lines.length > 1);
    assert.ok(lines.every((l) => measure(l) <= 100), lines.join("|"));
    assert.equal(lines.join(" "), text);
  });
  test("a word longer than the line is cut, never left to overflow", () => {
    const lines = L.wrapText("a verylongwordthatdoesnotfit b", 60, measure);
    assert.ok(lines.every((l) => measure(l) <= 60), lines.join("|"));
    assert.equal(lines.join("").replaceAll(" ", ""), "averylongwordthatdoesnotfitb");
  });
  test("empty text, no lines", () => {
    assert.deepEqual(L.wrapText("", 100, measure), []);
    assert.deepEqual(L.wrapText(null, 100, measure), []);
  });
});

describe("noticeList", () => {
  test("keeps the non-empty strings of a list, takes a lone string", () => {
    assert.deepEqual(L.noticeList([" FreeU_V2 after the patch ", "", 3, null, "LoRA"]), ["FreeU_V2 after the patch", "LoRA"]);
    assert.deepEqual(L.noticeList("one"), ["one"]);
    assert.deepEqual(L.noticeList(undefined), []);
    assert.deepEqual(L.noticeList({ a: 1 }), []);
  });
});

describe("templates", () => {
  const order = ["Toy world (no checkpoint)", "SD1.5 with masks", "SDXL with masks"];
  test("orderListing puts the pack's names in its order, others after, other packs untouched", () => {
    const listing = { other_pack: ["b", "a"], "eye-for-an-eye": ["SDXL with masks", "mine", "Toy world (no checkpoint)", "SD1.5 with masks"] };
    const out = L.orderListing(listing, order);
    assert.deepEqual(out["eye-for-an-eye"], [...order, "mine"]);
    assert.deepEqual(out.other_pack, ["b", "a"]);
    assert.deepEqual(listing["eye-for-an-eye"][0], "SDXL with masks"); // the server's answer is not changed
  });
  test("orderListing leaves odd answers alone", () => {
    assert.equal(L.orderListing(null, order), null);
    assert.deepEqual(L.orderListing([], order), []);
    assert.deepEqual(L.orderListing({ x: ["a"] }, order), { x: ["a"] });
  });
  test("derivedDescription is what frontend 1.27 makes of a file name", () => {
    assert.equal(L.derivedDescription("Toy world - no_checkpoint"), "Toy world   no checkpoint");
  });
});

describe("readableView", () => {
  const viewport = [0, 0, 1600, 857];
  test("a fit that draws text is kept", () => {
    assert.equal(L.readableView([0, 0, 1000, 600], viewport, 0.8), null);
    assert.equal(L.readableView([0, 0, 1000, 600], viewport, L.READABLE_SCALE), null);
  });
  test("too small a fit: the whole height at a readable scale, from the left when wider than the view", () => {
    const bounds = [40, 110, 2680, 1100]; // the nodes of an SD1.5 template, titles included
    const v = L.readableView(bounds, viewport, 0.45);
    assert.ok(v.scale >= L.READABLE_SCALE && v.scale <= 1, v.scale);
    const screen = (x, y) => [(x + v.offset[0]) * v.scale, (y + v.offset[1]) * v.scale];
    const [left, top] = screen(bounds[0], bounds[1] - 80); // the groups' titles above the nodes
    assert.ok(Math.abs(left - 72) < 1e-6, left); // the Note's column at the left edge, clear of 1.58's side bar
    assert.ok(top >= 44 && top <= 80, top); // below 1.58's tab bar
    const [, bottom] = screen(bounds[0], bounds[1] + bounds[3]);
    assert.ok(bottom <= 857 - 24 + 1e-6, bottom); // the whole height in view
  });
  test("a graph that fits at the readable scale is centred", () => {
    const bounds = [0, 0, 1400, 1000];
    const v = L.readableView(bounds, viewport, 0.5);
    const left = (bounds[0] + v.offset[0]) * v.scale;
    const right = (bounds[0] + bounds[2] + v.offset[0]) * v.scale;
    assert.ok(Math.abs(left - 72 - (1600 - 24 - right)) < 1e-6); // centred between 1.58's side bar and the edge
  });
  test("a very tall graph: the readable scale, from the top", () => {
    const v = L.readableView([0, 0, 3000, 4000], viewport, 0.1);
    assert.equal(v.scale, L.READABLE_SCALE);
    assert.ok(Math.abs((v.offset[1] - 80) * v.scale - 44) < 1e-6);
  });
  test("bad input: keep the frontend's fit", () => {
    assert.equal(L.readableView(null, viewport, 0.1), null);
    assert.equal(L.readableView([0, 0, 0, 10], viewport, 0.1), null);
    assert.equal(L.readableView([0, 0, 10, 10], [0, 0, NaN, 5], 0.1), null);
  });
});

describe("correspondence hints: the text", () => {
  test("parseHints reads pairs, '->', '@r' and blank pieces as matching/hints.parse_hints does", () => {
    const { hints, error, errorPair } = L.parseHints("0.31,0.42 > 0.70,0.41; 0.55,0.2 -> .45,0.22 @2\n\n 0, 1>1,0");
    assert.equal(error, null);
    assert.equal(errorPair, null);
    assert.deepEqual(hints.map((h) => [h.n, h.target, h.reference, h.ref]), [
      [1, [0.31, 0.42], [0.7, 0.41], null],
      [2, [0.55, 0.2], [0.45, 0.22], 1],
      [3, [0, 1], [1, 0], null],
    ]);
    assert.deepEqual(L.parseHints("  \n ; ").hints, []);
    assert.deepEqual(L.parseHints(undefined), { hints: [], error: null, errorPair: null });
  });

  test("a bad pair is named by its number; the readable ones are still read", () => {
    const r = L.parseHints("0.3,0.4 > 0.7,0.4\n0.3,0.4 0.7,0.4; 1.2,0.5 > 0.5,0.5\n0.1,0.1 > 0.2,0.2 @1");
    assert.equal(r.errorPair, 2);
    assert.match(r.error, /^hints: pair 2 \("0.3,0.4 0.7,0.4"\) is not like '0.31,0.42 > 0.70,0.41'/);
    assert.deepEqual(r.hints.map((h) => h.n), [1, 4]);
    assert.match(L.parseHints("1.2,0.5 > 0.5,0.5").error, /pair 1 .*the target point \(1.2, 0.5\) is outside the image/);
    assert.match(L.parseHints("0.3,0.4 > 0.7,-0.1").error, /the reference point \(0.7, -0.1\) is outside/);
    assert.match(L.parseHints("0.3,0.4 > 0.7,0.4 @0").error, /references are numbered from 1/);
    for (const bad of ["0.3;0.4 > 0.7,0.4", "0.3,0.4 >> 0.7,0.4", "0.3,0.4 > 0.7,0.4 @", "0.3,0.4 > 0.7,0.4 @-1",
      "nan,0 > 0,0", "0x1,0 > 0,0", "0.3,0.4 < 0.7,0.4", "0.3 0.4 > 0.7 0.4"]) {
      assert.ok(L.parseHints(bad).error, bad);
    }
  });

  test("Python's whitespace and digits: non-breaking space and Arabic-Indic digits, not a byte order mark", () => {
    const r = L.parseHints("\u00a0\u0660.\u0665,0\u3000>\u20091,1 @\u0662");
    assert.equal(r.error, null);
    assert.deepEqual([r.hints[0].target, r.hints[0].reference, r.hints[0].ref], [[0.5, 0], [1, 1], 1]);
    assert.deepEqual(L.parseHints("\uff10.\uff15,0 > 0,0").hints[0].target, [0.5, 0]); // fullwidth digits
    assert.ok(L.parseHints("\ufeff0.5,0 > 0,0").error); // Python's \s has no BOM (JavaScript's has)
    assert.equal(L.parseHints("\x1c0.5,0 > 0,0\x85").error, null); // Python's has these (JavaScript's not)
  });

  test("formatHint writes 3 decimals at most, clamps, and '@r' (1-based) only with a reference", () => {
    assert.equal(L.formatHint([0.31, 0.42], [0.7, 0.41]), "0.31,0.42 > 0.7,0.41");
    assert.equal(L.formatHint([0.12345, 1.2], [-0.0001, 0.9996], 1), "0.123,1 > 0,1 @2");
    assert.equal(L.formatHint([0, 0], [1, 1], 0), "0,0 > 1,1 @1");
    const back = L.parseHints(L.formatHint([0.333, 0.5], [0.25, 0.75], 2)).hints[0];
    assert.deepEqual([back.target, back.reference, back.ref], [[0.333, 0.5], [0.25, 0.75], 2]);
  });

  test("appendHint puts the pair on a line of its own and keeps the text", () => {
    assert.equal(L.appendHint("", "p"), "p");
    assert.equal(L.appendHint(" \n", "p"), "p");
    assert.equal(L.appendHint(undefined, "p"), "p");
    assert.equal(L.appendHint("a; b", "p"), "a; b\np");
    assert.equal(L.appendHint("a\n", "p"), "a\np");
  });

  test("removeHint takes out one pair and one separator, and leaves the rest as written", () => {
    const text = "0,0 > 1,1; 0.5,0.5 > 1,1\n  0.2,0.2 > 0,0 @2\n";
    assert.equal(L.removeHint(text, 2), "0,0 > 1,1\n  0.2,0.2 > 0,0 @2\n");
    assert.equal(L.removeHint(text, 1), "0.5,0.5 > 1,1\n  0.2,0.2 > 0,0 @2\n");
    assert.equal(L.removeHint(text, 3), "0,0 > 1,1; 0.5,0.5 > 1,1\n");
    assert.equal(L.removeHint(text, 4), text);
    assert.equal(L.removeHint("\n\nbad\n0,0 > 1,1", 2), "\n\nbad");
    assert.equal(L.removeHint("0,0 > 1,1", 1), "");
    const items = L.hintItems("a;; b \n\n c");
    assert.deepEqual(items.map((i) => [i.n, i.text, i.start, i.end]), [[1, "a", 0, 1], [2, " b ", 3, 6], [3, " c", 8, 10]]);
  });
});

describe("correspondence hints: the pictures", () => {
  const rect = { x: 10, y: 20, w: 200, h: 100 };

  test("pointToRelative: inside the rect only, 3 decimals; relativeToPoint is its inverse", () => {
    assert.deepEqual(L.pointToRelative(10, 20, rect), { x: 0, y: 0 });
    assert.deepEqual(L.pointToRelative(210, 120, rect), { x: 1, y: 1 });
    assert.deepEqual(L.pointToRelative(10 + 200 / 3, 20 + 100 / 7, rect), { x: 0.333, y: 0.143 });
    assert.equal(L.pointToRelative(9.9, 50, rect), null);
    assert.equal(L.pointToRelative(50, 120.1, rect), null);
    assert.equal(L.pointToRelative(NaN, 50, rect), null);
    assert.equal(L.pointToRelative(50, 50, null), null);
    assert.equal(L.pointToRelative(50, 50, { x: 0, y: 0, w: 0, h: 10 }), null);
    assert.deepEqual(L.relativeToPoint(0.25, 0.5, rect), { x: 60, y: 70 });
    assert.equal(L.relativeToPoint(0.25, NaN, rect), null);
  });

  const entry = L.parseEntry(sampleRaw());
  const scene = L.sceneRects(206, 100, entry);

  test("spotAt: the target or a reference picture under the pointer, in the picture's own 0..1", () => {
    const t = scene.targetRect;
    assert.deepEqual(L.spotAt(t.x + t.w / 4, t.y + t.h / 2, scene), { kind: "target", x: 0.25, y: 0.5 });
    const r = scene.refRects[1];
    assert.deepEqual(L.spotAt(r.x + r.w * 0.75, r.y + r.h * 0.2, scene), { kind: "ref", ref: 1, x: 0.75, y: 0.2 });
    assert.equal(L.spotAt(t.x + t.w + 1, t.y + 1, scene), null); // the gap between the panels
    assert.equal(L.spotAt(1, 1, null), null);
  });

  test("hintMarkers: each pair's spots in pixels; no '@r' means every reference, a missing one none", () => {
    const hints = L.parseHints("0.5,0.5 > 0.25,0.75 @2\n0,0 > 1,1\n0.1,0.1 > 0.1,0.1 @3").hints;
    const m = L.hintMarkers(hints, scene);
    const t = scene.targetRect;
    const [r0, r1] = scene.refRects;
    assert.deepEqual(m[0], { n: 1, target: { x: t.x + t.w / 2, y: t.y + t.h / 2 },
      refs: [{ ref: 1, x: r1.x + r1.w / 4, y: r1.y + r1.h * 0.75 }] });
    assert.deepEqual(m[1].refs, [{ ref: 0, x: r0.x + r0.w, y: r0.y + r0.h }, { ref: 1, x: r1.x + r1.w, y: r1.y + r1.h }]);
    assert.deepEqual(m[2].refs, []);
    assert.deepEqual(L.hintMarkers(hints, null), []);
    assert.equal(L.hintNear(t.x + t.w / 2 + 3, t.y + t.h / 2 - 3, m), 1);
    assert.equal(L.hintNear(r1.x + r1.w - 2, r1.y + r1.h, m), 2);
    assert.equal(L.hintNear(t.x + t.w / 2 + 30, t.y + t.h / 2, m), null);
    assert.equal(L.hintNear(0, 0, [], 10), null);
  });
});

describe("findUpstream: the patch node that feeds the sampler's model", () => {
  const node = (type, inputs, up = {}) => ({ type, inputs: inputs.map((name) => ({ name })), getInputNode: (s) => up[s] ?? null });

  test("directly, through LoRA/FreeU-like nodes and a Reroute", () => {
    const patch = node(L.PATCH_NODE, ["model"]);
    assert.equal(L.findUpstream(node("S", ["model", "positive"], { 0: patch })), patch);
    const freeu = node("FreeU_V2", ["model"], { 0: patch });
    const reroute = node("Reroute", [""], { 0: freeu });
    const lora = node("LoraLoader", ["clip", "model"], { 1: reroute });
    assert.equal(L.findUpstream(node("S", ["positive", "model"], { 1: lora })), patch);
  });

  test("none: nothing linked, a loader, a cycle, no graph", () => {
    assert.equal(L.findUpstream(node("S", ["model"])), null);
    assert.equal(L.findUpstream(node("S", ["positive"])), null);
    assert.equal(L.findUpstream(node("S", ["model"], { 0: node("CheckpointLoaderSimple", []) })), null);
    const a = node("A", ["model"]);
    const b = node("B", ["model"], { 0: a });
    a.getInputNode = () => b;
    assert.equal(L.findUpstream(node("S", ["model"], { 0: a })), null);
    const lost = { type: "S", inputs: [{ name: "model" }], getInputNode: () => { throw new Error("NullGraphError"); } };
    assert.equal(L.findUpstream(lost), null);
    assert.equal(L.findUpstream({ type: "S", inputs: [{ name: "model" }] }), null);
    assert.equal(L.findUpstream(null), null);
    const two = node("Two", ["a", "b"], { 0: node(L.PATCH_NODE, []) }); // not a Reroute: no "model", two inputs
    assert.equal(L.findUpstream(node("S", ["model"], { 0: two })), null);
  });
});
