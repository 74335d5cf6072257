// The mini-program client library (miniprogram/lib/chat-client.js, as built) against a
// live server: a wx shim whose wx.request makes real HTTP requests and delivers the body
// as WeChat's base libraries do (wx-shim.js), the test upstream as the model.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startStack } from './stack.js';
import { seeded } from './support.js';
import { loadLibrary, maxPerSecond, onlyGrows, trickyTokens, watchedPage } from './mp-support.js';
import { createWx, DELIVERIES } from './wx-shim.js';

const DECODERS = [
  { name: 'TextDecoder', textDecoder: true },
  { name: 'fallback decoder', textDecoder: false },
];
const LIVE_ANSWERS = 8; // per decoder path, asked with POST
const REPLAYS = 16; // per answer: the whole stream again, split differently
const PARALLEL = 6; // chats streaming at once (wx.request allows 10 in all)
const SET_DATA_PER_SECOND = 15;

let stack;
let users = 0;

before(async () => {
  stack = await startStack();
});
after(async () => {
  if (stack) await stack.stop();
});

/** A wx shim and a client on it, logged in as a new user. */
function setUp(lib, options = {}) {
  users += 1;
  const openid = `o_mp_${users}_${Date.now().toString(36)}`;
  const shim = createWx({
    random: seeded(options.seed ?? users),
    codes: () => stack.code(openid),
    ...options,
  });
  const client = lib.createChatClient({
    wx: shim.wx,
    baseUrl: options.baseUrl || stack.url,
    ...(options.client || {}),
  });
  return { shim, client, openid };
}

/**
 * Stream one answer into a watched page through the typer, as the page does. Resolves
 * {result, page, texts}: `texts` is every onText piece.
 */
function show(lib, client, streamOptions, { initial = '' } = {}) {
  const page = watchedPage();
  const texts = [];
  return new Promise((resolve, reject) => {
    let result = null;
    const typer = lib.createTyper({
      setData: (patch) => page.setData(patch),
      path: 'messages[0].text',
      text: initial,
      onIdle: () => resolve({ result, page, texts, answer }),
    });
    const answer = client.streamText({
      ...streamOptions,
      onText(piece) {
        texts.push(piece);
        typer.push(piece);
      },
      onEvent(event) {
        if (event.type === 'replace') typer.replace(event.data.text);
      },
      onFinish(text, finished) {
        result = finished;
        if (finished.status === 'failed') reject(finished.error);
        typer.end();
      },
    });
  });
}

async function inBatches(jobs, size) {
  for (let at = 0; at < jobs.length; at += size) {
    await Promise.all(jobs.slice(at, at + size).map((job) => job()));
  }
}

function assertShownExactly(page, saved) {
  const shown = page.shown.at(-1) ?? '';
  assert.equal(shown, saved, 'the text shown is the saved answer');
  assert.ok(onlyGrows(page.shown), 'nothing shown twice or taken back');
  const most = maxPerSecond(page.calls);
  assert.ok(most <= SET_DATA_PER_SECOND, `${most} setData calls in one second`);
  return most;
}

