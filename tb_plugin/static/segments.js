// Sentence pairs along a token axis: which segment each token belongs to, drawn once for every view
// as a colour band per segment, a tick at the boundary between the segments, and a legend naming them.
// A single sentence (or a pair whose tokens' segments are unknown) has no segments: nothing is drawn.
//
//   const seg = segmentsFor(app.probe.examples[i], tokens);   // null unless a pair on this token axis
//   seg.spans      -> [{segment: 0, start: 1, end: 4}, {segment: 1, start: 5, end: 7}]  (end exclusive)
//   seg.boundary   -> 5: the first token of the second segment (the tick sits just before it)
//   drawBands(p, seg, {along: "x", at: (i) => left edge of token i, cell: width of a token, across: y, thickness: 4})
//   drawBoundary(p, seg, {along: "x", at, from: top, to: bottom})
//   segmentLegend(seg) -> swatch items for legend.js's swatches()

import {CATEGORICAL} from "./colormaps.js";

// Okabe and Ito's sky blue and reddish purple: apart from each other, from the edges' blue and the source's orange.
export const SEGMENT_COLOURS = [CATEGORICAL[5], CATEGORICAL[3]];
export const BOUNDARY_COLOUR = "#424242";
// The run does not name its segments (premise / hypothesis, question / passage ...): the tab does not invent names.
export const SEGMENT_NAMES = ["first segment", "second segment"];

/**
 * The segments of one example along a token axis, or null when there is nothing to draw: a single
 * sentence, a pair without per-token segment ids (format-1 runs, slow tokenizers), or an axis whose
 * tokens are not the example's (another stream, a transformed view) unless `sequenceIds` come with it.
 * example: a /probe example ({text_pair, tokens, sequence_ids}); tokens: the axis' tokens.
 */
export function segmentsFor(example, tokens, sequenceIds = null) {
  if (!example || example.text_pair === null || example.text_pair === undefined || !tokens) return null;
  let ids = sequenceIds;
  if (!ids) {
    const own = example.tokens || [];
    const same = example.sequence_ids && own.length === tokens.length && own.every((t, i) => t === tokens[i]);
    if (!same) return null;
    ids = example.sequence_ids;
  }
  if (ids.length !== tokens.length) return null;
  const spans = [];
  ids.forEach((id, i) => {
    if (id !== 0 && id !== 1) return; // special tokens (-1) belong to no segment
    const last = spans[spans.length - 1];
    if (last && last.segment === id && last.end === i) last.end = i + 1;
    else spans.push({segment: id, start: i, end: i + 1});
  });
  const boundary = ids.findIndex((id, i) => id === 1 && ids.slice(0, i).includes(0));
  if (boundary < 0) return null; // the second segment was truncated away, or nothing precedes it
  return {ids, spans, boundary, names: SEGMENT_NAMES, colours: SEGMENT_COLOURS};
}

/**
 * The segment of each unit of a transformed axis (special tokens hidden, word pieces merged into words),
 * from the example's per-token segment ids and the token positions each unit holds; null without either.
 * A unit whose positions lie in different segments (none should) belongs to none (-1).
 */
export function unitSegmentIds(sequenceIds, units) {
  if (!sequenceIds || !Array.isArray(units)) return null;
  return units.map((positions) => {
    const ids = new Set([].concat(positions).map((i) => sequenceIds[i] ?? -1));
    return ids.size === 1 ? [...ids][0] : -1;
  });
}

/** The segment of token i (0, 1), or -1 for a special token; -1 without segments. */
export function segmentOf(seg, i) {
  return seg ? seg.ids[i] ?? -1 : -1;
}

/**
 * A colour band per segment along one token axis. along: "x" (tokens left to right) or "y" (top to
 * bottom); at(i): where token i's cell starts on that axis; cell: its size; across, thickness: the
 * band's position and size on the other axis.
 */
export function drawBands(p, seg, {along = "x", at, cell, across, thickness = 4}) {
  if (!seg) return;
  for (const {segment, start, end} of seg.spans) {
    const a = at(start);
    const length = at(end - 1) + cell - a;
    const fill = seg.colours[segment];
    if (along === "x") p.rect(a, across, length, thickness, {fill});
    else p.rect(across, a, thickness, length, {fill});
  }
}

/** The tick at the boundary: a line across the axis, just before the second segment's first token, from..to. */
export function drawBoundary(p, seg, {along = "x", at, from, to, width = 1, dash = [4, 3]}) {
  if (!seg) return;
  const c = at(seg.boundary);
  const o = {stroke: BOUNDARY_COLOUR, width, dash};
  if (along === "x") p.line(c, from, c, to, o);
  else p.line(from, c, to, c, o);
}

/** Legend items for legend.js's swatches(): one box per segment and the boundary; [] without segments. */
export function segmentLegend(seg) {
  if (!seg) return [];
  return [
    [seg.names[0], seg.colours[0], "box"],
    [seg.names[1], seg.colours[1], "box"],
    ["segment boundary", BOUNDARY_COLOUR, "line"],
  ];
}

/** One line saying which segment a token is in, for tooltips; null without segments. */
export function describeSegment(seg, i) {
  const s = segmentOf(seg, i);
  if (!seg) return null;
  return s < 0 ? "special token (no segment)" : seg.names[s];
}
