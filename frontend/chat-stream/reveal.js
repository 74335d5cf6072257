// The typing effect's pace: received text waits in a buffer and is revealed a little on
// every frame (requestAnimationFrame in a page, a ~15/s timer around setData in a
// mini-program).
//
// The pace adapts to the backlog: at least `minCharsPerSecond`, and fast enough to drain
// what waits within about `drainMs`, so a fast model is never shown in slow motion; text
// that arrived `maxLagMs` ago is shown whatever the pace, so the display never lags the
// network by more than that. When the answer ends, the rest shows at once.

const isHighSurrogate = (code) => code >= 0xd800 && code <= 0xdbff;

/**
 * `push(text)` what arrives, `end()` when the answer is over, and `take()` on every frame:
 * it returns the text to add to the display now ('' when none). `now()` is the clock in ms.
 */
export function createReveal({
  now = () => Date.now(),
  minCharsPerSecond = 40,
  drainMs = 400,
  maxLagMs = 1000,
} = {}) {
  let text = '';
  let shown = 0; // UTF-16 units of `text` already taken
  let owed = 0; // fraction of a character carried to the next frame
  let lastTake = null;
  let ended = false;
  const arrivals = []; // {end, at}: where each pushed piece ends in `text`, and when it came

  function lagTarget(at) {
    while (arrivals.length && arrivals[0].end <= shown) arrivals.shift();
    let target = shown;
    for (const arrival of arrivals) {
      if (arrival.at > at - maxLagMs) break;
      target = arrival.end;
    }
    return target;
  }

  return {
    push(piece) {
      if (!piece) return;
      text += piece;
      arrivals.push({ end: text.length, at: now() });
    },
    end() {
      ended = true;
    },
    take() {
      const at = now();
      const elapsed = lastTake === null ? 16 : Math.min(Math.max(at - lastTake, 0), 1000);
      lastTake = at;
      const backlog = text.length - shown;
      if (backlog === 0) {
        owed = 0;
        return '';
      }
      let end = text.length;
      if (!ended) {
        const perSecond = Math.max(minCharsPerSecond, (backlog * 1000) / drainMs);
        owed += (perSecond * elapsed) / 1000;
        const count = Math.floor(owed);
        owed -= count;
        end = Math.min(text.length, Math.max(shown + count, lagTarget(at)));
        // Never show half of a surrogate pair (an emoji is two UTF-16 units).
        if (end > shown && isHighSurrogate(text.charCodeAt(end - 1))) {
          end += end < text.length ? 1 : -1;
        }
      }
      const piece = text.slice(shown, end);
      shown = end;
      return piece;
    },
    /** Characters received but not shown yet. */
    get pending() {
      return text.length - shown;
    },
    /** The answer ended and everything is shown. */
    get done() {
      return ended && shown === text.length;
    },
  };
}
