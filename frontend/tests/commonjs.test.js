// The mini-program client bundles the stream module as CommonJS (esbuild) and runs it where
// there is no window, no fetch and often no TextDecoder: the same bundle, run here in a
// bare JavaScript context, reads an answer that arrives as wx.request's ArrayBuffer pieces.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

import { build } from 'esbuild';

import { answerStream, seeded, splitRandomly, TRICKY_DELTAS, utf8 } from './support.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function loadCommonJs() {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['frontend/chat-stream/index.js'],
    bundle: true,
    format: 'cjs',
    platform: 'neutral',
    target: 'es2017',
    write: false,
  });
  const module = { exports: {} };
  // Only what a mini-program's JS runtime has for sure: the language, and timers.
  const context = vm.createContext({ module, exports: module.exports, setTimeout, clearTimeout });
  vm.runInContext(result.outputFiles[0].text, context);
  return { lib: module.exports, context };
}

test('the CommonJS bundle runs with no TextDecoder, window or fetch', async () => {
  const { lib, context } = await loadCommonJs();
  assert.equal(
    vm.runInContext('typeof TextDecoder + typeof window + typeof fetch', context),
    'undefinedundefinedundefined',
  );
  const body = utf8(answerStream(TRICKY_DELTAS));
  const text = await new Promise((resolve, reject) => {
    const deltas = [];
    lib.openAnswer({
      body: { question: 'q' },
      // wx.request with enableChunked: onHeadersReceived, then onChunkReceived(ArrayBuffer).
      transport(request, sink) {
        setTimeout(() => {
          const headers = { 'content-type': 'text/event-stream', 'x-record-id': '7' };
          sink.response({ status: 200, header: (name) => headers[name] });
          for (const piece of splitRandomly(body, seeded(11), 5)) sink.chunk(piece);
          sink.end();
        });
        return { abort() {} };
      },
      onDelta: (piece) => deltas.push(piece),
      onDone: () => resolve(deltas.join('')),
      onFail: reject,
    });
  });
  assert.equal(text, TRICKY_DELTAS.join(''));
});
