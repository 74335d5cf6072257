// The typing effect for a mini-program page, shaped by what setData costs there: every call
// crosses from the logic thread to the render thread, so it runs at most once per
// `intervalMs` (70 ms: at most 15 calls in any second, whatever the model's token rate),
// and each call sets only the paths that changed (`'messages[3].text'`), never the list.
// The pace inside that budget is the H5 page's (frontend/chat-stream/reveal.js): adaptive
// to the backlog, never more than a second behind the network, the rest at once at the end.

import { createReveal } from '../chat-stream/reveal.js';

export const SET_DATA_INTERVAL_MS = 70;

const defaultTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
};

/**
 * `createTyper({setData, path, text?, onIdle?, justSet?, intervalMs?, now?, timers?})`.
 *   setData(patch)  the page's setData (bound), called with `{[path]: shownText, ...}`
 *   path            where the shown text goes, e.g. 'messages[3].text'
 *   text            what is shown already (an answer read on after a reload)
 *   onIdle(text)    once the answer ended and all of it is shown; what it returns (the
 *                   message's final fields) goes out with that last setData
 *   justSet         the page called setData just now: the first call waits its turn
 * Returns `{push(piece), end(), replace(text), patch(fields), dispose(), text}`.
 * `patch(fields)` rides along with the next setData (a status, a flag): while the typer
 * runs, a page that sends every change through it stays within the budget.
 */
export function createTyper({
  setData,
  path,
  text = '',
  onIdle,
  justSet = false,
  intervalMs = SET_DATA_INTERVAL_MS,
  now = () => Date.now(),
  timers = defaultTimers,
}) {
  let reveal = createReveal({ now });
  let shown = text;
  let pending = null; // fields waiting for the next setData
  let lastSetAt = justSet ? now() : -Infinity;
  let timer = null;
  let disposed = false;
  let idleCalled = false;

  function schedule() {
    if (timer !== null || disposed) return;
    const wait = Math.max(0, lastSetAt + intervalMs - now());
    timer = timers.setTimeout(tick, wait);
  }

  function tick() {
    timer = null;
    if (disposed) return;
    const piece = reveal.take();
    const patch = pending || {};
    pending = null;
    if (piece) {
      shown += piece;
      patch[path] = shown;
    }
    const finished = reveal.done && !idleCalled;
    if (finished) {
      idleCalled = true;
      const last = onIdle ? onIdle(shown) : null;
      if (last) Object.assign(patch, last);
    }
    if (Object.keys(patch).length) {
      lastSetAt = now();
      setData(patch);
    }
    if (!finished && (reveal.pending || pending)) schedule();
  }

  return {
    push(piece) {
      if (!piece || disposed) return;
      reveal.push(piece);
      schedule();
    },
    end() {
      reveal.end();
      schedule();
    },
    /** Show `full` instead (the saved answer when it is not a continuation of the shown). */
    replace(full) {
      reveal = createReveal({ now });
      reveal.push(full);
      reveal.end();
      shown = '';
      idleCalled = false;
      schedule();
    },
    patch(fields) {
      pending = { ...(pending || {}), ...fields };
      schedule();
    },
    dispose() {
      disposed = true;
      if (timer !== null) timers.clearTimeout(timer);
      timer = null;
    },
    get text() {
      return shown;
    },
  };
}
