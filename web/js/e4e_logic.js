// Pure logic of the Eye-for-an-eye viewer: no DOM, no ComfyUI import, no side effects.
// ComfyUI loads every .js file of the pack's web directory as a module, so this file only
// declares constants and functions. Rects are {x, y, w, h} in CSS pixels; grids are [h, w].
// The layer grammar is not defined here: it is engine/models/layers.py's GRAMMAR, which the node
// definition hands over as the custom_layers option `e4e_grammar` (see grammarOf).

export const EXTENSION_NAME = "eye_for_an_eye.viewer";
export const SAMPLER_NODE = "E4EAppearanceTransferSampler";
export const PATCH_NODE = "E4ESemanticMatchPatch";
export const CUSTOM_LAYERS = "custom";
export const GRAMMAR_OPTION = "e4e_grammar";
// More blocks than any model has; a longer range is refused instead of being listed one by one.

// ---------------------------------------------------------------- src decoding

function base64ToBytes(b64) {
  const clean = String(b64).replace(/\s+/g, "");
  if (typeof globalThis.atob === "function") {
    let bin;
    try {
      bin = globalThis.atob(clean);
    } catch {
      throw new Error("src is not valid base64");
    }
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  if (typeof globalThis.Buffer === "function") {
    const buf = globalThis.Buffer.from(clean, "base64");
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  throw new Error("no base64 decoder (atob or Buffer) in this environment");
}

/** Base64 of a little-endian Int32 array -> Int32Array (checked against expectedLength if given). */
export function decodeSrc(b64, expectedLength) {
  if (typeof b64 !== "string") throw new Error("src must be a base64 string");
  const bytes = base64ToBytes(b64);
  if (bytes.length % 4 !== 0) throw new Error(`src has ${bytes.length} bytes, not a multiple of 4`);
  const n = bytes.length / 4;
  if (expectedLength != null && n !== expectedLength) {
    throw new Error(`src has ${n} entries, expected ${expectedLength} (grid h*w)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
  return out;
}

const isPosInt = (v) => Number.isInteger(v) && v > 0;
const isGrid = (g) => Array.isArray(g) && g.length === 2 && isPosInt(g[0]) && isPosInt(g[1]);

/** Validate one e4e_correspondence entry; returns a normalised entry or throws with a clear message. */
export function parseEntry(raw) {
  if (!raw || typeof raw !== "object") throw new Error("entry is not an object");
  if (!isGrid(raw.grid)) throw new Error("entry.grid must be [h, w] with positive integers");
  const refGrids = raw.ref_grids;
  if (!Array.isArray(refGrids) || refGrids.length === 0 || !refGrids.every(isGrid)) {
    throw new Error("entry.ref_grids must be a non-empty list of [h, w]");
  }
  const nRefs = raw.n_refs ?? refGrids.length;
  if (nRefs !== refGrids.length) throw new Error(`n_refs is ${nRefs} but ref_grids has ${refGrids.length}`);
  const [h, w] = raw.grid;
  const refs = Array.isArray(raw.references) ? raw.references : [];
  return {
    grid: [h, w],
    refGrids: refGrids.map((g) => [g[0], g[1]]),
    nRefs,
    src: decodeSrc(raw.src, h * w),
    layer: typeof raw.layer === "string" ? raw.layer : null,
    step: Number.isFinite(raw.step) ? raw.step : null,
    target: raw.target ?? null,
    references: refGrids.map((_, r) => refs[r] ?? null),
  };
}

/** Parse the message list; bad entries become errors instead of throwing. */
export function parseEntries(list) {
  const entries = [];
  const errors = [];
  if (!Array.isArray(list)) return { entries, errors: list == null ? [] : ["e4e_correspondence is not a list"] };
  list.forEach((raw, i) => {
    try {
      entries.push(parseEntry(raw));
    } catch (err) {
      errors.push(`image ${i + 1}: ${err.message}`);
    }
  });
  return { entries, errors };
}

// ---------------------------------------------------------------- geometry

/** Letterboxed "contain" fit of an imgW x imgH image in box, centred. */
export function fitContain(box, imgW, imgH) {
  if (!box || !(box.w > 0) || !(box.h > 0) || !(imgW > 0) || !(imgH > 0)) return null;
  const s = Math.min(box.w / imgW, box.h / imgH);
  const w = imgW * s;
  const h = imgH * s;
  return { x: box.x + (box.w - w) / 2, y: box.y + (box.h - h) / 2, w, h };
}

/** Pointer (px, py) over the image content rect -> token {index, x, y} of grid [h, w], or null. */
export function pointToToken(px, py, rect, grid) {
  if (!rect || !(rect.w > 0) || !(rect.h > 0) || !isGrid(grid)) return null;
  const u = (px - rect.x) / rect.w;
  const v = (py - rect.y) / rect.h;
  if (!(u >= 0 && u <= 1 && v >= 0 && v <= 1)) return null; // also rejects NaN
  const [h, w] = grid;
  const x = Math.min(w - 1, Math.floor(u * w));
  const y = Math.min(h - 1, Math.floor(v * h));
  return { index: y * w + x, x, y };
}

/** Rect of token index on the displayed image rect, or null when out of range. */
export function tokenRect(index, grid, rect) {
  if (!rect || !isGrid(grid) || !Number.isInteger(index)) return null;
  const [h, w] = grid;
  if (index < 0 || index >= h * w) return null;
  const x = index % w;
  const y = Math.floor(index / w);
  return { x: rect.x + (x * rect.w) / w, y: rect.y + (y * rect.h) / h, w: rect.w / w, h: rect.h / h };
}

/** Pixel centre of token index on the displayed image rect, or null. */
export function tokenCentre(index, grid, rect) {
  const r = tokenRect(index, grid, rect);
  return r ? { x: r.x + r.w / 2, y: r.y + r.h / 2 } : null;
}

// ---------------------------------------------------------------- correspondence

/** Start offset of each reference in the concatenated token list, plus the total at the end. */
export function refOffsets(refGrids) {
  const out = [0];
  for (const g of refGrids || []) out.push(out[out.length - 1] + g[0] * g[1]);
  return out;
}

/** Flat src index -> {ref, index, x, y} in that reference's grid; null for -1, out of range, non-integer. */
export function locateSource(flat, refGrids) {
  if (!Number.isInteger(flat) || flat < 0 || !Array.isArray(refGrids)) return null;
  let offset = 0;
  for (let r = 0; r < refGrids.length; r++) {
    const [hr, wr] = refGrids[r];
    const n = hr * wr;
    if (flat < offset + n) {
      const index = flat - offset;
      return { ref: r, index, x: index % wr, y: Math.floor(index / wr) };
    }
    offset += n;
  }
  return null;
}

/** Flat src index -> pixel centre {ref, x, y} in refRects[ref] (displayed reference content rect). */
export function sourceToPoint(flat, refGrids, refRects) {
  const loc = locateSource(flat, refGrids);
  if (!loc || !refRects || !refRects[loc.ref]) return null;
  const c = tokenCentre(loc.index, refGrids[loc.ref], refRects[loc.ref]);
  return c ? { ref: loc.ref, x: c.x, y: c.y } : null;
}

/** Target token indices whose source lies in reference ref within radius (Chebyshev) of refIndex. */
export function matchedTargets(src, refGrids, ref, refIndex, radius = 0) {
  const out = [];
  if (!src || !Array.isArray(refGrids) || !refGrids[ref]) return out;
  const [hr, wr] = refGrids[ref];
  if (!Number.isInteger(refIndex) || refIndex < 0 || refIndex >= hr * wr) return out;
  const offset = refOffsets(refGrids)[ref];
  const cx = refIndex % wr;
  const cy = Math.floor(refIndex / wr);
  const rad = Math.max(0, Math.floor(radius) || 0);
  for (let i = 0; i < src.length; i++) {
    const m = src[i] - offset;
    if (m < 0 || m >= hr * wr) continue;
    if (Math.abs((m % wr) - cx) <= rad && Math.abs(Math.floor(m / wr) - cy) <= rad) out.push(i);
  }
  return out;
}

/** Inverse lookup: centres {index, x, y} on the target rect of all target tokens matched to that spot. */
export function inverseLookup(src, grid, refGrids, ref, refIndex, targetRect, radius = 0) {
  const out = [];
  for (const i of matchedTargets(src, refGrids, ref, refIndex, radius)) {
    const c = tokenCentre(i, grid, targetRect);
    if (c) out.push({ index: i, x: c.x, y: c.y });
  }
  return out;
}

/** Share of target tokens per reference; unmatched (-1) and invalid (out of range) counted apart. */
export function matchSummary(src, refGrids) {
  const total = src ? src.length : 0;
  const counts = (refGrids || []).map(() => 0);
  let unmatched = 0;
  let invalid = 0;
  for (let i = 0; i < total; i++) {
    const v = src[i];
    if (v === -1) {
      unmatched++;
      continue;
    }
    const loc = locateSource(v, refGrids);
    if (loc) counts[loc.ref]++;
    else invalid++;
  }
  const share = (c) => (total ? c / total : 0);
  const matched = counts.reduce((a, b) => a + b, 0);
  return {
    total,
    matched,
    unmatched,
    invalid,
    matchedShare: share(matched),
    perRef: counts.map((count, ref) => ({ ref, count, share: share(count) })),
  };
}

const pct = (x) => `${Math.round(x * 100)}%`;

/**
 * Caption text of a summary, e.g. "ref 1 42% · ref 2 18% · kept (outside masks) 40%": the share of the target
 * that takes its appearance from each reference, and the share left as it is (tokens outside the object masks,
 * which the sampler never matches).
 */
export function formatSummary(s) {
  if (!s || !s.total) return "no tokens";
  const parts = s.perRef.map((p) => `ref ${p.ref + 1} ${pct(p.share)}`);
  if (s.unmatched) parts.push(`kept (outside masks) ${pct(s.unmatched / s.total)}`);
  if (s.invalid) parts.push(`invalid ${s.invalid}`);
  return parts.join(" · ");
}

// ---------------------------------------------------------------- layers widget

/**
 * The grammar of custom_layers from the node definition (nodeData of beforeRegisterNodeDef):
 * {item: RegExp, separators: RegExp, kinds, known: Set of "kind.i" any family has, example}, or null.
 */
export function grammarOf(nodeData) {
  const entry = nodeData?.input?.required?.custom_layers;
  return compileGrammar(Array.isArray(entry) ? entry[1]?.[GRAMMAR_OPTION] : null);
}

/** engine/models/layers.py's GRAMMAR (as JSON) -> the compiled grammar, or null when it is unusable. */
export function compileGrammar(spec) {
  if (!spec || typeof spec.item !== "string" || typeof spec.separators !== "string" || !spec.separators) return null;
  let item;
  try {
    item = new RegExp(spec.item);
  } catch {
    return null;
  }
  const separators = new RegExp(`[${spec.separators.replace(/[\\\]^-]/g, "\\$&")}]`);
  const kinds = Array.isArray(spec.kinds) ? spec.kinds.map(String) : [];
  const known = new Set();
  for (const blocks of Object.values(spec.families || {})) {
    for (const [kind, ids] of Object.entries(blocks || {})) {
      for (const i of Array.isArray(ids) ? ids : []) known.add(`${kind}.${i}`);
    }
  }
  const example = Object.values(spec.example || {}).map((e) => `"${e}"`).join(" or ");
  const blank = typeof spec.blank === "string" ? spec.blank : " ";
  const maxBlocks = Number.isInteger(spec.max_blocks) ? spec.max_blocks : Infinity;
  return { item, separators, kinds, known, example, blank, maxBlocks };
}

/**
 * Parse custom_layers as engine/layers.parse_layers does: "output.6-11, output.3" ->
 * {layers: [["output", 6], ..., ["output", 3]], error: null}; duplicates dropped, order kept.
 * Bad input -> {layers: [], error: "<clear message>"}.
 */
export function parseCustomLayers(text, grammar) {
  const fail = (error) => ({ layers: [], error });
  if (!grammar) return fail("custom_layers: the node definition carries no layer grammar");
  const layers = [];
  const seen = new Set();
  for (const part of String(text ?? "").split(grammar.separators)) {
    if ([...part].every((ch) => grammar.blank.includes(ch))) continue;
    const m = grammar.item.exec(part);
    if (!m) return fail(`"${part}" is not a layer: write e.g. ${grammar.example} (blocks: ${grammar.kinds.join(", ")})`);
    const kind = m[1];
    const first = Number(m[2]);
    const last = m[3] === undefined ? first : Number(m[3]);
    if (first > last) return fail(`"${part}" is an empty range (write ${kind}.${last}-${first})`);
    if (last - first + layers.length >= grammar.maxBlocks) return fail(`"${part}" names more blocks than any model has`);
    for (let i = first; i <= last; i++) {
      const key = `${kind}.${i}`;
      if (!seen.has(key)) {
        seen.add(key);
        layers.push([kind, i]);
      }
    }
  }
  if (!layers.length) return fail(`custom_layers is empty: name at least one block, e.g. ${grammar.example}`);
  return { layers, error: null };
}

const asPair = (l) => {
  const [b, i] = Array.isArray(l) ? l : String(l).split(".");
  return [String(b), Number(i)];
};

/** ["output.11", "output.3", "input.4"] or pairs -> pairs sorted by the grammar's kind order, then index. */
export function sortLayers(layers, grammar) {
  const order = (k) => {
    const i = grammar ? grammar.kinds.indexOf(k) : -1;
    return i < 0 ? Infinity : i;
  };
  return (layers || [])
    .map(asPair)
    .filter(([, i]) => Number.isInteger(i))
    .sort((a, b) => order(a[0]) - order(b[0]) || a[0].localeCompare(b[0]) || a[1] - b[1]);
}

/** [["output", 6], ["output", 7], ["input", 7]] or ["output.6", ...] -> "output.6-7, input.7". */
export function formatLayers(layers) {
  const items = (layers || []).map(asPair).filter(([, i]) => Number.isInteger(i));
  const parts = [];
  for (let k = 0; k < items.length; ) {
    let j = k;
    while (j + 1 < items.length && items[j + 1][0] === items[k][0] && items[j + 1][1] === items[j][1] + 1) j++;
    const [b, first] = items[k];
    parts.push(j > k ? `${b}.${first}-${items[j][1]}` : `${b}.${first}`);
    k = j + 1;
  }
  return parts.join(", ");
}

/** Layers ([kind, i] pairs) not in `available` (a Set of "kind.i"). */
export function missingLayers(layers, available) {
  return (layers || []).filter(([b, i]) => !available.has(`${b}.${i}`));
}

/** Which optional widgets of the patch node are shown for a `layers` combo value. */
export function layerWidgetVisibility(layersValue) {
  return { custom_layers: layersValue === CUSTOM_LAYERS };
}

/** One-line description of an e4e_model message entry. */
export function describeModel(info) {
  if (!info || typeof info !== "object") return "";
  const parts = [];
  if (info.family) parts.push(String(info.family).toUpperCase());
  const layers = formatLayers(info.layers);
  if (layers) parts.push(layers);
  if (Array.isArray(info.steps) && info.steps.length === 2) parts.push(`steps ${info.steps[0]}-${info.steps[1]}`);
  return parts.join(" · ");
}

/**
 * Info line of the patch node. model: the last e4e_model entry ({family, layers, blocks, steps});
 * fresh: nothing changed since that run (then the resolved layers are shown). Custom layers are
 * checked against the model's own blocks when a run told them, else against every family's.
 */
export function patchInfo(layersValue, customText, grammar, model = null, fresh = false) {
  if (model && fresh) return { text: describeModel(model), error: false };
  if (layersValue !== CUSTOM_LAYERS || !grammar) return { text: "", error: false };
  const { layers, error } = parseCustomLayers(customText, grammar);
  if (error) return { text: error, error: true };
  const blocks = model && Array.isArray(model.blocks) ? model.blocks : null;
  const missing = missingLayers(layers, blocks ? new Set(blocks.map(String)) : grammar.known);
  if (!missing.length) return { text: `custom: ${formatLayers(layers)}`, error: false };
  if (!blocks) return { text: `no model has ${formatLayers(missing)}`, error: true };
  const family = model.family ? `${String(model.family).toUpperCase()} ` : "";
  const have = formatLayers(sortLayers(blocks, grammar));
  return { text: `not in this ${family}model: ${formatLayers(missing)} (it has ${have})`, error: true };
}

// ---------------------------------------------------------------- display helpers

/** Distinct, deterministic colour of reference r (golden-angle hues). */
export function refColour(r, alpha = 1) {
  const a = Math.min(1, Math.max(0, Number.isFinite(alpha) ? alpha : 1));
  if (!Number.isInteger(r) || r < 0) return `hsla(0, 0%, 60%, ${a})`;
  const hue = Math.round((25 + r * 137.508) % 360);
  return `hsla(${hue}, 85%, 60%, ${a})`;
}

/** ComfyUI /view path of an image ref {filename, subfolder, type}, or null. */
export function viewPath(image) {
  if (!image || typeof image.filename !== "string" || !image.filename) return null;
  const enc = encodeURIComponent;
  const type = image.type ? `&type=${enc(image.type)}` : ""; // none: ComfyUI's default folder
  return `/view?filename=${enc(image.filename)}&subfolder=${enc(image.subfolder ?? "")}${type}`;
}

/** Boxes of the viewer: target on the left, references stacked in a column on the right. */
export function layoutPanels(width, height, nRefs, gap = 6) {
  const n = Math.max(1, Math.floor(nRefs) || 1);
  if (!(width > 0) || !(height > 0)) return null;
  const leftW = Math.max(0, (width - gap) * 0.6);
  const rightW = Math.max(0, width - gap - leftW);
  const cellH = Math.max(0, (height - gap * (n - 1)) / n);
  const refs = [];
  for (let r = 0; r < n; r++) refs.push({ x: leftW + gap, y: r * (cellH + gap), w: rightW, h: cellH });
  return { target: { x: 0, y: 0, w: leftW, h: height }, refs };
}

/** Boxes and letterboxed content rects of one entry drawn in width x height; sizes = {target, refs} as [w, h]. */
export function sceneRects(width, height, entry, sizes = {}) {
  if (!entry) return null;
  const lay = layoutPanels(width, height, entry.nRefs);
  if (!lay) return null;
  const dims = (s, g) => (Array.isArray(s) && s[0] > 0 && s[1] > 0 ? s : [g[1], g[0]]);
  const ts = dims(sizes.target, entry.grid);
  return {
    width,
    height,
    targetBox: lay.target,
    targetRect: fitContain(lay.target, ts[0], ts[1]),
    refBoxes: lay.refs,
    refRects: lay.refs.map((b, r) => {
      const s = dims(sizes.refs && sizes.refs[r], entry.refGrids[r]);
      return fitContain(b, s[0], s[1]);
    }),
  };
}

/** What the pointer is over: {kind: "target", token, source} | {kind: "ref", ref, token} | null. */
export function hoverAt(px, py, scene, entry) {
  if (!scene || !entry) return null;
  const t = pointToToken(px, py, scene.targetRect, entry.grid);
  if (t) return { kind: "target", token: t.index, source: entry.src[t.index] };
  for (let r = 0; r < entry.refGrids.length; r++) {
    const tok = pointToToken(px, py, scene.refRects[r], entry.refGrids[r]);
    if (tok) return { kind: "ref", ref: r, token: tok.index };
  }
  return null;
}

/** Caption of the viewer: matched share per reference, layer, step, batch position. */
export function entryCaption(entry, index = 0, count = 1) {
  if (!entry) return "no correspondence yet: run the sampler";
  const parts = [formatSummary(matchSummary(entry.src, entry.refGrids))];
  if (entry.layer) parts.push(entry.layer);
  if (entry.step != null) parts.push(`step ${entry.step}`);
  if (count > 1) parts.push(`image ${index + 1}/${count}`);
  return parts.join(" · ");
}

/**
 * Greedy word wrap: the lines of text that each fit maxWidth as measure(text) -> width says (a word longer than
 * the line is cut at the character that overflows, so no line is ever wider than maxWidth).
 */
export function wrapText(text, maxWidth, measure) {
  const words = String(text ?? "").split(/\s+/).filter((w) => w);
  const lines = [];
  let line = "";
  const push = (word) => {
    let rest = word;
    while (rest && measure(rest) > maxWidth) {
      let n = rest.length - 1;
      while (n > 1 && measure(rest.slice(0, n)) > maxWidth) n--;
      lines.push(rest.slice(0, n));
      rest = rest.slice(n);
    }
    return rest;
  };
  for (const word of words) {
    const trial = line ? `${line} ${word}` : word;
    if (measure(trial) <= maxWidth) {
      line = trial;
    } else {
      if (line) lines.push(line);
      line = push(word);
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** The sampler's e4e_notices message entry -> the non-empty strings in it ([] for anything else). */
export function noticeList(value) {
  if (!Array.isArray(value)) return typeof value === "string" && value.trim() ? [value.trim()] : [];
  return value.filter((n) => typeof n === "string" && n.trim()).map((n) => n.trim());
}

// ---------------------------------------------------------------- templates

/**
 * GET /workflow_templates's listing ({pack folder: [template names]}) with this pack's names in `order`
 * (names it does not know keep their order, after the known ones). The pack's entry is the one that holds the
 * most of its names (its folder under custom_nodes is whatever the clone was called).
 */
export function orderListing(listing, order) {
  if (!listing || typeof listing !== "object" || Array.isArray(listing) || !Array.isArray(order)) return listing;
  const rank = new Map(order.map((name, i) => [name, i]));
  let best = null;
  let hits = 0;
  for (const [folder, names] of Object.entries(listing)) {
    const n = Array.isArray(names) ? names.filter((x) => rank.has(x)).length : 0;
    if (n > hits) [best, hits] = [folder, n];
  }
  if (best === null) return listing;
  const key = (name, i) => (rank.has(name) ? rank.get(name) : order.length + i);
  const sorted = listing[best].map((name, i) => [key(name, i), name]).sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  return { ...listing, [best]: sorted };
}

/** The description the frontend derives from a template's file name (frontend 1.27 shows it on the card). */
export function derivedDescription(name) {
  return String(name).replace(/[-_]/g, " ").trim();
}

// LiteGraph skips text below 8 px on screen (frontend 1.58's default "font size for LOD", 1.27's zoom threshold
// 0.6 of 14 px): a template opened at a smaller scale shows blank boxes.
export const READABLE_SCALE = 0.65;

// Room around a template's graph when it opens (canvas px), and above its nodes (graph units) for the titles of
// the groups the pack's layout puts there (the frontends' bounds hold the nodes only). 1.58 draws its tab bar and
// its side bar over the canvas's top and left edges.
const VIEW_FRAME = { left: 72, right: 24, top: 44, bottom: 24, headroom: 80 };
// 1.27 draws nothing over its canvas (it asks for no viewport)
const CLEAR_FRAME = { left: 24, right: 24, top: 24, bottom: 24, headroom: 80 };

/** The room to leave around a template's graph: 1.58 gives fitToBounds a viewport and covers the canvas's edges. */
export function viewFrame(hasViewport) {
  return hasViewport ? VIEW_FRAME : CLEAR_FRAME;
}

/**
 * The view a template of this pack opens with. `fit` is the scale the frontend's fit-to-graph chose; when its
 * text is drawn (fit >= READABLE_SCALE) it stays. Otherwise: the graph's whole height when that is readable, else
 * READABLE_SCALE, with the graph's left edge (the Note, the loaders) at the viewport's left and its top at the top
 * (centred when it is smaller than the view). bounds: [x, y, w, h] of the nodes in graph units; viewport:
 * [x, y, w, h] in canvas pixels. Returns {scale, offset} with LiteGraph's convention
 * (screen = (graph + offset) * scale), or null to keep the fit.
 */
export function readableView(bounds, viewport, fit, maxScale = 1, frame = VIEW_FRAME) {
  if (!(fit < READABLE_SCALE)) return null;
  const [bx, nodesTop, bw, nodesHeight] = bounds || [];
  const [vx, vy, vw, vh] = viewport || [];
  const ok = [bx, nodesTop, bw, nodesHeight, vx, vy, vw, vh].every(Number.isFinite);
  if (!ok || !(bw > 0 && nodesHeight > 0 && vw > 0 && vh > 0)) return null;
  const by = nodesTop - frame.headroom;
  const bh = nodesHeight + frame.headroom;
  const roomW = vw - frame.left - frame.right;
  const roomH = vh - frame.top - frame.bottom;
  const scale = Math.min(maxScale, Math.max(READABLE_SCALE, roomH / bh));
  const x = bw * scale <= roomW ? vx + frame.left + (roomW - bw * scale) / 2 : vx + frame.left;
  const y = bh * scale <= roomH ? vy + frame.top + (roomH - bh * scale) / 2 : vy + frame.top;
  return { scale, offset: [x / scale - bx, y / scale - by] };
}

// ---------------------------------------------------------------- correspondence hints

// Semantic Match Patch's `hints` (matching/hints.py): pairs "tx,ty > rx,ry" ("->" also works), image-relative
// (0..1, x from the left, y from the top), "@r" at the end for reference r (1-based); pairs separated by ";" or new
// lines. The grammar is Python's, character for character: its \s is Python's whitespace (str.isspace), its \d any
// decimal digit (Unicode Nd, read as float() and int() read them); tests/test_web.py runs both parsers on the same
// strings.
const PY_SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_DIGIT = "\\p{Nd}";
const HINT_NUMBER = `[-+]?(?:${PY_DIGIT}+\\.?${PY_DIGIT}*|\\.${PY_DIGIT}+)(?:[eE][-+]?${PY_DIGIT}+)?`;
const HINT_XY = `(${HINT_NUMBER})${PY_SPACE}*,${PY_SPACE}*(${HINT_NUMBER})`;
const HINT_PAIR = new RegExp(
  `^${PY_SPACE}*${HINT_XY}${PY_SPACE}*(?:->|>)${PY_SPACE}*${HINT_XY}${PY_SPACE}*` +
    `(?:@${PY_SPACE}*(${PY_DIGIT}+))?${PY_SPACE}*$`,
  "u",
);
const BLANK = new RegExp(`^${PY_SPACE}*$`, "u");
const ONE_DIGIT = new RegExp(`^${PY_DIGIT}$`, "u");
const HINT_SEPARATORS = new Set([";", "\n"]);
export const HINT_EXAMPLE = "0.31,0.42 > 0.70,0.41";

/** A number as the regex above matched it -> its value, as Python's float() reads it (any decimal digits). */
function pyNumber(text) {
  let ascii = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (cp > 0x7f && ONE_DIGIT.test(ch)) {
      // Unicode assigns decimal digits in runs of ten, 0 to 9: a digit's value is its place in its run of digits
      let start = cp;
      while (start > 0 && ONE_DIGIT.test(String.fromCodePoint(start - 1))) start--;
      ascii += String((cp - start) % 10);
    } else ascii += ch;
  }
  return Number(ascii);
}

const strip = (s) => s.replace(new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "gu"), "");

/**
 * The items of a hints text: each non-blank piece between separators, with its pair number n (1-based, as
 * Python's messages count) and where it lies in the text ([start, end)).
 */
export function hintItems(text) {
  const s = typeof text === "string" ? text : "";
  const items = [];
  let start = 0;
  for (let i = 0; i <= s.length; i++) {
    if (i < s.length && !HINT_SEPARATORS.has(s[i])) continue;
    const piece = s.slice(start, i);
    if (!BLANK.test(piece)) items.push({ n: items.length + 1, text: piece, start, end: i });
    start = i + 1;
  }
  return items;
}

/**
 * Parse a hints text as matching/hints.parse_hints does: {hints, error, errorPair}. hints: every readable pair
 * {n, target: [x, y], reference: [x, y], ref (0-based, or null: the object's own), start, end}; error: the
 * message of the first bad pair (Python refuses the whole text for it), or null; errorPair: that pair's number.
 */
export function parseHints(text, name = "hints") {
  const hints = [];
  let error = null;
  let errorPair = null;
  for (const item of hintItems(text)) {
    const quoted = JSON.stringify(strip(item.text));
    const m = HINT_PAIR.exec(item.text);
    if (!m) {
      errorPair ??= item.n;
      error ??= `${name}: pair ${item.n} (${quoted}) is not like '${HINT_EXAMPLE}' (target x,y > reference x,y, ` +
        "image-relative; '@2' at the end for reference 2)";
      continue;
    }
    const [tx, ty, rx, ry] = m.slice(1, 5).map(pyNumber);
    let bad = null;
    for (const [what, x, y] of [["target", tx, ty], ["reference", rx, ry]]) {
      if (!bad && !(x >= 0 && x <= 1 && y >= 0 && y <= 1)) {
        bad = `${name}: pair ${item.n} (${quoted}): the ${what} point (${x}, ${y}) is outside the image; ` +
          "coordinates go from 0 to 1 (x from the left, y from the top)";
      }
    }
    const ref = m[5] === undefined ? null : pyNumber(m[5]) - 1;
    if (!bad && ref !== null && ref < 0) bad = `${name}: pair ${item.n} (${quoted}): references are numbered from 1`;
    if (bad) {
      errorPair ??= item.n;
      error ??= bad;
      continue;
    }
    hints.push({ n: item.n, target: [tx, ty], reference: [rx, ry], ref, start: item.start, end: item.end });
  }
  return { hints, error, errorPair };
}

const round3 = (v) => {
  const r = Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000;
  return r === 0 ? 0 : r; // no "-0"
};

/** One pair as the viewer writes it: "0.31,0.42 > 0.7,0.41" (3 decimals at most), " @2" for reference 2. */
export function formatHint(target, reference, ref = null) {
  const xy = (p) => `${round3(p[0])},${round3(p[1])}`;
  return `${xy(target)} > ${xy(reference)}${Number.isInteger(ref) && ref >= 0 ? ` @${ref + 1}` : ""}`;
}

/** The text with one more pair, on a line of its own after what the text holds (kept as it is). */
export function appendHint(text, pair) {
  const s = typeof text === "string" ? text : "";
  if (BLANK.test(s)) return pair;
  return s.endsWith("\n") ? `${s}${pair}` : `${s}\n${pair}`;
}

/** The text without pair n (its number in hintItems), with the separator before it (else the one after it). */
export function removeHint(text, n) {
  const s = typeof text === "string" ? text : "";
  const item = hintItems(s).find((it) => it.n === n);
  if (!item) return s;
  if (item.start > 0) return s.slice(0, item.start - 1) + s.slice(item.end); // the separator before it
  const rest = s.slice(Math.min(s.length, item.end + 1)); // the first pair: the separator after it
  return rest.replace(/^[ \t]+/, "");
}

/** Pointer (px, py) -> {x, y} relative to rect (0..1, 3 decimals), or null outside it. */
export function pointToRelative(px, py, rect) {
  if (!rect || !(rect.w > 0) || !(rect.h > 0)) return null;
  const u = (px - rect.x) / rect.w;
  const v = (py - rect.y) / rect.h;
  const e = 1e-9; // the rect's own edges, whatever the rounding of x + w
  if (!(u >= -e && u <= 1 + e && v >= -e && v <= 1 + e)) return null; // also rejects NaN
  return { x: round3(u), y: round3(v) };
}

/** Relative {x, y} (0..1) -> the pixel point on rect, or null. */
export function relativeToPoint(x, y, rect) {
  if (!rect || !Number.isFinite(x) || !Number.isFinite(y)) return null;
  return { x: rect.x + x * rect.w, y: rect.y + y * rect.h };
}

/** The picture spot under the pointer: {kind: "target", x, y} | {kind: "ref", ref, x, y} (relative) | null. */
export function spotAt(px, py, scene) {
  if (!scene) return null;
  const t = pointToRelative(px, py, scene.targetRect);
  if (t) return { kind: "target", ...t };
  for (let r = 0; r < (scene.refRects || []).length; r++) {
    const p = pointToRelative(px, py, scene.refRects[r]);
    if (p) return { kind: "ref", ref: r, ...p };
  }
  return null;
}

/**
 * Where the hints go on the scene: {n, target: {x, y}, refs: [{ref, x, y}]} in pixels. A pair without "@r" is
 * drawn on the one reference, or on every reference when there are several (its object's, unknown here, is one of
 * them); one naming a reference the run did not have, on none.
 */
export function hintMarkers(hints, scene) {
  if (!scene || !Array.isArray(hints)) return [];
  const nRefs = (scene.refRects || []).length;
  return hints.map((h) => {
    const refs = h.ref === null || h.ref === undefined ? [...Array(nRefs).keys()] : h.ref < nRefs ? [h.ref] : [];
    return {
      n: h.n,
      target: relativeToPoint(h.target[0], h.target[1], scene.targetRect),
      refs: refs
        .map((r) => ({ ref: r, ...relativeToPoint(h.reference[0], h.reference[1], scene.refRects[r]) }))
        .filter((p) => Number.isFinite(p.x)),
    };
  });
}

/** The pair number n of the hint marker nearest (px, py) within radius pixels, or null. */
export function hintNear(px, py, markers, radius = 10) {
  let best = null;
  let bestD = radius;
  for (const m of markers || []) {
    for (const p of [m.target, ...m.refs]) {
      if (!p) continue;
      const d = Math.hypot(p.x - px, p.y - py);
      if (d <= bestD) [best, bestD] = [m.n, d];
    }
  }
  return best;
}

/**
 * The node of type `type` (Semantic Match Patch) that feeds `node`'s `input` ("model"), walking up through nodes
 * that pass a model on (LoRA, FreeU, ...: their own input of that name; a Reroute: its one input), or null.
 * Needs of the graph only LiteGraph's node.inputs ([{name}]) and node.getInputNode(slot).
 */
export function findUpstream(node, type = PATCH_NODE, input = "model") {
  const seen = new Set();
  let current = node;
  while (current && !seen.has(current)) {
    seen.add(current);
    const inputs = Array.isArray(current.inputs) ? current.inputs : [];
    let slot = inputs.findIndex((i) => i && i.name === input);
    if (slot < 0 && current !== node && inputs.length === 1) slot = 0; // a Reroute
    if (slot < 0 || typeof current.getInputNode !== "function") return null;
    let up = null;
    try {
      up = current.getInputNode(slot);
    } catch {
      return null; // a node outside a graph
    }
    if (up && up.type === type) return up;
    current = up;
  }
  return null;
}
