// The server's event stream (docs/protocol.md §3), from bytes to protocol events.
//
// Bytes are decoded by one streaming UTF-8 decoder per connection and framed by the
// eventsource-parser package, so neither a character nor a frame split across pieces,
// nor many frames in one piece, CRLF line ends or `: ping` comments change what comes out.

import { createParser } from 'eventsource-parser';

import { createUtf8Decoder } from './utf8.js';

/** The terminator frame `data: [DONE]`, the last of every stream. */
export const DONE_SENTINEL = '[DONE]';

/**
 * Reads one connection's body. `onEvent({type, id, data})` gets each event (`start`,
 * `delta`, `error`, `done`; `id` is the number of its `id:` line) and `{type: '[DONE]'}`
 * for the terminator; `onComment(text)` each comment (`ping`); `onInvalid(frame)` a frame
 * whose data is not JSON. `push(chunk)` takes an ArrayBuffer, a typed array or a string;
 * `end()` when the body is over.
 */
export function createEventReader({ onEvent, onComment, onInvalid, native = true }) {
  const decoder = createUtf8Decoder({ native });
  const parser = createParser({
    onEvent(message) {
      if (message.data === DONE_SENTINEL) {
        onEvent({ type: DONE_SENTINEL, id: null, data: null });
        return;
      }
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        if (onInvalid) onInvalid(message);
        return;
      }
      const id = message.id === undefined || message.id === '' ? null : Number(message.id);
      onEvent({ type: message.event || (data && data.type), id, data });
    },
    onComment(comment) {
      if (onComment) onComment(comment);
    },
  });
  let lastChar = '';
  const feed = (text) => {
    if (!text) return;
    parser.feed(text);
    lastChar = text[text.length - 1];
  };
  return {
    push(chunk) {
      feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    },
    end() {
      feed(decoder.decode());
      // A CR at the very end waits in the parser for a possible LF; there is none.
      if (lastChar === '\r') parser.feed('\n');
      // A frame without its closing blank line is not an event (the SSE rules): it is
      // dropped here, and a resume sends it again from the last complete event.
      parser.reset();
    },
  };
}
