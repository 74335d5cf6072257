// The conversation: history, asking, the typing effect, stop, retry, ratings.

import { createReveal, openAnswer } from '../chat-stream/index.js';
import { api, fetchTransport, linkPath } from './api.js';
import { createComposer } from './composer.js';
import { createFollower } from './follow.js';
import { handoffKeep, handoffPost } from './handoff.js';
import { isOpen, turnFromRecord, turnMount, turnNew, turnRefresh, turnShowText } from './turns.js';
import { errorText, t } from './words.js';

const PAGE_SIZE = 20;
const LOAD_OLDER_PX = 240; // this close to the top, the page before is fetched
// Three missed pings (CHAT_PING_SECONDS, 15 s by default): the connection is dead.
const IDLE_TIMEOUT_MS = 45_000;
const SESSION_KEY = 'chat.session';

const newClientId = () =>
  `h5-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

export function createChat(layout, { config, onAuthLost }) {
  const follower = createFollower(layout.scroller, layout.jump);
  const state = {
    sessionId: null,
    turns: [],
    older: null, // link to the page before the first shown turn
    loadingOlder: false,
    reachedStart: false, // older pages were read up to the session's first turn
    active: null, // the turn whose answer streams now (one at a time)
    view: 0, // bumped on every session switch: late answers of an old view are dropped
    unsent: null, // {question, clientId} of a question that may not have reached the server
  };
  const composer = createComposer(layout, {
    maxChars: config.questionMaxChars,
    onSend: (question) => ask(question),
    onStop: () => stop(),
  });
  const actions = { copy, rate, retry: (turn) => ask(turn.question), reconnect };
  composer.setEnabled(false);

  /** A session's view is loading (`false`: it is shown and takes questions). */
  function setLoading(loading) {
    composer.setEnabled(!loading);
    if (loading) delete layout.app.dataset.ready;
    else layout.app.dataset.ready = '';
  }

  // --- What is shown -----------------------------------------------------------------

  function setSession(id, title) {
    state.sessionId = id;
    if (id === null) sessionStorage.removeItem(SESSION_KEY);
    else sessionStorage.setItem(SESSION_KEY, String(id));
    layout.title.textContent = title || t('newChat');
  }

  function refreshFrame() {
    layout.empty.hidden = state.turns.length > 0 || state.loadingOlder;
    const busy = Boolean(state.active);
    layout.sessionsButton.disabled = busy;
    layout.newButton.disabled = busy;
    layout.older.hidden = !state.loadingOlder && !state.reachedStart;
    layout.older.textContent = state.loadingOlder ? t('loadingOlder') : t('noOlder');
  }

  function turnElement(turn) {
    const element = turnMount(turn, actions);
    if (turn.text) turnShowText(turn, turn.text);
    return element;
  }

  function clearView() {
    state.view += 1;
    state.turns = [];
    state.older = null;
    state.reachedStart = false;
    layout.turns.replaceChildren();
    layout.hideNotice();
  }

  // --- History -------------------------------------------------------------------------

  async function openSession(session) {
    clearView();
    setSession(session.id, session.title);
    const view = state.view;
    state.loadingOlder = true;
    setLoading(true);
    refreshFrame();
    let page;
    try {
      page = await api('GET', `/api/chat/sessions/${session.id}/records/?page_size=${PAGE_SIZE}`);
    } catch (error) {
      if (view !== state.view) return;
      state.loadingOlder = false;
      if (error.code === 'session_not_found') newSession();
      else
        layout.showNotice(t('historyFailed'), {
          label: t('retry'),
          run: () => openSession(session),
        });
      refreshFrame();
      return;
    }
    if (view !== state.view) return;
    state.loadingOlder = false;
    setLoading(false);
    state.turns = page.results.map(turnFromRecord);
    layout.turns.append(...state.turns.map(turnElement));
    state.older = page.before;
    refreshFrame();
    follower.toBottom();
    // An answer still being written (the page was reloaded meanwhile): read it on.
    const open = state.turns.find(isOpen);
    if (open) stream(open, { recordId: open.recordId });
    fillScreen();
  }

  async function openSessionById(id) {
    setLoading(true);
    let session;
    try {
      session = await api('GET', `/api/chat/sessions/${id}/`);
    } catch (error) {
      if (error.code === 'network') {
        layout.showNotice(t('historyFailed'), {
          label: t('retry'),
          run: () => openSessionById(id),
        });
      } else if (error.status !== 401) {
        newSession(); // gone (deleted, or another user's tab)
      }
      return;
    }
    await openSession(session);
  }

  /** On arrival: the session this tab was in, else the latest one, else a new one. */
  async function openStart() {
    setLoading(true);
    const remembered = Number(sessionStorage.getItem(SESSION_KEY));
    if (remembered > 0) return openSessionById(remembered);
    try {
      const sessions = await api('GET', '/api/chat/sessions/?page_size=1');
      if (sessions.results.length) return openSession(sessions.results[0]);
    } catch {
      // Shown as an empty chat; the problem shows again on the first question.
    }
    return newSession();
  }

  function newSession() {
    clearView();
    setSession(null, '');
    setLoading(false);
    refreshFrame();
    layout.input.focus();
  }

  async function loadOlder() {
    if (!state.older || state.loadingOlder) return;
    const view = state.view;
    state.loadingOlder = true;
    refreshFrame();
    try {
      const page = await api('GET', linkPath(state.older));
      if (view !== state.view) return;
      const turns = page.results.map(turnFromRecord);
      follower.prepend(() => layout.turns.prepend(...turns.map(turnElement)));
      state.turns = [...turns, ...state.turns];
      state.older = page.before;
      state.reachedStart = !page.before;
    } catch {
      if (view !== state.view) return;
      layout.showNotice(t('historyFailed'), { label: t('retry'), run: loadOlder });
    } finally {
      if (view === state.view) state.loadingOlder = false;
      refreshFrame();
    }
    fillScreen();
  }

  /** Older pages until the list can scroll (scrolling up is what asks for more). */
  function fillScreen() {
    const { scroller } = layout;
    if (state.older && scroller.scrollHeight <= scroller.clientHeight + LOAD_OLDER_PX) loadOlder();
  }

  layout.scroller.addEventListener(
    'scroll',
    () => {
      if (layout.scroller.scrollTop < LOAD_OLDER_PX) loadOlder();
    },
    { passive: true },
  );

  // --- Asking and the typing effect ------------------------------------------------------

  let frameWanted = false;
  function wantFrame() {
    if (!frameWanted) {
      frameWanted = true;
      requestAnimationFrame(frame);
    }
  }

  function frame() {
    frameWanted = false;
    const turn = state.active;
    if (!turn) return;
    const piece = turn.reveal.take();
    if (piece) {
      const first = !turn.text;
      turn.text += piece;
      turnShowText(turn, turn.text, { streaming: true });
      if (first) turnRefresh(turn);
      follower.grew();
    }
    if (turn.ended && turn.reveal.done) finish(turn);
    else if (turn.reveal.pending) wantFrame();
  }

  function finish(turn) {
    turn.status = turn.ended.status;
    turn.errorCode = turn.ended.error_code || turn.errorCode;
    turn.notice = '';
    turnShowText(turn, turn.text); // without the cursor
    turnRefresh(turn);
    state.active = null;
    composer.setBusy(false);
    refreshFrame();
    follower.grew();
    handoffKeep(turn);
    handoffPost();
  }

  function ask(question) {
    if (state.active) return;
    const clientId =
      state.unsent && state.unsent.question === question ? state.unsent.clientId : newClientId();
    const turn = turnNew({ question, clientId, sessionId: state.sessionId });
    state.turns.push(turn);
    layout.turns.append(turnElement(turn));
    layout.hideNotice();
    composer.clear();
    follower.toBottom();
    const body = { question, client_id: clientId, terminal: 'webview' };
    if (state.sessionId !== null) body.session_id = state.sessionId;
    stream(turn, { body });
  }

  /** Read an answer: a new question (`body`), or one asked before (`recordId`). */
  function stream(turn, { body, recordId = null }) {
    const view = state.view;
    const live = () => view === state.view && state.active === turn;
    state.active = turn;
    if (recordId !== null) {
      // Read from its first event: the history's text was only a checkpoint.
      turn.text = '';
      turnShowText(turn, '', { fresh: true });
    }
    turn.ended = null;
    turn.reveal = createReveal({ now: () => performance.now() });
    composer.setBusy(true);
    refreshFrame();
    turn.handle = openAnswer({
      transport: fetchTransport,
      body,
      recordId,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      onStart(start) {
        if (!live()) return;
        turn.recordId = start.record_id;
        turn.model = start.model;
        turn.status = 'streaming';
        state.unsent = null;
        if (state.sessionId === null) setSession(start.session_id, turn.question.slice(0, 30));
        turnRefresh(turn);
      },
      onDelta(text) {
        if (!live()) return;
        turn.reveal.push(text);
        if (turn.notice) {
          turn.notice = '';
          turn.lost = false;
          turnRefresh(turn);
        }
        wantFrame();
      },
      onError(error) {
        turn.errorCode = error.code;
      },
      onDone(done) {
        if (!live()) return;
        turn.ended = done;
        turn.reveal.end();
        wantFrame();
      },
      onSaved(record) {
        if (!live()) return;
        turn.text = record.answer;
        turnShowText(turn, turn.text, { fresh: true });
        turn.ended = record;
        turn.errorCode = record.error_code;
        finish(turn);
      },
      onReconnecting() {
        if (!live()) return;
        turn.notice = t('reconnecting');
        turnRefresh(turn);
      },
      onFail(problem) {
        if (live()) failed(turn, problem);
      },
    });
  }

  function failed(turn, problem) {
    if (turn.recordId !== null) {
      // The answer goes on at the server; only this page lost it. Offer to read on.
      turn.lost = true;
      turn.notice = errorText(problem);
      turnRefresh(turn);
      return;
    }
    // The question was not taken: it goes back into the input, nothing is lost.
    state.active = null;
    state.turns = state.turns.filter((other) => other !== turn);
    turn.view.root.remove();
    composer.setBusy(false);
    refreshFrame();
    if (problem.status === 401) {
      composer.restore(turn.question);
      onAuthLost(problem);
      return;
    }
    if (problem.code === 'session_not_found') {
      setSession(null, '');
      layout.showNotice(errorText(problem));
      ask(turn.question);
      return;
    }
    if (problem.code === 'duplicate_client_id') {
      // An earlier try did reach the server: show the session as it is.
      state.unsent = null;
      layout.showNotice(errorText(problem));
      if (state.sessionId !== null) openSessionById(state.sessionId);
      return;
    }
    state.unsent = { question: turn.question, clientId: turn.clientId };
    composer.restore(turn.question);
    layout.showNotice(errorText(problem), {
      label: t('retry'),
      run: () => {
        composer.clear();
        ask(turn.question);
      },
    });
  }

  async function stop() {
    const turn = state.active;
    if (!turn) return;
    try {
      await turn.handle.stop();
    } catch {
      layout.showNotice(errorText({ code: 'network' }));
      composer.setBusy(true);
    }
  }

  /** The reader asks to read on an answer whose connection was given up. */
  function reconnect(turn) {
    if (turn === state.active && turn.handle.reconnect()) {
      turn.lost = false;
      turn.notice = t('reconnecting');
      turnRefresh(turn);
    }
  }

  /** Back on screen or back online: an answer in flight is read on from its last event
   * (its connection may have died meanwhile without a word). Routine: nothing is said. */
  function resume() {
    if (state.active && state.active.recordId !== null) state.active.handle.reconnect();
  }

  // --- Answer tools ------------------------------------------------------------------------

  async function rate(turn, rating) {
    const wanted = turn.rating === rating ? 'none' : rating;
    const before = turn.rating;
    turn.rating = wanted;
    turnRefresh(turn);
    try {
      const record = await api('POST', `/api/chat/records/${turn.recordId}/rating`, {
        rating: wanted,
      });
      turn.rating = record.rating;
      handoffKeep(turn);
    } catch {
      turn.rating = before;
      layout.showToast(t('ratingFailed'));
    }
    turnRefresh(turn);
  }

  async function copy(turn) {
    try {
      await navigator.clipboard.writeText(turn.text);
      layout.showToast(t('copied'));
    } catch {
      layout.showToast(t('copyFailed'));
    }
  }

  return {
    openStart,
    newSession,
    openSession,
    resume,
    /** Signed out: drop the stream (the server keeps the answer) and the view's state. */
    close() {
      if (state.active) state.active.handle.close();
      state.active = null;
      composer.setBusy(false);
      clearView();
      refreshFrame();
    },
    currentSessionId: () => state.sessionId,
    /** An answer that has ended but is still being revealed (frames wait while the page
     * is hidden) is finished now. */
    flush() {
      const turn = state.active;
      if (!turn || !turn.ended) return;
      turn.text += turn.reveal.take();
      finish(turn);
    },
  };
}
