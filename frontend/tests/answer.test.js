import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openAnswer } from '../chat-stream/index.js';
import { answerStream, seeded, splitRandomly, TRICKY_DELTAS, utf8 } from './support.js';

const FAST_RESUME = [1, 1, 1, 1, 1];

/**
 * A scripted server behind the transport contract. `answer` is the whole event stream of
 * record 7; each request is served from `plan`, a list of what the next requests get:
 * {cutAt} (bytes of the body sent before the connection drops), {status, json}, {offline}.
 * A request past the plan gets the rest of the answer, served from its last_event_id.
 */
function fakeServer({ deltas = TRICKY_DELTAS, plan = [], random = seeded(1), maxPiece = 16 }) {
  const frames = answerStream(deltas).split(/(?<=\n\n)/);
  const requests = [];
  const eventsAfter = (lastEventId) =>
    frames.filter((text) => {
      const match = /^id: (\d+)/.exec(text);
      return !match || Number(match[1]) > lastEventId;
    });

  function transport(request, sink) {
    requests.push(request);
    const step = plan[requests.length - 1] || {};
    let aborted = false;
    const later = (fn) =>
      setImmediate(() => {
        if (!aborted) fn();
      });
    later(() => {
      if (step.offline) return sink.fail(new TypeError('Failed to fetch'));
      if (step.status) {
        sink.response({ status: step.status, header: (name) => step.headers?.[name] ?? null });
        if (step.json !== undefined) sink.chunk(utf8(JSON.stringify(step.json)));
        return later(() => sink.end());
      }
      const headers = { 'content-type': 'text/event-stream; charset=utf-8', 'x-record-id': '7' };
      sink.response({ status: 200, header: (name) => headers[name] ?? null });
      const after = Number(/last_event_id=(\d+)/.exec(request.path)?.[1] ?? 0);
      const from = step.replayFrom ?? after;
      let bytes = utf8(eventsAfter(from).join(''));
      const cut = step.cutAt === undefined ? null : Math.min(step.cutAt, bytes.length);
      if (cut !== null) bytes = bytes.slice(0, cut);
      const pieces = splitRandomly(bytes, random, maxPiece);
      const send = () => {
        if (pieces.length) {
          sink.chunk(pieces.shift());
          return later(send);
        }
        return cut === null ? sink.end() : sink.fail(new TypeError('network error'));
      };
      later(send);
    });
    return {
      abort() {
        aborted = true;
      },
    };
  }
  return { transport, requests };
}

/** Runs one answer to its end; resolves what the callbacks saw. */
function run(server, options = {}) {
  return new Promise((resolve) => {
    const seen = { deltas: [], starts: [], errors: [], reconnecting: 0 };
    const answer = openAnswer({
      transport: server.transport,
      body: { question: '问题', client_id: 'c-1' },
      resumeDelaysMs: FAST_RESUME,
      ...options,
      onStart: (data) => seen.starts.push(data),
      onDelta: (text) => seen.deltas.push(text),
      onError: (error) => seen.errors.push(error),
      onReconnecting: () => {
        seen.reconnecting += 1;
      },
      onDone: (done) => resolve({ ...seen, done, answer }),
      onSaved: (record) => resolve({ ...seen, saved: record, answer }),
      onFail: (problem) => resolve({ ...seen, failed: problem, answer }),
    });
    if (options.onOpen) options.onOpen(answer);
  });
}

test('an answer read in one go', async () => {
  const server = fakeServer({});
  const result = await run(server);
  assert.equal(result.deltas.join(''), TRICKY_DELTAS.join(''));
  assert.equal(result.done.status, 'done');
  assert.deepEqual(result.starts, [{ type: 'start', record_id: 7, session_id: 3, model: 'm' }]);
  assert.equal(server.requests.length, 1);
  assert.deepEqual(server.requests[0], {
    method: 'POST',
    path: '/api/chat/stream',
    body: { question: '问题', client_id: 'c-1' },
    accept: 'text/event-stream',
  });
});

test('connections cut at random bytes resume with nothing doubled or lost, one POST', async () => {
  const total = utf8(answerStream(TRICKY_DELTAS)).length;
  for (let seed = 1; seed <= 150; seed += 1) {
    const random = seeded(seed);
    const cuts = Array.from({ length: 1 + random.int(3) }, () => ({ cutAt: random.int(total) }));
    const server = fakeServer({ plan: cuts, random, maxPiece: 1 + random.int(40) });
    const result = await run(server, { nativeDecoder: seed % 2 === 0 });
    assert.equal(result.deltas.join(''), TRICKY_DELTAS.join(''), `seed ${seed}`);
    assert.equal(result.done.status, 'done');
    const posts = server.requests.filter((request) => request.method === 'POST');
    assert.equal(posts.length, 1, `seed ${seed}`);
    for (const request of server.requests.slice(1)) {
      assert.match(request.path, /^\/api\/chat\/records\/7\/events\?last_event_id=\d+$/);
    }
  }
});

test('a resume that replays events already seen passes each on once', async () => {
  const server = fakeServer({ plan: [{ cutAt: 400 }, { replayFrom: 0 }] });
  const result = await run(server);
  assert.equal(result.deltas.join(''), TRICKY_DELTAS.join(''));
  assert.equal(result.starts.length, 1);
});

test('events no longer kept (410 replay_expired): the saved record is read instead', async () => {
  const record = { id: 7, answer: TRICKY_DELTAS.join(''), status: 'done' };
  const server = fakeServer({
    plan: [
      { cutAt: 300 },
      { status: 410, json: { error: { code: 'replay_expired', message: 'gone' } } },
      { status: 200, json: record },
    ],
  });
  const result = await run(server);
  assert.deepEqual(result.saved, record);
  assert.equal(server.requests[2].path, '/api/chat/records/7/');
});

