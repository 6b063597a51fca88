// DOM and callback helpers shared by the node UIs: no ComfyUI import, no side effects.

export function warn(...args) {
  console.warn("[eye_for_an_eye]", ...args);
}

/** Wrap obj[key] so fn runs after the original; fn's errors are logged, never thrown. */
export function chain(obj, key, fn) {
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

export function el(tag, style, props) {
  const e = document.createElement(tag);
  if (style) Object.assign(e.style, style);
  if (props) Object.assign(e, props);
  return e;
}

/** A DOM widget that is not part of the prompt (ComfyUI's node.addDOMWidget, frontend >= 1.27). */
export function addDOMWidget(node, name, element, options) {
  return node.addDOMWidget(name, name, element, {
    serialize: false,
    getValue: () => "",
    setValue: () => {},
    ...options,
  });
}
