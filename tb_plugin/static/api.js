// The backend's HTTP API (docs/http_api.md): JSON routes and the binary tensor framing.

import {API_RESPONSES_KEPT} from "./limits.js";
import {LruCache} from "./lru.js";

// The module lives at .../data/plugin/attnflows/static/api.js; the routes sit one level up.
const BASE = new URL("../", import.meta.url);
const cache = new LruCache(API_RESPONSES_KEPT);

export class ApiError extends Error {
  /** needsFullRows: the answer needs every attention row and the run recorded fewer (409, docs/http_api.md). */
  constructor(status, message, {needsFullRows = false} = {}) {
    super(message);
    this.status = status;
    this.needsFullRows = needsFullRows;
  }
}

export function routeUrl(route, params = {}) {
  const url = new URL(route, BASE);
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    url.searchParams.set(key, String(value));
  }
  return url.toString();
}

async function request(url, kind) {
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) {
    let text = `HTTP ${response.status}`;
    let needsFullRows = false;
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") text = body.error;
      needsFullRows = body?.needs_full_rows === true;
    } catch {
      // Not JSON: keep the status line.
    }
    throw new ApiError(response.status, text, {needsFullRows});
  }
  if (kind === "json") return response.json();
  return decodeTensor(await response.arrayBuffer());
}

/** Decode the framing: uint32 header length, JSON header, float32 values in C order. */
export function decodeTensor(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  const values = new Float32Array(buffer, 4 + n);
  const expected = (header.shape || []).reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new ApiError(500, `tensor has ${values.length} values, header shape ${header.shape} wants ${expected}`);
  }
  return {header, values, shape: header.shape};
}

/** GET a route; kind is "json" or "tensor". Responses are cached unless fresh is set. */
export function get(route, params = {}, {kind = "json", fresh = false} = {}) {
  const url = routeUrl(route, params);
  if (!fresh && cache.has(url)) return cache.get(url);
  const pending = request(url, kind);
  cache.set(url, pending);
  pending.catch(() => cache.delete(url));
  return pending;
}

/** Drop one route's cached response (an answer that is not final). */
export function drop(route, params = {}) {
  cache.delete(routeUrl(route, params));
}

export function forget() {
  cache.clear();
}
