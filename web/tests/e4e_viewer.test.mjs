// Smoke tests of the ComfyUI glue with stand-ins for ComfyUI's app.js/api.js, a LiteGraph-like
// node and (for the DOM widget path) a minimal fake document. The pack's files are laid out as
// ComfyUI serves them: /scripts/app.js and /extensions/<pack>/e4e_viewer.js.

import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

import { PATCH_NODE, SAMPLER_NODE } from "../js/e4e_logic.js";
import { encodeSrc, fakeContext, patchNodeData, sampleRaw } from "./helpers.mjs";

const JS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "js");
let root;
let extension;
let viewerOf; // the extension's own module instance (e4e_sampler_view.js as ComfyUI serves it)

before(async () => {
  root = mkdtempSync(join(tmpdir(), "e4e-web-"));
  mkdirSync(join(root, "scripts"));
  writeFileSync(
    join(root, "scripts", "app.js"),
    "export const app = { registered: [], registerExtension(e) { this.registered.push(e); } };\n",
  );
  writeFileSync(join(root, "scripts", "api.js"), 'export const api = { apiURL: (p) => "/api" + p };\n');
  const ext = join(root, "extensions", "eye_for_an_eye");
  cpSync(JS_DIR, ext, { recursive: true });
  await import(pathToFileURL(join(ext, "e4e_viewer.js")).href);
  const { app } = await import(pathToFileURL(join(root, "scripts", "app.js")).href);
  assert.equal(app.registered.length, 1);
  extension = app.registered[0];
  ({ viewerOf } = await import(pathToFileURL(join(ext, "e4e_sampler_view.js")).href));
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------- stand-ins

class FakeElement {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.style = {};
    this.children = [];
    this.listeners = {};
    this.clientWidth = 300;
    this.clientHeight = 150;
    this.value = "";
    this.textContent = "";
  }
  append(...c) {
    this.children.push(...c);
  }
  replaceChildren(...c) {
    this.children = c;
  }
  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }
  dispatch(type, event = {}) {
    for (const fn of this.listeners[type] || []) fn(event);
  }
  getBoundingClientRect() {
    return { left: 0, top: 0, width: this.clientWidth, height: this.clientHeight };
  }
  getContext() {
    return (this.ctx ||= fakeContext());
  }
  find(tag) {
    const out = [];
    const walk = (e) => {
      if (!(e instanceof FakeElement)) return;
      if (e.tagName === tag.toUpperCase()) out.push(e);
      e.children.forEach(walk);
    };
    walk(this);
    return out;
  }
}

class FakeImage {
  static made = [];
  constructor() {
    this.naturalWidth = 0;
    this.naturalHeight = 0;
    FakeImage.made.push(this);
  }
  load(w, h) {
    this.naturalWidth = w;
    this.naturalHeight = h;
    this.onload?.();
  }
}

function withDOM(fn) {
  globalThis.document = new FakeElement("#document");
  globalThis.document.createElement = (t) => new FakeElement(t);
  globalThis.document.removeEventListener = function (type, fn) {
    this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn);
  };
  globalThis.Image = FakeImage;
  try {
    return fn();
  } finally {
    delete globalThis.document;
    delete globalThis.Image;
  }
}

const PATCH_DATA = patchNodeData();

function nodeClass(name, widgets) {
  class Node {
    constructor() {
      this.size = [300, 100];
      this.widgets = widgets.map((w) => ({ ...w }));
      this.inputs = [];
      this.dirty = 0;
      this.calls = [];
    }
    computeSize() { // as LiteGraph: a row per widget, a DOM widget as high as its getMinHeight
      const dom = this.widgets.filter((w) => w.element).reduce((h, w) => h + (w.options?.getMinHeight?.() ?? 0), 0);
      return [300, 30 + this.widgets.filter((w) => !w.hidden && !w.element).length * 24 + dom];
    }
    setSize(s) {
      this.size = s;
    }
    setDirtyCanvas() {
      this.dirty++;
    }
    addDOMWidget(wname, type, element, options) {
      const w = { name: wname, type, element, options };
      this.widgets.push(w);
      return w;
    }
  }
  Node.prototype.onExecuted = function (m) {
    this.calls.push(["onExecuted", m]);
  };
  Node.prototype.onNodeCreated = function () {
    this.calls.push(["onNodeCreated"]);
  };
  extension.beforeRegisterNodeDef(Node, name === PATCH_NODE ? PATCH_DATA : { name });
  return Node;
}

