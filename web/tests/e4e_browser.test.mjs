// The template browser and the opening view (e4e_browser.js), with stand-ins for ComfyUI's api, the cards of
// both frontends (1.27: title and a description made from the file name; 1.58: a title only) and the canvas.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  armReadableOpen,
  CARD_PREFIX,
  describeCards,
  DESCRIPTION_CLASS,
  installReadableOpen,
  installTemplateOrder,
} from "../js/e4e_browser.js";
import { derivedDescription, READABLE_SCALE } from "../js/e4e_logic.js";
import { TEMPLATES } from "../js/e4e_templates.js";

// ---------------------------------------------------------------- a few DOM elements

class El {
  constructor(tag, doc) {
    this.tagName = tag.toUpperCase();
    this.ownerDocument = doc;
    this.childNodes = [];
    this.parent = null;
    this.attrs = {};
    this.style = {};
    this.text = "";
    this.className = "";
    this.title = "";
    this.classList = { add: (c) => (this.className = `${this.className} ${c}`.trim()) };
  }
  get children() {
    return this.childNodes;
  }
  get textContent() {
    return this.childNodes.length ? this.childNodes.map((c) => c.textContent).join("") : this.text;
  }
  set textContent(t) {
    this.childNodes = [];
    this.text = t;
  }
  append(...nodes) {
    for (const n of nodes) {
      n.parent = this;
      this.childNodes.push(n);
    }
    return this;
  }
  after(node) {
    const siblings = this.parent.childNodes;
    node.parent = this.parent;
    siblings.splice(siblings.indexOf(this) + 1, 0, node);
  }
  remove() {
    const siblings = this.parent.childNodes;
    siblings.splice(siblings.indexOf(this), 1);
  }
  getAttribute(name) {
    return this.attrs[name] ?? null;
  }
  closest(selector) {
    const tags = selector.split(",").map((t) => t.trim().toUpperCase());
    for (let e = this; e; e = e.parent) if (tags.includes(e.tagName)) return e;
    return null;
  }
  all() {
    return this.childNodes.flatMap((c) => [c, ...c.all()]);
  }
  querySelectorAll(selector) {
    if (selector === "*") return this.all();
    const prefix = /^\[data-testid\^="(.*)"\]$/.exec(selector);
    if (prefix) return this.all().filter((e) => (e.attrs["data-testid"] || "").startsWith(prefix[1]));
    if (selector.startsWith(".")) return this.all().filter((e) => e.className.split(" ").includes(selector.slice(1)));
    if (/^[a-z0-9]+$/.test(selector)) return this.all().filter((e) => e.tagName === selector.toUpperCase());
    throw new Error(`selector ${selector}`);
  }
  querySelector(selector) {
    return this.querySelectorAll(selector)[0] || null;
  }
}

function page() {
  const doc = { createElement: (tag) => new El(tag, doc) };
  doc.body = new El("body", doc);
  return doc;
}

const el = (doc, tag, text, attrs = {}) => {
  const e = doc.createElement(tag);
  if (text !== undefined) e.textContent = text;
  Object.assign(e.attrs, attrs);
  return e;
};

/** A card as frontend 1.27 draws it: picture, title, the file name again as the description. */
function card127(doc, name) {
  const card = el(doc, "div", undefined, { "data-testid": `${CARD_PREFIX}${name}` });
  const body = el(doc, "div");
  body.append(el(doc, "h3", name), el(doc, "p", derivedDescription(name)));
  card.append(el(doc, "img"), body);
  return card;
}

/** A card as frontend 1.58 draws it: a badge, the title, no description. */
function card158(doc, name) {
  const card = el(doc, "div", undefined, { "data-testid": `${CARD_PREFIX}${name}` });
  const bottom = el(doc, "div");
  bottom.append(el(doc, "h3", name));
  card.append(el(doc, "span", "Node graph"), bottom);
  return card;
}

// ---------------------------------------------------------------- tests

describe("template order", () => {
  test("the pack's templates come in TEMPLATES' order, the toy world first; other packs are untouched", async () => {
    const names = TEMPLATES.map((t) => t.name);
    assert.equal(names[0], "Toy world (no checkpoint)");
    const server = { eye_for_an_eye: [...names].reverse(), other: ["z", "a"] };
    const api = {
      calls: 0,
      async getWorkflowTemplates() {
        this.calls++;
        return structuredClone(server);
      },
    };
    assert.ok(installTemplateOrder(api));
    assert.ok(!installTemplateOrder(api), "wrapped twice");
    const listing = await api.getWorkflowTemplates();
    assert.equal(api.calls, 1);
    assert.deepEqual(listing.eye_for_an_eye, names);
    assert.deepEqual(listing.other, ["z", "a"]);
  });
  test("an api without the call is left alone", () => {
    assert.equal(installTemplateOrder({}), false);
    assert.equal(installTemplateOrder(null), false);
  });
});

