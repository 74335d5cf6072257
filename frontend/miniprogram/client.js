// The mini-program's chat client: one call streams an answer, the way
// wx.cloud.extend.AI's streamText does (`onText`, `onEvent`, `onFinish`, `textStream`),
// against this project's server, with what CloudBase lacks: login, resume, stop, history,
// ratings and the web-view handoff (docs/miniprogram.md).
//
// An answer outlives its requests: wx.request allows 60 s at most, and a request still
// running 5 s after the app went to the background fails ("fail interrupted"). The stream
// module (frontend/chat-stream/answer.js) reads on from the last event id; the client adds
// what only a mini-program has: back on screen (wx.onAppShow) it reads on at once, also an
// answer whose retries ran out while it was away.

import { openAnswer, RESUME_DELAYS_MS } from '../chat-stream/answer.js';
import { ChatError, createApi, createAuth } from './api.js';
import { createWxTransport, REQUEST_TIMEOUT_MS } from './wx-transport.js';

// Three missed pings (CHAT_PING_SECONDS, 15 s by default): the connection is dead.
const IDLE_TIMEOUT_MS = 45000;
// The mini-program's own timer functions (its globalThis need not carry them).
const WX_TIMERS = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

/** A queue read as an async iterator (`for await`); items wait until read. */
function createChannel() {
  const items = [];
  const waiters = [];
  let closed = false;
  const iterator = {
    next() {
      if (items.length) return Promise.resolve({ value: items.shift(), done: false });
      if (closed) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => waiters.push(resolve));
    },
    return() {
      closed = true;
      items.length = 0;
      return Promise.resolve({ value: undefined, done: true });
    },
  };
  const iterable = { next: iterator.next, return: iterator.return };
  // `for await` needs Symbol.asyncIterator (ES2018); older runtimes still have next().
  if (typeof Symbol === 'function' && Symbol.asyncIterator) {
    iterable[Symbol.asyncIterator] = () => iterator;
  }
  return {
    iterable,
    push(value) {
      if (closed) return;
      if (waiters.length) waiters.shift()({ value, done: false });
      else items.push(value);
    },
    close() {
      closed = true;
      while (waiters.length) waiters.shift()({ value: undefined, done: true });
    },
  };
}

/**
 * `createChatClient({wx, baseUrl, ...})`. Options: `tokenKey` (storage key, 'chat.token'),
 * `requestTimeoutMs` (60000), `idleTimeoutMs` (45000), `nativeDecoder` (false: always the
 * fallback UTF-8 decoder), `resumeDelaysMs`, `timers` (tests).
 */
