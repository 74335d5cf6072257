// The mini-program chat client library (docs/miniprogram.md), bundled by esbuild as
// CommonJS into miniprogram/lib/chat-client.js: copy that one file into any mini-program.
//
//   client.js        createChatClient: streamText (onText / onEvent / onFinish, textStream),
//                    stop, resume, one stream per chat
//   api.js           login with one re-login on 401, history, ratings, web-view handoff
//   wx-transport.js  wx.request with enableChunked as the stream module's transport
//   typer.js         the typing effect within setData's budget (at most 15 calls a second)
//
// The stream itself (UTF-8 across chunks, SSE with eventsource-parser, resume from the
// last event id, the adaptive pace) is the H5 page's: frontend/chat-stream/.

export { createChatClient } from './client.js';
export { ChatError, handoffItems, linkPath } from './api.js';
export { createTyper, SET_DATA_INTERVAL_MS } from './typer.js';
export { createWxTransport, encodeUtf8, REQUEST_TIMEOUT_MS, successRemainder } from './wx-transport.js';
export { createUtf8Decoder } from '../chat-stream/utf8.js';