describe("card descriptions", () => {
  const names = TEMPLATES.map((t) => t.name);
  const descriptions = new Map(TEMPLATES.map((t) => [t.name, t.description]));
  test("every template has a description that is more than its title", () => {
    for (const t of TEMPLATES) {
      assert.ok(t.description.length > 20 && t.description !== t.name && t.description.endsWith("."), t.name);
    }
    assert.equal(new Set(names.map((n) => n.slice(0, 24))).size, names.length, "titles alike in their first 24 characters");
  });
  for (const [frontend, make] of [["1.27", card127], ["1.58", card158]]) {
    test(`frontend ${frontend}: each of the pack's cards shows its description, once, others untouched`, () => {
      const doc = page();
      const grid = el(doc, "div");
      for (const name of names) grid.append(make(doc, name));
      grid.append(make(doc, "someone_else's-template"));
      doc.body.append(grid);
      assert.equal(describeCards(doc.body), names.length);
      assert.equal(describeCards(doc.body), names.length); // again: nothing doubled
      for (const card of grid.children.slice(0, -1)) {
        const name = card.getAttribute("data-testid").slice(CARD_PREFIX.length);
        const shown = card.querySelectorAll(`.${DESCRIPTION_CLASS}`);
        assert.equal(shown.length, 1, name);
        assert.equal(shown[0].textContent, descriptions.get(name));
        assert.equal(card.querySelector("h3").textContent, name, "the title stays");
        assert.ok(!card.textContent.includes(derivedDescription(name) + derivedDescription(name)));
      }
      const other = grid.children.at(-1);
      assert.equal(other.querySelectorAll(`.${DESCRIPTION_CLASS}`).length, 0);
      if (frontend === "1.27") assert.equal(other.querySelector("p").textContent, "someone else's template");
    });
  }
});

describe("opening view", () => {
  function canvas() {
    const ds = {
      scale: 1,
      offset: [0, 0],
      max_scale: 10,
      fits: 0,
      fitToBounds(bounds, { zoom = 0.75 } = {}) { // LiteGraph's, on a 1600 x 857 canvas
        this.fits++;
        this.scale = Math.min((zoom * 1600) / bounds[2], (zoom * 857) / bounds[3]);
        this.offset = [800 / this.scale - bounds[0] - bounds[2] / 2, 428.5 / this.scale - bounds[1] - bounds[3] / 2];
      },
    };
    return { ds, canvas: { width: 1600, height: 857 } };
  }
  const big = [0, 0, 2680, 1175];

  test("a template of the pack opens readable; the fit after it (the user's) is the frontend's own", () => {
    const c = canvas();
    assert.ok(installReadableOpen(c));
    assert.ok(!installReadableOpen(c), "wrapped twice");
    armReadableOpen({ extra: { e4e: { title: "SD1.5 with masks" } } });
    c.ds.fitToBounds(big);
    assert.equal(c.ds.fits, 1);
    assert.ok(c.ds.scale >= READABLE_SCALE, c.ds.scale);
    assert.ok(Math.abs(c.ds.offset[0] * c.ds.scale - 24) < 1e-6, "the graph's left edge at the view's left");
    c.ds.fitToBounds(big);
    assert.ok(c.ds.scale < READABLE_SCALE, "a later fit is left alone");
  });
  test("other workflows, small graphs and late fits keep the frontend's fit", () => {
    const c = canvas();
    installReadableOpen(c);
    armReadableOpen({ extra: {} });
    c.ds.fitToBounds(big);
    assert.ok(c.ds.scale < READABLE_SCALE);
    armReadableOpen({ extra: { e4e: {} } });
    c.ds.fitToBounds([0, 0, 800, 500]);
    assert.equal(c.ds.scale, Math.min((0.75 * 1600) / 800, (0.75 * 857) / 500));
    armReadableOpen({ extra: { e4e: {} } }, Date.now() - 60000);
    c.ds.fitToBounds(big);
    assert.ok(c.ds.scale < READABLE_SCALE);
    armReadableOpen(undefined);
    assert.equal(installReadableOpen({}), false);
  });
  test("the viewport the frontend fits into (1.58 passes one) is the one used", () => {
    const c = canvas();
    installReadableOpen(c);
    armReadableOpen({ extra: { e4e: {} } });
    c.ds.fitToBounds(big, { viewport: [100, 50, 1400, 800] });
    assert.ok(Math.abs((0 + c.ds.offset[0]) * c.ds.scale - 172) < 1e-6);
    assert.ok(Math.abs((-80 + c.ds.offset[1]) * c.ds.scale - 94) < 1e-6);
  });
});
