// Answers as Markdown for the mini-program page: markdown-it turns the text into HTML that
// the page's <mp-html> component renders (mp-html from npm). `html: false` makes any HTML
// in an answer plain text and refuses `javascript:`-style links; images are not rendered
// (an answer must not make the reader's phone fetch addresses it names). mp-html shows
// only the tags it knows, as text otherwise, so a page without it falls back to <text>.

import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, breaks: true });
md.disable('image');

/** The HTML of an answer's Markdown. */
export function markdownHtml(text) {
  return md.render(String(text || ''));
}
