// Semantic Match Patch node: `custom_layers` shown only for layers == "custom", and an info line
// (a DOM widget): the custom layers as the pack reads them, checked with the pack's own grammar
// (from the node definition) against the blocks of the last run's model, or, right after a run,
// the resolved family, layers and steps. No ComfyUI import, no side effects.

import { addDOMWidget, chain, el } from "./e4e_dom.js";
import { layerWidgetVisibility, patchInfo } from "./e4e_logic.js";
import { findWidget, fitNodeHeight, markDirty, setWidgetVisible } from "./e4e_widgets.js";

const patchUIs = new WeakMap();

class PatchNodeUI {
  constructor(node, grammar) {
    this.node = node;
    this.grammar = grammar;
    this.model = null; // the last run's e4e_model entry: family, layers, blocks, steps
    this.fresh = false; // no widget changed since that run
    this.info = { text: "", error: false };
    const line = el("div", {
      height: "20px",
      minHeight: "20px", // the Vue renderer lets DOM widgets shrink to their CSS size
      lineHeight: "20px",
      font: "11px sans-serif",
      whiteSpace: "nowrap",
      overflow: "hidden",
      textOverflow: "ellipsis",
      padding: "0 4px",
    });
    addDOMWidget(node, "e4e_model_info", line, { getMinHeight: () => 30, getMaxHeight: () => 30, margin: 5 });
    this.line = line;
    const changed = () => {
      this.fresh = false;
      this.update();
    };
    chain(findWidget(node, "layers") || {}, "callback", changed);
    chain(findWidget(node, "custom_layers") || {}, "callback", changed);
    this.update();
  }

  update() {
    const node = this.node;
    const layers = findWidget(node, "layers");
    const custom = findWidget(node, "custom_layers");
    const show = layerWidgetVisibility(layers?.value).custom_layers;
    if (setWidgetVisible(node, custom, show)) fitNodeHeight(node, !show);
    this.info = patchInfo(layers?.value, custom?.value, this.grammar, this.model, this.fresh);
    this.line.textContent = this.info.text;
    this.line.title = this.info.text;
    this.line.style.color = this.info.error ? "#f88" : "#9c9";
    markDirty(node);
  }

  setModel(list) {
    const first = Array.isArray(list) ? list[0] : list;
    this.model = first && typeof first === "object" ? first : null;
    this.fresh = !!this.model;
    this.update();
  }
}

function patchUIOf(node, grammar) {
  let ui = patchUIs.get(node);
  if (!ui) {
    ui = new PatchNodeUI(node, grammar);
    patchUIs.set(node, ui);
  }
  return ui;
}

/** Hook the patch node type; grammar: the compiled custom_layers grammar (e4e_logic.grammarOf). */
export function setupPatchNode(proto, grammar) {
  chain(proto, "onNodeCreated", function () {
    patchUIOf(this, grammar);
  });
  chain(proto, "onConfigure", function () {
    patchUIOf(this, grammar).update(); // widget values of a loaded workflow arrive without callbacks
  });
  chain(proto, "onExecuted", function (message) {
    if (message && typeof message === "object" && "e4e_model" in message) {
      patchUIOf(this, grammar).setModel(message.e4e_model);
    }
  });
}