export function createChatClient({
  wx,
  baseUrl,
  tokenKey = 'chat.token',
  requestTimeoutMs = REQUEST_TIMEOUT_MS,
  idleTimeoutMs = IDLE_TIMEOUT_MS,
  nativeDecoder = true,
  resumeDelaysMs = RESUME_DELAYS_MS,
  timers = WX_TIMERS,
}) {
  const base = String(baseUrl).replace(/\/+$/, '');
  const anonymous = createWxTransport({ wx, baseUrl: base, token: () => null });
  const auth = createAuth({ wx, transport: anonymous, tokenKey });
  const transport = createWxTransport({
    wx,
    baseUrl: base,
    token: () => auth.token(),
    timeoutMs: requestTimeoutMs,
  });
  const api = createApi({ auth, transport });
  const active = new Map(); // chat id -> its answer: one stream per chat, never more

  const onAppShow = () => {
    for (const answer of active.values()) answer.resume();
  };
  function watchApp() {
    if (active.size === 1 && typeof wx.onAppShow === 'function') wx.onAppShow(onAppShow);
  }
  function unwatchApp() {
    if (active.size === 0 && typeof wx.offAppShow === 'function') wx.offAppShow(onAppShow);
  }

  /**
   * Stream one answer. `data`: {question, session_id?, client_id?, model?, terminal?};
   * or `recordId` to read on an answer asked before (after a reload): from its first
   * event, or after `lastEventId` when `text` is what the events up to it said.
   * `chatId` names the chat (default: the session id, else 'default'): a second stream in
   * the same chat while one runs throws ChatError `stream_busy`.
   * Callbacks: onText(piece, text), onEvent({type, data}), onFinish(text, result),
   * onError(ChatError) when the question was not taken or the answer could not be read.
   */
  function streamText({
    data,
    recordId = null,
    lastEventId = 0,
    text = '',
    chatId,
    onText,
    onEvent,
    onFinish,
    onError,
  }) {
    const key = String(chatId || (data && data.session_id) || 'default');
    if (active.has(key)) {
      throw new ChatError({ code: 'stream_busy', message: 'An answer streams in this chat.' });
    }
    const texts = createChannel();
    const events = createChannel();
    let resolveFinished;
    const finished = new Promise((resolve) => {
      resolveFinished = resolve;
    });
    const answer = {
      text: lastEventId ? text : '',
      recordId,
      sessionId: (data && data.session_id) || null,
      status: 'pending',
      errorCode: null,
      handle: null,
      lost: false, // retries ran out: read on when the app is back on screen
      stopping: false,
      done: false,
      relogged: false,
      resume,
    };
    active.set(key, answer);
    watchApp();

    const emit = (type, payload) => {
      const event = { type, data: payload };
      events.push(event);
      if (onEvent) onEvent(event);
    };
    const addText = (piece) => {
      if (!piece || answer.done) return;
      answer.text += piece;
      texts.push(piece);
      if (onText) onText(piece, answer.text);
    };

    function finish(result) {
      if (answer.done) return;
      answer.done = true;
      answer.status = result.status;
      if (answer.handle) answer.handle.close();
      active.delete(key);
      unwatchApp();
      const full = { ...result, text: answer.text, recordId: answer.recordId };
      full.sessionId = answer.sessionId;
      texts.close();
      events.close();
      if (result.error && onError) onError(result.error);
      if (onFinish) onFinish(answer.text, full);
      resolveFinished(full);
    }

    /** The saved record ends the answer: the part of its text not shown yet, then done. */
    function settleFromRecord(record) {
      if (record.answer.startsWith(answer.text)) addText(record.answer.slice(answer.text.length));
      else {
        answer.text = record.answer;
        emit('replace', { text: record.answer });
      }
      answer.errorCode = record.error_code;
      finish({ status: record.status, errorCode: record.error_code, record });
    }

    function open(from) {
      answer.lost = false;
      answer.handle = openAnswer({
        transport,
        body: data,
        recordId: from.recordId,
        lastEventId: from.lastEventId,
        idleTimeoutMs,
        resumeDelaysMs,
        nativeDecoder,
        timers,
        onStart(start) {
          answer.recordId = start.record_id;
          answer.sessionId = start.session_id;
          answer.status = 'streaming';
          emit('start', start);
        },
        onDelta: (piece) => addText(piece),
        onError(error) {
          answer.errorCode = error.code;
          emit('error', error);
        },
        onDone(done) {
          emit('done', done);
          finish({ status: done.status, errorCode: done.error_code, done });
        },
        onSaved: (record) => settleFromRecord(record),
        onReconnecting: (info) => emit('reconnecting', info),
        onFail: (problem) => failed(problem),
      });
    }

    function failed(problem) {
      if (answer.done || answer.stopping) return;
      const state = answer.handle.state;
      const from = { recordId: state.recordId, lastEventId: state.lastEventId };
      if (problem.status === 401 && !answer.relogged) {
        // The token expired or was revoked: log in again, then ask (nothing was saved) or
        // read on (the answer is at the server), once.
        answer.relogged = true;
        answer.handle.close();
        auth.forget();
        auth.login().then(
          () => !answer.done && open(from),
          (error) => finish({ status: 'failed', error }),
        );
        return;
      }
      if (problem.code === 'network' && from.recordId !== null) {
        // The answer goes on at the server; only the connection is gone.
        answer.lost = true;
        emit('lost', problem);
        return;
      }
      finish({ status: 'failed', error: new ChatError(problem) });
    }

    /** Read on from the last event now (the app is back, the user asked). */
    function resume() {
      if (answer.done || answer.stopping || !answer.handle) return false;
      if (answer.lost) {
        const { recordId: id, lastEventId: last } = answer.handle.state;
        answer.handle.close();
        open({ recordId: id, lastEventId: last });
        return true;
      }
      return answer.handle.reconnect();
    }

    /** Hang up (requestTask.abort, listeners off), POST the stop, and end with the saved
     * answer. Resolves the result, as `finished` does. */
    async function stop() {
      if (answer.done) return finished;
      if (!answer.handle) {
        finish({ status: 'stopped' }); // still logging in: nothing was asked
        return finished;
      }
      answer.stopping = true;
      const { handle } = answer;
      const stopped = handle.stop(); // waits for the record id if the POST is in flight
      if (handle.state.recordId !== null) handle.close();
      let stopAnswer = null;
      try {
        stopAnswer = await stopped;
      } catch {
        // offline: the server ends the answer after its grace period anyway
      }
      handle.close();
      const id = handle.state.recordId;
      if (id === null) {
        finish({ status: 'stopped' });
        return finished;
      }
      answer.recordId = id;
      try {
        settleFromRecord(await api.record(id));
      } catch (error) {
        const status = stopAnswer && stopAnswer.data ? stopAnswer.data.status : 'stopped';
        finish({ status: status === 'stopping' ? 'stopped' : status, error });
      }
      return finished;
    }

    /** Hang up without stopping (the page closes): the server finishes the answer and the
     * history has it; no callback after this. */
    function detach() {
      if (answer.done) return;
      answer.done = true;
      if (answer.handle) answer.handle.close();
      active.delete(key);
      unwatchApp();
      texts.close();
      events.close();
      resolveFinished({ status: 'detached', text: answer.text, recordId: answer.recordId });
    }

    auth.ensure().then(
      () => !answer.done && open({ recordId, lastEventId }),
      (error) => finish({ status: 'failed', error }),
    );

    return {
      textStream: texts.iterable,
      eventStream: events.iterable,
      /** Resolves `{status, text, recordId, sessionId, errorCode, error?, done?, record?}`
       * when the answer ends (never rejects: a failure is `status: 'failed'`). */
      finished,
      stop,
      resume,
      detach,
      get text() {
        return answer.text;
      },
      get recordId() {
        return answer.recordId;
      },
      get status() {
        return answer.status;
      },
    };
  }

  return {
    streamText,
    /** Is an answer streaming in this chat? */
    isStreaming: (chatId = 'default') => active.has(String(chatId)),
    login: () => auth.login(),
    token: () => auth.token(),
    api,
    /** The H5 page's address with a fresh ticket, for <web-view src>. */
    webviewUrl: (options = {}) => api.webviewUrl({ baseUrl: base, ...options }),
    saveHandoff: (posts) => api.saveHandoff(posts),
  };
}
