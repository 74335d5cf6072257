// The page's frame: top bar, message list, composer, session drawer, notices.

import { h, icon } from './dom.js';
import { t } from './words.js';

export function layoutBuild(app) {
  const title = h('h1', { class: 'bar-title' }, t('newChat'));
  const sessionsButton = h(
    'button',
    { type: 'button', class: 'bar-btn', 'aria-label': t('sessions'), title: t('sessions') },
    icon('menu'),
  );
  const newButton = h(
    'button',
    { type: 'button', class: 'bar-btn', 'aria-label': t('newChat'), title: t('newChat') },
    icon('plus'),
  );
  const older = h('div', { class: 'older', hidden: true });
  const turns = h('div', { class: 'turns' });
  const empty = h('div', { class: 'empty', hidden: true }, t('greeting'));
  const scroller = h('main', { class: 'messages' }, older, empty, turns);
  const jump = h(
    'button',
    { type: 'button', class: 'jump', hidden: true },
    icon('down'),
    h('span', {}, t('jumpToLatest')),
  );
  const noticeText = h('span', { class: 'notice-text' });
  const noticeAction = h('button', { type: 'button', class: 'notice-action', hidden: true });
  const noticeClose = h(
    'button',
    {
      type: 'button',
      class: 'notice-close',
      'aria-label': t('close'),
      onclick: () => hideNotice(),
    },
    icon('close'),
  );
  const notice = h(
    'div',
    { class: 'notice', role: 'alert', hidden: true },
    noticeText,
    noticeAction,
    noticeClose,
  );
  const hideNotice = () => {
    notice.hidden = true;
  };
  const input = h('textarea', {
    class: 'input',
    rows: 1,
    placeholder: t('placeholder'),
    'aria-label': t('placeholder'),
    enterkeyhint: 'send',
  });
  const sendButton = h(
    'button',
    { type: 'submit', class: 'send', 'aria-label': t('send') },
    icon('send'),
  );
  const form = h('form', { class: 'composer' }, input, sendButton);
  const drawerList = h('ul', { class: 'drawer-list' });
  const drawerMore = h(
    'button',
    { type: 'button', class: 'drawer-more', hidden: true },
    t('moreSessions'),
  );
  const drawerNew = h(
    'button',
    { type: 'button', class: 'drawer-new' },
    icon('plus'),
    h('span', {}, t('newChat')),
  );
  const drawerPanel = h(
    'nav',
    { class: 'drawer-panel', 'aria-label': t('sessions') },
    h('div', { class: 'drawer-head' }, h('span', {}, t('sessions')), drawerNew),
    drawerList,
    drawerMore,
  );
  const drawer = h('div', { class: 'drawer', hidden: true }, drawerPanel);
  const gate = h('div', { class: 'gate', hidden: true });
  const toast = h('div', { class: 'toast', role: 'status', hidden: true });
  const bar = h('header', { class: 'bar' }, sessionsButton, title, newButton);
  app.replaceChildren(bar, scroller, jump, notice, form, drawer, gate, toast);
  document.title = t('title');

  let toastTimer = null;
  return {
    app,
    title,
    sessionsButton,
    newButton,
    scroller,
    older,
    turns,
    empty,
    jump,
    form,
    input,
    sendButton,
    drawer,
    drawerList,
    drawerMore,
    drawerNew,
    gate,
    /** A problem, and what to do about it (optional). */
    showNotice(text, action = null) {
      noticeText.textContent = text;
      noticeAction.hidden = !action;
      if (action) {
        noticeAction.textContent = action.label;
        noticeAction.onclick = () => {
          hideNotice();
          action.run();
        };
      }
      notice.hidden = false;
    },
    hideNotice,
    /** A passing word ("copied"). */
    showToast(text) {
      toast.textContent = text;
      toast.hidden = false;
      clearTimeout(toastTimer);
      toastTimer = setTimeout(() => {
        toast.hidden = true;
      }, 1800);
    },
  };
}
