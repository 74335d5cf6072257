// One question and its answer ("a turn"): what the page knows of it, and its elements.

import { h, icon } from './dom.js';
import { createMarkdownView } from './markdown.js';
import { errorText, t } from './words.js';

// Answers that ended and were seen can be rated (docs/api.md, Ratings).
const RATEABLE = new Set(['done', 'stopped', 'interrupted']);
const OPEN = new Set(['pending', 'streaming']);

export const isOpen = (turn) => OPEN.has(turn.status);

/** A question being asked now. */
export function turnNew({ question, clientId, sessionId }) {
  return {
    clientId,
    recordId: null,
    sessionId,
    question,
    text: '',
    status: 'pending',
    errorCode: null,
    rating: 'none',
    createdAt: new Date().toISOString(),
    model: '',
    notice: '', // a passing word under the answer ("reconnecting...")
  };
}

/** A turn from the history API's record. */
export function turnFromRecord(record) {
  return {
    clientId: record.client_id,
    recordId: record.id,
    sessionId: record.session_id,
    question: record.question,
    text: record.answer,
    status: record.status,
    errorCode: record.error_code,
    rating: record.rating,
    createdAt: record.created_at,
    model: record.model,
    notice: '',
  };
}

/** The turn's elements; `actions` are the page's handlers: copy, rate, retry, reconnect. */
export function turnMount(turn, actions) {
  const answer = h('div', { class: 'answer md', hidden: true });
  const thinking = h(
    'div',
    { class: 'thinking', role: 'status' },
    h('span', { class: 'visually-hidden' }, t('thinking')),
    h('i'),
    h('i'),
    h('i'),
  );
  const status = h('div', { class: 'answer-status' });
  // An icon alone (its word as the label), or an icon with its word.
  const button = (name, label, onclick) =>
    h(
      'button',
      { type: 'button', class: `act act-${name}`, 'aria-label': label, title: label, onclick },
      icon(name),
    );
  const worded = (name, label, onclick) =>
    h(
      'button',
      { type: 'button', class: `act act-${name}`, onclick },
      icon('retry'),
      h('span', {}, label),
    );
  const like = button('like', t('like'), () => actions.rate(turn, 'useful'));
  const dislike = button('dislike', t('dislike'), () => actions.rate(turn, 'not_useful'));
  const copy = button('copy', t('copy'), () => actions.copy(turn));
  const retry = worded('retry', t('retry'), () => actions.retry(turn));
  const reconnect = worded('reconnect', t('reconnect'), () => actions.reconnect(turn));
  const tools = h('div', { class: 'answer-actions' }, copy, like, dislike, retry, reconnect);
  const root = h(
    'article',
    { class: 'turn' },
    h('div', { class: 'msg msg-user' }, h('div', { class: 'bubble' }, turn.question)),
    h(
      'div',
      { class: 'msg msg-bot' },
      h('div', { class: 'bubble' }, thinking, answer, status),
      tools,
    ),
  );
  turn.view = {
    root,
    answer,
    markdown: createMarkdownView(answer),
    status,
    like,
    dislike,
    retry,
    reconnect,
    copy,
  };
  turnRefresh(turn);
  return root;
}

/** Show `text` as the answer so far (it extends what was shown, unless `fresh`). */
export function turnShowText(turn, text, { streaming = false, fresh = false } = {}) {
  if (fresh) turn.view.markdown.reset();
  turn.view.markdown.show(text, { streaming });
}

function statusWords(turn) {
  if (turn.notice) return turn.notice;
  if (turn.errorCode) return errorText({ code: turn.errorCode });
  if (turn.status === 'stopped') return t('statusStopped');
  if (turn.status === 'interrupted') return t('statusInterrupted');
  return '';
}

/** Bring the turn's status line, thinking dots and buttons up to date. */
export function turnRefresh(turn) {
  const view = turn.view;
  if (!view) return;
  view.root.dataset.status = turn.status;
  if (turn.recordId) view.root.dataset.recordId = turn.recordId;
  view.root.classList.toggle('is-waiting', isOpen(turn) && !turn.text);
  view.answer.hidden = !turn.text;
  view.root.classList.toggle('is-open', isOpen(turn));
  const words = statusWords(turn);
  view.status.textContent = words;
  view.status.hidden = !words;
  view.status.classList.toggle('is-error', Boolean(turn.errorCode) || turn.status === 'error');
  const rateable = RATEABLE.has(turn.status);
  view.like.hidden = !rateable;
  view.dislike.hidden = !rateable;
  view.like.setAttribute('aria-pressed', String(turn.rating === 'useful'));
  view.dislike.setAttribute('aria-pressed', String(turn.rating === 'not_useful'));
  view.copy.hidden = isOpen(turn) || !turn.text;
  // A blocked answer would be blocked again: no retry (docs/protocol.md §6).
  view.retry.hidden = turn.status !== 'error' || turn.errorCode === 'content_blocked';
  view.reconnect.hidden = !(isOpen(turn) && turn.lost);
}
