// Correspondence viewer of the Appearance Transfer Sampler node, a DOM widget (a canvas with a
// batch selector, a "parts" toggle, a warning line for the run's notices and a caption; text wraps,
// it is never cut off). It works in both node renderers: on the
// LiteGraph canvas the frontend sizes it from getMinHeight; in the Vue renderer ("Nodes 2.0")
// the element is moved into the node as it is, so it carries its own CSS height, and it takes
// the pointer through its own listeners (node hooks such as onMouseMove are not called there).
// No ComfyUI import, no side effects: the glue passes in how to turn a /view path into a URL.
//
// Correspondence hints (Semantic Match Patch's `hints`, matching/hints.py) are made here: after a run, a click on
// the target picture, then one on a reference picture, appends the pair "tx,ty > rx,ry" (" @r" with several
// references) as a line to the `hints` widget of the patch node upstream of the sampler's model input. The pairs
// the widget holds are drawn (re-read at every paint, so hand edits show); another click on the target moves a
// pending first click, Esc or a right-click cancels it; a right-click (or a shift-click) on a drawn hint removes
// that pair, and the bar's "clear hints" empties the widget. Clicks are pointerdown/pointerup on the canvas (both
// renderers deliver them to the element; a press on a picture is not passed on, so the Vue renderer does not drag
// the node), and the write happens on pointerup, before the mouseup the frontends' change tracking listens to.

import { drawMessage, drawViewer } from "./e4e_draw.js";
import { addDOMWidget, chain, el, warn } from "./e4e_dom.js";
import {
  PATCH_NODE,
  appendHint,
  entryCaption,
  findUpstream,
  formatHint,
  hintMarkers,
  hintNear,
  hoverAt,
  noticeList,
  parseEntries,
  parseHints,
  relativeToPoint,
  removeHint,
  sceneRects,
  spotAt,
  viewPath,
} from "./e4e_logic.js";
import { findWidget, fitNodeHeight, isLinked, markDirty } from "./e4e_widgets.js";

export const VIEWER_MIN_HEIGHT = 240;
export const HINT = "Run the sampler to see which reference part each target part copies. Then hover a spot of the " +
  "target to see where it comes from, or of a reference to see which target spots copy it. Where a part copies " +
  "the wrong one, click it on the target, then the reference spot it should copy: a hint.";
// the caption's last part: what a click does now (each at most HINT_ROOM characters, so the caption keeps its height)
export const HINT_CAPTION = {
  none: "hints: click target, then reference",
  pending: "now click its reference spot (Esc cancels)",
  some: (n) => `${n} hint${n === 1 ? "" : "s"}: right-click one to remove`,
  unreadable: (n) => `hints: pair ${n} is unreadable (see the patch)`,
};
const HINT_ROOM = 44;
export const NO_PATCH = "Hints go into the Semantic Match Patch that feeds this sampler's model input, and there is " +
  "none: connect one to add hints.";
