// One answer from question to `done`, across as many connections as it takes.
//
// The question is POSTed once. If the connection drops afterwards (a tunnel, the app in
// the background, wx.request's 60 s cap), the answer is read on from the last event seen
// with GET /api/chat/records/{id}/events?last_event_id=N: the server kept generating it,
// so re-POSTing would generate (and bill) it twice. Events are numbered; one already seen
// is never passed on again. When the server no longer keeps the events (410), the saved
// record is read from the history API instead.
//
// Nothing here touches the network, a timer or the DOM by itself: the caller hands in a
// transport (fetch in a page, wx.request in a mini-program) and, for tests, the timers.

import { createEventReader, DONE_SENTINEL } from './events.js';
import { asBytes, createUtf8Decoder } from './utf8.js';

export const STREAM_PATH = '/api/chat/stream';
const EVENT_STREAM = 'text/event-stream';
const JSON_TYPE = 'application/json';

// Waits before each resume attempt in a row (ms); attempts reset once events flow again.
// Together about 40 s, longer than the server keeps a detached answer generating (30 s).
export const RESUME_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000, 8000, 8000, 8000];
// A draining server refuses a question before saving anything: safe to send it again.
const DRAIN_RETRIES = 3;

/**
 * The transport contract: `transport(request, sink)` starts one HTTP request and returns
 * `{abort()}`.
 *   request: {method, path, body?, accept}  (path from the site root; body a JSON value)
 *   sink.response({status, header(name)})   once, when the status line and headers are in
 *   sink.chunk(bytes)                       ArrayBuffer or Uint8Array pieces of the body
 *   sink.end()                              the body is complete
 *   sink.fail(error)                        the request failed (before or after response)
 * The transport adds the bearer token. After abort() it calls nothing more.
 */

/** A JSON request through the same transport: resolves `{status, data, header}`, rejects
 * with `{code: 'network', error}` when the request fails. */
export function requestJson(transport, { method = 'GET', path, body }) {
  return new Promise((resolve, reject) => {
    const decoder = createUtf8Decoder();
    let status = 0;
    let header = () => null;
    let text = '';
    transport(
      { method, path, body, accept: JSON_TYPE },
      {
        response(head) {
          status = head.status;
          header = head.header;
        },
        chunk(bytes) {
          text += decoder.decode(asBytes(bytes), { stream: true });
        },
        end() {
          text += decoder.decode();
          resolve({ status, data: parseJson(text), header });
        },
        fail(error) {
          reject({ code: 'network', error });
        },
      },
    );
  });
}

function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** `{status, code, message}` of an HTTP error answer (docs/protocol.md §6). */
export function httpProblem(status, data) {
  const error = data && data.error;
  return {
    status,
    code: (error && error.code) || `http_${status}`,
    message: (error && error.message) || '',
  };
}

const defaultTimers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
};

/**
 * Ask a question (`body`: {question, session_id?, client_id?, terminal?, model?}) or, with
 * `recordId` (and `lastEventId`), read on an answer asked earlier, e.g. after a reload.
 *
 * Callbacks (all optional):
 *   onStart({record_id, session_id, model})  the question is saved
 *   onDelta(text)                            the next piece of the answer, each once
 *   onError({code, message})                 the answer hit an error; `done` still follows
 *   onDone(done)                             the answer ended (`status`, `usage`, ...)
 *   onSaved(record)                          its events were gone: the saved record instead
 *   onReconnecting({attempt, delayMs})       the connection dropped; reading on soon
 *   onFail({status, code, message})          not asked, or given up: code `network` when
 *                                            no server answered (reconnect() tries again)
 * `idleTimeoutMs`: a connection silent this long (no event, no ping) is treated as dropped.
 */
