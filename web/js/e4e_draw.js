// Canvas painting of the correspondence viewer. Takes a 2D context and a scene from
// e4e_logic.sceneRects; creates no DOM and imports nothing from ComfyUI (no side effects).

import { inverseLookup, locateSource, refColour, sourceToPoint, tokenRect, wrapText } from "./e4e_logic.js";

const PANEL_BG = "#151515";
const TEXT = "#ddd";

const drawable = (img) => !!img && (img.naturalWidth || img.width) > 0;

function strokeRect(ctx, r, colour, width = 1) {
  if (!r) return;
  ctx.strokeStyle = colour;
  ctx.lineWidth = width;
  ctx.strokeRect(r.x, r.y, r.w, r.h);
}

function label(ctx, text, x, y, colour = TEXT) {
  ctx.font = "11px sans-serif";
  ctx.textBaseline = "top";
  ctx.fillStyle = "rgba(0,0,0,0.6)";
  const w = (typeof ctx.measureText === "function" && ctx.measureText(text)?.width) || 0;
  ctx.fillRect(x, y, w + 6, 14);
  ctx.fillStyle = colour;
  ctx.fillText(text, x + 3, y + 1);
}

function drawImageOrPlaceholder(ctx, img, rect, text) {
  if (!rect) return;
  if (drawable(img)) {
    // enlarged pictures (a 32 px toy creature in a 200 px panel) are drawn pixelated, not smoothed into a blur
    ctx.imageSmoothingEnabled = rect.w <= (img.naturalWidth || img.width);
    ctx.drawImage(img, rect.x, rect.y, rect.w, rect.h);
    ctx.imageSmoothingEnabled = true;
  } else {
    ctx.fillStyle = "#2a2a2a";
    ctx.fillRect(rect.x, rect.y, rect.w, rect.h);
    label(ctx, text, rect.x + 4, rect.y + 4, "#999");
  }
}

function marker(ctx, x, y, colour) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.arc(x, y, 6, 0, Math.PI * 2);
  ctx.stroke();
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(x, y, 6, 0, Math.PI * 2);
  ctx.moveTo(x - 10, y);
  ctx.lineTo(x + 10, y);
  ctx.moveTo(x, y - 10);
  ctx.lineTo(x, y + 10);
  ctx.stroke();
}

/** Tint each matched target token with the colour of its reference. */
function drawOverlay(ctx, scene, entry) {
  const { src, grid, refGrids } = entry;
  for (let i = 0; i < src.length; i++) {
    const loc = locateSource(src[i], refGrids);
    if (!loc) continue;
    const r = tokenRect(i, grid, scene.targetRect);
    ctx.fillStyle = refColour(loc.ref, 0.28);
    ctx.fillRect(r.x, r.y, r.w, r.h);
  }
}

function drawTargetHover(ctx, scene, entry, hover) {
  strokeRect(ctx, tokenRect(hover.token, entry.grid, scene.targetRect), "#fff", 1.5);
  const loc = locateSource(hover.source, entry.refGrids);
  const tr = scene.targetRect;
  if (!loc) {
    label(ctx, hover.source === -1 ? "no match (outside mask)" : `bad index ${hover.source}`, tr.x + 4, tr.y + tr.h - 18);
    return;
  }
  const colour = refColour(loc.ref);
  strokeRect(ctx, tokenRect(loc.index, entry.refGrids[loc.ref], scene.refRects[loc.ref]), colour, 1.5);
  const p = sourceToPoint(hover.source, entry.refGrids, scene.refRects);
  if (p) marker(ctx, p.x, p.y, colour);
}

function drawRefHover(ctx, scene, entry, hover, radius) {
  const colour = refColour(hover.ref);
  strokeRect(ctx, tokenRect(hover.token, entry.refGrids[hover.ref], scene.refRects[hover.ref]), "#fff", 1.5);
  const pts = inverseLookup(entry.src, entry.grid, entry.refGrids, hover.ref, hover.token, scene.targetRect, radius);
  const tr = scene.targetRect;
  const size = Math.max(2, Math.min(tr.w / entry.grid[1], tr.h / entry.grid[0]) * 0.6);
  ctx.fillStyle = colour;
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 1;
  for (const p of pts) {
    ctx.fillRect(p.x - size / 2, p.y - size / 2, size, size);
    ctx.strokeRect(p.x - size / 2, p.y - size / 2, size, size);
  }
  const n = pts.length;
  label(ctx, `${n} target token${n === 1 ? " copies" : "s copy"} this spot`, tr.x + 4, tr.y + tr.h - 18);
}

export const HINT_COLOUR = "#ffe14d";

function hintDot(ctx, x, y, filled) {
  ctx.beginPath();
  ctx.arc(x, y, 5, 0, Math.PI * 2);
  ctx.fillStyle = filled ? HINT_COLOUR : "rgba(0,0,0,0.35)";
  ctx.fill();
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 3;
  ctx.stroke();
  ctx.strokeStyle = HINT_COLOUR;
  ctx.lineWidth = 1.5;
  ctx.stroke();
}

