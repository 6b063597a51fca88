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
import { fakeContext, sampleRaw } from "./helpers.mjs";

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

function nodeClass(name, widgets, { dom = false } = {}) {
  class Node {
    constructor() {
      this.size = [300, 100];
      this.widgets = widgets.map((w) => ({ ...w }));
      this.inputs = [];
      this.dirty = 0;
      this.calls = [];
    }
    computeSize() {
      return [300, 30 + this.widgets.filter((w) => !w.hidden && !w.element).length * 24];
    }
    setSize(s) {
      this.size = s;
    }
    setDirtyCanvas() {
      this.dirty++;
    }
  }
  Node.prototype.onExecuted = function (m) {
    this.calls.push(["onExecuted", m]);
  };
  Node.prototype.onNodeCreated = function () {
    this.calls.push(["onNodeCreated"]);
  };
  if (dom) {
    Node.prototype.addDOMWidget = function (wname, type, element, options) {
      const w = { name: wname, type, element, options };
      this.widgets.push(w);
      return w;
    };
  }
  extension.beforeRegisterNodeDef(Node, { name });
  return Node;
}

const texts = (ctx) => ctx.calls.filter((c) => c[0] === "fillText").map((c) => c[1]);

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
    extension.beforeRegisterNodeDef({}, { name: SAMPLER_NODE });
  });
});

describe("sampler viewer, drawn on the node (no addDOMWidget)", () => {
  test("keeps the original callbacks and draws the correspondence", () => {
    const Sampler = nodeClass(SAMPLER_NODE, [{ name: "steps", type: "number", value: 50 }]);
    const node = new Sampler();
    node.onNodeCreated();
    assert.deepEqual(node.calls[0], ["onNodeCreated"]);
    node.onDrawForeground(fakeContext()); // too small for the viewer yet: no throw

    node.onExecuted({ e4e_correspondence: [sampleRaw(), sampleRaw({ step: 3 })] });
    assert.equal(node.calls.at(-1)[0], "onExecuted");
    assert.ok(node.size[0] >= 360 && node.size[1] >= 54 + 240, `node not grown: ${node.size}`);

    const ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.ok(texts(ctx).some((t) => /ref 1 50% .*step 67 · image 1\/2 \(click: next image\)/.test(t)));

    let marker = false;
    let inverse = false;
    for (let x = 0; x < node.size[0]; x += 4) {
      for (let y = 0; y < node.size[1]; y += 4) {
        node.onMouseMove({}, [x, y]);
        const c = fakeContext();
        node.onDrawForeground(c);
        marker ||= c.calls.some((k) => k[0] === "arc");
        inverse ||= texts(c).some((t) => /copy this spot|copies this spot/.test(t));
      }
    }
    assert.ok(marker, "hovering the target never drew a marker on a reference");
    assert.ok(inverse, "hovering a reference never marked target tokens");

    assert.ok(!node.onMouseDown({}, [10, 90]));
    const captionY = node.size[1] - 6 - 8;
    assert.equal(node.onMouseDown({}, [20, captionY]), true);
    const c2 = fakeContext();
    node.onDrawForeground(c2);
    assert.ok(texts(c2).some((t) => /step 3 · image 2\/2/.test(t)));
  });

  test("missing or broken data never throws", () => {
    const Sampler = nodeClass(SAMPLER_NODE, []);
    const node = new Sampler();
    node.onNodeCreated();
    node.onExecuted(undefined);
    node.onExecuted({ images: [] });
    node.onExecuted({ e4e_correspondence: "garbage" });
    node.size = [400, 400];
    let ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.ok(texts(ctx).some((t) => /Unusable correspondence data/.test(t)));
    node.onExecuted({ e4e_correspondence: [] });
    ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.ok(texts(ctx).some((t) => /Run the sampler/.test(t)));
    node.onMouseMove({}, null);
    node.onMouseDown({}, undefined);
    node.flags = { collapsed: true };
    ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.equal(ctx.calls.length, 0);
    node.onRemoved();
  });

  test("onExecuted without onNodeCreated still works", () => {
    const Sampler = nodeClass(SAMPLER_NODE, []);
    const node = new Sampler();
    node.onExecuted({ e4e_correspondence: [sampleRaw()] });
    const ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.ok(texts(ctx).some((t) => /ref 1 50%/.test(t)));
  });
});

