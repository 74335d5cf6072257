// A `wx` for node: wx.request makes a real HTTP request (to the live stack on loopback) and
// delivers the body the ways WeChat's base libraries do, chosen per request:
//   'random'   onChunkReceived with ArrayBuffers cut at random byte positions (inside
//              multi-byte characters too), `success` with no data
//   'merged'   what arrived over `mergeMs` delivered as one chunk (iOS merges: many events
//              in one chunk)
//   'whole'    no chunk at all, the whole body in `success`
//   'tail'     random chunks, the last one only in `success`
//   'repeat'   random chunks, then the whole body again in `success`
// It can cut a request: `capMs` stands in for wx.request's 60 s cap (`request:fail
// timeout`), and background() fails every request still running `interruptMs` later
// (`request:fail interrupted`), as WeChat does 5 s after the app leaves the screen; a
// request made later still in the background fails at once.
// wx.login gets a fresh code from `codes()`; storage is a Map.

import http from 'node:http';

export const DELIVERIES = ['random', 'merged', 'whole', 'tail', 'repeat'];

const toArrayBuffer = (bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);

function frameEnds(bytes) {
  let count = 0;
  for (let i = 1; i < bytes.length; i += 1) if (bytes[i] === 10 && bytes[i - 1] === 10) count += 1;
  return count;
}

