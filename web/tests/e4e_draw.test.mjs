import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { drawHints, drawMessage, drawViewer, HINT_COLOUR, MESSAGE_LINE, messageLayout } from "../js/e4e_draw.js";
import { hintMarkers, parseEntry, parseHints, sceneRects, tokenRect } from "../js/e4e_logic.js";
import { fakeContext, sampleRaw } from "./helpers.mjs";

const entry = parseEntry(sampleRaw());
const scene = sceneRects(206, 100, entry);
const names = (ctx) => ctx.calls.map((c) => c[0]);
const balanced = (ctx) => {
  const n = names(ctx);
  assert.equal(n.filter((x) => x === "save").length, n.filter((x) => x === "restore").length);
};

describe("drawViewer", () => {
  test("no images: placeholders, ref frames and labels, balanced save/restore", () => {
    const ctx = fakeContext();
    drawViewer(ctx, scene, entry, {});
    const n = names(ctx);
    assert.ok(n.includes("clearRect"));
    assert.ok(!n.includes("drawImage"));
    const texts = ctx.calls.filter((c) => c[0] === "fillText").map((c) => c[1]);
    assert.ok(texts.includes("ref 1") && texts.includes("ref 2") && texts.includes("target"));
    assert.ok(texts.includes("no preview"));
    balanced(ctx);
  });

  test("loaded images are drawn into their letterboxed rects", () => {
    const img = { naturalWidth: 30, naturalHeight: 20 };
    const ctx = fakeContext();
    drawViewer(ctx, scene, entry, { targetImage: img, refImages: [img, null] });
    const draws = ctx.calls.filter((c) => c[0] === "drawImage");
    assert.equal(draws.length, 2);
    const t = scene.targetRect;
    assert.deepEqual(draws[0].slice(2), [t.x, t.y, t.w, t.h]);
  });

  test("overlay tints every matched target token (not the -1 one)", () => {
    const ctx = fakeContext();
    drawViewer(ctx, scene, entry, { overlay: true });
    const tinted = ctx.calls.filter((c) => c[0] === "fillRect" && ctx.calls.indexOf(c) > 0);
    for (let i = 1; i < 6; i++) {
      const r = tokenRect(i, entry.grid, scene.targetRect);
      assert.ok(tinted.some((c) => c[1] === r.x && c[2] === r.y && c[3] === r.w), `token ${i} not tinted`);
    }
    const r0 = tokenRect(0, entry.grid, scene.targetRect);
    const fills0 = tinted.filter((c) => c[1] === r0.x && c[2] === r0.y && c[3] === r0.w && c[4] === r0.h);
    assert.equal(fills0.length, 0);
  });

  test("hover over a matched target token draws a marker on the reference", () => {
    const ctx = fakeContext();
    drawViewer(ctx, scene, entry, { hover: { kind: "target", token: 5, source: 3 } });
    assert.ok(names(ctx).includes("arc"));
    balanced(ctx);
  });

  test("hover over an unmatched or invalid token writes a note, no marker", () => {
    for (const [source, re] of [
      [-1, /no match/],
      [99, /bad index 99/],
    ]) {
      const ctx = fakeContext();
      drawViewer(ctx, scene, entry, { hover: { kind: "target", token: 0, source } });
      assert.ok(!names(ctx).includes("arc"));
      assert.ok(ctx.calls.some((c) => c[0] === "fillText" && re.test(c[1])));
    }
  });

  test("hover over a reference marks the target tokens that copy it", () => {
    const ctx = fakeContext();
    drawViewer(ctx, scene, entry, { hover: { kind: "ref", ref: 0, token: 3 } });
    assert.ok(ctx.calls.some((c) => c[0] === "fillText" && c[1] === "2 target tokens copy this spot"));
    balanced(ctx);
  });

  test("missing inputs draw nothing and do not throw", () => {
    const ctx = fakeContext();
    drawViewer(ctx, null, entry);
    drawViewer(ctx, scene, null);
    drawViewer(null, scene, entry);
    assert.equal(ctx.calls.length, 0);
  });
});

