// Answers as Markdown, rendered safely and incrementally.
//
// Safety: markdown-it with `html: false` turns any HTML in an answer into text and refuses
// `javascript:`-style links; DOMPurify sanitizes what it produced all the same, and the
// page's Content-Security-Policy forbids inline script. Images are not rendered (an answer
// must not make the reader's phone fetch addresses it names).
//
// Incremental: while an answer streams, the blocks that can no longer change (everything
// before a blank line that ends a top-level block) are rendered once and kept; only the
// last, growing group of blocks is rendered again on each frame. The work per frame
// follows the new text, not the length of the answer.

import DOMPurify from 'dompurify';
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, breaks: true });
md.disable('image');

// Table cells say their alignment in a style attribute, which the page's CSP refuses:
// say it with a class instead.
for (const rule of ['th_open', 'td_open']) {
  md.renderer.rules[rule] = (tokens, index, options, env, renderer) => {
    const token = tokens[index];
    const align = /text-align:(\w+)/.exec(token.attrGet('style') || '');
    if (token.attrs) token.attrs = token.attrs.filter(([name]) => name !== 'style');
    if (align) token.attrJoin('class', `align-${align[1]}`);
    return renderer.renderToken(tokens, index, options);
  };
}

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

const PURIFY = { RETURN_DOM_FRAGMENT: true, FORBID_ATTR: ['style'] };
const LINE_END = /\r\n?|\n/g;

/** Parsed Markdown to a sanitized DocumentFragment. */
function renderTokens(tokens) {
  return DOMPurify.sanitize(md.renderer.render(tokens, md.options, {}), PURIFY);
}

/**
 * Where `source` can be cut into groups of blocks that never change however the text goes
 * on: before each top-level block that follows a blank line. Character offsets, ascending.
 */
function cutOffsets(tokens, source) {
  const cutLines = [];
  let previousEnd = -1;
  for (const token of tokens) {
    if (token.level !== 0 || !token.map || token.nesting === -1) continue;
    const [start, end] = token.map;
    if (previousEnd >= 0 && start > previousEnd) cutLines.push(start);
    previousEnd = end;
  }
  const offsets = [];
  LINE_END.lastIndex = 0;
  let line = 0;
  let match;
  while (offsets.length < cutLines.length && (match = LINE_END.exec(source)) !== null) {
    line += 1;
    if (line === cutLines[offsets.length]) offsets.push(match.index + match[0].length);
  }
  return offsets;
}

/** Render a group of blocks into `element` (a heading first gets a heading's room). */
function fill(element, tokens) {
  element.classList.toggle(
    'starts-heading',
    tokens.length > 0 && tokens[0].type === 'heading_open',
  );
  element.replaceChildren(renderTokens(tokens));
}

function placeCursor(container) {
  let target = container;
  while (target.lastElementChild && !['BR', 'HR'].includes(target.lastElementChild.tagName)) {
    target = target.lastElementChild;
  }
  const cursor = document.createElement('span');
  cursor.className = 'cursor';
  target.append(cursor);
}

/**
 * An answer's Markdown in `root`, as groups of blocks ("chunks"): each is rendered once,
 * when the text after it shows it can no longer change, and once shown the browser skips
 * laying out and painting it while it is off screen (content-visibility). Only the last
 * group, still growing, is rendered again. `show(text, {streaming})` with the whole text
 * so far, which extends the text of the previous call (`reset()` first for another text);
 * while streaming, a cursor blinks at the end.
 */
export function createMarkdownView(root) {
  const growing = document.createElement('div');
  growing.className = 'md-growing';
  root.replaceChildren(growing);
  let settledChars = 0;
  // Chunks rendered by the previous call: shown once now, so their size is known and the
  // browser may skip them when off screen without the page changing height.
  let shownOnce = [];

  return {
    show(text, { streaming = false } = {}) {
      for (const chunk of shownOnce) chunk.classList.add('is-skippable');
      shownOnce = [];
      let rest = text.slice(settledChars);
      let tokens = md.parse(rest, {});
      const cuts = cutOffsets(tokens, rest);
      if (cuts.length) {
        let from = 0;
        for (const cut of cuts) {
          const chunk = document.createElement('div');
          chunk.className = 'md-chunk';
          fill(chunk, md.parse(rest.slice(from, cut), {}));
          root.insertBefore(chunk, growing);
          shownOnce.push(chunk);
          from = cut;
        }
        settledChars += from;
        rest = rest.slice(from);
        tokens = md.parse(rest, {});
      }
      fill(growing, tokens);
      if (streaming) placeCursor(growing);
    },
    reset() {
      growing.replaceChildren();
      root.replaceChildren(growing);
      settledChars = 0;
      shownOnce = [];
    },
  };
}
