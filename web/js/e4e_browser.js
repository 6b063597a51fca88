// The pack's templates as the editor shows them: the order of their cards in the template browser, each card's
// description, and the view a template opens with. No ComfyUI import, no side effects: the glue (e4e_viewer.js)
// hands in ComfyUI's api and app.
//
// What the frontends do by themselves (1.27 and 1.58, read from their code): ComfyUI v0.3.64 lists a pack's
// workflows/*.json in the file system's order and the browser keeps that order; a card's title is the file name
// and 1.27 repeats it as the description ("-" and "_" as spaces), 1.58 shows none; no per-pack index is read.
// A template opens fitted to its graph, which for a graph of twenty nodes is a scale where LiteGraph draws no text.

import { warn } from "./e4e_dom.js";
import { derivedDescription, orderListing, readableView, viewFrame } from "./e4e_logic.js";
import { TEMPLATES } from "./e4e_templates.js";

export const CARD_PREFIX = "template-workflow-"; // data-testid of a card in both frontends
export const DESCRIPTION_CLASS = "e4e-card-description";
const DESCRIPTIONS = new Map(TEMPLATES.map((t) => [t.name, t.description]));

/** List the pack's templates in TEMPLATES' order: wraps api.getWorkflowTemplates (both frontends call it). */
export function installTemplateOrder(api, order = TEMPLATES.map((t) => t.name)) {
  if (!api || typeof api.getWorkflowTemplates !== "function" || api.getWorkflowTemplates.e4eOrdered) return false;
  const original = api.getWorkflowTemplates;
  const ordered = async function (...args) {
    const listing = await original.apply(this, args);
    try {
      return orderListing(listing, order);
    } catch (err) {
      warn("template order", err);
      return listing;
    }
  };
  ordered.e4eOrdered = true;
  api.getWorkflowTemplates = ordered;
  return true;
}

const leaves = (root) =>
  Array.from(root.querySelectorAll("*")).filter((e) => e.children.length === 0 && e.textContent.trim());

/**
 * Write the description of each of the pack's cards under `root`: in place of the file name 1.27 repeats as the
 * description, or (1.58, which has none) as a line after the title. Returns how many cards it described.
 */
export function describeCards(root, descriptions = DESCRIPTIONS) {
  let n = 0;
  for (const card of root.querySelectorAll(`[data-testid^="${CARD_PREFIX}"]`)) {
    const name = card.getAttribute("data-testid").slice(CARD_PREFIX.length);
    const text = descriptions.get(name);
    if (!text) continue;
    n++;
    if (card.querySelector(`.${DESCRIPTION_CLASS}`)?.textContent === text) continue;
    const texts = leaves(card);
    const derived = texts.filter((e) => e.textContent.trim() === derivedDescription(name) && !e.closest("h1,h2,h3,h4"));
    const own = derived.length && derived[derived.length - 1] !== texts.find((e) => e.textContent.trim() === name)
      ? derived[derived.length - 1]
      : null;
    if (own) {
      own.textContent = text;
      own.title = text;
      own.classList.add(DESCRIPTION_CLASS);
      continue;
    }
    const title = texts.find((e) => e.textContent.trim() === name);
    if (!title) continue;
    card.querySelector(`.${DESCRIPTION_CLASS}`)?.remove();
    const line = card.ownerDocument.createElement("p");
    line.className = DESCRIPTION_CLASS;
    line.textContent = text;
    line.title = text;
    Object.assign(line.style, { margin: "2px 0 0", fontSize: "12px", lineHeight: "1.35", opacity: "0.75" });
    title.after(line);
  }
  return n;
}

/** Keep the cards described while the template browser is open (a MutationObserver, one pass per frame). */
export function watchCards(doc) {
  if (!doc?.body || typeof MutationObserver !== "function") return null;
  let queued = false;
  const pass = () => {
    queued = false;
    try {
      if (doc.querySelector(`[data-testid^="${CARD_PREFIX}"]`)) describeCards(doc);
    } catch (err) {
      warn("template cards", err);
    }
  };
  const observer = new MutationObserver(() => {
    if (!queued) {
      queued = true;
      requestAnimationFrame(pass);
    }
  });
  observer.observe(doc.body, { childList: true, subtree: true });
  return observer;
}

// ---------------------------------------------------------------- the view a template opens with

let armed = 0; // when a graph of this pack started loading (ms), 0: none

/** beforeConfigureGraph: a graph of this pack (extra.e4e) is loading; its first fit to the view is ours. */
export function armReadableOpen(graphData, now = Date.now()) {
  armed = graphData?.extra?.e4e ? now : 0;
}

/**
 * Wrap the canvas's fitToBounds (1.58 fits every template it opens, 1.27 a workflow without a saved view): the
 * first fit after one of this pack's graphs loaded keeps the frontend's fit when it draws text, else takes
 * readableView's. Any later fit (the user's "fit view") is the frontend's own.
 */
export function installReadableOpen(canvas, withinMs = 5000) {
  const ds = canvas?.ds;
  if (!ds || typeof ds.fitToBounds !== "function" || ds.fitToBounds.e4eReadable) return false;
  const original = ds.fitToBounds;
  const fit = function (bounds, options = {}, ...rest) {
    const result = original.call(this, bounds, options, ...rest);
    try {
      if (armed && Date.now() - armed < withinMs) {
        armed = 0;
        const el = canvas.canvas;
        const dpr = globalThis.devicePixelRatio || 1;
        const viewport = options?.viewport ?? [0, 0, (el?.width || 0) / dpr, (el?.height || 0) / dpr];
        const frame = viewFrame(!!options?.viewport);
        const view = readableView(Array.from(bounds), viewport, this.scale, this.max_scale || 1, frame);
        if (view) {
          this.scale = view.scale;
          this.offset[0] = view.offset[0];
          this.offset[1] = view.offset[1];
        }
      }
    } catch (err) {
      warn("opening view", err);
    }
    return result;
  };
  fit.e4eReadable = true;
  ds.fitToBounds = fit;
  return true;
}
