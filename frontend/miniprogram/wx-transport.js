// The stream module's transport over wx.request (the contract at the top of
// frontend/chat-stream/answer.js): one chunked request, its body handed on as ArrayBuffers.
//
// What the mini-program runtime does that a browser does not, and what is done about it:
// - `enableChunked` delivers the body through onChunkReceived; some base library versions
//   deliver the last chunk only in `success`, or the whole body there and no chunk at all,
//   or every chunk and then the whole body again. The bytes already handed on are kept, so
//   what `success` brings is passed on only past them: no tail lost, none doubled.
// - onHeadersReceived gives the status before the body, so a JSON error answer is read as
//   that error, never parsed as events; where it is missing, `success` has the status.
// - Every listener is removed when the request ends or is aborted (offChunkReceived,
//   offHeadersReceived), so an aborted task calls nothing more.

import { asBytes } from '../chat-stream/utf8.js';

/** `wx.request`'s own timeout: the platform caps every request at 60 s anyway. */
export const REQUEST_TIMEOUT_MS = 60000;

function headerReader(header) {
  const lower = {};
  for (const name of Object.keys(header || {})) lower[name.toLowerCase()] = header[name];
  return (name) => {
    const value = lower[name.toLowerCase()];
    return value === undefined ? null : String(value);
  };
}

/** Bytes of a `success` body: ArrayBuffer with responseType 'arraybuffer'; a string or an
 * object where a runtime ignored it. */
function bodyBytes(data) {
  if (data === undefined || data === null || data === '') return new Uint8Array(0);
  if (typeof data === 'string') return encodeUtf8(data);
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return asBytes(data);
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return asBytes(data);
  return encodeUtf8(JSON.stringify(data));
}

/** UTF-8 bytes of a string, without TextEncoder (older runtimes lack it). */
export function encodeUtf8(text) {
  const bytes = [];
  for (const char of text) {
    const point = char.codePointAt(0);
    if (point < 0x80) bytes.push(point);
    else if (point < 0x800) bytes.push(0xc0 | (point >> 6), 0x80 | (point & 0x3f));
    else if (point < 0x10000) {
      bytes.push(0xe0 | (point >> 12), 0x80 | ((point >> 6) & 0x3f), 0x80 | (point & 0x3f));
    } else {
      bytes.push(
        0xf0 | (point >> 18),
        0x80 | ((point >> 12) & 0x3f),
        0x80 | ((point >> 6) & 0x3f),
        0x80 | (point & 0x3f),
      );
    }
  }
  return new Uint8Array(bytes);
}

function startsWith(whole, prefix) {
  if (whole.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i += 1) if (whole[i] !== prefix[i]) return false;
  return true;
}

/** The bytes handed on so far, to tell a final whole body from a final last chunk. */
function createReceived() {
  const pieces = [];
  let length = 0;
  return {
    add(bytes) {
      pieces.push(bytes.slice());
      length += bytes.length;
    },
    get length() {
      return length;
    },
    all() {
      const whole = new Uint8Array(length);
      let at = 0;
      for (const piece of pieces) {
        whole.set(piece, at);
        at += piece.length;
      }
      return whole;
    },
  };
}

/** What of a `success` body is new: all of it (no chunk came, or it is the last chunk), or
 * only what follows the bytes already received (it repeats the whole body). */
export function successRemainder(received, finalBytes) {
  if (finalBytes.length === 0) return finalBytes;
  if (received.length === 0) return finalBytes;
  if (startsWith(finalBytes, received.all())) return finalBytes.subarray(received.length);
  return finalBytes;
}

/**
 * `createWxTransport({wx, baseUrl, token, timeoutMs})`: `token()` gives the bearer token
 * (or null). Returns `transport(request, sink)` for openAnswer and requestJson.
 */
export function createWxTransport({ wx, baseUrl, token, timeoutMs = REQUEST_TIMEOUT_MS }) {
  return function wxTransport(request, sink) {
    const header = { Accept: request.accept || 'application/json' };
    const bearer = token();
    if (bearer) header.Authorization = `Bearer ${bearer}`;
    if (request.body !== undefined) header['Content-Type'] = 'application/json';
    const received = createReceived();
    let finished = false; // aborted, failed or complete: nothing more reaches the sink
    let responded = false;
    let task = null;

    const respond = (status, responseHeader) => {
      if (responded) return;
      responded = true;
      sink.response({ status, header: headerReader(responseHeader) });
    };
    const onHeaders = (res) => {
      if (!finished) respond(res.statusCode, res.header);
    };
    const onChunk = (res) => {
      if (finished) return;
      const bytes = bodyBytes(res.data);
      if (!bytes.length) return;
      received.add(bytes);
      sink.chunk(bytes);
    };
    const cleanUp = () => {
      finished = true;
      if (!task) return;
      if (typeof task.offChunkReceived === 'function') task.offChunkReceived(onChunk);
      if (typeof task.offHeadersReceived === 'function') task.offHeadersReceived(onHeaders);
    };

    task = wx.request({
      url: baseUrl + request.path,
      method: request.method,
      header,
      data: request.body === undefined ? undefined : JSON.stringify(request.body),
      dataType: 'text', // never let the runtime parse the body itself
      responseType: 'arraybuffer',
      enableChunked: true,
      timeout: timeoutMs,
      success(res) {
        if (finished) return;
        respond(res.statusCode, res.header);
        const rest = successRemainder(received, bodyBytes(res.data));
        if (rest.length) {
          received.add(rest);
          sink.chunk(rest);
        }
        cleanUp();
        sink.end();
      },
      fail(error) {
        if (finished) return;
        cleanUp();
        sink.fail(error);
      },
    });
    if (task && typeof task.onHeadersReceived === 'function') task.onHeadersReceived(onHeaders);
    if (task && typeof task.onChunkReceived === 'function') task.onChunkReceived(onChunk);

    return {
      abort() {
        if (finished) return;
        cleanUp();
        if (task && typeof task.abort === 'function') task.abort();
      },
    };
  };
}
