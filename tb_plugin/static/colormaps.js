// Colour maps, derived here in the OKLab space (Ottosson 2020) rather than copied from a table.
//
// Sequential ("attn"): lightness rises linearly from dark to light while the hue turns from
// blue-violet through teal and green to yellow, so order reads from lightness alone (safe for
// every kind of colour blindness and in greyscale) and the hue path avoids red-green contrasts.
// Diverging ("diff"): blue for negative, orange for positive, both darkening equally from a
// near-white centre. Each path is resampled so that successive LUT entries are equally far apart
// in OKLab, which is what makes the maps perceptually uniform.

const N = 256;

function oklabToSrgb(L, a, b) {
  const l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3;
  const m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3;
  const s = (L - 0.0894841775 * a - 1.291485548 * b) ** 3;
  const lin = [
    4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
    -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
    -0.0041960863 * l - 0.7034186147 * m + 1.707614701 * s,
  ];
  return lin.map((x) => (x <= 0.0031308 ? 12.92 * x : 1.055 * Math.sign(x) * Math.abs(x) ** (1 / 2.4) - 0.055));
}

function inGamut(rgb) {
  return rgb.every((x) => x >= -1e-4 && x <= 1 + 1e-4);
}

/** An OKLCh colour with the chroma reduced as far as needed to stay inside sRGB. */
function lchInGamut(L, C, hueDeg) {
  const h = (hueDeg * Math.PI) / 180;
  const at = (c) => [L, c * Math.cos(h), c * Math.sin(h)];
  if (inGamut(oklabToSrgb(...at(C)))) return at(C);
  let lo = 0;
  let hi = C;
  for (let k = 0; k < 24; k++) {
    const mid = (lo + hi) / 2;
    if (inGamut(oklabToSrgb(...at(mid)))) lo = mid;
    else hi = mid;
  }
  return at(lo);
}

/** Sample a path t -> OKLab densely, then resample it at equal OKLab arc length into n colours. */
function uniformLut(path, n) {
  const dense = 2048;
  const pts = [];
  for (let k = 0; k <= dense; k++) pts.push(path(k / dense));
  const cum = [0];
  for (let k = 1; k <= dense; k++) {
    const [a, b] = [pts[k - 1], pts[k]];
    cum.push(cum[k - 1] + Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]));
  }
  const total = cum[dense];
  const out = new Uint8ClampedArray(n * 3);
  let j = 0;
  for (let i = 0; i < n; i++) {
    const target = (total * i) / (n - 1);
    while (j < dense - 1 && cum[j + 1] < target) j++;
    const f = cum[j + 1] > cum[j] ? (target - cum[j]) / (cum[j + 1] - cum[j]) : 0;
    const p = pts[j].map((v, d) => v + f * (pts[j + 1][d] - v));
    const rgb = oklabToSrgb(...p);
    for (let d = 0; d < 3; d++) out[3 * i + d] = Math.round(255 * Math.min(1, Math.max(0, rgb[d])));
  }
  return out;
}

const smooth = (t) => t * t * (3 - 2 * t);

const SEQUENTIAL = uniformLut(
  (t) => lchInGamut(0.27 + 0.68 * t, 0.1 + 0.08 * smooth(t), 295 - 190 * t),
  N,
);

function divergingHalf(hue) {
  return uniformLut((t) => lchInGamut(0.97 - 0.5 * t, 0.2 * Math.min(1, 1.4 * t), hue), N / 2 + 1);
}
const NEG = divergingHalf(255); // blue
const POS = divergingHalf(55); // orange

function pick(lut, i) {
  return [lut[3 * i], lut[3 * i + 1], lut[3 * i + 2]];
}

/** t in [0, 1] -> [r, g, b] on the sequential map. */
export function sequential(t) {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  return pick(SEQUENTIAL, Math.round(x * (N - 1)));
}

/** t in [-1, 1] -> [r, g, b] on the diverging map (0 is the neutral centre). */
export function diverging(t) {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(-1, t)) : 0;
  const i = Math.round(Math.abs(x) * (N / 2));
  return x < 0 ? pick(NEG, i) : pick(POS, i);
}

export const css = ([r, g, b]) => `rgb(${r},${g},${b})`;

// Okabe and Ito's colour-blind-safe qualitative palette, for categories.
export const CATEGORICAL = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#9a9a9a", "#56B4E9", "#D55E00", "#F0E442"];

// Comparison overlay: two hues for "only in one", a neutral dark grey for "shared".
export const OVERLAY = {
  shared: "#4d4d4d",
  first: "#0072B2",
  second: "#D55E00",
};

export const MISSING = "#e0e0e0";
