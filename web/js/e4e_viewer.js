// ComfyUI glue of the Eye-for-an-eye pack: the only file that imports from ComfyUI, and the only
// one with a side effect (registering the extension "eye_for_an_eye.viewer").
// - E4EAppearanceTransferSampler: correspondence viewer (e4e_sampler_view.js).
// - E4ESemanticMatchPatch: custom_layers visibility and model info line (e4e_patch_view.js).
// Every optional frontend API is feature-checked; nothing here may throw into the frontend.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { warn } from "./e4e_dom.js";
import { EXTENSION_NAME, PATCH_NODE, SAMPLER_NODE } from "./e4e_logic.js";
import { setupPatchNode } from "./e4e_patch_view.js";
import { setupSampler } from "./e4e_sampler_view.js";

function apiURL(path) {
  try {
    if (api && typeof api.apiURL === "function") return api.apiURL(path);
  } catch {
    /* fall through */
  }
  return path;
}

const extension = {
  name: EXTENSION_NAME,
  beforeRegisterNodeDef(nodeType, nodeData) {
    try {
      const proto = nodeType && nodeType.prototype;
      if (!proto) return;
      if (nodeData?.name === SAMPLER_NODE) setupSampler(proto, apiURL);
      else if (nodeData?.name === PATCH_NODE) setupPatchNode(proto);
    } catch (err) {
      warn("beforeRegisterNodeDef", err);
    }
  },
};

try {
  if (app && typeof app.registerExtension === "function") app.registerExtension(extension);
  else warn("app.registerExtension is missing: viewer disabled");
} catch (err) {
  warn("registerExtension", err);
}
