// Every bound the frontend keeps, named in one place.

export const API_RESPONSES_KEPT = 160; // responses (or requests in flight) kept by api.js, least recently used dropped
export const MAX_EDGES_DRAWN = 6000; // the flow view draws at most this many edges, the strongest
export const POLL_MS = 15000; // how often a training run is checked for new snapshots
export const PENDING_POLL_MS = 1500; // how often a view asks again for an answer the server is still computing
