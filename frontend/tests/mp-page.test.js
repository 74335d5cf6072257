// The mini-program's chat page (miniprogram/pages/chat), rendered by miniprogram-simulate
// in jsdom and driven as its reader does: type, send, watch the answer stream in, stop,
// like / dislike, errors, history. Its wx.request is the wx shim (real HTTP to the live
// stack), so every answer comes from a real server and the test upstream.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { JSDOM } from 'jsdom';

import { maxPerSecond, onlyGrows, trickyTokens } from './mp-support.js';
import { startStack } from './stack.js';
import { seeded } from './support.js';
import { createWx } from './wx-shim.js';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../../miniprogram/', import.meta.url));

// miniprogram-simulate renders into a DOM: jsdom's, as globals.
const dom = new JSDOM('<!doctype html><html><body></body></html>', { pretendToBeVisual: true });
global.window = dom.window;
global.document = dom.window.document;
// Node has an Event of its own; the DOM's events must be jsdom's.
for (const name of ['Event', 'CustomEvent', 'HTMLElement', 'Node', 'MutationObserver']) {
  global[name] = dom.window[name];
}
const simulate = require('miniprogram-simulate');

let stack;
let shim;
let client;

before(async () => {
  stack = await startStack();
  const openid = `o_page_${Date.now().toString(36)}`;
  shim = createWx({ random: seeded(25), codes: () => stack.code(openid) });
  Object.assign(global.wx, shim.wx, { showToast: () => {}, navigateTo: () => {} });
  const setup = require(`${root}chat-client-setup.js`);
  setup.config.serverUrl = stack.url;
  client = setup.chatClient();
});
after(async () => {
  if (stack) await stack.stop();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The page, rendered and opened (onLoad), with its setData calls watched. */
async function openPage() {
  const id = simulate.load(`${root}pages/chat/chat`, { rootPath: root });
  const page = simulate.render(id);
  page.attach(document.createElement('parent-wrapper'));
  const calls = [];
  const setData = page.instance.setData.bind(page.instance);
  page.instance.setData = (patch, callback) => {
    calls.push({ at: Date.now(), patch });
    return setData(patch, callback);
  };
  page.instance.onLoad({});
  await until(() => page.data.ready, 'the page to be ready');
  return {
    page,
    calls,
    data: () => page.instance.data,
    find: (selector) => page.querySelector(selector),
    last: (selector) => page.querySelectorAll(selector).at(-1),
  };
}

async function type(view, question) {
  view.find('.input').dispatchEvent('input', { detail: { value: question } });
  await simulate.sleep(0);
}

async function send(view, question) {
  await type(view, question);
  view.sentAt = view.calls.length; // the typing's own setData calls come before
  view.find('.send').dispatchEvent('tap');
  await simulate.sleep(0);
  return view.data().messages.length - 1;
}

const lastMessage = (view) => view.data().messages.at(-1);
const ended = (view) => ['done', 'stopped', 'interrupted', 'error'].includes(lastMessage(view).status);

test('send: the answer streams in, setData at most 15 a second, then Markdown', async () => {
  const view = await openPage();
  const tokens = trickyTokens(seeded(31), 150);
  const scenario = await stack.script({ tokens, rate: 75 }); // 2 s of a fast model
  const index = await send(view, `你好 ${scenario.tag}`);
  assert.equal(view.data().input, '', 'the box is emptied');
  assert.ok(view.find('.stop'), 'stop is offered while the answer streams');
  assert.ok(view.find('.thinking'), 'thinking before the first word');
  await until(() => lastMessage(view).text.length > 0, 'the first words');
  const partial = view.last('.answer-text').dom.textContent;
  assert.ok(partial.length > 0 && tokens.join('').startsWith(partial), 'a prefix shows while streaming');
  await until(() => ended(view), 'the answer to end');
  const message = lastMessage(view);
  const record = await client.api.record(message.recordId);
  assert.equal(message.status, 'done');
  assert.equal(message.text, record.answer, 'shown text is the saved answer');
  assert.equal(record.answer, tokens.join(''));
  const textPath = `messages[${index}].text`;
  const shown = view.calls.filter((c) => textPath in c.patch).map((c) => c.patch[textPath]);
  assert.ok(onlyGrows(shown), 'nothing shown twice');
  const most = maxPerSecond(view.calls.slice(view.sentAt).map((c) => c.at));
  assert.ok(most <= 15, `${most} setData calls in one second`);
  const whole = view.calls.filter((c) => 'messages' in c.patch);
  assert.equal(whole.length, 0, 'the list is never set whole while the answer streams');
  assert.ok(view.find('.answer-md'), 'rendered by mp-html once ended');
  assert.ok(view.find('.send') && !view.find('.stop'));
  console.log(`page: ${shown.length} text updates, at most ${most} setData calls in a second`);
});

test('rate: like, then dislike, saved on the record', async () => {
  const view = await openPage();
  const index = view.data().messages.length - 1;
  const recordId = view.data().messages[index].recordId;
  view.last('.like').dispatchEvent('tap');
  await until(() => lastMessage(view).rating === 'useful', 'the like');
  await sleep(200);
  assert.equal((await client.api.record(recordId)).rating, 'useful');
  assert.match(view.last('.like').dom.className, /\bon\b/);
  view.last('.dislike').dispatchEvent('tap');
  await until(() => lastMessage(view).rating === 'not_useful', 'the dislike');
  await sleep(200);
  assert.equal((await client.api.record(recordId)).rating, 'not_useful');
});

test('stop: the answer ends where it was stopped, as saved', async () => {
  const view = await openPage();
  const scenario = await stack.script({ tokens: trickyTokens(seeded(32), 200), pace: 0.05 });
  await send(view, `停一下 ${scenario.tag}`);
  await until(() => lastMessage(view).text.length > 10, 'some text');
  view.find('.stop').dispatchEvent('tap');
  await until(() => ended(view), 'the stop');
  const message = lastMessage(view);
  const record = await client.api.record(message.recordId);
  assert.equal(message.status, 'stopped');
  assert.equal(record.status, 'stopped');
  assert.equal(message.text, record.answer);
  assert.equal(view.last('.turn-status').dom.textContent, '已停止');
  assert.ok(view.find('.send'), 'ready for the next question');
  const upstream = await stack.scenario(scenario.tag);
  assert.ok(upstream.aborted, 'the model call was cancelled');
});

test('errors: a model failure shows its words and retry; offline keeps the question', async () => {
  const view = await openPage();
  const failing = await stack.script({ status: 500 });
  await send(view, `坏了 ${failing.tag}`);
  await until(() => ended(view), 'the failure');
  assert.equal(lastMessage(view).status, 'error');
  assert.match(view.last('.turn-status').dom.textContent, /模型暂时不可用/);
  const retry = view.last('.retry');
  assert.equal(Number(retry.dom.getAttribute('data-index')), view.data().messages.length - 1, 'retry offered');

  const count = view.data().messages.length;
  shim.network.offline = true;
  await send(view, '离线时的问题');
  await until(() => view.data().notice, 'the notice');
  shim.network.offline = false;
  assert.equal(view.data().messages.length, count, 'the question was not taken');
  assert.equal(view.data().input, '离线时的问题', 'it is back in the box');
  assert.match(view.find('.notice').dom.textContent, /网络不通/);
  const scenario = await stack.script({ tokens: ['好', '了'], pace: 0.01 });
  await type(view, `离线时的问题 ${scenario.tag}`);
  view.find('.notice').dispatchEvent('tap'); // "重试"
  await until(() => view.data().messages.length === count + 1 && ended(view), 'the retry');
  assert.equal(lastMessage(view).text, '好了');
});

test('history on open, older pages on scroll-up', async () => {
  const first = await openPage();
  const sessionId = first.data().sessionId;
  const shownBefore = first.data().messages.length;
  const items = [...Array(25).keys()].map((n) => ({
    client_id: `old-${n}-${Date.now()}`,
    question: `旧问题 ${n}`,
    answer: `旧回答 ${n}`,
    created_at: new Date(Date.now() - (30 - n) * 60000).toISOString(),
  }));
  await client.api.call('POST', '/api/chat/records/bulk', { items, session_id: sessionId });
  const view = await openPage();
  assert.equal(view.data().sessionId, sessionId, 'the latest session');
  assert.equal(view.data().messages.length, 20, 'its latest page');
  assert.ok(view.data().older);
  view.find('.list').dispatchEvent('scrolltoupper');
  await until(() => !view.data().loadingOlder && view.data().messages.length > 20, 'older pages');
  while (view.data().older) {
    view.find('.list').dispatchEvent('scrolltoupper');
    await until(() => !view.data().loadingOlder, 'the next older page');
  }
  assert.equal(view.data().messages.length, shownBefore + 25);
  assert.ok(view.data().reachedStart);
  assert.equal(view.find('.older').dom.textContent, '没有更早的消息了');
});

test('the web-view page: the H5 page with a fresh ticket; its posts saved in bulk', async () => {
  const id = simulate.load(`${root}pages/webview/webview`, { rootPath: root });
  const view = simulate.render(id);
  view.attach(document.createElement('parent-wrapper'));
  await view.instance.onLoad({});
  const src = view.instance.data.src;
  assert.match(src, new RegExp(`^${stack.url}/h5/\\?ticket=`));
  const ticket = new URL(src).searchParams.get('ticket');
  const exchanged = await fetch(`${stack.url}/api/auth/webview-ticket/exchange`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ticket }),
  });
  assert.equal(exchanged.status, 200, 'the ticket signs the H5 page in');
  const { token } = await exchanged.json();
  // What the H5 page posts (frontend/h5/handoff.js), as WeChat hands it over: every post.
  const item = { client_id: `h5-${Date.now()}`, question: '网页里问的', answer: '网页里答的 ✨', terminal: 'webview' };
  const bulk = shim.stats.requests.length;
  view.querySelector('.webview').dispatchEvent('message', { detail: { data: [[item]] } });
  await until(() => shim.stats.requests.slice(bulk).some((r) => r.path === '/api/chat/records/bulk' && r.outcome), 'the bulk save');
  const search = await fetch(`${stack.url}/api/chat/search/?q=${encodeURIComponent('网页里问的')}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const found = await search.json();
  assert.equal(found.results.length, 1);
  assert.equal(found.results[0].answer, '网页里答的 ✨');
});
