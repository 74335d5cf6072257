import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createReveal } from '../chat-stream/index.js';
import { seeded } from './support.js';

const FRAME_MS = 1000 / 60;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Feeds `text` at `charsPerSecond` in deltas every `deltaMs` (the server's ~15 per second)
 * while frames take what the pace allows; the answer ends when the text is all in.
 * Returns per character the delay between its arrival and its reveal, and the takes.
 */
function simulate(text, { charsPerSecond, deltaMs = 67, endAfterMs = null, ...options }) {
  let clock = 0;
  const reveal = createReveal({ now: () => clock, ...options });
  const arrivedAt = [];
  const delays = [];
  const takes = [];
  let sent = 0;
  let nextDelta = 0;
  let shown = 0;
  while (!reveal.done) {
    if (clock >= nextDelta && sent < text.length) {
      const count = Math.max(1, Math.round((charsPerSecond * deltaMs) / 1000));
      const piece = text.slice(sent, sent + count);
      reveal.push(piece);
      for (let i = 0; i < piece.length; i += 1) arrivedAt.push(clock);
      sent += piece.length;
      nextDelta += deltaMs;
      if (sent === text.length && endAfterMs === null) reveal.end();
    }
    if (endAfterMs !== null && clock >= endAfterMs) reveal.end();
    const piece = reveal.take();
    takes.push(piece);
    for (let i = 0; i < piece.length; i += 1) delays.push(clock - arrivedAt[shown + i]);
    shown += piece.length;
    clock += FRAME_MS;
  }
  return { delays, takes, shown: takes.join('') };
}

const maxOf = (values) => values.reduce((a, b) => Math.max(a, b), 0);

test('a fast model (200 tokens/s, ~600 characters/s) never lags by more than ~1 s', () => {
  const text = '流式回答的文字 streaming text. '.repeat(400);
  const { delays, shown, takes } = simulate(text, { charsPerSecond: 600 });
  assert.equal(shown, text);
  assert.ok(maxOf(delays) <= 1000 + FRAME_MS, `max lag ${maxOf(delays)} ms`);
  // Revealed progressively: many frames add text, none adds a large share of it.
  // Revealed progressively until the end (which shows the rest at once): many frames add
  // text, none of them much.
  const whileStreaming = takes.slice(0, -1);
  assert.ok(whileStreaming.filter(Boolean).length > 300);
  assert.ok(maxOf(whileStreaming.map((piece) => piece.length)) < 40);
});

test('a slow model (5 characters/s) is shown soon after each piece arrives', () => {
  const text = '慢慢地回答，一个字一个字。'.repeat(3);
  const { delays } = simulate(text, { charsPerSecond: 5, deltaMs: 200 });
  assert.ok(maxOf(delays) <= 100, `max delay ${maxOf(delays)} ms`);
});

test('the typing effect has a pace: a burst is not shown in one frame', () => {
  let clock = 0;
  const reveal = createReveal({ now: () => clock });
  reveal.push('x'.repeat(200));
  const first = reveal.take();
  clock += FRAME_MS;
  const second = reveal.take();
  assert.ok(first.length > 0 && first.length < 20, `first frame ${first.length}`);
  assert.ok(second.length > 0 && second.length < 20);
});

test('when the answer ends, the rest shows at once', () => {
  let clock = 0;
  const reveal = createReveal({ now: () => clock });
  reveal.push('a'.repeat(500));
  const before = reveal.take().length;
  reveal.end();
  clock += FRAME_MS;
  assert.equal(reveal.take().length, 500 - before);
  assert.equal(reveal.done, true);
});

test('an emoji (a surrogate pair) is never cut in half, whatever the frame', () => {
  const random = seeded(9);
  const text = Array.from({ length: 400 }, () => (random() < 0.5 ? '😀' : '字')).join('');
  for (const charsPerSecond of [3, 37, 150, 900]) {
    const { takes, shown } = simulate(text, { charsPerSecond });
    assert.equal(shown, text);
    for (const piece of takes) assert.doesNotMatch(piece, LONE_SURROGATE);
  }
});
