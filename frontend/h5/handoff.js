// The handoff to the mini-program around the <web-view>: it cannot call the API while the
// page closes, so the page posts its chat list with wx.miniProgram.postMessage after each
// finished answer and on pagehide, in the item shape of POST /api/chat/records/bulk
// (docs/api.md). WeChat hands the mini-program an array of every `data` posted; the last
// one is the whole list. Outside a mini-program (a plain browser) nothing is posted.

import wx from 'weixin-js-sdk';

const MAX_ITEMS = 200; // the bulk endpoint's limit per request

let inMiniProgram = false;
const items = new Map(); // record id -> the latest item of that turn, in first-seen order

export function handoffInit() {
  const miniProgram = wx && wx.miniProgram;
  if (!miniProgram || typeof miniProgram.getEnv !== 'function') return;
  // getEnv answers only inside WeChat, once its bridge is ready.
  miniProgram.getEnv((env) => {
    inMiniProgram = Boolean(env && env.miniprogram);
  });
}

/** Remember a finished (or re-rated) turn for the handoff. */
export function handoffKeep(turn) {
  if (!turn.recordId) return;
  items.delete(turn.recordId); // re-inserted: the list stays in order of last change
  items.set(turn.recordId, {
    record_id: turn.recordId,
    client_id: turn.clientId || null,
    question: turn.question,
    answer: turn.text,
    rating: turn.rating,
    created_at: turn.createdAt,
    model: turn.model || null,
    terminal: 'webview',
  });
}

export function handoffPost() {
  if (!inMiniProgram || items.size === 0) return;
  wx.miniProgram.postMessage({ data: [...items.values()].slice(-MAX_ITEMS) });
}
