// Correspondence viewer of the Appearance Transfer Sampler node, a DOM widget (a canvas with a
// batch selector, a "parts" toggle, a warning line for the run's notices and a caption; text wraps,
// it is never cut off). It works in both node renderers: on the
// LiteGraph canvas the frontend sizes it from getMinHeight; in the Vue renderer ("Nodes 2.0")
// the element is moved into the node as it is, so it carries its own CSS height, and it takes
// the pointer through its own listeners (node hooks such as onMouseMove are not called there).
// No ComfyUI import, no side effects: the glue passes in how to turn a /view path into a URL.

import { drawMessage, drawViewer } from "./e4e_draw.js";
import { addDOMWidget, chain, el, warn } from "./e4e_dom.js";
import { entryCaption, hoverAt, noticeList, parseEntries, sceneRects, viewPath } from "./e4e_logic.js";
import { fitNodeHeight } from "./e4e_widgets.js";

export const VIEWER_MIN_HEIGHT = 240;
export const HINT = "Run the sampler to see which reference part each target part copies. Then hover a spot of the " +
  "target to see where it comes from, or a spot of the reference to see which target spots copy it.";
const MARGIN = 6;
const TEXT_LINE = 14; // px per line of the notices and the caption (11 px text)
const CHARS_PER_LINE = 44; // what a line of 11 px text holds in the narrowest node the pack lays out (300 px)
const viewers = new WeakMap();

class CorrespondenceViewer {
  /** resolveURL: /view path -> URL the browser can load (ComfyUI's api.apiURL). */
  constructor(node, resolveURL) {
    this.node = node;
    this.resolveURL = resolveURL;
    this.entries = [];
    this.errors = [];
    this.notices = [];
    this.lastMessage = null; // the layout of the message last painted (tests read it)
    this.index = 0;
    this.overlay = true;
    this.hover = null;
    this.scene = null;
    this.images = new Map();
    this.stamp = 0;
    this.build();
  }

  get entry() {
    return this.entries[this.index] || null;
  }

  build() {
    const root = el("div", {
      display: "flex",
      flexDirection: "column",
      gap: "3px",
      width: "100%",
      height: "100%",
      minHeight: `${VIEWER_MIN_HEIGHT - 2 * MARGIN}px`,
      boxSizing: "border-box",
      font: "11px sans-serif",
      lineHeight: `${TEXT_LINE}px`,
      color: "#ccc",
      overflow: "hidden",
    });
    const bar = el("div", { display: "flex", gap: "6px", alignItems: "center", flex: "0 0 auto" });
    const batch = el("select", { display: "none" }, { title: "image of the batch" });
    const overlay = el("input", null, { type: "checkbox", checked: this.overlay });
    const overlayLabel = el("label", { display: "flex", gap: "3px", alignItems: "center" }, {
      title: "tint each target part with the colour of the reference it copies",
    });
    overlayLabel.append(overlay, "parts");
    bar.append(batch, overlayLabel);
    // nodes added after Semantic Match Patch that change the model (the sampler's e4e_notices): amber, wrapped
    const notices = el("div", { flex: "0 0 auto", display: "none", color: "#fb5", whiteSpace: "normal", overflowWrap: "anywhere" });
    const canvas = el("canvas", { flex: "1 1 auto", minHeight: "0", width: "100%", display: "block", cursor: "crosshair" });
    const caption = el("div", { flex: "0 0 auto", whiteSpace: "normal", overflowWrap: "anywhere" });
    root.append(bar, notices, canvas, caption);

    batch.addEventListener("change", () => this.select(Number(batch.value)));
    overlay.addEventListener("change", () => {
      this.overlay = !!overlay.checked;
      this.redraw();
    });
    canvas.addEventListener("pointermove", (e) => {
      try {
        const p = this.localPoint(e);
        this.hover = hoverAt(p.x, p.y, this.scene, this.entry);
      } catch (err) {
        warn("pointer", err);
        this.hover = null;
      }
      this.redraw();
    });
    canvas.addEventListener("pointerleave", () => {
      this.hover = null;
      this.redraw();
    });

    const widget = addDOMWidget(this.node, "e4e_viewer", root, {
      getMinHeight: () => this.minHeight(),
      margin: MARGIN,
    });
    this.dom = { root, batch, overlay, notices, canvas, caption, widget };
    if (typeof ResizeObserver === "function") {
      this.dom.observer = new ResizeObserver(() => this.redraw());
      this.dom.observer.observe(canvas);
    }
    this.refresh();
  }

  dispose() {
    this.dom.observer?.disconnect?.();
    this.images.clear();
  }

  setEntries(list) {
    const { entries, errors } = parseEntries(list);
    this.entries = entries;
    this.errors = errors;
    if (errors.length) warn("correspondence data:", ...errors);
    this.index = Math.min(this.index, Math.max(0, entries.length - 1));
    this.hover = null;
    this.images.clear();
    this.stamp = Date.now();
    this.refresh();
    fitNodeHeight(this.node);
  }

