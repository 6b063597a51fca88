// ComfyUI glue of the Eye-for-an-eye pack: the only file that imports from ComfyUI, and the only
// one with a side effect (registering the extension "eye_for_an_eye.viewer"). Needs ComfyUI's
// frontend 1.27 or newer (DOM widgets, widget.hidden), as the pack requires ComfyUI >= 0.3.64.
// - E4EAppearanceTransferSampler: correspondence viewer (e4e_sampler_view.js), where clicks write correspondence
//   hints into the Semantic Match Patch upstream.
// - E4ESemanticMatchPatch: custom_layers visibility and the info line (e4e_patch_view.js), with the
//   layer grammar the node definition carries (engine/models/layers.py GRAMMAR).
// - the pack's templates: their order and card descriptions in the template browser, and a readable view when
//   one opens (e4e_browser.js).

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { armReadableOpen, installReadableOpen, installTemplateOrder, watchCards } from "./e4e_browser.js";
import { warn } from "./e4e_dom.js";
import { EXTENSION_NAME, PATCH_NODE, SAMPLER_NODE, grammarOf } from "./e4e_logic.js";
import { setupPatchNode } from "./e4e_patch_view.js";
import { setupSampler } from "./e4e_sampler_view.js";

app.registerExtension({
  name: EXTENSION_NAME,
  init() {
    try {
      installTemplateOrder(api);
    } catch (err) {
      warn("init", err);
    }
  },
  setup() {
    try {
      installReadableOpen(app.canvas);
      watchCards(document);
    } catch (err) {
      warn("setup", err);
    }
  },
  beforeConfigureGraph(graphData) {
    armReadableOpen(graphData);
  },
  beforeRegisterNodeDef(nodeType, nodeData) {
    try {
      if (nodeData?.name === SAMPLER_NODE) setupSampler(nodeType.prototype, (path) => api.apiURL(path));
      else if (nodeData?.name === PATCH_NODE) setupPatchNode(nodeType.prototype, grammarOf(nodeData));
    } catch (err) {
      warn("beforeRegisterNodeDef", err);
    }
  },
});