for (const decoder of DECODERS) {
  test(`hundreds of random splits show the saved answer byte for byte (${decoder.name})`, async () => {
    const lib = loadLibrary(decoder);
    const random = seeded(decoder.textDecoder ? 2501 : 2502);
    const delivery = () => DELIVERIES[random.int(DELIVERIES.length)];
    const { shim, client } = setUp(lib, {
      delivery,
      seed: random.int(1e9),
      client: { nativeDecoder: decoder.textDecoder },
    });
    let runs = 0;
    let mostPerSecond = 0;
    const answers = [];
    const asks = [...Array(LIVE_ANSWERS).keys()].map((index) => async () => {
      const tokens = trickyTokens(random, 40 + random.int(80));
      const scenario = await stack.script({ tokens, pace: 0.002 });
      const { result, page, texts } = await show(lib, client, {
        chatId: `ask-${index}`,
        data: { question: `问题 ${index} ${scenario.tag}`, client_id: `${scenario.tag}-c` },
      });
      const record = await client.api.record(result.recordId);
      assert.equal(record.answer, tokens.join(''), 'the model wrote what was saved');
      assert.equal(texts.join(''), record.answer, 'onText pieces, each once');
      mostPerSecond = Math.max(mostPerSecond, assertShownExactly(page, record.answer));
      answers.push(record);
      runs += 1;
    });
    await inBatches(asks, 4);
    const replays = answers.flatMap((record) =>
      [...Array(REPLAYS).keys()].map((index) => async () => {
        const { result, page } = await show(lib, client, {
          chatId: `replay-${record.id}-${index}`,
          recordId: record.id,
          lastEventId: 0,
        });
        assert.equal(result.status, 'done');
        assertShownExactly(page, record.answer);
        runs += 1;
      }),
    );
    await inBatches(replays, PARALLEL);
    assert.equal(runs, LIVE_ANSWERS * (REPLAYS + 1));
    // The splits were the hard ones: cut inside characters, merged events, whole bodies.
    assert.ok(shim.stats.cutInsideChar > 100, `${shim.stats.cutInsideChar} cuts inside a character`);
    assert.ok(shim.stats.multiEventChunks > 20, `${shim.stats.multiEventChunks} merged chunks`);
    for (const mode of DELIVERIES) {
      assert.ok(shim.stats.requests.some((request) => request.mode === mode), mode);
    }
    assert.ok(shim.stats.maxRunning <= 10);
    console.log(
      `${decoder.name}: ${runs} answers, ${shim.stats.chunks} chunks, ` +
        `${shim.stats.cutInsideChar} cut inside a character, ${shim.stats.multiEventChunks} ` +
        `with several events; at most ${mostPerSecond} setData calls in a second`,
    );
  });
}

