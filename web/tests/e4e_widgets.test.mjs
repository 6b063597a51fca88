import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { HIDDEN_TYPE, findWidget, fitNodeHeight, isDrivenByInput, isHidden, markDirty, setWidgetVisible } from "../js/e4e_widgets.js";

function makeNode() {
  const node = {
    size: [300, 200],
    widgets: [
      { name: "layers", type: "combo", value: "auto" },
      { name: "custom_layers", type: "text", value: "" },
    ],
    inputs: [],
    computeSize() {
      const visible = this.widgets.filter((w) => !w.hidden).length;
      return [200, 30 + visible * 24];
    },
    setSize(s) {
      this.size = s;
    },
  };
  return node;
}

describe("findWidget", () => {
  test("by name, null when missing", () => {
    const node = makeNode();
    assert.equal(findWidget(node, "layers").type, "combo");
    assert.equal(findWidget(node, "nope"), null);
    assert.equal(findWidget(null, "layers"), null);
    assert.equal(findWidget({ widgets: [null] }, "layers"), null);
  });
});

describe("setWidgetVisible", () => {
  test("hide then show restores the plain widget exactly", () => {
    const node = makeNode();
    const w = findWidget(node, "custom_layers");
    assert.equal(setWidgetVisible(node, w, false), true);
    assert.equal(w.type, HIDDEN_TYPE);
    assert.equal(w.hidden, true);
    assert.deepEqual(w.computeSize(), [0, -4]);
    assert.ok(isHidden(w));
    assert.equal(setWidgetVisible(node, w, false), false); // idempotent
    assert.equal(setWidgetVisible(node, w, true), true);
    assert.deepEqual(w, { name: "custom_layers", type: "text", value: "" });
    assert.ok(!isHidden(w));
    assert.equal(setWidgetVisible(node, w, true), false);
  });

  test("keeps a widget's own computeSize and inherited members", () => {
    class Widget {
      computeSize() {
        return [1, 22];
      }
    }
    const w = Object.assign(new Widget(), { name: "custom_layers", type: "text" });
    const node = { widgets: [w] };
    setWidgetVisible(node, w, false);
    assert.deepEqual(w.computeSize(), [0, -4]);
    setWidgetVisible(node, w, true);
    assert.ok(!Object.hasOwn(w, "computeSize"));
    assert.deepEqual(w.computeSize(), [1, 22]);

    const own = () => [2, 30];
    const w2 = { name: "x", type: "text", computeSize: own, hidden: false };
    setWidgetVisible({}, w2, false);
    setWidgetVisible({}, w2, true);
    assert.equal(w2.computeSize, own);
    assert.equal(w2.hidden, false);
  });

  test("works with a setter-backed hidden flag", () => {
    class Widget {
      #hidden = false;
      get hidden() {
        return this.#hidden;
      }
      set hidden(v) {
        this.#hidden = !!v;
      }
    }
    const w = Object.assign(new Widget(), { name: "custom_layers", type: "text" });
    setWidgetVisible({}, w, false);
    assert.equal(w.hidden, true);
    setWidgetVisible({}, w, true);
    assert.equal(w.hidden, false);
  });

  test("survives read-only properties", () => {
    const w = { name: "x" };
    Object.defineProperty(w, "type", { value: "text", writable: false, enumerable: true });
    assert.equal(setWidgetVisible({}, w, false), true);
    assert.equal(w.hidden, true);
    assert.equal(setWidgetVisible({}, w, true), true);
  });

  test("does not touch widgets driven by an input", () => {
    const node = makeNode();
    const w = findWidget(node, "custom_layers");
    node.inputs.push({ name: "custom_layers", widget: { name: "custom_layers" }, link: 7 });
    assert.ok(isDrivenByInput(node, w));
    assert.equal(setWidgetVisible(node, w, false), false);
    assert.equal(w.type, "text");
    const converted = { name: "y", type: "converted-widget" };
    assert.ok(isDrivenByInput({}, converted));
    assert.ok(!isDrivenByInput({ inputs: [{ name: "custom_layers", link: null }] }, { name: "custom_layers", type: "text" }));
  });

  test("null widget is a no-op", () => {
    assert.equal(setWidgetVisible(makeNode(), null, false), false);
    assert.equal(isDrivenByInput(null, null), false);
  });
});

describe("fitNodeHeight / markDirty", () => {
  test("grows, shrinks on request, keeps width", () => {
    const node = makeNode();
    node.size = [300, 50];
    fitNodeHeight(node);
    assert.deepEqual(node.size, [300, 78]);
    node.size = [300, 400];
    fitNodeHeight(node);
    assert.deepEqual(node.size, [300, 400]);
    fitNodeHeight(node, true);
    assert.deepEqual(node.size, [300, 78]);
  });
  test("works with typed-array sizes and without setSize", () => {
    const node = { size: new Float32Array([100, 10]), computeSize: () => [50, 60] };
    fitNodeHeight(node);
    assert.deepEqual(Array.from(node.size), [100, 60]);
  });
  test("tolerates nodes without the API", () => {
    fitNodeHeight(null);
    fitNodeHeight({ size: [1, 1] });
    fitNodeHeight({ size: [1, 1], computeSize: () => { throw new Error("x"); } });
    fitNodeHeight({ size: [1, 1], computeSize: () => null });
    markDirty(null);
    markDirty({});
    let n = 0;
    markDirty({ setDirtyCanvas: () => n++ });
    markDirty({ graph: { setDirtyCanvas: () => n++ } });
    assert.equal(n, 2);
  });
});
