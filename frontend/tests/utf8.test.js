import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createFallbackDecoder, createUtf8Decoder } from '../chat-stream/index.js';
import { seeded, splitRandomly, TRICKY_DELTAS, utf8 } from './support.js';

function decodeAll(decoder, pieces) {
  return pieces.map((piece) => decoder.decode(piece, { stream: true })).join('') + decoder.decode();
}

const TEXT = `${TRICKY_DELTAS.join('')} ascii é ß Ω 한국어 日本語 🇨🇳 ${'字'.repeat(50)}`;

test('both decoders give the whole text whatever the split, over 500 seeded splits', () => {
  const bytes = utf8(TEXT);
  for (let seed = 1; seed <= 500; seed += 1) {
    const pieces = splitRandomly(bytes, seeded(seed), 1 + (seed % 9));
    assert.equal(decodeAll(createUtf8Decoder(), pieces), TEXT, `native, seed ${seed}`);
    assert.equal(decodeAll(createFallbackDecoder(), pieces), TEXT, `fallback, seed ${seed}`);
  }
});

test('pieces of one byte each, through a 4-byte emoji', () => {
  const pieces = Array.from(utf8('a😀b'), (byte) => Uint8Array.of(byte));
  assert.equal(decodeAll(createFallbackDecoder(), pieces), 'a😀b');
});

test('the fallback matches TextDecoder on invalid bytes too', () => {
  const random = seeded(42);
  for (let round = 0; round < 300; round += 1) {
    // Random bytes weighted towards lead and continuation bytes: broken sequences galore.
    const bytes = Uint8Array.from({ length: 1 + random.int(40) }, () => {
      const pick = random();
      if (pick < 0.3) return 0x80 + random.int(0x40);
      if (pick < 0.6) return 0xc0 + random.int(0x40);
      return random.int(0x100);
    });
    const expected = new TextDecoder().decode(bytes);
    const pieces = splitRandomly(bytes, random, 5);
    assert.equal(decodeAll(createFallbackDecoder(), pieces), expected, `bytes ${bytes}`);
  }
});

test('a sequence cut off at the end of the stream becomes one U+FFFD, as in TextDecoder', () => {
  const bytes = utf8('好').slice(0, 2);
  assert.equal(decodeAll(createFallbackDecoder(), [bytes]), '\ufffd');
  assert.equal(new TextDecoder().decode(bytes), '\ufffd');
});

test('a byte-order mark is dropped at the start only', () => {
  const bytes = Uint8Array.of(0xef, 0xbb, 0xbf, 0x61, 0xef, 0xbb, 0xbf);
  assert.equal(decodeAll(createFallbackDecoder(), [bytes]), 'a\ufeff');
  assert.equal(new TextDecoder().decode(bytes), 'a\ufeff');
});

test('ArrayBuffer, Uint8Array and other views are all bytes', () => {
  const bytes = utf8('中文');
  const view = new DataView(bytes.buffer);
  for (const make of [createUtf8Decoder, createFallbackDecoder]) {
    assert.equal(make().decode(bytes.buffer), '中文');
    assert.equal(make().decode(view), '中文');
    assert.equal(make().decode(bytes.subarray(3)), '文');
  }
});

test('without TextDecoder in the runtime, the fallback is used', () => {
  const saved = globalThis.TextDecoder;
  globalThis.TextDecoder = undefined;
  try {
    const decoder = createUtf8Decoder();
    assert.equal(decodeAll(decoder, splitRandomly(utf8(TEXT), seeded(7), 3)), TEXT);
  } finally {
    globalThis.TextDecoder = saved;
  }
});