describe('continuation', () => {
  const lib = loadLibrary({ textDecoder: false });

  test('the 60 s cap (shortened to 1.5 s) cuts a long answer: read on, nothing twice', async () => {
    const { shim, client } = setUp(lib, { capMs: 1500 });
    const tokens = trickyTokens(seeded(7), 90);
    const scenario = await stack.script({ tokens, rate: 20 }); // 4.5 s of answer
    const { result, page } = await show(lib, client, {
      data: { question: `long ${scenario.tag}` },
    });
    const record = await client.api.record(result.recordId);
    assert.equal(record.answer, tokens.join(''));
    assert.equal(record.status, 'done');
    assertShownExactly(page, record.answer);
    const streams = shim.stats.requests.filter((r) => r.path.includes('/events') || r.path.endsWith('/stream'));
    const cut = streams.filter((r) => r.outcome === 'timeout');
    assert.ok(cut.length >= 2, `${cut.length} requests cut by the cap`);
    const resumedFrom = streams.slice(1).map((r) => Number(/last_event_id=(\d+)/.exec(r.path)[1]));
    assert.ok(resumedFrom.every((id, i) => id > 0 && (i === 0 || id >= resumedFrom[i - 1])));
    assert.equal(shim.stats.maxRunning, 1, 'one request at a time');
    const upstream = await stack.scenario(scenario.tag);
    assert.equal(upstream.requests, 1, 'the model was asked once');
  });

  test('a trip to the background: interrupted, read on when back on screen', async () => {
    const { shim, client } = setUp(lib, { interruptMs: 300 });
    const tokens = trickyTokens(seeded(8), 60);
    const scenario = await stack.script({ tokens, rate: 20 }); // 3 s of answer
    const shown = show(lib, client, { data: { question: `bg ${scenario.tag}` } });
    await new Promise((resolve) => setTimeout(resolve, 800));
    shim.background();
    await new Promise((resolve) => setTimeout(resolve, 4000)); // the answer ends meanwhile
    const interrupted = shim.stats.requests.filter((r) => r.outcome === 'interrupted');
    assert.ok(interrupted.length >= 1, 'the request was interrupted in the background');
    shim.foreground();
    const { result, page } = await shown;
    const record = await client.api.record(result.recordId);
    assert.equal(record.status, 'done', 'the server finished the answer meanwhile');
    assertShownExactly(page, tokens.join(''));
    assert.equal(shim.appShowListeners(), 0, 'onAppShow listener removed');
    assert.equal((await stack.scenario(scenario.tag)).requests, 1);
  });

  test('away longer than the retries last: lost, then read on when back on screen', async () => {
    const { shim, client } = setUp(lib, {
      interruptMs: 100,
      client: { resumeDelaysMs: [50, 50] }, // given up after three tries in the background
    });
    const tokens = trickyTokens(seeded(10), 40);
    const scenario = await stack.script({ tokens, rate: 20 }); // 2 s of answer
    const events = [];
    const page = watchedPage();
    const typer = lib.createTyper({ setData: (p) => page.setData(p), path: 'messages[0].text' });
    const answer = client.streamText({
      data: { question: `away ${scenario.tag}` },
      onText: (piece) => typer.push(piece),
      onEvent: (event) => events.push(event.type),
      onFinish: () => typer.end(),
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    shim.background();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.ok(events.includes('lost'), 'the client gave up while away');
    assert.equal(shim.running, 0, 'no request left running in the background');
    shim.foreground();
    const result = await answer.finished;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(result.status, 'done');
    assertShownExactly(page, tokens.join(''));
  });

  test('410 replay_expired: the saved answer is read instead', async () => {
    const { shim, client } = setUp(lib, { baseUrl: stack.briefUrl });
    const tokens = trickyTokens(seeded(9), 30);
    const scenario = await stack.script({ tokens, pace: 0.005 });
    const first = await show(lib, client, { data: { question: `expire ${scenario.tag}` } });
    const saved = tokens.join('');
    // A reload shows the history's text so far; by now the events are gone (1 s).
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // Event 1 is `start`, event 2 the first delta: what the page kept of the answer.
    const prefix = first.texts[0];
    const { result, page } = await show(
      lib,
      client,
      { recordId: first.result.recordId, lastEventId: 2, text: prefix },
      { initial: prefix },
    );
    const resume = shim.stats.requests.at(-2);
    assert.equal(resume.status, 410);
    assert.ok(resume.path.includes('last_event_id=2'));
    assert.equal(result.status, 'done');
    assert.equal(page.shown.at(-1), saved);
    assert.ok(onlyGrows([prefix, ...page.shown]));
  });
});

describe('the client', () => {
  const lib = loadLibrary({ textDecoder: true });

  test('one stream per chat', async () => {
    const { shim, client } = setUp(lib);
    const scenario = await stack.script({ tokens: trickyTokens(seeded(3), 20), pace: 0.02 });
    const first = client.streamText({ chatId: 'c1', data: { question: `one ${scenario.tag}` } });
    assert.throws(
      () => client.streamText({ chatId: 'c1', data: { question: 'two' } }),
      (error) => error.code === 'stream_busy',
    );
    assert.ok(client.isStreaming('c1'));
    const result = await first.finished;
    assert.equal(result.status, 'done', JSON.stringify(result));
    assert.ok(!client.isStreaming('c1'));
    assert.equal(shim.stats.maxRunning, 1);
  });

  test('stop: abort, POST stop, every listener removed, the saved answer shown', async () => {
    const { shim, client } = setUp(lib);
    const scenario = await stack.script({ tokens: trickyTokens(seeded(4), 100), pace: 0.05 });
    const page = watchedPage();
    const typer = lib.createTyper({ setData: (p) => page.setData(p), path: 'messages[0].text' });
    let deltas = 0;
    const answer = client.streamText({
      data: { question: `stop ${scenario.tag}` },
      onText(piece) {
        deltas += 1;
        typer.push(piece);
      },
      onFinish: () => typer.end(),
    });
    while (deltas < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    const result = await answer.stop();
    assert.equal(result.status, 'stopped');
    const stream = shim.stats.requests.find((r) => r.path === '/api/chat/stream');
    assert.equal(stream.outcome, 'abort', 'requestTask.abort()');
    assert.ok(shim.stats.requests.some((r) => r.method === 'POST' && r.path.endsWith('/stop')));
    for (const request of shim.stats.requests) assert.equal(request.listeners(), 0, request.path);
    const record = await client.api.record(result.recordId);
    assert.equal(record.status, 'stopped');
    assert.equal(answer.text, record.answer, 'the saved answer, no more, no less');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(page.shown.at(-1), record.answer);
    const upstream = await stack.scenario(scenario.tag);
    assert.ok(upstream.aborted && upstream.tokens_sent < 100, 'the model call was cancelled');
  });

  test('a revoked token: one re-login, the question asked once', async () => {
    const { shim, client, openid } = setUp(lib);
    const token = await client.login();
    const revoked = await fetch(`${stack.url}/api/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(revoked.status, 204);
    const scenario = await stack.script({ tokens: ['再', '登录'], pace: 0.01 });
    const result = await client.streamText({ data: { question: `relogin ${scenario.tag}` } }).finished;
    assert.equal(result.status, 'done');
    assert.equal(result.text, '再登录');
    assert.equal(shim.stats.logins, 2, 'logged in again once');
    assert.notEqual(client.token(), token);
    const asked = shim.stats.requests.filter((r) => r.path === '/api/chat/stream');
    assert.deepEqual(asked.map((r) => r.status), [401, 200]);
    // The JSON calls too: revoked again, the history is read after one re-login.
    await fetch(`${stack.url}/api/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${client.token()}` },
    });
    const page = await client.api.records(result.sessionId);
    assert.equal(page.results[0].answer, '再登录');
    assert.equal(shim.stats.logins, 3);
    const me = await (
      await fetch(`${stack.url}/api/auth/me`, { headers: { Authorization: `Bearer ${client.token()}` } })
    ).json();
    assert.equal(me.openid, openid);
  });

  test('an HTTP error is reported as that error, not read as events', async () => {
    const { client } = setUp(lib);
    const result = await client.streamText({ data: { question: '   ' } }).finished;
    assert.equal(result.status, 'failed');
    assert.equal(result.error.code, 'question_required');
    assert.equal(result.error.status, 400);
  });

  test('textStream and eventStream iterate with for await', async () => {
    const { client } = setUp(lib);
    const tokens = trickyTokens(seeded(5), 25);
    const scenario = await stack.script({ tokens, pace: 0.005 });
    const answer = await client.streamText({ data: { question: `iter ${scenario.tag}` } });
    let text = '';
    for await (const piece of answer.textStream) text += piece;
    const types = [];
    for await (const event of answer.eventStream) types.push(event.type);
    assert.equal(text, tokens.join(''));
    assert.equal(types[0], 'start');
    assert.equal(types.at(-1), 'done');
  });

  test('the web-view: a fresh ticket opens the H5 page, its posted list is saved in bulk', async () => {
    const { client } = setUp(lib);
    const url = await client.webviewUrl();
    const ticket = new URL(url).searchParams.get('ticket');
    assert.ok(url.startsWith(`${stack.url}/h5/?ticket=`));
    const exchanged = await fetch(`${stack.url}/api/auth/webview-ticket/exchange`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ticket }),
    });
    assert.equal(exchanged.status, 200);
    const item = (n) => ({ client_id: `h5-${n}`, question: `网页问题 ${n}`, answer: `回答 ${n} 🚀`, terminal: 'webview' });
    // What <web-view bindmessage> hands over: every post so far, each the whole list.
    const saved = await client.saveHandoff([[item(1)], [item(1), item(2)]]);
    assert.deepEqual({ ...saved.counts }, { created: 2, updated: 0, unchanged: 0, error: 0 });
    const again = await client.saveHandoff([[item(1), item(2)]]);
    assert.equal(again.counts.unchanged, 2);
    const sessions = await client.api.sessions();
    const records = await client.api.records(sessions.results[0].id);
    assert.deepEqual(Array.from(records.results, (r) => r.answer), ['回答 1 🚀', '回答 2 🚀']);
  });
});
