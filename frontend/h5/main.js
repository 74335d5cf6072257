// The H5 chat page (templates/h5/chat.html): signs in, then shows the conversation.

import './chat.css';
import { token, whenAuthLost } from './api.js';
import { createChat } from './chat.js';
import { handoffInit, handoffPost } from './handoff.js';
import { layoutBuild } from './layout.js';
import { gateShow, signIn } from './login.js';
import { createSessionDrawer } from './sessions.js';
import { errorText } from './words.js';

const config = JSON.parse(document.getElementById('h5-config').textContent);
const layout = layoutBuild(document.getElementById('app'));

/** Keep the page the height of what is visible, so the input stays above the keyboard
 * where the browser does not resize the page for it (iOS, WeChat's web-view). */
function fitToViewport(app) {
  const viewport = window.visualViewport;
  if (!viewport) return;
  const fit = () => {
    if (viewport.scale !== 1) return; // the reader zoomed in: not the keyboard
    app.style.height = `${viewport.height}px`;
    window.scrollTo(0, 0);
  };
  viewport.addEventListener('resize', fit);
  fit();
}

fitToViewport(layout.app);
handoffInit();

const chat = createChat(layout, { config, onAuthLost: authLost });
const drawer = createSessionDrawer(layout, {
  onPick: (session) => chat.openSession(session),
  onNew: () => chat.newSession(),
  currentId: () => chat.currentSessionId(),
});
layout.sessionsButton.addEventListener('click', () => drawer.open());
layout.newButton.addEventListener('click', () => chat.newSession());

function authLost() {
  token.clear();
  chat.close();
  gateShow(layout.gate, {
    config,
    message: errorText({ code: config.devLogin ? 'authDev' : 'auth' }),
    onSignedIn: () => chat.openStart(),
  });
}
whenAuthLost(authLost);

// An answer in flight is read on when the page comes back (its connection may have died
// while the phone slept) and when the network does.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') chat.resume();
});
addEventListener('online', () => chat.resume());
// Leaving (the mini-program goes back, the tab closes): an answer that has ended is shown
// whole at once, and the chat list goes to the mini-program.
addEventListener('pagehide', () => {
  chat.flush();
  handoffPost();
});
addEventListener('pageshow', (event) => {
  if (event.persisted) chat.resume();
});

signIn(layout.gate, { config, onSignedIn: () => chat.openStart() }).then((signedIn) => {
  if (signedIn) chat.openStart();
});
