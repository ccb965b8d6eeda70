// Every bound the frontend keeps, named in one place.

export const API_RESPONSES_KEPT = 160; // responses (or requests in flight) kept by api.js, least recently used dropped
export const MAX_EDGES_DRAWN = 6000; // the flow view draws at most this many edges, the strongest
export const EXAMPLE_TEXT_CHARS = 240; // an example row shows this much of its text (two lines); its title holds all
export const POLL_MS = 15000; // how often a training run is checked for new snapshots
export const PENDING_POLL_MS = 1500; // how often a view asks again for an answer the server is still computing
export const TOKEN_PX = 14; // a token's column in the flow view when every token fits the card at this width or more
export const LABEL_PX = 12; // the least room a token label gets along a token axis: closer, every k-th label is drawn
export const MIN_ZOOM_TOKENS = 8; // zooming in along a token axis stops at this many tokens
