// DOM and callback helpers shared by the node UIs: no ComfyUI import, no side effects.

export function warn(...args) {
  try {
    console.warn("[eye_for_an_eye]", ...args);
  } catch {
    /* no console */
  }
}

/** Wrap obj[key] so fn runs after the original; fn's errors are logged, never thrown. */
export function chain(obj, key, fn) {
  if (!obj) return;
  const orig = obj[key];
  obj[key] = function (...args) {
    const result = typeof orig === "function" ? orig.apply(this, args) : undefined;
    try {
      fn.apply(this, args);
    } catch (err) {
      warn(key, err);
    }
    return result;
  };
}

export const hasDOM = () => typeof document !== "undefined" && typeof document.createElement === "function";

export function el(tag, style, props) {
  const e = document.createElement(tag);
  if (style) Object.assign(e.style, style);
  if (props) Object.assign(e, props);
  return e;
}

export function addDOMWidget(node, name, element, options) {
  if (typeof node.addDOMWidget !== "function" || !hasDOM()) return null;
  const widget = node.addDOMWidget(name, name, element, {
    serialize: false,
    getValue: () => "",
    setValue: () => {},
    ...options,
  });
  try {
    if (widget) widget.serialize = false;
  } catch {
    /* read-only: options.serialize already keeps it out of the prompt */
  }
  return widget || null;
}