/**
 * The correspondence hints: markers from e4e_logic.hintMarkers (a dot on the target spot, a ring on the reference
 * spot, a dashed line joining them, the pair's number beside each), and the pending first click (a white dot).
 */
export function drawHints(ctx, markers, pending = null) {
  for (const m of markers || []) {
    if (!m.target) continue;
    ctx.setLineDash?.([4, 3]);
    for (const p of m.refs) {
      for (const [colour, width] of [["rgba(0,0,0,0.7)", 3], [HINT_COLOUR, 1.5]]) {
        ctx.strokeStyle = colour;
        ctx.lineWidth = width;
        ctx.beginPath();
        ctx.moveTo(m.target.x, m.target.y);
        ctx.lineTo(p.x, p.y);
        ctx.stroke();
      }
    }
    ctx.setLineDash?.([]);
    hintDot(ctx, m.target.x, m.target.y, true);
    label(ctx, String(m.n), m.target.x + 6, m.target.y - 16, HINT_COLOUR);
    for (const p of m.refs) {
      hintDot(ctx, p.x, p.y, false);
      label(ctx, String(m.n), p.x + 6, p.y - 16, HINT_COLOUR);
    }
  }
  if (pending) {
    marker(ctx, pending.x, pending.y, "#fff");
    label(ctx, "\u2192 reference?", pending.x + 8, pending.y + 8, "#fff");
  }
}

/**
 * Paint one entry. view = {targetImage, refImages, hover, overlay, radius, hints, pending}: hints are
 * e4e_logic.hintMarkers, pending the pixel point of a first click waiting for its reference spot.
 * Images that are not loaded (or null) are drawn as placeholders.
 */
export function drawViewer(ctx, scene, entry, view = {}) {
  if (!ctx || !scene || !entry) return;
  ctx.save();
  ctx.clearRect(0, 0, scene.width, scene.height);
  ctx.fillStyle = PANEL_BG;
  for (const b of [scene.targetBox, ...scene.refBoxes]) ctx.fillRect(b.x, b.y, b.w, b.h);
  drawImageOrPlaceholder(ctx, view.targetImage, scene.targetRect, "no preview");
  if (view.overlay && !view.hover) drawOverlay(ctx, scene, entry);
  scene.refRects.forEach((rect, r) => {
    drawImageOrPlaceholder(ctx, view.refImages && view.refImages[r], rect, "no preview");
    strokeRect(ctx, rect, refColour(r), 2);
    if (rect) label(ctx, `ref ${r + 1}`, rect.x + 2, rect.y + 2, refColour(r));
  });
  if (scene.targetRect) label(ctx, "target", scene.targetRect.x + 2, scene.targetRect.y + 2);
  const hover = view.hover;
  if (hover && hover.kind === "target") drawTargetHover(ctx, scene, entry, hover);
  else if (hover && hover.kind === "ref") drawRefHover(ctx, scene, entry, hover, view.radius || 0);
  drawHints(ctx, view.hints, view.pending);
  ctx.restore();
}

export const MESSAGE_FONT = "12px sans-serif";
export const MESSAGE_LINE = 16;
const MESSAGE_PAD = 8;

/**
 * Where a message goes in a width x height panel: its lines, wrapped to the width, centred vertically, and
 * whether they all fit (`fits`: every line as wide as the panel allows and all lines in its height).
 */
export function messageLayout(ctx, width, height, text) {
  ctx.font = MESSAGE_FONT;
  const measure = (t) => (typeof ctx.measureText === "function" && ctx.measureText(t)?.width) || 0;
  const room = Math.max(0, width - 2 * MESSAGE_PAD);
  const lines = wrapText(text, room, measure);
  const top = Math.max(MESSAGE_PAD, (height - lines.length * MESSAGE_LINE) / 2);
  const widest = Math.max(0, ...lines.map(measure));
  const fits = widest <= room && top + lines.length * MESSAGE_LINE <= height - MESSAGE_PAD + 1;
  return { lines, top, widest, room, fits, width, height };
}

/** Paint a message when there is nothing to show, wrapped to the panel; returns its layout. */
export function drawMessage(ctx, width, height, text) {
  if (!ctx || !(width > 0) || !(height > 0)) return null;
  ctx.save();
  ctx.fillStyle = PANEL_BG;
  ctx.fillRect(0, 0, width, height);
  const layout = messageLayout(ctx, width, height, text);
  ctx.fillStyle = "#999";
  ctx.textBaseline = "top";
  layout.lines.forEach((line, i) => ctx.fillText(line, MESSAGE_PAD, layout.top + i * MESSAGE_LINE));
  ctx.restore();
  return layout;
}
