import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { findWidget, fitNodeHeight, isLinked, markDirty, setWidgetVisible } from "../js/e4e_widgets.js";

function makeNode() {
  return {
    size: [300, 200],
    widgets: [
      { name: "layers", type: "combo", value: "auto" },
      { name: "custom_layers", type: "text", value: "" },
    ],
    inputs: [],
    isInputConnected(slot) {
      return this.inputs[slot].link != null;
    },
    computeSize() {
      const visible = this.widgets.filter((w) => !w.hidden).length;
      return [200, 30 + visible * 24];
    },
    setSize(s) {
      this.size = s;
    },
  };
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
  test("hides and shows through `hidden` only, and says when it changed something", () => {
    const node = makeNode();
    const w = findWidget(node, "custom_layers");
    assert.equal(setWidgetVisible(node, w, false), true);
    assert.equal(w.hidden, true);
    assert.equal(w.type, "text");
    assert.equal(setWidgetVisible(node, w, false), false); // idempotent
    assert.equal(setWidgetVisible(node, w, true), true);
    assert.equal(w.hidden, false);
    assert.equal(setWidgetVisible(node, w, true), false);
  });

  test("works with a setter-backed hidden flag (frontend 1.58)", () => {
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

  test("a widget driven by a link stays shown", () => {
    const node = makeNode();
    const w = findWidget(node, "custom_layers");
    node.inputs.push({ name: "custom_layers", widget: { name: "custom_layers" }, link: 7 });
    assert.ok(isLinked(node, w));
    assert.equal(setWidgetVisible(node, w, false), false);
    assert.ok(!w.hidden);
    node.inputs[0].link = null;
    assert.ok(!isLinked(node, w));
    assert.ok(!isLinked({ inputs: [{ name: "custom_layers" }] }, w)); // no isInputConnected: not linked
  });

  test("null widget is a no-op", () => {
    assert.equal(setWidgetVisible(makeNode(), null, false), false);
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
  test("markDirty asks the node for a redraw", () => {
    let n = 0;
    markDirty({ setDirtyCanvas: () => n++ });
    markDirty({});
    assert.equal(n, 1);
  });
});
