// The session list (a drawer from the left): pick a session, start a new one.

import { api, linkPath } from './api.js';
import { h } from './dom.js';
import { errorText, t } from './words.js';

const PAGE_SIZE = 20;

function formatWhen(iso) {
  const when = new Date(iso);
  const today = new Date().toDateString() === when.toDateString();
  const pad = (n) => String(n).padStart(2, '0');
  return today
    ? `${pad(when.getHours())}:${pad(when.getMinutes())}`
    : `${when.getMonth() + 1}/${when.getDate()}`;
}

export function createSessionDrawer(layout, { onPick, onNew, currentId }) {
  const { drawer, drawerList, drawerMore, drawerNew } = layout;
  let next = null;

  const close = () => {
    drawer.hidden = true;
  };
  const item = (session) =>
    h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: 'drawer-item',
          'aria-current': session.id === currentId() ? 'true' : false,
          onclick: () => {
            close();
            onPick(session);
          },
        },
        h('span', { class: 'drawer-title' }, session.title || t('newChat')),
        h('span', { class: 'drawer-when' }, formatWhen(session.updated_at)),
      ),
    );

  async function loadPage(path) {
    drawerMore.hidden = true;
    try {
      const page = await api('GET', path);
      drawerList.append(...page.results.map(item));
      next = page.next;
      drawerMore.hidden = !next;
      if (!drawerList.children.length)
        drawerList.append(h('li', { class: 'drawer-empty' }, t('noSessions')));
    } catch (error) {
      drawerList.append(h('li', { class: 'drawer-empty' }, errorText(error)));
    }
  }

  drawer.addEventListener('click', (event) => {
    if (event.target === drawer) close(); // the shade beside the panel
  });
  drawerMore.addEventListener('click', () => next && loadPage(linkPath(next)));
  drawerNew.addEventListener('click', () => {
    close();
    onNew();
  });

  return {
    open() {
      drawerList.replaceChildren();
      drawer.hidden = false;
      loadPage(`/api/chat/sessions/?page_size=${PAGE_SIZE}`);
    },
  };
}