describe("drawHints", () => {
  const markers = hintMarkers(parseHints("0.5,0.5 > 0.25,0.75 @2\n0,0 > 1,1").hints, scene);

  test("each hint: a line from its target spot to its reference spot(s), a marker and its number at each end", () => {
    const ctx = fakeContext();
    drawViewer(ctx, scene, entry, { hints: markers });
    const t = markers[0].target;
    const [r] = markers[0].refs;
    const i = ctx.calls.findIndex((c) => c[0] === "moveTo" && c[1] === t.x && c[2] === t.y);
    assert.ok(i >= 0 && ctx.calls.slice(i).some((c) => c[0] === "lineTo" && c[1] === r.x && c[2] === r.y));
    const numbers = ctx.calls.filter((c) => c[0] === "fillText" && /^\d$/.test(c[1])).map((c) => c[1]);
    assert.deepEqual(numbers, ["1", "1", "2", "2", "2"]); // pair 2 has no "@r": on both references
    assert.ok(ctx.calls.some((c) => c[0] === "arc" && c[1] === t.x && c[2] === t.y));
    assert.ok(ctx.calls.some((c) => c[0] === "set" && c[1] === "strokeStyle" && c[2] === HINT_COLOUR));
    balanced(ctx);
  });

  test("a pending first click is marked and asks for the reference spot; nothing else draws nothing", () => {
    const ctx = fakeContext();
    drawHints(ctx, [], { x: 20, y: 30 });
    assert.ok(ctx.calls.some((c) => c[0] === "arc" && c[1] === 20 && c[2] === 30));
    assert.ok(ctx.calls.some((c) => c[0] === "fillText" && /reference\?/.test(c[1])));
    const none = fakeContext();
    drawHints(none, undefined, null);
    drawHints(none, [{ n: 1, target: null, refs: [] }]);
    assert.equal(none.calls.length, 0);
  });
});

describe("drawMessage", () => {
  test("fills and writes the text", () => {
    const ctx = fakeContext();
    drawMessage(ctx, 100, 50, "hello");
    assert.ok(ctx.calls.some((c) => c[0] === "fillText" && c[1] === "hello"));
    balanced(ctx);
  });
  test("zero size or no context is a no-op", () => {
    const ctx = fakeContext();
    drawMessage(ctx, 0, 50, "x");
    drawMessage(null, 10, 10, "x");
    assert.equal(ctx.calls.length, 0);
  });
  test("a long hint is wrapped to the panel, every line inside it (it used to run off the right edge)", () => {
    const ctx = fakeContext(); // 6 px per character
    const text = "Run the sampler to see which reference part each target part copies.";
    const layout = drawMessage(ctx, 200, 150, text);
    const written = ctx.calls.filter((c) => c[0] === "fillText");
    assert.ok(written.length > 1);
    assert.equal(written.map((c) => c[1]).join(" "), text);
    for (const [, line, x, y] of written) {
      assert.ok(x >= 0 && x + line.length * 6 <= 200, line);
      assert.ok(y >= 0 && y + MESSAGE_LINE <= 150, line);
    }
    assert.ok(layout.fits);
    assert.ok(!messageLayout(fakeContext(), 200, 20, text).fits); // too low a panel says so
  });
});

describe("pictures", () => {
  test("small pictures are drawn pixelated (no smoothing) when enlarged, smoothed when reduced", () => {
    for (const [size, smooth] of [[2, false], [2000, true]]) {
      const img = { naturalWidth: size, naturalHeight: size };
      const ctx = fakeContext();
      drawViewer(ctx, scene, entry, { targetImage: img, refImages: [img, img] });
      const calls = ctx.calls;
      const draw = calls.findIndex((c) => c[0] === "drawImage");
      const setting = calls.slice(0, draw).filter((c) => c[0] === "set" && c[1] === "imageSmoothingEnabled").at(-1);
      assert.equal(setting[2], smooth, `a ${size} px picture`);
    }
  });
});
