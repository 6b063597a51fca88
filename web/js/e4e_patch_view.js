// Semantic Match Patch node: `custom_layers` shown only for layers == "custom", and an info
// line (DOM widget, else painted on the node) with the parsed custom layers or, after a run,
// the resolved model family, layers and steps. No ComfyUI import, no side effects.

import { addDOMWidget, chain, el, hasDOM, warn } from "./e4e_dom.js";
import { layerWidgetVisibility, patchInfo } from "./e4e_logic.js";
import { findWidget, fitNodeHeight, markDirty, setWidgetVisible } from "./e4e_widgets.js";

const patchUIs = new WeakMap();

class PatchNodeUI {
  constructor(node) {
    this.node = node;
    this.model = null;
    this.info = { text: "", error: false };
    this.dom = null;
    try {
      if (typeof node.addDOMWidget === "function" && hasDOM()) {
        const div = el("div", {
          font: "11px sans-serif",
          whiteSpace: "nowrap",
          overflow: "hidden",
          textOverflow: "ellipsis",
          padding: "2px 4px",
        });
        // current frontends take `margin` (default 10 px each side); old ones always use 10
        const size = { getMinHeight: () => 34, getMaxHeight: () => 34, margin: 5 };
        if (addDOMWidget(node, "e4e_model_info", div, size)) {
          this.dom = div;
        }
      }
    } catch (err) {
      warn("no info widget, drawing on the node instead", err);
    }
    const changed = () => {
      this.model = null;
      this.update();
    };
    chain(findWidget(node, "layers"), "callback", changed);
    chain(findWidget(node, "custom_layers"), "callback", changed);
    this.update();
  }

  update() {
    const node = this.node;
    const layers = findWidget(node, "layers");
    const custom = findWidget(node, "custom_layers");
    const show = layerWidgetVisibility(layers?.value).custom_layers;
    if (setWidgetVisible(node, custom, show)) fitNodeHeight(node, !show);
    this.info = patchInfo(layers?.value, custom?.value, this.model);
    if (this.dom) {
      this.dom.textContent = this.info.text;
      this.dom.title = this.info.text;
      this.dom.style.color = this.info.error ? "#f88" : "#9c9";
    } else if (this.info.text) {
      fitNodeHeight(node);
    }
    markDirty(node);
  }

  setModel(list) {
    const first = Array.isArray(list) ? list[0] : list;
    this.model = first && typeof first === "object" ? first : null;
    this.update();
  }

  drawOnNode(ctx) {
    if (this.dom || !this.info.text || !this.node.size) return;
    ctx.save();
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "bottom";
    ctx.fillStyle = this.info.error ? "#f88" : "#9c9";
    ctx.fillText(this.info.text, 8, this.node.size[1] - 4);
    ctx.restore();
  }
}

function patchUIOf(node, create = false) {
  let ui = patchUIs.get(node);
  if (!ui && create) {
    ui = new PatchNodeUI(node);
    patchUIs.set(node, ui);
  }
  return ui || null;
}

export function setupPatchNode(proto) {
  chain(proto, "onNodeCreated", function () {
    patchUIOf(this, true);
  });
  chain(proto, "onConfigure", function () {
    patchUIOf(this, true).update(); // widget values of a loaded workflow arrive without callbacks
  });
  chain(proto, "onExecuted", function (message) {
    if (message && typeof message === "object" && "e4e_model" in message) {
      patchUIOf(this, true).setModel(message.e4e_model);
    }
  });
  chain(proto, "onDrawForeground", function (ctx) {
    if (ctx && !this.flags?.collapsed) patchUIOf(this)?.drawOnNode(ctx);
  });
}