export function createWx({
  random,
  delivery = 'random',
  maxPiece = 24,
  mergeMs = 120,
  capMs = 60000,
  interruptMs = 5000,
  maxConcurrent = 10,
  codes,
}) {
  const storage = new Map();
  const appShow = new Set();
  const appHide = new Set();
  const running = new Set();
  // What the deliveries did, so a test can tell its splits were the hard ones.
  const stats = { requests: [], maxRunning: 0, logins: 0, chunks: 0, cutInsideChar: 0, multiEventChunks: 0 };
  let hidden = false;
  let hiddenAt = 0;
  const network = { offline: false }; // offline: every request fails at once

  function pickDelivery() {
    if (typeof delivery === 'function') return delivery();
    return delivery;
  }

  function request(options) {
    const mode = pickDelivery();
    const url = new URL(options.url);
    const headersListeners = new Set();
    const chunkListeners = new Set();
    const record = {
      method: options.method,
      path: url.pathname + url.search,
      mode,
      outcome: null,
      status: 0,
      startedAt: Date.now(),
      listeners: () => headersListeners.size + chunkListeners.size,
    };
    stats.requests.push(record);
    let ended = false;
    let interruptTimer = null;
    const body = [];
    let pending = Buffer.alloc(0);
    let nextPiece = 1 + random.int(maxPiece);
    let mergeTimer = null;

    const task = {
      onHeadersReceived: (fn) => headersListeners.add(fn),
      offHeadersReceived: (fn) => headersListeners.delete(fn),
      onChunkReceived: (fn) => chunkListeners.add(fn),
      offChunkReceived: (fn) => chunkListeners.delete(fn),
      abort() {
        end('abort', () => options.fail && options.fail({ errMsg: 'request:fail abort' }));
      },
    };
    const deliverChunk = (bytes) => {
      if (!bytes.length || ended) return;
      stats.chunks += 1;
      if (bytes[0] >= 0x80 && bytes[0] <= 0xbf) stats.cutInsideChar += 1;
      if (frameEnds(bytes) >= 2) stats.multiEventChunks += 1;
      const data = toArrayBuffer(bytes);
      for (const fn of [...chunkListeners]) fn({ data });
    };

    function end(outcome, report) {
      if (ended) return;
      ended = true;
      record.outcome = outcome;
      record.endedAt = Date.now();
      running.delete(record);
      clearTimeout(capTimer);
      clearTimeout(interruptTimer);
      clearTimeout(mergeTimer);
      req.destroy();
      setImmediate(() => {
        report();
        if (options.complete) options.complete({});
      });
    }

    if (network.offline || (hidden && Date.now() >= hiddenAt + interruptMs)) {
      // Offline, or the app has been in the background too long: fails at once.
      ended = true;
      record.outcome = network.offline ? 'offline' : 'interrupted';
      const errMsg = network.offline ? 'request:fail' : 'request:fail interrupted';
      setImmediate(() => options.fail && options.fail({ errMsg }));
      return task;
    }
    if (running.size >= maxConcurrent) {
      // WeChat refuses an eleventh request at once.
      ended = true;
      record.outcome = 'refused';
      setImmediate(() => options.fail && options.fail({ errMsg: 'request:fail exceed max' }));
      return task;
    }
    running.add(record);
    stats.maxRunning = Math.max(stats.maxRunning, running.size);
    record.interrupt = () => {
      interruptTimer = setTimeout(
        () => end('interrupted', () => options.fail({ errMsg: 'request:fail interrupted' })),
        Math.max(0, hiddenAt + interruptMs - Date.now()),
      );
    };
    record.cancelInterrupt = () => clearTimeout(interruptTimer);
    if (hidden) record.interrupt();
    const capTimer = setTimeout(
      () => end('timeout', () => options.fail({ errMsg: 'request:fail timeout' })),
      Math.min(capMs, options.timeout || 60000),
    );

    const payload = options.data === undefined ? null : Buffer.from(String(options.data));
    const headers = { ...(options.header || {}) };
    if (payload) headers['Content-Length'] = String(payload.length);
    const req = http.request(url, { method: options.method, headers }, (res) => {
      record.status = res.statusCode;
      const header = { ...res.headers };
      setImmediate(() => {
        if (!ended) for (const fn of [...headersListeners]) fn({ statusCode: res.statusCode, header });
      });
      res.on('data', (data) => {
        if (ended) return;
        body.push(data);
        if (mode === 'whole') return;
        pending = Buffer.concat([pending, data]);
        if (mode === 'merged') {
          if (mergeTimer === null) {
            mergeTimer = setTimeout(() => {
              mergeTimer = null;
              const piece = pending;
              pending = Buffer.alloc(0);
              deliverChunk(piece);
            }, mergeMs);
          }
          return;
        }
        while (pending.length >= nextPiece) {
          const piece = pending.subarray(0, nextPiece);
          pending = pending.subarray(nextPiece);
          nextPiece = 1 + random.int(maxPiece);
          setImmediate(() => deliverChunk(piece));
        }
      });
      res.on('end', () => {
        if (ended) return;
        // Everything queued so far reaches the listeners before `success`.
        setImmediate(() => {
          const whole = Buffer.concat(body);
          let data = new ArrayBuffer(0);
          if (mode === 'whole' || mode === 'repeat') data = toArrayBuffer(whole);
          else if (mode === 'tail') data = toArrayBuffer(pending);
          else deliverChunk(pending);
          pending = Buffer.alloc(0);
          if (mode === 'merged' && mergeTimer !== null) clearTimeout(mergeTimer);
          end('success', () => options.success({ statusCode: res.statusCode, header, data }));
        });
      });
      res.on('error', () => end('fail', () => options.fail({ errMsg: 'request:fail' })));
    });
    req.on('error', () => end('fail', () => options.fail({ errMsg: 'request:fail' })));
    if (payload) req.write(payload);
    req.end();
    return task;
  }

  const wx = {
    request,
    login({ success, fail }) {
      stats.logins += 1;
      codes().then((code) => success({ code, errMsg: 'login:ok' }), fail);
    },
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, value),
    removeStorageSync: (key) => storage.delete(key),
    onAppShow: (fn) => appShow.add(fn),
    offAppShow: (fn) => appShow.delete(fn),
    onAppHide: (fn) => appHide.add(fn),
    offAppHide: (fn) => appHide.delete(fn),
  };

  return {
    wx,
    network,
    stats,
    storage,
    get running() {
      return running.size;
    },
    appShowListeners: () => appShow.size,
    /** The app leaves the screen: requests still running `interruptMs` later fail. */
    background() {
      hidden = true;
      hiddenAt = Date.now();
      for (const fn of [...appHide]) fn({});
      for (const record of running) record.interrupt();
    },
    foreground() {
      hidden = false;
      for (const record of running) record.cancelInterrupt();
      for (const fn of [...appShow]) fn({});
    },
  };
}
