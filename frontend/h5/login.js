// Who the reader is: a web-view ticket swapped for a token, the tab's token, or (on a
// server with the development login on) an openid typed in.

import { api, token } from './api.js';
import { h } from './dom.js';
import { errorText, t } from './words.js';

/** The ticket from the address, removed from it at once (it must not linger in history,
 * bookmarks or a shared link). */
function ticketTake() {
  const url = new URL(location.href);
  const ticket = url.searchParams.get('ticket');
  if (ticket === null) return null;
  url.searchParams.delete('ticket');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  return ticket;
}

function devLoginForm(onToken) {
  const input = h('input', {
    class: 'gate-input',
    name: 'openid',
    value: 'o_demo',
    autocomplete: 'off',
    'aria-label': 'openid',
  });
  const problem = h('p', { class: 'gate-problem', hidden: true });
  const form = h(
    'form',
    { class: 'gate-form' },
    h('h2', {}, t('devLoginTitle')),
    h('p', { class: 'gate-hint' }, t('devLoginHint')),
    input,
    h('button', { type: 'submit', class: 'gate-button' }, t('devLoginButton')),
    problem,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await api('POST', '/api/auth/dev/login', { openid: input.value.trim() });
      onToken(answer.token);
    } catch (error) {
      problem.textContent = errorText(error);
      problem.hidden = false;
    }
  });
  return form;
}

/** Shows why the reader is not signed in, and the dev login where the server has it.
 * `onSignedIn` runs once a new token is kept. */
export function gateShow(gate, { config, message, onSignedIn }) {
  const signedIn = (value) => {
    token.set(value);
    gate.hidden = true;
    onSignedIn();
  };
  gate.replaceChildren(
    ...(message ? [h('p', { class: 'gate-message' }, message)] : []),
    config.devLogin
      ? devLoginForm(signedIn)
      : h('p', { class: 'gate-message' }, t('openFromMiniProgram')),
  );
  gate.hidden = false;
}

/** Resolves true once the page has a token; false when the reader has to act (the gate
 * then says what to do). */
export async function signIn(gate, { config, onSignedIn }) {
  const ticket = ticketTake();
  if (ticket !== null) {
    token.clear();
    gate.replaceChildren(h('p', { class: 'gate-message' }, t('signingIn')));
    gate.hidden = false;
    try {
      const answer = await api('POST', '/api/auth/webview-ticket/exchange', { ticket });
      token.set(answer.token);
      gate.hidden = true;
      return true;
    } catch (error) {
      gateShow(gate, { config, message: errorText(error), onSignedIn });
      return false;
    }
  }
  if (token.get()) return true;
  gateShow(gate, { config, message: '', onSignedIn });
  return false;
}
