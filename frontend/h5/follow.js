// Auto-scroll while the reader is at the bottom; otherwise a "jump to latest" button.
//
// Only the reader stops the following, by scrolling away (wheel, touch, keys, the scroll
// bar): a scroll the page's own layout causes (a block re-flowing above) does not.

const NEAR_BOTTOM_PX = 48;
const GESTURE_MS = 1000; // a scroll this soon after the reader's gesture is theirs

export function createFollower(scroller, jumpButton) {
  let following = true;
  let gestureAt = -Infinity;
  const atBottom = () =>
    scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= NEAR_BOTTOM_PX;
  const gesture = () => {
    gestureAt = performance.now();
  };
  for (const type of ['wheel', 'touchstart', 'touchmove', 'keydown', 'pointerdown']) {
    scroller.addEventListener(type, gesture, { passive: true });
  }

  scroller.addEventListener(
    'scroll',
    () => {
      if (atBottom()) following = true;
      else if (performance.now() - gestureAt < GESTURE_MS) following = false;
      jumpButton.hidden = following;
    },
    { passive: true },
  );
  const toBottom = () => {
    following = true;
    jumpButton.hidden = true;
    scroller.scrollTop = scroller.scrollHeight;
  };
  jumpButton.addEventListener('click', toBottom);

  return {
    /** After content was added at the bottom. */
    grew() {
      if (following) scroller.scrollTop = scroller.scrollHeight;
    },
    toBottom,
    /** Add content at the top without moving what the reader looks at. */
    prepend(add) {
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      add();
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    },
  };
}