// ---------------------------------------------------------------- tests

describe("registration", () => {
  test("one extension with the pack's name", () => {
    assert.equal(extension.name, "eye_for_an_eye.viewer");
    assert.equal(typeof extension.beforeRegisterNodeDef, "function");
  });
  test("other node types and bad arguments are left alone", () => {
    class Other {}
    extension.beforeRegisterNodeDef(Other, { name: "KSampler" });
    assert.equal(Other.prototype.onExecuted, undefined);
    extension.beforeRegisterNodeDef(undefined, undefined);
    extension.beforeRegisterNodeDef({}, { name: SAMPLER_NODE }); // logged, not thrown
  });
});

describe("sampler viewer", () => {
  test("builds the widget, loads previews through api.apiURL, reacts to the pointer and the selectors", () =>
    withDOM(() => {
      FakeImage.made = [];
      const Sampler = nodeClass(SAMPLER_NODE, []);
      const node = new Sampler();
      node.onNodeCreated();
      assert.deepEqual(node.calls[0], ["onNodeCreated"]);
      const w = node.widgets.find((x) => x.name === "e4e_viewer");
      assert.ok(w, "no DOM widget");
      assert.equal(w.options.serialize, false);
      assert.equal(w.options.getMinHeight(), 240);
      assert.equal(w.options.getValue(), "");
      assert.equal(w.element.style.minHeight, `${240 - 2 * w.options.margin}px`); // the Vue renderer's height
      const [batch] = w.element.find("select");
      assert.equal(w.element.find("select").length, 1); // no target/output choice: the left panel is the target
      const canvas = w.element.find("canvas")[0];
      const caption = w.element.children.at(-1);
      assert.equal(caption.textContent, ""); // before a run the picture says what to do, wrapped to its width
      const hint = canvas.ctx.calls.filter((c) => c[0] === "fillText").map((c) => c[1]);
      assert.ok(hint.length > 1 && hint.join(" ").startsWith("Run the sampler to see which reference part"), hint);

      node.onExecuted({ e4e_correspondence: [sampleRaw(), sampleRaw({ step: 3 })] });
      assert.equal(node.calls.at(-1)[0], "onExecuted");
      assert.equal(batch.children.length, 2);
      assert.equal(batch.style.display, "");
      assert.match(caption.textContent, /ref 1 50% · ref 2 33% · kept \(outside masks\) 17% · output\.9 · step 67 · image 1\/2/);
      assert.equal(caption.style.whiteSpace, "normal"); // wraps instead of being cut off
      const srcs = FakeImage.made.map((i) => i.src);
      assert.ok(srcs.some((s) => s.startsWith("/api/view?filename=t.png&subfolder=e4e&type=temp&rand=")), srcs.join());
      assert.ok(srcs.some((s) => s.startsWith("/api/view?filename=r0.png&subfolder=&type=temp")));

      FakeImage.made.forEach((img) => img.load(64, 64));
      assert.ok(canvas.ctx.calls.some((c) => c[0] === "drawImage"));

      let marker = false;
      let inverse = false;
      for (let x = 0; x < 300; x += 3) {
        for (let y = 0; y < 150; y += 3) {
          canvas.ctx.calls.length = 0;
          canvas.dispatch("pointermove", { clientX: x, clientY: y });
          marker ||= canvas.ctx.calls.some((c) => c[0] === "arc");
          inverse ||= canvas.ctx.calls.some((c) => c[0] === "fillText" && /cop(y|ies) this spot/.test(c[1]));
        }
      }
      assert.ok(marker, "hovering the target never drew a marker on a reference");
      assert.ok(inverse, "hovering a reference never marked target tokens");
      canvas.dispatch("pointerleave");

      batch.value = "1";
      batch.dispatch("change");
      assert.match(caption.textContent, /step 3 · image 2\/2/);
      const overlayBox = w.element.find("input")[0];
      overlayBox.checked = false;
      overlayBox.dispatch("change");

      node.onExecuted({ e4e_correspondence: [sampleRaw({ src: "AAAAAA==" })] });
      assert.match(caption.textContent, /Unusable correspondence data: image 1: src has 1 entries, expected 6/);
      assert.equal(batch.style.display, "none");
      node.onRemoved();
    }));

  test("missing or broken data never throws", () =>
    withDOM(() => {
      const Sampler = nodeClass(SAMPLER_NODE, []);
      const node = new Sampler();
      node.onNodeCreated();
      const caption = node.widgets[0].element.children.at(-1);
      node.onExecuted(undefined);
      node.onExecuted({ images: [] });
      node.onExecuted({ e4e_correspondence: "garbage" });
      assert.match(caption.textContent, /Unusable correspondence data/);
      node.onExecuted({ e4e_correspondence: [] });
      assert.equal(caption.textContent, "");
      node.onExecuted({ e4e_notices: "not a list" });
      node.onExecuted({ e4e_notices: [42, null] });
      node.onRemoved();
    }));

  test("the run's notices (nodes after the patch that change the model) show as a warning line, never cut off", () =>
    withDOM(() => {
      const Sampler = nodeClass(SAMPLER_NODE, []);
      const node = new Sampler();
      node.onNodeCreated();
      const w = node.widgets[0];
      const [notices] = w.element.children.filter((c) => c.style.color === "#fb5");
      assert.ok(notices, "no notices line");
      assert.equal(notices.style.display, "none");
      const base = w.options.getMinHeight();
      const said = [
        "FreeU_V2 (added after Semantic Match Patch) changes the UNet's decoder: the matching sees its features",
        "a weight patch (LoRA) added after Semantic Match Patch",
      ];
      node.onExecuted({ e4e_correspondence: [sampleRaw()], e4e_notices: said });
      assert.equal(notices.style.display, "");
      assert.deepEqual(notices.children.map((c) => c.textContent), said.map((t) => `\u26a0 ${t}`));
      assert.equal(notices.style.whiteSpace, "normal");
      assert.ok(w.options.getMinHeight() >= base + 3 * 14, "the widget grows by the lines the notices take");
      assert.ok(node.size[1] >= w.options.getMinHeight(), "the node grows to show them");
      assert.equal(w.element.style.minHeight, `${w.options.getMinHeight() - 2 * w.options.margin}px`);
      node.onExecuted({ e4e_correspondence: [sampleRaw()] }); // the next run has none
      assert.equal(notices.style.display, "none");
      assert.equal(w.options.getMinHeight(), base + 2 * 14); // the caption's three lines (with what a click does) stay
      node.onExecuted({ e4e_notices: ["a notice without correspondence"] });
      assert.equal(notices.children.length, 1);
      node.onExecuted({ images: [] }); // another output's message changes nothing
      assert.equal(notices.children.length, 1);
    }));

  test("onExecuted without onNodeCreated still works", () =>
    withDOM(() => {
      const Sampler = nodeClass(SAMPLER_NODE, []);
      const node = new Sampler();
      node.onExecuted({ e4e_correspondence: [sampleRaw()] });
      assert.match(node.widgets[0].element.children.at(-1).textContent, /ref 1 50%/);
    }));
});

