// Shared test helpers (node only).

import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * engine/models/layers.py's GRAMMAR as the node definition carries it (custom_layers' e4e_grammar),
 * read by Python itself ($E4E_PYTHON, else python3; engine/models loaded as a package of its own, no
 * torch needed): the tests never write the grammar again.
 */
export function packGrammar() {
  const script = [
    "import importlib, importlib.util, json, pathlib, sys",
    "d = pathlib.Path(sys.argv[1])",
    "spec = importlib.util.spec_from_file_location('e4e_models', d / '__init__.py', submodule_search_locations=[str(d)])",
    "m = importlib.util.module_from_spec(spec); sys.modules['e4e_models'] = m; spec.loader.exec_module(m)",
    "print(json.dumps(importlib.import_module('e4e_models.layers').GRAMMAR))",
  ].join("\n");
  const python = process.env.E4E_PYTHON || "python3";
  return JSON.parse(execFileSync(python, ["-c", script, join(REPO, "engine", "models")], { encoding: "utf8" }));
}

/** nodeData of the patch node as /object_info gives it, reduced to what the editor reads. */
export function patchNodeData(grammar = packGrammar()) {
  return {
    name: "E4ESemanticMatchPatch",
    input: { required: { custom_layers: ["STRING", { default: "output.6-11", e4e_grammar: grammar }] } },
  };
}

/** Base64 of a little-endian Int32 array, as the Python node sends it. */
export function encodeSrc(values) {
  const buf = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buf.writeInt32LE(v, i * 4));
  return buf.toString("base64");
}

/** A two-reference entry: target 2x3, ref 0 is 2x2 (offset 0), ref 1 is 1x3 (offset 4). */
export function sampleRaw(overrides = {}) {
  return {
    grid: [2, 3],
    ref_grids: [
      [2, 2],
      [1, 3],
    ],
    n_refs: 2,
    // target tokens (row-major): 0..5
    src: encodeSrc([-1, 0, 3, 4, 6, 3]),
    layer: "output.9",
    step: 67,
    target: { filename: "t.png", subfolder: "e4e", type: "temp" },
    references: [{ filename: "r0.png", subfolder: "", type: "temp" }, null],
    ...overrides,
  };
}

/** A 2D-context stand-in that records every call and property set. */
export function fakeContext() {
  const calls = [];
  const target = {
    calls,
    measureText: (t) => ({ width: String(t).length * 6 }),
  };
  return new Proxy(target, {
    get(obj, key) {
      if (key in obj) return obj[key];
      return (...args) => {
        calls.push([key, ...args]);
      };
    },
    set(obj, key, value) {
      calls.push(["set", key, value]);
      obj[key] = value;
      return true;
    },
  });
}
