// Showing and hiding LiteGraph widgets across ComfyUI frontend versions. Works on plain
// node/widget objects; imports nothing from ComfyUI and has no side effects.
//
// Hiding sets all three signals the frontends have used: `widget.hidden = true` (current
// litegraph skips such widgets when drawing and laying out), a non-drawing `type` ("hidden":
// old and new DOM widgets hide their element for it) and `computeSize` returning [0, -4]
// (the old layout's per-widget height, -4 cancels the gap). Showing restores what was there.

export const HIDDEN_TYPE = "hidden";
const saved = new WeakMap();

const own = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

function assign(obj, key, value) {
  try {
    obj[key] = value;
  } catch {
    /* read-only on some frontend builds: the other signals still apply */
  }
}

export function findWidget(node, name) {
  const ws = node && Array.isArray(node.widgets) ? node.widgets : [];
  return ws.find((w) => w && w.name === name) || null;
}

/** True when the widget became an input socket with a link (old "converted-widget" or a linked socket). */
export function isDrivenByInput(node, widget) {
  if (!widget) return false;
  if (typeof widget.type === "string" && widget.type.startsWith("converted-widget")) return true;
  const inputs = node && Array.isArray(node.inputs) ? node.inputs : [];
  return inputs.some((i) => i && i.link != null && (i.widget?.name === widget.name || i.name === widget.name));
}

export function isHidden(widget) {
  return !!widget && saved.has(widget);
}

/** Show or hide a widget; returns true when something changed. */
export function setWidgetVisible(node, widget, visible) {
  if (!widget) return false;
  if (visible) {
    const prev = saved.get(widget);
    if (!prev) return false;
    saved.delete(widget);
    assign(widget, "type", prev.type);
    if (prev.ownComputeSize) assign(widget, "computeSize", prev.computeSize);
    else delete widget.computeSize;
    assign(widget, "hidden", prev.hidden ?? false);
    if (!prev.ownHidden && own(widget, "hidden")) delete widget.hidden;
    return true;
  }
  if (saved.has(widget) || isDrivenByInput(node, widget)) return false;
  saved.set(widget, {
    type: widget.type,
    ownComputeSize: own(widget, "computeSize"),
    computeSize: widget.computeSize,
    ownHidden: own(widget, "hidden"),
    hidden: widget.hidden,
  });
  assign(widget, "type", HIDDEN_TYPE);
  assign(widget, "computeSize", () => [0, -4]);
  assign(widget, "hidden", true);
  return true;
}

/** Resize the node to its content height: shrink when asked, otherwise only grow. */
export function fitNodeHeight(node, shrink = false) {
  if (!node || typeof node.computeSize !== "function" || !node.size) return;
  let min;
  try {
    min = node.computeSize();
  } catch {
    return;
  }
  if (!min || !Number.isFinite(min[1])) return;
  const h = shrink ? min[1] : Math.max(min[1], node.size[1] || 0);
  const size = [node.size[0], h];
  if (typeof node.setSize === "function") node.setSize(size);
  else node.size = size;
}

/** Ask the canvas for a redraw, whatever the frontend offers. */
export function markDirty(node) {
  if (node && typeof node.setDirtyCanvas === "function") node.setDirtyCanvas(true, true);
  else if (node && node.graph && typeof node.graph.setDirtyCanvas === "function") node.graph.setDirtyCanvas(true, true);
}
