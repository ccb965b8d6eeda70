// A token axis at any length: which positions are drawn (a zoom/pan window) and which of their labels.

/**
 * Draw every k-th label so that labels are at least `labelPx` apart when positions are `spacing` apart;
 * k is 1, 2 or 5 times a power of ten, so the labelled positions are easy to count.
 */
export function labelStride(spacing, labelPx) {
  const need = Math.max(1, Math.ceil(labelPx / Math.max(spacing, 1e-6)));
  for (let scale = 1; ; scale *= 10) {
    for (const k of [1, 2, 5]) if (k * scale >= need) return k * scale;
  }
}

/** A window of consecutive positions over an axis of `total` positions: zoomed and panned, never past either end. */
export class TokenWindow {
  constructor(minCount) {
    this.minCount = minCount;
    this.total = 0;
    this.key = null;
    this.reset();
  }

  /** A new axis (another example, run or display): show all of it again. */
  follow(total, key) {
    this.total = total;
    if (key !== this.key) {
      this.key = key;
      this.reset();
    }
  }

  reset() {
    this.start = 0;
    this.count = null; // null: every position
  }

  /** The positions drawn: {start, count}. */
  range(total = this.total) {
    this.total = total;
    if (this.count === null || this.count >= total) return {start: 0, count: total};
    const count = Math.max(Math.min(this.minCount, total), this.count);
    return {start: Math.min(Math.max(0, this.start), total - count), count};
  }

  /** Show `factor` times as many positions, keeping position `at` (default: the window's centre) in place. */
  zoom(factor, at = null) {
    const {start, count} = this.range();
    if (!this.total) return;
    const next = Math.min(this.total, Math.max(Math.min(this.minCount, this.total), Math.round(count * factor)));
    const centre = at === null ? start + count / 2 : Math.min(Math.max(at, start), start + count);
    const begin = Math.round(centre - ((centre - start) * next) / count);
    this.count = next >= this.total ? null : next;
    this.start = this.count === null ? 0 : Math.min(Math.max(0, begin), this.total - next);
  }

  /** Move by `fraction` of the window (negative: towards the first position). */
  pan(fraction) {
    const {start, count} = this.range();
    if (count >= this.total) return;
    const step = Math.sign(fraction) * Math.max(1, Math.round(Math.abs(fraction) * count));
    this.start = Math.min(Math.max(0, start + step), this.total - count);
    this.count = count;
  }
}