test('a stream that ends without its done event reads the saved record', async () => {
  const record = { id: 7, answer: 'saved', status: 'interrupted' };
  const requests = [];
  const transport = (request, sink) => {
    requests.push(request);
    setImmediate(() => {
      const isRecord = request.path === '/api/chat/records/7/';
      const headers = { 'content-type': isRecord ? 'application/json' : 'text/event-stream' };
      sink.response({ status: 200, header: (name) => headers[name] ?? null });
      sink.chunk(utf8(isRecord ? JSON.stringify(record) : 'data: [DONE]\n\n'));
      sink.end();
    });
    return { abort() {} };
  };
  const saved = await new Promise((resolve, reject) => {
    openAnswer({ transport, recordId: 7, lastEventId: 99, onSaved: resolve, onFail: reject });
  });
  assert.deepEqual(saved, record);
  assert.equal(requests.length, 2);
});

test('an HTTP error before the answer is reported with its code, not retried', async () => {
  const server = fakeServer({
    plan: [{ status: 401, json: { error: { code: 'invalid_token', message: 'Log in.' } } }],
  });
  const result = await run(server);
  assert.deepEqual(result.failed, { status: 401, code: 'invalid_token', message: 'Log in.' });
  assert.equal(server.requests.length, 1);
});

test('a draining server is asked again (it saved nothing), after its Retry-After', async () => {
  const draining = {
    status: 503,
    headers: { 'retry-after': '0' },
    json: { error: { code: 'server_draining', message: '' } },
  };
  const server = fakeServer({ plan: [draining, draining] });
  const result = await run(server);
  assert.equal(result.done.status, 'done');
  assert.deepEqual(
    server.requests.map((request) => request.method),
    ['POST', 'POST', 'POST'],
  );
});

test('no answer at all to the question: reported as network, never sent again', async () => {
  const server = fakeServer({ plan: [{ offline: true }] });
  const result = await run(server);
  assert.equal(result.failed.code, 'network');
  assert.equal(server.requests.length, 1);
});

test('resuming gives up after its attempts, and reconnect() reads on later', async () => {
  const server = fakeServer({
    plan: [{ cutAt: 200 }, ...FAST_RESUME.map(() => ({ offline: true }))],
  });
  const first = await run(server);
  assert.equal(first.failed.code, 'network');
  assert.equal(first.reconnecting, FAST_RESUME.length);
  const shownSoFar = first.deltas.join('');
  const rest = await new Promise((resolve) => {
    const deltas = [];
    const answer = openAnswer({
      transport: server.transport,
      recordId: first.answer.state.recordId,
      lastEventId: first.answer.state.lastEventId,
      onDelta: (text) => deltas.push(text),
      onDone: () => resolve(deltas),
    });
    assert.equal(answer.state.recordId, 7);
  });
  assert.equal(shownSoFar + rest.join(''), TRICKY_DELTAS.join(''));
  assert.equal(server.requests.filter((request) => request.method === 'POST').length, 1);
});

test('reconnect() drops a silent connection and reads on at once', async () => {
  let answer;
  const server = fakeServer({ plan: [{ cutAt: 250 }] });
  // The first connection delivers 250 bytes and then hangs (never fails): only a
  // reconnect moves the answer on.
  const original = server.transport;
  server.transport = (request, sink) =>
    original(request, server.requests.length === 0 ? { ...sink, fail: () => {} } : sink);
  const result = await run(server, {
    onOpen: (opened) => {
      answer = opened;
      setTimeout(() => assert.equal(answer.reconnect(), true), 30);
    },
  });
  assert.equal(result.deltas.join(''), TRICKY_DELTAS.join(''));
  assert.equal(server.requests.length, 2);
});

test('a connection silent past idleTimeoutMs is dropped and resumed', async () => {
  const server = fakeServer({ plan: [{ cutAt: 250 }] });
  const original = server.transport;
  server.transport = (request, sink) =>
    original(request, server.requests.length === 0 ? { ...sink, fail: () => {} } : sink);
  const result = await run(server, { idleTimeoutMs: 20 });
  assert.equal(result.deltas.join(''), TRICKY_DELTAS.join(''));
  assert.equal(server.requests.length, 2);
});

test('stop() posts to the record; asked before the record id, it waits for it', async () => {
  const requests = [];
  const sinks = [];
  const transport = (request, sink) => {
    requests.push(request);
    sinks.push(sink);
    return { abort() {} };
  };
  const answer = openAnswer({ transport, body: { question: 'q' } });
  const stopped = answer.stop();
  assert.equal(requests.length, 1);
  sinks[0].response({
    status: 200,
    header: (name) => ({ 'content-type': 'text/event-stream', 'x-record-id': '12' })[name],
  });
  assert.deepEqual(requests[1], {
    method: 'POST',
    path: '/api/chat/records/12/stop',
    body: undefined,
    accept: 'application/json',
  });
  sinks[1].response({ status: 200, header: () => 'application/json' });
  sinks[1].chunk(utf8('{"record_id":12,"status":"stopped"}'));
  sinks[1].end();
  assert.deepEqual(await stopped, {
    status: 200,
    data: { record_id: 12, status: 'stopped' },
    header: (await stopped).header,
  });
});

test('close() hangs up: no callback afterwards', async () => {
  const calls = [];
  const server = fakeServer({});
  const answer = openAnswer({
    transport: server.transport,
    body: { question: 'q' },
    onDelta: (text) => calls.push(text),
    onDone: () => calls.push('done'),
  });
  answer.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(calls, []);
});
