// Showing and hiding LiteGraph widgets: no ComfyUI import, no side effects. The frontends the
// pack supports (>= 1.27) skip a widget with `hidden` set, on the canvas and in the Vue renderer.

export function findWidget(node, name) {
  const ws = node && Array.isArray(node.widgets) ? node.widgets : [];
  return ws.find((w) => w && w.name === name) || null;
}

/** True when a link drives the widget's input socket (its value then comes from the link). */
export function isLinked(node, widget) {
  const inputs = node && Array.isArray(node.inputs) ? node.inputs : [];
  const slot = inputs.findIndex((i) => i && (i.widget?.name === widget.name || i.name === widget.name));
  return slot >= 0 && !!node.isInputConnected?.(slot); // not input.link: deprecated in frontend 1.58
}

/** Show or hide a widget (a linked one stays shown); returns true when something changed. */
export function setWidgetVisible(node, widget, visible) {
  if (!widget || !!widget.hidden === !visible || (!visible && isLinked(node, widget))) return false;
  widget.hidden = !visible;
  return true;
}

/** Resize the node to its content height: shrink when asked, otherwise only grow. */
export function fitNodeHeight(node, shrink = false) {
  const min = node.computeSize();
  const h = shrink ? min[1] : Math.max(min[1], node.size[1] || 0);
  node.setSize([node.size[0], h]);
}

/** Ask the canvas for a redraw. */
export function markDirty(node) {
  node.setDirtyCanvas?.(true, true);
}
