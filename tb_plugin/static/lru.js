// One bounded cache: a Map kept in recency order; past `limit` entries the least recently used goes.

export class LruCache {
  /** limit: the most entries kept (a positive integer). */
  constructor(limit) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
    this.limit = limit;
    this.map = new Map();
  }

  has(key) {
    return this.map.has(key);
  }

  /** The value under key, now the most recently used; undefined when absent. */
  get(key) {
    if (!this.map.has(key)) return undefined;
    const value = this.map.get(key);
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  set(key, value) {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value);
    return this;
  }

  delete(key) {
    return this.map.delete(key);
  }

  clear() {
    this.map.clear();
  }

  get size() {
    return this.map.size;
  }
}
