// Correspondence viewer of the Appearance Transfer Sampler node: a canvas DOM widget when the
// frontend has addDOMWidget, else painted in onDrawForeground. No ComfyUI import, no side effects:
// the glue (e4e_viewer.js) passes in how to turn a /view path into a URL.

import { drawMessage, drawViewer } from "./e4e_draw.js";
import { addDOMWidget, chain, el, hasDOM, warn } from "./e4e_dom.js";
import { entryCaption, hoverAt, parseEntries, sceneRects, viewPath } from "./e4e_logic.js";
import { fitNodeHeight, markDirty } from "./e4e_widgets.js";

const VIEWER_MIN_HEIGHT = 240;
const CAPTION_H = 16;
const viewers = new WeakMap();
class CorrespondenceViewer {
  /** resolveURL: /view path -> URL the browser can load (ComfyUI's api.apiURL). */
  constructor(node, resolveURL = (path) => path) {
    this.node = node;
    this.resolveURL = resolveURL;
    this.entries = [];
    this.errors = [];
    this.index = 0;
    this.showOutput = true;
    this.overlay = true;
    this.hover = null;
    this.scene = null;
    this.images = new Map();
    this.stamp = 0;
    this.dom = null;
    try {
      this.buildDOM();
    } catch (err) {
      warn("no DOM widget, drawing on the node instead", err);
      this.dom = null;
    }
  }

  get entry() {
    return this.entries[this.index] || null;
  }

