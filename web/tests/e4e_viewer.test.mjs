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
import { fakeContext, patchNodeData, sampleRaw } from "./helpers.mjs";

const JS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "js");
let root;
let extension;

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
  globalThis.document = { createElement: (t) => new FakeElement(t) };
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
      assert.equal(w.options.getMinHeight(), base + 14); // the two-line caption stays
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