  /** The run's notices (the sampler's e4e_notices): shown as a warning line above the picture. */
  setNotices(list) {
    const notices = noticeList(list);
    if (notices.join("\n") === this.notices.join("\n")) return;
    this.notices = notices;
    this.refresh();
    fitNodeHeight(this.node);
  }

  /** The widget's height: the picture's, plus the lines of text the notices and the caption wrap into. */
  minHeight() {
    const lines = (text) => (text ? Math.ceil(text.length / CHARS_PER_LINE) : 0);
    const extra = this.notices.reduce((n, t) => n + lines(`\u26a0 ${t}`), 0) + Math.max(0, lines(this.caption()) - 1);
    return VIEWER_MIN_HEIGHT + TEXT_LINE * extra;
  }

  select(i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.entries.length) return;
    this.index = i;
    this.hover = null;
    this.refresh();
  }

  /** Loaded image for a /view ref, or null (starts loading and redraws when it arrives). */
  image(ref) {
    const path = viewPath(ref);
    if (!path) return null;
    let rec = this.images.get(path);
    if (!rec) {
      const img = new Image();
      rec = { img, ok: false };
      img.onload = () => {
        rec.ok = true;
        this.redraw();
      };
      img.src = `${this.resolveURL(path)}&rand=${this.stamp}`;
      this.images.set(path, rec);
    }
    return rec.ok ? rec.img : null;
  }

  caption() {
    if (this.entry) return entryCaption(this.entry, this.index, this.entries.length);
    if (this.errors.length) return `Unusable correspondence data: ${this.errors[0]}`;
    return ""; // before a run the picture says what to do (HINT)
  }

  refresh() {
    const d = this.dom;
    const n = this.entries.length;
    d.batch.replaceChildren(
      ...this.entries.map((_, i) => el("option", null, { value: String(i), textContent: `image ${i + 1}/${n}` })),
    );
    d.batch.value = String(this.index);
    d.batch.style.display = n > 1 ? "" : "none";
    d.notices.replaceChildren(...this.notices.map((t) => el("div", null, { textContent: `\u26a0 ${t}` })));
    d.notices.style.display = this.notices.length ? "" : "none";
    d.notices.title = this.notices.join("\n");
    d.caption.textContent = this.caption();
    d.caption.title = d.caption.textContent;
    d.caption.style.display = d.caption.textContent ? "" : "none";
    d.root.style.minHeight = `${this.minHeight() - 2 * MARGIN}px`;
    this.redraw();
  }

  localPoint(e) {
    const c = this.dom.canvas;
    const r = c.getBoundingClientRect();
    const sx = r.width ? c.clientWidth / r.width : 1; // undo the canvas zoom transform
    const sy = r.height ? c.clientHeight / r.height : 1;
    return { x: (e.clientX - r.left) * sx, y: (e.clientY - r.top) * sy };
  }

  paint(ctx, width, height) {
    const entry = this.entry;
    if (!entry) {
      this.scene = null;
      this.lastMessage = drawMessage(ctx, width, height, this.caption() || HINT);
      return;
    }
    this.lastMessage = null;
    const targetImage = this.image(entry.target);
    const refImages = entry.references.map((r) => this.image(r));
    const dims = (img) => (img ? [img.naturalWidth || img.width, img.naturalHeight || img.height] : null);
    this.scene = sceneRects(width, height, entry, { target: dims(targetImage), refs: refImages.map(dims) });
    drawViewer(ctx, this.scene, entry, { targetImage, refImages, hover: this.hover, overlay: this.overlay });
  }

  redraw() {
    try {
      const c = this.dom.canvas;
      const w = c.clientWidth;
      const h = c.clientHeight;
      if (!w || !h) return;
      const dpr = globalThis.devicePixelRatio || 1;
      const pw = Math.round(w * dpr);
      const ph = Math.round(h * dpr);
      if (c.width !== pw) c.width = pw;
      if (c.height !== ph) c.height = ph;
      const ctx = c.getContext("2d");
      if (!ctx) return;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      this.paint(ctx, w, h);
    } catch (err) {
      warn("draw", err);
    }
  }
}

/** The viewer of a sampler node (made when resolveURL is given and there is none yet), or null. */
export function viewerOf(node, resolveURL) {
  let v = viewers.get(node);
  if (!v && resolveURL) {
    v = new CorrespondenceViewer(node, resolveURL);
    viewers.set(node, v);
  }
  return v || null;
}

/** Hook the viewer into the node type's prototype; resolveURL as for CorrespondenceViewer. */
export function setupSampler(proto, resolveURL = (path) => path) {
  chain(proto, "onNodeCreated", function () {
    viewerOf(this, resolveURL);
  });
  chain(proto, "onExecuted", function (message) {
    if (!message || typeof message !== "object") return;
    if ("e4e_correspondence" in message) viewerOf(this, resolveURL).setEntries(message.e4e_correspondence);
    if ("e4e_correspondence" in message || "e4e_notices" in message) {
      viewerOf(this, resolveURL).setNotices(message.e4e_notices); // a run without notices clears them
    }
  });
  chain(proto, "onRemoved", function () {
    viewerOf(this)?.dispose();
  });
}
