// Helpers for the stream module's tests: a seeded random source and byte splitting.

/** A small seeded PRNG (mulberry32): the same seed gives the same splits on every run. */
export function seeded(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (below) => Math.floor(next() * below);
  return next;
}

/** `bytes` cut at random positions (inside multi-byte characters too) into pieces of 1 to
 * `maxPiece` bytes, as ArrayBuffers, the way wx.request's onChunkReceived delivers them. */
export function splitRandomly(bytes, random, maxPiece = 24) {
  const pieces = [];
  let at = 0;
  while (at < bytes.length) {
    const size = 1 + random.int(maxPiece);
    pieces.push(bytes.slice(at, at + size).buffer);
    at += size;
  }
  return pieces;
}

export const utf8 = (text) => new TextEncoder().encode(text);

/** One SSE frame as the server writes it (docs/protocol.md §3). */
export function frame(id, type, data) {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/** A whole answer's stream: start, the deltas, done, [DONE]; pings in between. */
export function answerStream(deltas, { recordId = 7, sessionId = 3, status = 'done' } = {}) {
  let body = frame(1, 'start', { record_id: recordId, session_id: sessionId, model: 'm' });
  deltas.forEach((text, index) => {
    body += frame(index + 2, 'delta', { text });
    if (index % 3 === 1) body += ': ping\n\n';
  });
  body += frame(deltas.length + 2, 'done', {
    record_id: recordId,
    session_id: sessionId,
    status,
    finish_reason: 'stop',
    error_code: null,
  });
  return `${body}data: [DONE]\n\n`;
}

/** Answer text with what breaks naive clients: CJK, emoji (surrogate pairs, ZWJ), quotes,
 * backslashes, newlines, blank lines, CR, Markdown. */
export const TRICKY_DELTAS = [
  '你好！',
  '这是流式回答 🚀',
  '\n\n',
  '第二段："引号" 和 \\ 反斜杠',
  '\r\n- 列表 👨‍👩‍👧',
  ' **粗体** `code`',
  '\n```js\nconst a = "b";\n```\n',
  'data: 不是帧\n\nid: 9',
  '𝄞 end',
];