const NO_HINTS_WIDGET = "The Semantic Match Patch upstream has no hints input: update the pack.";
const HINTS_LINKED = "The Semantic Match Patch's hints come through a link: edit them where they come from.";
const HINT_RADIUS = 10; // px: how near a right-click must be to a drawn hint
const CLICK_SLOP = 6; // px the pointer may move between press and release for a click
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
    this.pending = null; // the first click of a hint, {x, y} on the target (0..1), waiting for its reference spot
    this.press = null; // the pointer press on the canvas that a release may complete into a click
    this.lastRight = null; // the last right-click's press, for the context menu event that goes with it
    this.hintNotice = ""; // why the last click wrote nothing (no patch node upstream, ...)
    this.hintState = { text: "", hints: [], error: null, markers: [] }; // the hints of the last paint
    this.onKey = null;
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
    const clear = el("button", { display: "none", font: "inherit", padding: "0 4px", cursor: "pointer" }, {
      textContent: "clear hints",
      title: "empty the hints of the Semantic Match Patch upstream (right-click a hint to remove just that one)",
    });
    bar.append(batch, overlayLabel, clear);
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
    canvas.addEventListener("pointerdown", (e) => this.guard("pointerdown", () => this.pointerDown(e)));
    canvas.addEventListener("pointerup", (e) => this.guard("pointerup", () => this.pointerUp(e)));
    canvas.addEventListener("contextmenu", (e) => this.guard("contextmenu", () => this.contextMenu(e)));
    clear.addEventListener("click", () => this.guard("clear hints", () => this.clearHints()));

    const widget = addDOMWidget(this.node, "e4e_viewer", root, {
      getMinHeight: () => this.minHeight(),
      margin: MARGIN,
    });
    this.dom = { root, batch, overlay, clear, notices, canvas, caption, widget };
    if (typeof ResizeObserver === "function") {
      this.dom.observer = new ResizeObserver(() => this.redraw());
      this.dom.observer.observe(canvas);
    }
    this.refresh();
  }

  dispose() {
    this.dom.observer?.disconnect?.();
    this.images.clear();
    this.setPending(null);
  }

  guard(what, fn) {
    try {
      fn();
    } catch (err) {
      warn(what, err);
    }
  }

  setEntries(list) {
    const { entries, errors } = parseEntries(list);
    this.entries = entries;
    this.errors = errors;
    if (errors.length) warn("correspondence data:", ...errors);
    this.index = Math.min(this.index, Math.max(0, entries.length - 1));
    this.hover = null;
    this.setPending(null);
    this.hintNotice = "";
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

  /** The amber lines above the picture: the run's notices, then why the last click wrote no hint. */
  noticeLines() {
    return this.hintNotice ? [...this.notices, this.hintNotice] : this.notices;
  }

  /**
   * The widget's height: the picture's, plus the lines of text the notices and the caption wrap into (the caption
   * with room for the longest of its hint parts, so that clicks do not change the node's height).
   */
  minHeight() {
    const lines = (text) => (text ? Math.ceil(text.length / CHARS_PER_LINE) : 0);
    const caption = this.entry ? `${this.caption(false)} · ${"x".repeat(HINT_ROOM)}` : this.caption();
    const extra = this.noticeLines().reduce((n, t) => n + lines(`\u26a0 ${t}`), 0) + Math.max(0, lines(caption) - 1);
    return VIEWER_MIN_HEIGHT + TEXT_LINE * extra;
  }

  select(i) {
    if (!Number.isInteger(i) || i < 0 || i >= this.entries.length) return;
    this.index = i;
    this.hover = null;
    this.setPending(null);
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

  /** The line below the picture: the entry's summary and (withHints) what a click does now. */
  caption(withHints = true) {
    if (this.entry) {
      const text = entryCaption(this.entry, this.index, this.entries.length);
      return withHints ? `${text} · ${this.hintCaption()}` : text;
    }
    if (this.errors.length) return `Unusable correspondence data: ${this.errors[0]}`;
    return ""; // before a run the picture says what to do (HINT)
  }

  hintCaption() {
    const st = this.hintState;
    if (this.pending) return HINT_CAPTION.pending;
    if (st.error) return HINT_CAPTION.unreadable(st.errorPair);
    return st.hints.length ? HINT_CAPTION.some(st.hints.length) : HINT_CAPTION.none;
  }

  // ------------------------------------------------------------ hints

  /** The patch node upstream and its hints widget: {patch, widget, text} or {error} (what to tell the user). */
  hintSource() {
    const patch = findUpstream(this.node, PATCH_NODE, "model");
    if (!patch) return { error: NO_PATCH };
    const widget = findWidget(patch, "hints");
    if (!widget) return { patch, error: NO_HINTS_WIDGET };
    if (isLinked(patch, widget)) return { patch, widget, error: HINTS_LINKED };
    const v = widget.value;
    return { patch, widget, text: typeof v === "string" ? v : v == null ? "" : String(v) };
  }

  /** The text of the patch node's hints widget now ("" without one; null when the graph cannot be read). */
  hintsText() {
    try {
      return String(this.hintSource().widget?.value ?? "");
    } catch (err) {
      warn("hints", err);
      return null;
    }
  }

  /** Read the hints the patch node holds now (and where they go on the scene). */
  readHints() {
    const text = this.hintsText() ?? "";
    const { hints, error, errorPair } = parseHints(text);
    this.hintState = { text, hints, error, errorPair, markers: hintMarkers(hints, this.scene) };
    return this.hintState;
  }

  /** Repaint when the hints the patch node holds changed (a hand edit), e.g. from the node's draw hook. */
  syncHints() {
    if (!this.entry) return;
    const text = this.hintsText();
    if (text !== null && text !== this.hintState.text) this.redraw();
  }

  say(notice) {
    if (notice === this.hintNotice) return;
    this.hintNotice = notice;
    this.refresh();
    fitNodeHeight(this.node);
  }

  /** Write text into the patch node's hints widget, as a user's edit (its callback, the canvas and graph told). */
  writeHints(src, text) {
    const { patch, widget } = src;
    const old = widget.value;
    widget.value = text;
    widget.callback?.(text, undefined, patch);
    patch.onWidgetChanged?.(widget.name, text, old, widget);
    markDirty(patch);
    patch.graph?.change?.();
  }

  setPending(point) {
    this.pending = point;
    const doc = globalThis.document;
    if (point && !this.onKey && typeof doc?.addEventListener === "function") {
      this.onKey = (e) => {
        if (e.key === "Escape") this.guard("Escape", () => this.cancelPending());
      };
      doc.addEventListener("keydown", this.onKey, true);
    } else if (!point && this.onKey) {
      doc?.removeEventListener?.("keydown", this.onKey, true);
      this.onKey = null;
    }
  }

  cancelPending() {
    if (!this.pending) return;
    this.setPending(null);
    this.refresh();
  }

  /** A click at p (canvas px): on the target, the first spot of a hint; then on a reference, the hint is written. */
  click(p) {
    const spot = this.entry ? spotAt(p.x, p.y, this.scene) : null;
    if (!spot) return; // only the pictures take clicks
    if (spot.kind === "ref" && !this.pending) return; // a hint starts on the target (the caption says so)
    const src = this.hintSource();
    if (src.error) {
      this.setPending(null);
      this.say(src.error);
      this.refresh(); // the pending spot is gone even when the notice is the same
      return;
    }
    if (spot.kind === "target") {
      this.setPending({ x: spot.x, y: spot.y }); // a second click on the target moves the first spot
    } else {
      const ref = this.entry.nRefs > 1 ? spot.ref : null;
      const pair = formatHint([this.pending.x, this.pending.y], [spot.x, spot.y], ref);
      this.setPending(null);
      this.writeHints(src, appendHint(src.text, pair));
    }
    this.say("");
    this.refresh();
  }

  /** Remove the pair the marker near p (canvas px) draws; true when there was one. */
  removeNear(p) {
    const n = hintNear(p.x, p.y, this.hintState.markers, HINT_RADIUS);
    if (n === null) return false;
    const src = this.hintSource();
    if (src.error) {
      this.say(src.error);
      return true;
    }
    this.writeHints(src, removeHint(src.text, n));
    this.say("");
    this.refresh();
    return true;
  }

  clearHints() {
    const src = this.hintSource();
    if (src.error) {
      this.say(src.error);
      return;
    }
    this.setPending(null);
    this.writeHints(src, "");
    this.say("");
    this.refresh();
  }

  pointerDown(e) {
    const p = this.localPoint(e);
    const onPicture = !!(this.entry && spotAt(p.x, p.y, this.scene));
    this.press = { button: e.button ?? 0, x: p.x, y: p.y, consumed: false };
    if (onPicture) e.stopPropagation?.(); // the Vue renderer would start dragging the node
  }

  pointerUp(e) {
    const press = this.press;
    this.press = null;
    const p = this.localPoint(e);
    if (!press || press.button !== (e.button ?? 0) || Math.hypot(p.x - press.x, p.y - press.y) > CLICK_SLOP) return;
    if (press.button === 0 && !e.shiftKey) this.click(p);
    else if (press.button === 2 || press.button === 0) {
      // right button (or shift and the left one): cancel a pending click, else remove the hint under the pointer
      if (this.pending) {
        this.cancelPending();
        press.consumed = true;
      } else press.consumed = this.removeNear(p);
      this.lastRight = press; // the contextmenu event that follows (or came first) is ours then
    }
  }

  /** The browser's and the editor's context menu stay away where a right-click cancels or removes a hint. */
  contextMenu(e) {
    const p = this.localPoint(e);
    const ours = this.pending || hintNear(p.x, p.y, this.hintState.markers, HINT_RADIUS) !== null ||
      (this.lastRight?.consumed && Math.hypot(p.x - this.lastRight.x, p.y - this.lastRight.y) <= CLICK_SLOP);
    this.lastRight = null;
    if (!ours) return;
    e.preventDefault?.();
    e.stopPropagation?.();
  }

  refresh() {
    const d = this.dom;
    const n = this.entries.length;
    d.batch.replaceChildren(
      ...this.entries.map((_, i) => el("option", null, { value: String(i), textContent: `image ${i + 1}/${n}` })),
    );
    d.batch.value = String(this.index);
    d.batch.style.display = n > 1 ? "" : "none";
    const notices = this.noticeLines();
    d.notices.replaceChildren(...notices.map((t) => el("div", null, { textContent: `\u26a0 ${t}` })));
    d.notices.style.display = notices.length ? "" : "none";
    d.notices.title = notices.join("\n");
    d.root.style.minHeight = `${this.minHeight() - 2 * MARGIN}px`;
    this.updateCaption();
    this.redraw();
  }

  updateCaption() {
    const d = this.dom;
    const text = this.caption();
    if (d.caption.textContent !== text) d.caption.textContent = text;
    d.caption.title = text;
    d.caption.style.display = text ? "" : "none";
    d.clear.style.display = this.entry && this.hintState.text.trim() ? "" : "none";
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
    const { markers } = this.readHints(); // every paint: hand edits of the hints show
    const pending = this.pending && relativeToPoint(this.pending.x, this.pending.y, this.scene?.targetRect);
    const view = { targetImage, refImages, hover: this.hover, overlay: this.overlay, hints: markers, pending };
    drawViewer(ctx, this.scene, entry, view);
    this.updateCaption();
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
  // the LiteGraph canvas draws the node often: a hand edit of the hints shows without moving the pointer there
  chain(proto, "onDrawForeground", function () {
    viewerOf(this)?.syncHints();
  });
}
