import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createEventReader } from '../chat-stream/index.js';
import { answerStream, frame, seeded, splitRandomly, TRICKY_DELTAS, utf8 } from './support.js';

function readAll(pieces, options = {}) {
  const events = [];
  const comments = [];
  const reader = createEventReader({
    ...options,
    onEvent: (event) => events.push(event),
    onComment: (comment) => comments.push(comment),
  });
  for (const piece of pieces) reader.push(piece);
  reader.end();
  return { events, comments };
}

const STREAM = answerStream(TRICKY_DELTAS);
const WHOLE = readAll([utf8(STREAM)]).events;

test('a whole stream reads as its events, text intact', () => {
  assert.deepEqual(
    WHOLE.map((event) => event.type),
    ['start', ...TRICKY_DELTAS.map(() => 'delta'), 'done', '[DONE]'],
  );
  const deltas = WHOLE.filter((event) => event.type === 'delta');
  assert.equal(deltas.map((event) => event.data.text).join(''), TRICKY_DELTAS.join(''));
  assert.deepEqual(
    WHOLE.slice(0, -1).map((event) => event.id),
    Array.from({ length: TRICKY_DELTAS.length + 2 }, (_, index) => index + 1),
  );
});

test('the same events whatever the chunk boundaries, on both decoder paths', () => {
  const bytes = utf8(STREAM);
  for (let seed = 1; seed <= 400; seed += 1) {
    const random = seeded(seed);
    // Small pieces cut inside characters and frames; large ones carry many events each.
    const pieces = splitRandomly(bytes, random, seed % 2 ? 7 : 400);
    for (const native of [true, false]) {
      const { events, comments } = readAll(pieces, { native });
      assert.deepEqual(events, WHOLE, `seed ${seed}, native ${native}`);
      assert.equal(comments.length, 3);
    }
  }
});

test('CRLF and CR line ends read the same as LF', () => {
  for (const newline of ['\r\n', '\r']) {
    const stream = STREAM.replace(/\n/g, newline);
    const pieces = splitRandomly(utf8(stream), seeded(3), 11);
    assert.deepEqual(readAll(pieces).events, WHOLE);
  }
});

test('an unfinished last frame is not an event', () => {
  const stream =
    frame(1, 'start', { record_id: 1 }) +
    'id: 2\nevent: delta\ndata: {"type":"delta","text":"半"}\n';
  const { events } = readAll([utf8(stream)]);
  assert.deepEqual(
    events.map((event) => event.type),
    ['start'],
  );
});

test('a frame whose data is not JSON is reported, not passed on', () => {
  const invalid = [];
  const events = [];
  const reader = createEventReader({
    onEvent: (event) => events.push(event),
    onInvalid: (message) => invalid.push(message.data),
  });
  reader.push(
    `id: 1\nevent: delta\ndata: {"type":"delta","text":\n\n${frame(2, 'delta', { text: 'ok' })}`,
  );
  assert.deepEqual(invalid, ['{"type":"delta","text":']);
  assert.deepEqual(
    events.map((event) => event.data.text),
    ['ok'],
  );
});
