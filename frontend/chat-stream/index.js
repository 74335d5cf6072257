// The stream module the H5 page and the mini-program client share (docs/protocol.md).
//
// Runtime-agnostic: no DOM, no fetch, no window. Bytes come in as ArrayBuffer or Uint8Array
// pieces from whatever transport the caller has (fetch's response.body in a page,
// wx.request's onChunkReceived in a mini-program); timers and the clock can be injected.
// esbuild bundles it into the page (IIFE) and, as CommonJS, into a mini-program.
//
//   utf8.js    streaming UTF-8 decoding (TextDecoder, or an identical fallback)
//   events.js  SSE framing (eventsource-parser) into the protocol's events
//   answer.js  one answer across connections: ask once, resume from the last event id
//   reveal.js  the typing effect's adaptive pace

export { createFallbackDecoder, createUtf8Decoder } from './utf8.js';
export { createEventReader, DONE_SENTINEL } from './events.js';
export { httpProblem, openAnswer, requestJson, RESUME_DELAYS_MS, STREAM_PATH } from './answer.js';
export { createReveal } from './reveal.js';
