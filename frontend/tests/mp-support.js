// What the mini-program tests share: the built library loaded as a mini-program loads it,
// a page whose setData is watched, and answers that break naive clients.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const root = fileURLToPath(new URL('../..', import.meta.url));
export const LIBRARY = `${root}miniprogram/lib/chat-client.js`;

/**
 * miniprogram/lib/chat-client.js (what `npm run build` wrote) run in a bare context: the
 * language and timers only, plus TextDecoder when `textDecoder` (the two decoder paths).
 */
export function loadLibrary({ textDecoder }) {
  const module = { exports: {} };
  const globals = { module, exports: module.exports, setTimeout, clearTimeout, console };
  if (textDecoder) globals.TextDecoder = TextDecoder;
  const context = vm.createContext(globals);
  vm.runInContext(readFileSync(LIBRARY, 'utf8'), context, { filename: LIBRARY });
  const hasDecoder = vm.runInContext('typeof TextDecoder', context) === 'function';
  if (hasDecoder !== textDecoder) throw new Error('TextDecoder presence not as asked');
  return module.exports;
}

/** A page's setData, watched: when each call came and every value the text path had. */
export function watchedPage() {
  const page = {
    data: {},
    calls: [],
    shown: [], // every value of any '.text' path, in order
    setData(patch) {
      page.calls.push(Date.now());
      for (const [path, value] of Object.entries(patch)) {
        page.data[path] = value;
        if (path.endsWith('text')) page.shown.push(value);
      }
    },
  };
  return page;
}

/** The most setData calls within any one second. */
export function maxPerSecond(times) {
  let most = 0;
  let start = 0;
  for (let end = 0; end < times.length; end += 1) {
    while (times[end] - times[start] >= 1000) start += 1;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

/** Each value extends the one before (nothing shown twice, nothing taken back). */
export function onlyGrows(values) {
  return values.every((value, index) => index === 0 || value.startsWith(values[index - 1]));
}

const PIECES = [
  '你好', '，', '世界', '流式回答', '中文字符', '🚀', '👨‍👩‍👧', '𝄞', '😀😃', '\n', '\n\n',
  '"引号"', '\\', ' ', 'data: x', 'id: 9', ':', 'abc', 'Markdown **粗**', '`code`', 'é', 'ß',
  '\u00a0', '한국어', 'العربية', '\r\n', '[DONE]',
];

/** `count` model tokens of mixed scripts, emoji, quotes and newlines, from `random`. */
export function trickyTokens(random, count) {
  const tokens = [];
  for (let i = 0; i < count; i += 1) {
    let token = '';
    const parts = 1 + random.int(3);
    for (let p = 0; p < parts; p += 1) token += PIECES[random.int(PIECES.length)];
    tokens.push(token);
  }
  return tokens;
}