describe("sampler viewer as a DOM widget", () => {
  test("builds the widget, loads previews through api.apiURL, reacts to the pointer and the selectors", () =>
    withDOM(() => {
      FakeImage.made = [];
      const Sampler = nodeClass(SAMPLER_NODE, [], { dom: true });
      const node = new Sampler();
      node.onNodeCreated();
      const w = node.widgets.find((x) => x.name === "e4e_viewer");
      assert.ok(w, "no DOM widget");
      assert.equal(w.options.serialize, false);
      assert.equal(w.serialize, false);
      assert.equal(w.options.getMinHeight(), 240);
      assert.equal(w.options.getValue(), "");
      const [batch, view] = w.element.find("select");
      const canvas = w.element.find("canvas")[0];
      const caption = w.element.children.at(-1);
      assert.match(caption.textContent, /Run the sampler/);

      node.onExecuted({ e4e_correspondence: [sampleRaw(), sampleRaw({ step: 3 })] });
      assert.equal(batch.children.length, 2);
      assert.equal(batch.style.display, "");
      assert.match(caption.textContent, /ref 1 50% · ref 2 33% · unmatched 17% · output\.9 · step 67 · image 1\/2/);
      const srcs = FakeImage.made.map((i) => i.src);
      assert.ok(srcs.some((s) => s.startsWith("/api/view?filename=t.png&subfolder=e4e&type=temp&rand=")), srcs.join());
      assert.ok(srcs.some((s) => s.startsWith("/api/view?filename=r0.png&subfolder=&type=temp")));

      FakeImage.made.forEach((img) => img.load(64, 64));
      assert.ok(canvas.ctx.calls.some((c) => c[0] === "drawImage"));

      let marker = false;
      for (let x = 0; x < 300 && !marker; x += 3) {
        for (let y = 0; y < 150 && !marker; y += 3) {
          canvas.ctx.calls.length = 0;
          canvas.dispatch("pointermove", { clientX: x, clientY: y });
          marker = canvas.ctx.calls.some((c) => c[0] === "arc");
        }
      }
      assert.ok(marker, "hovering the target never drew a marker");
      canvas.dispatch("pointerleave");

      batch.value = "1";
      batch.dispatch("change");
      assert.match(caption.textContent, /step 3 · image 2\/2/);
      view.value = "target";
      view.dispatch("change");
      const overlayBox = w.element.find("input")[0];
      overlayBox.checked = false;
      overlayBox.dispatch("change");

      node.onExecuted({ e4e_correspondence: [sampleRaw({ src: "AAAAAA==" })] });
      assert.match(caption.textContent, /Unusable correspondence data: image 1: src has 1 entries, expected 6/);
      assert.equal(batch.style.display, "none");
      node.onRemoved();
    }));
});

describe("patch node", () => {
  const widgets = [
    { name: "layers", type: "combo", value: "auto" },
    { name: "custom_layers", type: "text", value: "output.6-11" },
  ];

  test("custom_layers follows the layers combo; info line drawn on the node", () => {
    const Patch = nodeClass(PATCH_NODE, widgets);
    const node = new Patch();
    const seen = [];
    node.widgets[0].callback = (v) => seen.push(v);
    node.onNodeCreated();
    const [layers, custom] = node.widgets;
    assert.equal(custom.hidden, true);
    assert.equal(custom.type, "hidden");

    layers.value = "custom";
    layers.callback("custom");
    assert.deepEqual(seen, ["custom"]);
    assert.equal(custom.type, "text");
    assert.ok(!custom.hidden);
    node.size = [300, 200];
    let ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.deepEqual(texts(ctx), ["custom: output.6-11"]);

    custom.value = "output.11-6";
    custom.callback(custom.value);
    ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.match(texts(ctx)[0], /backwards/);

    node.onExecuted({ e4e_model: [{ family: "sdxl", layers: ["output.0", "output.1"], steps: [5, 45] }] });
    ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.deepEqual(texts(ctx), ["SDXL · output.0-1 · steps 5-45"]);

    layers.value = "auto";
    layers.callback("auto"); // a change clears the stale model info
    assert.equal(custom.hidden, true);
    ctx = fakeContext();
    node.onDrawForeground(ctx);
    assert.deepEqual(texts(ctx), []);
  });

  test("a loaded workflow's values are applied in onConfigure", () => {
    const Patch = nodeClass(PATCH_NODE, widgets);
    const node = new Patch();
    node.onNodeCreated();
    node.widgets[0].value = "custom";
    node.onConfigure({});
    assert.ok(!node.widgets[1].hidden);
  });

  test("bad messages and missing widgets never throw", () => {
    const Patch = nodeClass(PATCH_NODE, []);
    const node = new Patch();
    node.onNodeCreated();
    node.onExecuted(undefined);
    node.onExecuted({ e4e_model: "x" });
    node.onExecuted({ e4e_model: [] });
    node.onConfigure();
    node.onDrawForeground(fakeContext());
  });

  test("DOM info line", () =>
    withDOM(() => {
      const Patch = nodeClass(PATCH_NODE, widgets, { dom: true });
      const node = new Patch();
      node.onNodeCreated();
      const info = node.widgets.find((w) => w.name === "e4e_model_info");
      assert.ok(info);
      assert.equal(info.options.serialize, false);
      node.onExecuted({ e4e_model: [{ family: "sd1", layers: ["output.6", "output.7"], steps: [0, 49] }] });
      assert.equal(info.element.textContent, "SD1 · output.6-7 · steps 0-49");
      node.widgets[0].value = "custom";
      node.widgets[1].value = "junk";
      node.widgets[1].callback?.("junk");
      assert.match(info.element.textContent, /not a layer/);
      assert.equal(info.element.style.color, "#f88");
    }));
});
