// The chat page: the session's history (older pages on scroll-up), a question box, the
// answer streaming in with a typing effect, stop, like / dislike, retry, and the H5 page
// in a <web-view>. Built with Component() (a page since base library 2.x), so the same
// file renders in miniprogram-simulate's tests.
//
// setData is the expensive call: the typer (lib/chat-client.js) sets only the streaming
// message's text path, at most 15 times a second; Markdown is rendered by <mp-html> once
// the answer has ended (plain <text> while it streams, and where rendering fails).

const { createTyper } = require('../../lib/chat-client.js');
const { chatClient } = require('../../chat-client-setup.js');
const { errorText, statusText } = require('./words.js');

const PAGE_SIZE = 20;
const RATEABLE = ['done', 'stopped', 'interrupted'];
const OPEN = ['pending', 'streaming'];

let markdownHtml = null;
try {
  ({ markdownHtml } = require('../../lib/markdown.js'));
} catch (error) {
  markdownHtml = null; // plain text it is
}

function renderHtml(text) {
  if (!markdownHtml || !text) return '';
  try {
    return markdownHtml(text);
  } catch (error) {
    return '';
  }
}

let keys = 0;
const newKey = () => `m${Date.now().toString(36)}${(keys += 1)}`;
const newClientId = () =>
  `mp-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

/** The view of one question and its answer. */
function message(fields) {
  const status = fields.status || 'pending';
  const text = fields.text || '';
  const ended = OPEN.indexOf(status) < 0;
  return {
    key: fields.key || newKey(),
    recordId: fields.recordId || null,
    clientId: fields.clientId || null,
    question: fields.question,
    text,
    html: ended ? renderHtml(text) : '',
    status,
    errorCode: fields.errorCode || null,
    statusText: ended ? statusText(status, fields.errorCode) : '',
    rating: fields.rating || 'none',
    rateable: RATEABLE.indexOf(status) >= 0 && Boolean(fields.recordId),
    retry: status === 'error' || status === 'interrupted',
    notice: '',
  };
}

const fromRecord = (record) =>
  message({
    recordId: record.id,
    clientId: record.client_id,
    question: record.question,
    text: record.answer,
    status: record.status,
    errorCode: record.error_code,
    rating: record.rating,
  });

Component({
  data: {
    ready: false,
    messages: [],
    input: '',
    busy: false,
    sessionId: null,
    older: null,
    loadingOlder: false,
    reachedStart: false,
    notice: '',
    noticeRetry: '',
    scrollTo: '',
  },

  methods: {
    onLoad() {
      this.client = chatClient();
      this.answer = null;
      this.openLatest();
    },

    onUnload() {
      if (this.typer) this.typer.dispose();
      // The answer goes on at the server; the history shows it next time.
      if (this.answer) this.answer.detach();
    },

    // --- History ----------------------------------------------------------------------

    async openLatest() {
      this.setData({ notice: '', noticeRetry: '' });
      try {
        const sessions = await this.client.api.sessions({ pageSize: 1 });
        const latest = sessions.results[0];
        if (latest) await this.openSession(latest.id);
        else this.setData({ ready: true });
      } catch (error) {
        this.showNotice(errorText(error.code), 'openLatest');
      }
    },

    async openSession(sessionId) {
      const page = await this.client.api.records(sessionId, { pageSize: PAGE_SIZE });
      const messages = page.results.map(fromRecord);
      const last = messages[messages.length - 1];
      this.setData({
        ready: true,
        sessionId,
        messages,
        older: page.before,
        reachedStart: !page.before,
        scrollTo: last ? last.key : '',
      });
      // An answer still being written (the page was closed meanwhile): read it on.
      const openIndex = messages.findIndex((item) => OPEN.indexOf(item.status) >= 0);
      if (openIndex >= 0) {
        this.setData({ [`messages[${openIndex}].text`]: '' });
        this.stream(openIndex, { recordId: messages[openIndex].recordId });
      }
    },

    async onLoadOlder() {
      const { older, loadingOlder, busy } = this.data;
      // While an answer streams its message's index must hold: older pages wait.
      if (!older || loadingOlder || busy) return;
      this.setData({ loadingOlder: true });
      try {
        const page = await this.client.api.records(this.data.sessionId, { before: older });
        const first = this.data.messages[0];
        this.setData({
          messages: page.results.map(fromRecord).concat(this.data.messages),
          older: page.before,
          reachedStart: !page.before,
          loadingOlder: false,
          scrollTo: first ? first.key : '',
        });
      } catch (error) {
        this.setData({ loadingOlder: false });
        this.showNotice(errorText(error.code), 'onLoadOlder');
      }
    },

    // --- Asking -------------------------------------------------------------------------

    onInput(event) {
      this.setData({ input: event.detail.value });
    },

    onSend() {
      const question = String(this.data.input || '').trim();
      if (!question || this.data.busy || !this.data.ready) return;
      this.ask(question);
    },

    ask(question, clientId = newClientId()) {
      const index = this.data.messages.length;
      const item = message({ question, clientId });
      this.setData({
        [`messages[${index}]`]: item,
        input: '',
        notice: '',
        noticeRetry: '',
        scrollTo: item.key,
        busy: true,
      });
      const data = { question, client_id: clientId, terminal: 'miniprogram' };
      if (this.data.sessionId) data.session_id = this.data.sessionId;
      this.stream(index, { data, justSet: true });
    },

    /** Stream an answer into messages[index]: a new question (`data`), or one asked
     * before (`recordId`, read from its first event). */
    stream(index, { data, recordId = null, justSet = false }) {
      const base = `messages[${index}]`;
      // Every change while the answer streams goes through the typer: within its budget.
      const typer = createTyper({
        setData: (patch) => this.setData(patch),
        path: `${base}.text`,
        justSet,
        onIdle: (text) => this.finished(index, typer.result, text),
      });
      this.typer = typer;
      if (!justSet) typer.patch({ busy: true });
      this.answer = this.client.streamText({
        chatId: 'chat',
        data,
        recordId,
        onEvent: (event) => {
          if (event.type === 'start') {
            typer.patch({ [`${base}.recordId`]: event.data.record_id, [`${base}.status`]: 'streaming' });
            if (!this.data.sessionId) typer.patch({ sessionId: event.data.session_id });
          } else if (event.type === 'reconnecting') {
            typer.patch({ [`${base}.notice`]: '网络不稳，正在重新连接…' });
          } else if (event.type === 'lost') {
            // Retries ran out; the answer goes on at the server. Back on screen the client
            // reads on by itself; a tap does it now.
            typer.patch({ [`${base}.notice`]: '', notice: '连接中断，点此继续接收回答', noticeRetry: 'onResumeAnswer' });
          } else if (event.type === 'delta') {
            if (this.data.messages[index].notice) typer.patch({ [`${base}.notice`]: '' });
            if (this.data.noticeRetry === 'onResumeAnswer') typer.patch({ notice: '', noticeRetry: '' });
          } else if (event.type === 'replace') {
            typer.replace(event.data.text);
          }
        },
        onText: (piece) => typer.push(piece),
        onFinish: (text, result) => {
          typer.result = result;
          if (result.status === 'failed') this.failed(index, typer, result);
          else typer.end();
        },
      });
    },

    /** The answer ended and all of it is shown: the fields of the typer's last setData
     * (status, Markdown, tools). */
    finished(index, result, text) {
      const current = this.data.messages[index];
      const ended = message({
        ...current,
        recordId: result.recordId || current.recordId,
        text,
        status: result.status,
        errorCode: result.errorCode,
      });
      this.answer = null;
      return { [`messages[${index}]`]: ended, busy: false };
    },

    /** The question was not taken (an HTTP error, offline): it goes back into the box. */
    failed(index, typer, result) {
      typer.dispose();
      this.answer = null;
      const { error } = result;
      const current = this.data.messages[index];
      if (result.recordId) {
        // Asked, then the answer could not be read: show what came; the history has the rest.
        this.setData({
          [`messages[${index}]`]: message({ ...current, text: typer.text, status: 'interrupted' }),
          busy: false,
        });
        this.showNotice(errorText(error && error.code), '');
        return;
      }
      const code = error && error.code;
      const messages = this.data.messages.slice(0, index).concat(this.data.messages.slice(index + 1));
      this.setData({ messages, busy: false, input: current.question });
      if (code === 'duplicate_client_id') {
        // An earlier try did reach the server: show the session as it is.
        this.setData({ input: '' });
        this.openLatest();
        return;
      }
      // A session deleted elsewhere: the question starts a new one.
      if (code === 'session_not_found') this.setData({ sessionId: null, messages: [], older: null });
      this.retryClientId = current.clientId;
      this.showNotice(errorText(code), 'onNoticeSend');
    },

    onStop() {
      if (this.answer) this.answer.stop();
    },

    onResumeAnswer() {
      if (this.answer) this.answer.resume();
      this.setData({ notice: '', noticeRetry: '' });
    },

    onRetry(event) {
      if (this.data.busy) return;
      const item = this.data.messages[event.currentTarget.dataset.index];
      this.ask(item.question);
    },

    onNoticeSend() {
      const question = String(this.data.input || '').trim();
      if (question && !this.data.busy) this.ask(question, this.retryClientId);
    },

    // --- Ratings ------------------------------------------------------------------------

    async onRate(event) {
      const { index, rating } = event.currentTarget.dataset;
      const item = this.data.messages[index];
      if (!item.rateable) return;
      const wanted = item.rating === rating ? 'none' : rating;
      const path = `messages[${index}].rating`;
      this.setData({ [path]: wanted });
      try {
        const record = await this.client.api.rate(item.recordId, wanted);
        this.setData({ [path]: record.rating });
      } catch (error) {
        this.setData({ [path]: item.rating });
        wx.showToast({ title: errorText(error.code), icon: 'none' });
      }
    },

    // --- Notices and the H5 page ----------------------------------------------------------

    showNotice(text, retry) {
      this.setData({ notice: text, noticeRetry: retry || '' });
    },

    onNoticeTap() {
      const action = this.data.noticeRetry;
      if (action && typeof this[action] === 'function') this[action]();
    },

    onOpenH5() {
      wx.navigateTo({ url: '/pages/webview/webview' });
    },
  },
});