// ---------------------------------------------------------------- correspondence hints

const PATCH_WIDGETS = [
  { name: "layers", type: "combo", value: "auto" },
  { name: "custom_layers", type: "text", value: "output.6-11" },
  { name: "hints", type: "customtext", value: "" },
];

/** A LiteGraph-like node input list and getInputNode: inputs by name, `up` the node linked to each slot. */
function linkInputs(node, names, up = {}) {
  node.inputs = names.map((name) => ({ name }));
  node.getInputNode = (slot) => up[slot] ?? null;
  node.isInputConnected = (slot) => up[slot] != null;
  return node;
}

/**
 * A sampler whose model comes from a Semantic Match Patch through a LoRA-like node (its viewer after a run of
 * `raw`), and the patch node; the sampler's canvas with a click helper (press and release, as the browser sends).
 */
function hintGraph({ raw = sampleRaw(), hints = "", patch = true, seen = [] } = {}) {
  const Sampler = nodeClass(SAMPLER_NODE, []);
  const Patch = nodeClass(PATCH_NODE, PATCH_WIDGETS);
  const p = new Patch();
  p.type = PATCH_NODE;
  p.onNodeCreated();
  linkInputs(p, ["model"]);
  const hw = p.widgets.find((w) => w.name === "hints");
  hw.value = hints;
  hw.callback = (v) => seen.push(v);
  const lora = linkInputs({ type: "LoraLoader" }, ["model", "clip"], patch ? { 0: p } : {});
  const s = new Sampler();
  linkInputs(s, ["model", "positive", "negative"], { 0: lora });
  s.onNodeCreated();
  s.onExecuted({ e4e_correspondence: [raw] });
  const w = s.widgets.find((x) => x.name === "e4e_viewer");
  const canvas = w.element.find("canvas")[0];
  const view = viewerOf(s);
  const at = (where, fx, fy) => {
    const r = where === "target" ? view.scene.targetRect : view.scene.refRects[where];
    return [r.x + r.w * fx, r.y + r.h * fy];
  };
  const press = (x, y, { button = 0, shiftKey = false, moveTo = null } = {}) => {
    const stopped = [];
    const ev = (cx, cy) => ({ clientX: cx, clientY: cy, button, shiftKey, stopPropagation: () => stopped.push(1),
      preventDefault: () => stopped.push("default") });
    canvas.dispatch("pointerdown", ev(x, y));
    if (button === 2) canvas.dispatch("contextmenu", ev(x, y)); // Linux: the menu comes with the press
    const [ux, uy] = moveTo || [x, y];
    canvas.dispatch("pointerup", ev(ux, uy));
    return stopped;
  };
  const click = (where, fx, fy, opts) => press(...at(where, fx, fy), opts);
  const caption = w.element.children.at(-1);
  const [notices] = w.element.children.filter((c) => c.style.color === "#fb5");
  const [clear] = w.element.find("button");
  return { s, p, hw, w, canvas, view, at, press, click, caption, notices, clear, seen };
}