  buildDOM() {
    if (typeof this.node.addDOMWidget !== "function" || !hasDOM()) return;
    const root = el("div", {
      display: "flex",
      flexDirection: "column",
      gap: "3px",
      width: "100%",
      height: "100%",
      boxSizing: "border-box",
      font: "11px sans-serif",
      color: "#ccc",
      overflow: "hidden",
    });
    const bar = el("div", { display: "flex", gap: "6px", alignItems: "center", flex: "0 0 auto" });
    const batch = el("select", { display: "none" }, { title: "image of the batch" });
    const view = el("select", null, { title: "left panel: the target or the transferred output" });
    for (const [value, text] of [["output", "output"], ["target", "target"]]) {
      view.append(el("option", null, { value, textContent: text }));
    }
    const overlay = el("input", null, { type: "checkbox", checked: this.overlay });
    const overlayLabel = el("label", { display: "flex", gap: "3px", alignItems: "center" }, {
      title: "tint each target part with the colour of the reference it copies",
    });
    overlayLabel.append(overlay, "parts");
    bar.append(batch, view, overlayLabel);
    const canvas = el("canvas", { flex: "1 1 auto", minHeight: "0", width: "100%", display: "block", cursor: "crosshair" });
    const caption = el("div", { flex: "0 0 auto", whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis" });
    root.append(bar, canvas, caption);

    batch.addEventListener("change", () => this.select(Number(batch.value)));
    view.addEventListener("change", () => {
      this.showOutput = view.value === "output";
      this.refresh();
    });
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

    const widget = addDOMWidget(this.node, "e4e_viewer", root, { getMinHeight: () => VIEWER_MIN_HEIGHT });
    if (!widget) return;
    this.dom = { root, batch, view, overlay, canvas, caption, widget };
    if (typeof ResizeObserver === "function") {
      this.dom.observer = new ResizeObserver(() => this.redraw());
      this.dom.observer.observe(canvas);
    }
    this.refresh();
  }

  dispose() {
    this.dom?.observer?.disconnect?.();
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
    if (this.dom) fitNodeHeight(this.node);
    else this.growForFallback();
  }

  select(i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.entries.length) return;
    this.index = i;
    this.hover = null;
    this.refresh();
  }

  leftImageRef(entry) {
    if (this.showOutput && entry.output) return { ref: entry.output, label: "output" };
    if (entry.target) return { ref: entry.target, label: "target" };
    return { ref: entry.output, label: entry.output ? "output" : "target" };
  }

  /** Loaded image for a /view ref, or null (starts loading and redraws when it arrives). */
  image(ref) {
    const path = viewPath(ref);
    if (!path || typeof Image !== "function") return null;
    let rec = this.images.get(path);
    if (!rec) {
      const img = new Image();
      rec = { img, ok: false };
      img.onload = () => {
        rec.ok = true;
        this.redraw();
      };
      img.onerror = () => {
        rec.failed = true;
      };
      img.src = `${this.resolveURL(path)}&rand=${this.stamp}`;
      this.images.set(path, rec);
    }
    return rec.ok ? rec.img : null;
  }

  message() {
    if (this.errors.length && !this.entries.length) return `Unusable correspondence data: ${this.errors[0]}`;
    return "Run the sampler to see which reference part each target part copies.";
  }

  caption() {
    if (!this.entry) return this.message();
    return entryCaption(this.entry, this.index, this.entries.length);
  }

  refresh() {
    const d = this.dom;
    if (d) {
      const n = this.entries.length;
      d.batch.replaceChildren(
        ...this.entries.map((_, i) => el("option", null, { value: String(i), textContent: `image ${i + 1}/${n}` })),
      );
      d.batch.value = String(this.index);
      d.batch.style.display = n > 1 ? "" : "none";
      const e = this.entry;
      d.view.value = e ? this.leftImageRef(e).label : this.showOutput ? "output" : "target";
      d.view.disabled = !(e && e.output && e.target); // nothing to choose between
      d.caption.textContent = this.caption();
      d.caption.title = d.caption.textContent;
    }
    this.redraw();
  }

  localPoint(e) {
    const c = this.dom.canvas;
    const r = c.getBoundingClientRect();
    const sx = r.width ? c.clientWidth / r.width : 1; // undo the canvas zoom transform
    const sy = r.height ? c.clientHeight / r.height : 1;
    return { x: (e.clientX - r.left) * sx, y: (e.clientY - r.top) * sy };
  }

  paint(ctx, width, height, clear = true) {
    const entry = this.entry;
    if (!entry) {
      this.scene = null;
      drawMessage(ctx, width, height, this.message());
      return;
    }
    const left = this.leftImageRef(entry);
    const targetImage = this.image(left.ref);
    const refImages = entry.references.map((r) => this.image(r));
    const dims = (img) => (img ? [img.naturalWidth || img.width, img.naturalHeight || img.height] : null);
    this.scene = sceneRects(width, height, entry, { target: dims(targetImage), refs: refImages.map(dims) });
    drawViewer(ctx, this.scene, entry, {
      targetImage,
      refImages,
      hover: this.hover,
      overlay: this.overlay,
      targetLabel: left.label,
      clear,
    });
  }

  redraw() {
    try {
      this.redrawCanvas();
    } catch (err) {
      warn("draw", err);
    }
  }

  redrawCanvas() {
    if (!this.dom) {
      markDirty(this.node);
      return;
    }
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
  }

  // --- fallback: drawn in onDrawForeground below the widgets

  region() {
    const size = this.node.size;
    if (!size) return null;
    let top = 0;
    try {
      top = typeof this.node.computeSize === "function" ? this.node.computeSize()[1] : 0;
    } catch {
      top = 0;
    }
    const r = { x: 6, y: top + 4, w: size[0] - 12, h: size[1] - top - 10 };
    return r.w > 40 && r.h > CAPTION_H + 40 ? r : null;
  }

  growForFallback() {
    const n = this.node;
    if (!n.size) return;
    let top = 0;
    try {
      top = typeof n.computeSize === "function" ? n.computeSize()[1] : 0;
    } catch {
      top = 0;
    }
    const size = [Math.max(n.size[0], 360), Math.max(n.size[1], top + VIEWER_MIN_HEIGHT + CAPTION_H)];
    if (typeof n.setSize === "function") n.setSize(size);
    else n.size = size;
    markDirty(n);
  }

  drawOnNode(ctx) {
    const reg = this.region();
    if (!reg) return;
    ctx.save();
    ctx.translate(reg.x, reg.y);
    this.paint(ctx, reg.w, reg.h - CAPTION_H, false);
    ctx.fillStyle = "#bbb";
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "top";
    const more = this.entries.length > 1 ? " (click: next image)" : "";
    ctx.fillText(this.caption() + more, 0, reg.h - CAPTION_H + 3);
    ctx.restore();
  }

  onNodeMouseMove(pos) {
    const reg = this.region();
    const prev = this.hover;
    this.hover = reg && pos ? hoverAt(pos[0] - reg.x, pos[1] - reg.y, this.scene, this.entry) : null;
    if (prev || this.hover) markDirty(this.node);
  }

  onNodeMouseDown(pos) {
    const reg = this.region();
    if (!reg || !pos || this.entries.length < 2) return false;
    const y = pos[1] - reg.y;
    if (y < reg.h - CAPTION_H || y > reg.h) return false;
    this.select((this.index + 1) % this.entries.length);
    return true;
  }
}

function viewerOf(node, resolveURL) {
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
    if (message && typeof message === "object" && "e4e_correspondence" in message) {
      viewerOf(this, resolveURL).setEntries(message.e4e_correspondence);
    }
  });
  chain(proto, "onRemoved", function () {
    viewerOf(this)?.dispose();
  });
  chain(proto, "onDrawForeground", function (ctx) {
    const v = viewerOf(this);
    if (v && !v.dom && ctx && !this.flags?.collapsed) v.drawOnNode(ctx);
  });
  chain(proto, "onMouseMove", function (e, pos) {
    const v = viewerOf(this);
    if (v && !v.dom) v.onNodeMouseMove(pos);
  });
  const onMouseDown = proto.onMouseDown;
  proto.onMouseDown = function (e, pos, ...rest) {
    const handled = typeof onMouseDown === "function" ? onMouseDown.call(this, e, pos, ...rest) : undefined;
    if (handled) return handled;
    try {
      const v = viewerOf(this);
      if (v && !v.dom && v.onNodeMouseDown(pos)) return true;
    } catch (err) {
      warn("onMouseDown", err);
    }
    return handled;
  };
}