export function openAnswer({
  transport,
  body,
  recordId = null,
  lastEventId = 0,
  timers = defaultTimers,
  idleTimeoutMs = 0,
  resumeDelaysMs = RESUME_DELAYS_MS,
  nativeDecoder = true,
  onStart,
  onDelta,
  onError,
  onDone,
  onSaved,
  onReconnecting,
  onFail,
}) {
  const state = {
    recordId,
    sessionId: null,
    lastEventId,
    finished: false,
    closed: false,
    failed: null,
  };
  let current = null; // the latest connection: {handle, dead, status, streaming, ...}
  let resumeAttempts = 0;
  let drainRetries = 0;
  let retryTimer = null;
  let idleTimer = null;
  let stopWaiter = null; // a stop asked before the record id was known: {resolve, reject}

  const call = (callback, value) => {
    if (callback && !state.closed) callback(value);
  };

  function clearTimers() {
    if (retryTimer !== null) timers.clearTimeout(retryTimer);
    if (idleTimer !== null) timers.clearTimeout(idleTimer);
    retryTimer = null;
    idleTimer = null;
  }

  function drop(connection) {
    connection.dead = true;
    if (idleTimer !== null) timers.clearTimeout(idleTimer);
    idleTimer = null;
    connection.handle.abort();
  }

  function finish() {
    state.finished = true;
    clearTimers();
  }

  function fail(problem) {
    state.failed = problem;
    clearTimers();
    if (stopWaiter) {
      stopWaiter.resolve({ status: 0, data: null }); // nothing was asked: nothing to stop
      stopWaiter = null;
    }
    call(onFail, problem);
  }

  function handleEvent(connection, event) {
    if (event.type === DONE_SENTINEL) {
      if (!state.finished) {
        // The terminator without a `done` before it (nothing past the last id was kept):
        // what the answer came to is in the history.
        drop(connection);
        readSaved();
      }
      return;
    }
    if (event.id !== null) {
      if (event.id <= state.lastEventId) return; // seen before this connection
      state.lastEventId = event.id;
    }
    resumeAttempts = 0;
    const { data } = event;
    if (event.type === 'start') {
      state.recordId = data.record_id;
      state.sessionId = data.session_id;
      call(onStart, data);
    } else if (event.type === 'delta') {
      call(onDelta, data.text);
    } else if (event.type === 'error') {
      call(onError, data);
    } else if (event.type === 'done') {
      finish();
      call(onDone, data);
    }
  }

  function connect() {
    retryTimer = null;
    if (state.closed || state.finished) return;
    state.failed = null;
    const asking = state.recordId === null;
    const request = asking
      ? { method: 'POST', path: STREAM_PATH, body, accept: EVENT_STREAM }
      : {
          method: 'GET',
          path: `/api/chat/records/${state.recordId}/events?last_event_id=${state.lastEventId}`,
          accept: EVENT_STREAM,
        };
    const connection = { dead: false, handle: null, status: 0, streaming: false, body: [] };
    const reader = createEventReader({
      native: nativeDecoder,
      onEvent: (event) => {
        if (!connection.dead) handleEvent(connection, event);
      },
      onComment: () => armIdle(connection),
      // A frame we cannot read: the connection is corrupt; read on from the last good one.
      onInvalid: () => {
        if (!connection.dead) connectionEnded(connection, { network: true });
      },
    });
    current = connection;
    connection.handle = transport(request, {
      response({ status, header }) {
        if (connection.dead) return;
        connection.status = status;
        connection.header = header;
        connection.streaming =
          status === 200 && String(header('content-type') || '').startsWith(EVENT_STREAM);
        if (connection.streaming && asking) {
          // The record id comes with the headers: a drop before `start` can resume too.
          const id = Number(header('x-record-id'));
          if (id > 0) state.recordId = id;
          if (stopWaiter) {
            const { resolve, reject } = stopWaiter;
            stopWaiter = null;
            stop().then(resolve, reject);
          }
        }
        armIdle(connection);
      },
      chunk(bytes) {
        if (connection.dead) return;
        armIdle(connection);
        if (connection.streaming) reader.push(bytes);
        else connection.body.push(asBytes(bytes).slice());
      },
      end() {
        if (connection.dead) return;
        if (connection.streaming) reader.end();
        if (!connection.dead) connectionEnded(connection, null);
      },
      fail() {
        if (!connection.dead) connectionEnded(connection, { network: true });
      },
    });
  }

  function armIdle(connection) {
    if (!idleTimeoutMs || connection.dead || state.finished) return;
    if (idleTimer !== null) timers.clearTimeout(idleTimer);
    idleTimer = timers.setTimeout(() => {
      idleTimer = null;
      if (!connection.dead && !state.finished) connectionEnded(connection, { network: true });
    }, idleTimeoutMs);
  }

  function connectionEnded(connection, failure) {
    drop(connection);
    if (state.finished || state.closed) return;
    if (connection.streaming || (failure && connection.status === 0)) {
      // Dropped mid-answer, or no answer at all.
      if (state.recordId !== null) scheduleResume();
      else fail({ status: 0, code: 'network', message: '' });
      return;
    }
    const problem = httpProblem(connection.status, parseJson(decodeAll(connection.body)));
    if (connection.status === 503 && problem.code === 'server_draining') {
      if (state.recordId === null && drainRetries < DRAIN_RETRIES) {
        drainRetries += 1;
        retryTimer = timers.setTimeout(connect, retryAfterMs(connection.header('retry-after')));
        return;
      }
    }
    if (
      state.recordId !== null &&
      (problem.code === 'replay_expired' || problem.code === 'stream_lost')
    ) {
      readSaved();
      return;
    }
    if (state.recordId !== null && (connection.status >= 500 || connection.status === 429)) {
      scheduleResume(); // a proxy or a restarting process: the answer is still there
      return;
    }
    fail(problem);
  }

  function scheduleResume() {
    if (resumeAttempts >= resumeDelaysMs.length) {
      fail({ status: 0, code: 'network', message: '' });
      return;
    }
    const delayMs = resumeDelaysMs[resumeAttempts];
    resumeAttempts += 1;
    call(onReconnecting, { attempt: resumeAttempts, delayMs });
    retryTimer = timers.setTimeout(connect, delayMs);
  }

  function readSaved() {
    requestJson(transport, { path: `/api/chat/records/${state.recordId}/` }).then(
      ({ status, data }) => {
        if (state.closed || state.finished) return;
        if (status !== 200) {
          fail(httpProblem(status, data));
          return;
        }
        finish();
        call(onSaved, data);
      },
      () => {
        if (!state.closed && !state.finished) scheduleResume();
      },
    );
  }

  function stop() {
    if (state.recordId !== null) {
      return requestJson(transport, {
        method: 'POST',
        path: `/api/chat/records/${state.recordId}/stop`,
      });
    }
    // Asked before the record id came: stop as soon as it does.
    return new Promise((resolve, reject) => {
      stopWaiter = { resolve, reject };
    });
  }

  connect();

  return {
    state,
    /** POST the stop; the stream then brings the rest and `done` with status `stopped`.
     * Resolves the stop endpoint's answer ({status, data}). */
    stop,
    /** Drop the connection and read on from the last event now (the page became visible,
     * the network came back, the user asked): nothing is asked twice. */
    reconnect() {
      if (state.closed || state.finished || state.recordId === null) return false;
      if (current && !current.dead) drop(current);
      clearTimers();
      resumeAttempts = 0;
      connect();
      return true;
    },
    /** Hang up for good; no callback after this. */
    close() {
      state.closed = true;
      clearTimers();
      if (current && !current.dead) drop(current);
    },
  };
}

function retryAfterMs(value) {
  const seconds = value === null || value === undefined || value === '' ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 30) * 1000 : 1000;
}

function decodeAll(pieces) {
  const decoder = createUtf8Decoder();
  return pieces.map((piece) => decoder.decode(piece, { stream: true })).join('') + decoder.decode();
}
