// UTF-8 decoding of a byte stream that arrives in arbitrary pieces.
//
// A piece may end inside a multi-byte character (a CJK character is 3 bytes, an emoji 4);
// the decoder keeps the incomplete sequence for the next piece. Where the runtime has
// TextDecoder it is used with {stream: true}; otherwise (older mini-program base libraries,
// some iOS versions) `createFallbackDecoder` does the same job: it follows the WHATWG
// Encoding Standard's UTF-8 decoder step by step, so both paths give identical text, also
// for invalid bytes (each becomes U+FFFD exactly where TextDecoder puts one).

const REPLACEMENT = 0xfffd;
const BOM = 0xfeff;
// String.fromCharCode takes its arguments on the stack: flush in slices of this size.
const FLUSH_UNITS = 8192;

/** Bytes as a Uint8Array, from an ArrayBuffer (any realm) or a typed-array view. */
export function asBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  return new Uint8Array(chunk);
}

/**
 * A streaming UTF-8 decoder: `decode(bytes, {stream: true})` for each piece, `decode()` at
 * the end (an incomplete sequence left then becomes U+FFFD). `native: false` forces the
 * fallback even where TextDecoder exists (the tests compare both).
 */
export function createUtf8Decoder({ native = true } = {}) {
  // A bare, guarded name: a mini-program's JavaScriptCore on iOS before 12.2 has no globalThis.
  const NativeDecoder = native && typeof TextDecoder === 'function' ? TextDecoder : undefined;
  if (typeof NativeDecoder === 'function') {
    const decoder = new NativeDecoder('utf-8');
    return {
      decode(chunk, options) {
        return chunk === undefined ? decoder.decode() : decoder.decode(asBytes(chunk), options);
      },
    };
  }
  return createFallbackDecoder();
}

export function createFallbackDecoder() {
  let needed = 0; // continuation bytes still expected
  let seen = 0;
  let codePoint = 0;
  let lower = 0x80; // the next continuation byte's allowed range
  let upper = 0xbf;
  let atStart = true; // a BOM is dropped at the start of the stream only, as TextDecoder does

  function reset() {
    needed = 0;
    seen = 0;
    codePoint = 0;
    lower = 0x80;
    upper = 0xbf;
  }

  return {
    decode(chunk, { stream = false } = {}) {
      const units = [];
      let text = '';
      const emit = (point) => {
        if (atStart) {
          atStart = false;
          if (point === BOM) return;
        }
        if (point > 0xffff) {
          point -= 0x10000;
          units.push(0xd800 + (point >> 10), 0xdc00 + (point & 0x3ff));
        } else {
          units.push(point);
        }
        if (units.length >= FLUSH_UNITS) {
          text += String.fromCharCode.apply(null, units);
          units.length = 0;
        }
      };
      const bytes = chunk === undefined ? new Uint8Array(0) : asBytes(chunk);
      for (let i = 0; i < bytes.length; i += 1) {
        const byte = bytes[i];
        if (needed === 0) {
          if (byte <= 0x7f) emit(byte);
          else if (byte >= 0xc2 && byte <= 0xdf) {
            needed = 1;
            codePoint = byte & 0x1f;
          } else if (byte >= 0xe0 && byte <= 0xef) {
            if (byte === 0xe0) lower = 0xa0;
            if (byte === 0xed) upper = 0x9f;
            needed = 2;
            codePoint = byte & 0x0f;
          } else if (byte >= 0xf0 && byte <= 0xf4) {
            if (byte === 0xf0) lower = 0x90;
            if (byte === 0xf4) upper = 0x8f;
            needed = 3;
            codePoint = byte & 0x07;
          } else emit(REPLACEMENT);
          continue;
        }
        if (byte < lower || byte > upper) {
          // The sequence is broken: one U+FFFD for it, and this byte starts afresh.
          reset();
          emit(REPLACEMENT);
          i -= 1;
          continue;
        }
        lower = 0x80;
        upper = 0xbf;
        codePoint = (codePoint << 6) | (byte & 0x3f);
        seen += 1;
        if (seen === needed) {
          const point = codePoint;
          reset();
          emit(point);
        }
      }
      if (!stream) {
        if (needed !== 0) {
          reset();
          emit(REPLACEMENT);
        }
        atStart = true;
      }
      return text + String.fromCharCode.apply(null, units);
    },
  };
}