const ONE_REF = sampleRaw({ ref_grids: [[2, 2]], n_refs: 1, src: encodeSrc([-1, 0, 3, 1, 2, 3]), references: [null] });

describe("correspondence hints in the viewer", () => {
  test("a click on the target, then on the reference, appends the pair to the patch node's hints", () =>
    withDOM(() => {
      const g = hintGraph({ raw: ONE_REF, hints: "0.1,0.1 > 0.2,0.2", seen: [] });
      assert.match(g.caption.textContent, /· 1 hint: right-click one to remove$/);
      const dirty = g.p.dirty;
      const stopped = g.click("target", 0.25, 0.5);
      assert.deepEqual(stopped, [1], "a press on a picture is not passed on (the Vue renderer would drag the node)");
      assert.deepEqual(g.view.pending, { x: 0.25, y: 0.5 });
      assert.match(g.caption.textContent, /now click its reference spot \(Esc cancels\)$/);
      assert.equal(g.hw.value, "0.1,0.1 > 0.2,0.2", "nothing written before the reference spot");
      const arcs = g.canvas.ctx.calls.filter((c) => c[0] === "arc");
      const [tx, ty] = g.at("target", 0.25, 0.5);
      assert.ok(arcs.some((c) => Math.abs(c[1] - tx) < 1e-9 && Math.abs(c[2] - ty) < 1e-9), "the pending click is drawn");

      g.click(0, 0.75, 1 / 3);
      assert.equal(g.hw.value, "0.1,0.1 > 0.2,0.2\n0.25,0.5 > 0.75,0.333");
      assert.deepEqual(g.seen, ["0.1,0.1 > 0.2,0.2\n0.25,0.5 > 0.75,0.333"], "the widget's callback heard it");
      assert.ok(g.p.dirty > dirty, "the patch node's canvas is marked dirty");
      assert.equal(g.view.pending, null);
      assert.match(g.caption.textContent, /· 2 hints: right-click one to remove$/);
      const numbers = g.canvas.ctx.calls.filter((c) => c[0] === "fillText" && /^\d$/.test(c[1])).map((c) => c[1]);
      assert.ok(numbers.includes("2"), "the new hint is drawn, numbered");
      assert.equal(g.clear.style.display, "");
    }));

  test("with two references the pair names the one clicked: '@2'", () =>
    withDOM(() => {
      const g = hintGraph();
      g.click("target", 0.5, 0.5);
      g.click(1, 0.1, 0.9);
      assert.equal(g.hw.value, "0.5,0.5 > 0.1,0.9 @2");
      g.click("target", 0, 1);
      g.click(0, 1, 0);
      assert.equal(g.hw.value, "0.5,0.5 > 0.1,0.9 @2\n0,1 > 1,0 @1");
    }));

  test("clicks outside the pictures, on a reference first, drags and before a run write nothing", () =>
    withDOM(() => {
      const g = hintGraph();
      const t = g.view.scene.targetRect;
      assert.ok(t.y > 2, "the target is letterboxed: room above it");
      assert.deepEqual(g.press(t.x + t.w / 2, t.y - 2), [], "a press beside the pictures is passed on");
      assert.equal(g.view.pending, null);
      g.press(t.x + t.w + 2, t.y + 5); // the gap between target and references
      assert.equal(g.view.pending, null);
      g.click(0, 0.5, 0.5); // a reference without a target spot first
      g.click("target", 0.5, 0.5);
      const r = g.view.scene.refRects[1];
      g.press(r.x + r.w / 2, r.y - 3); // above reference 2: not a picture
      g.click(0, 0.5, 0.5, { moveTo: g.at(0, 0.9, 0.9) }); // a drag, not a click
      assert.equal(g.hw.value, "");
      assert.deepEqual(g.seen, []);
      assert.ok(g.view.pending, "the first spot still waits");

      const Sampler = nodeClass(SAMPLER_NODE, []);
      const before = new Sampler();
      before.onNodeCreated();
      const canvas = before.widgets[0].element.find("canvas")[0];
      canvas.dispatch("pointerdown", { clientX: 50, clientY: 50, button: 0 });
      canvas.dispatch("pointerup", { clientX: 50, clientY: 50, button: 0 });
      assert.equal(viewerOf(before).pending, null);
    }));

  test("another target click moves the pending spot; Esc and a right-click cancel it", () =>
    withDOM(() => {
      const g = hintGraph();
      g.click("target", 0.2, 0.2);
      g.click("target", 0.4, 0.6);
      assert.deepEqual(g.view.pending, { x: 0.4, y: 0.6 });
      document.dispatch("keydown", { key: "a" });
      assert.ok(g.view.pending);
      document.dispatch("keydown", { key: "Escape" });
      assert.equal(g.view.pending, null);
      assert.equal((document.listeners.keydown || []).length, 0, "the Esc listener goes with the pending click");
      assert.match(g.caption.textContent, /hints: click target, then reference$/);
      g.click("target", 0.2, 0.2);
      const stopped = g.press(...g.at(0, 0.5, 0.5), { button: 2 });
      assert.ok(stopped.includes("default"), "the context menu stays away");
      assert.equal(g.view.pending, null);
      g.click(0, 0.5, 0.5);
      assert.equal(g.hw.value, "");
    }));

  test("a right-click (or shift-click) on a drawn hint removes that pair; 'clear hints' empties the widget", () =>
    withDOM(() => {
      const text = "0.2,0.2 > 0.5,0.5 @1; 0.8,0.5 > 0.5,0.2 @2\n# a note\n0.5,0.9 > 0.1,0.1 @2";
      const g = hintGraph({ hints: text });
      g.canvas.dispatch("pointermove", { clientX: 1, clientY: 1 }); // a paint reads the hints
      assert.match(g.caption.textContent, /hints: pair 3 is unreadable \(see the patch\)$/);
      const stopped = g.press(...g.at(1, 0.5, 0.2), { button: 2 }); // pair 2's reference spot
      assert.ok(stopped.includes("default"));
      assert.equal(g.hw.value, "0.2,0.2 > 0.5,0.5 @1\n# a note\n0.5,0.9 > 0.1,0.1 @2");
      const [x, y] = g.at("target", 0.5, 0.9);
      g.press(x + 4, y - 3, { shiftKey: true }); // pair 4 (the note is pair 3), near its target spot
      assert.equal(g.hw.value, "0.2,0.2 > 0.5,0.5 @1\n# a note");
      assert.deepEqual(g.press(...g.at("target", 0.9, 0.1), { button: 2 }), [1], "far from a hint: the menu shows");
      assert.equal(g.hw.value, "0.2,0.2 > 0.5,0.5 @1\n# a note");
      g.clear.dispatch("click");
      assert.equal(g.hw.value, "");
      assert.equal(g.seen.at(-1), "");
      assert.equal(g.clear.style.display, "none");
    }));

  test("hand edits of the hints show at the next paint (the canvas's draw hook asks for it)", () =>
    withDOM(() => {
      const g = hintGraph();
      g.hw.value = "0.5,0.5 > 0.5,0.5 @1";
      g.canvas.ctx.calls.length = 0;
      g.s.onDrawForeground?.({});
      assert.ok(g.canvas.ctx.calls.some((c) => c[0] === "fillText" && c[1] === "1"), "the hand-written hint is drawn");
      assert.match(g.caption.textContent, /1 hint: right-click one to remove$/);
      g.canvas.ctx.calls.length = 0;
      g.s.onDrawForeground?.({});
      assert.equal(g.canvas.ctx.calls.length, 0, "no repaint when nothing changed");
    }));

  test("no Semantic Match Patch upstream: nothing is written and the notice line says so", () =>
    withDOM(() => {
      const g = hintGraph({ patch: false });
      assert.equal(g.notices.style.display, "none");
      g.click("target", 0.5, 0.5);
      assert.equal(g.view.pending, null);
      assert.equal(g.notices.style.display, "");
      assert.match(g.notices.children.at(-1).textContent, /Semantic Match Patch that feeds this sampler's model input/);
      g.click(0, 0.5, 0.5);
      assert.equal(g.hw.value, "");
      assert.ok(g.w.options.getMinHeight() > 240 + 2 * 14, "the notice has room");
      g.s.onExecuted({ e4e_correspondence: [sampleRaw()] }); // a new run clears it
      assert.equal(g.notices.style.display, "none");

      const h = hintGraph(); // the hints input linked to another node: not written either
      h.p.inputs.push({ name: "hints", widget: { name: "hints" } });
      h.p.isInputConnected = (slot) => slot === 1;
      h.click("target", 0.5, 0.5);
      assert.match(h.notices.children.at(-1).textContent, /come through a link/);
      assert.equal(h.hw.value, "");
    }));
});

describe("patch node", () => {
  const widgets = [
    { name: "layers", type: "combo", value: "auto" },
    { name: "custom_layers", type: "text", value: "output.6-11" },
  ];
  const SDXL = ["input.4", "input.5", "input.7", "input.8", "middle.0", "output.0", "output.1", "output.2", "output.3",
    "output.4", "output.5"];

  test("custom_layers follows the layers combo; the info line checks it with the pack's grammar", () =>
    withDOM(() => {
      const Patch = nodeClass(PATCH_NODE, widgets);
      const node = new Patch();
      const seen = [];
      node.widgets[0].callback = (v) => seen.push(v);
      node.onNodeCreated();
      const [layers, custom] = node.widgets;
      const info = node.widgets.find((w) => w.name === "e4e_model_info");
      assert.equal(info.options.serialize, false);
      assert.equal(info.element.style.height, "20px");
      assert.equal(custom.hidden, true);
      assert.equal(info.element.textContent, "");

      layers.value = "custom";
      layers.callback("custom");
      assert.deepEqual(seen, ["custom"]);
      assert.ok(!custom.hidden);
      assert.equal(info.element.textContent, "custom: output.6-11");

      custom.value = "double.0-1, single.34-37";
      custom.callback(custom.value);
      assert.equal(info.element.textContent, "custom: double.0-1, single.34-37");
      assert.equal(info.element.style.color, "#9c9");
      custom.value = "output.11-6";
      custom.callback(custom.value);
      assert.match(info.element.textContent, /empty range/);
      assert.equal(info.element.style.color, "#f88");

      node.onExecuted({ e4e_model: [{ family: "sdxl", layers: ["output.0", "output.1"], blocks: SDXL, steps: [5, 45] }] });
      assert.equal(info.element.textContent, "SDXL · output.0-1 · steps 5-45");
      custom.value = "output.3-11";
      custom.callback(custom.value); // the model's blocks stay known after a change
      assert.equal(info.element.textContent, "not in this SDXL model: output.6-11 (it has input.4-5, input.7-8, middle.0, output.0-5)");
      assert.equal(info.element.style.color, "#f88");

      layers.value = "auto";
      layers.callback("auto");
      assert.equal(custom.hidden, true);
      assert.equal(info.element.textContent, "");
    }));

  test("a loaded workflow's values are applied in onConfigure", () =>
    withDOM(() => {
      const Patch = nodeClass(PATCH_NODE, widgets);
      const node = new Patch();
      node.onNodeCreated();
      node.widgets[0].value = "custom";
      node.onConfigure({});
      assert.ok(!node.widgets[1].hidden);
    }));

  test("bad messages and missing widgets never throw", () =>
    withDOM(() => {
      const Patch = nodeClass(PATCH_NODE, []);
      const node = new Patch();
      node.onNodeCreated();
      node.onExecuted(undefined);
      node.onExecuted({ e4e_model: "x" });
      node.onExecuted({ e4e_model: [] });
      node.onConfigure();
    }));
});
