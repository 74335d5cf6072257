// The input and its send / stop button.

import { icon } from './dom.js';
import { t } from './words.js';

const MAX_INPUT_PX = 132; // about five lines, then the input scrolls

export function createComposer(layout, { onSend, onStop, maxChars }) {
  const { form, input, sendButton } = layout;
  let busy = false;

  const fit = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, MAX_INPUT_PX)}px`;
  };
  const submit = () => {
    if (busy) {
      sendButton.disabled = true; // one stop is enough; `done` ends the answer
      onStop();
      return;
    }
    const question = input.value.trim();
    if (!question) return;
    // Counted as the server counts: characters, not UTF-16 units (an emoji is one).
    if ([...question].length > maxChars) {
      layout.showNotice(t('tooLong', { max: maxChars }));
      return;
    }
    onSend(question);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener('input', fit);
  input.addEventListener('keydown', (event) => {
    // Enter sends, Shift+Enter is a new line; Enter that confirms an IME candidate
    // (typing Chinese) is neither.
    if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    if (!busy) submit();
  });

  return {
    /** The question left the input. */
    clear() {
      input.value = '';
      fit();
    },
    /** Sending failed: the question goes back, unless something new was typed meanwhile. */
    restore(question) {
      if (!input.value.trim()) {
        input.value = question;
        fit();
      }
    },
    /** Nothing can be sent while a session's history loads (it would land among it). */
    setEnabled(enabled) {
      input.disabled = !enabled;
      sendButton.disabled = !enabled;
    },
    /** While an answer streams the button stops it. */
    setBusy(value) {
      busy = value;
      sendButton.disabled = false;
      sendButton.classList.toggle('is-stop', busy);
      sendButton.replaceChildren(icon(busy ? 'stop' : 'send'));
      sendButton.setAttribute('aria-label', t(busy ? 'stop' : 'send'));
    },
  };
}
