// Every word the page shows, per language: a new language is one more column here.
// Chinese is the default; `?lang=en` picks English.

const WORDS = {
  zh: {
    title: 'AI 助手',
    newChat: '新对话',
    sessions: '会话列表',
    close: '关闭',
    noSessions: '还没有会话',
    moreSessions: '加载更多',
    greeting: '你好！有什么可以帮你？',
    placeholder: '输入你的问题…',
    send: '发送',
    stop: '停止',
    thinking: '正在思考',
    copy: '复制',
    copied: '已复制',
    copyFailed: '复制失败，请长按文字复制',
    like: '有用',
    dislike: '没用',
    ratingFailed: '评价没有保存，请稍后再试',
    retry: '重试',
    reconnect: '重新连接',
    jumpToLatest: '回到最新',
    loadingOlder: '正在加载更早的消息…',
    noOlder: '没有更早的消息了',
    historyFailed: '历史记录加载失败',
    reconnecting: '网络不稳定，正在重新连接…',
    statusStopped: '已停止生成',
    statusInterrupted: '回答中断了',
    statusStreaming: '回答还在生成中',
    signingIn: '正在登录…',
    devLoginTitle: '开发登录',
    devLoginHint: '本服务器开启了开发登录：输入任意 openid 即可登录（仅用于开发和测试）。',
    devLoginButton: '登录',
    openFromMiniProgram: '请从小程序中打开此页面。',
    tooLong: '问题太长了，最多 {max} 个字',
    // Errors, one per code (docs/protocol.md §6); `error` is for codes not listed.
    errors: {
      network: '网络连接失败，请检查网络后重试',
      auth: '登录已过期，请返回小程序重新进入',
      authDev: '登录已过期，请重新登录',
      invalid_ticket: '页面链接已失效，请返回小程序重新打开',
      rate_limited: '提问太频繁了，请稍等一会儿再试',
      server_draining: '服务器正在重启，请稍后重试',
      upstream_timeout: '模型响应超时，请重试',
      upstream_unavailable: '模型服务暂时不可用，请稍后重试',
      upstream_error: '模型服务出错了，请稍后再试',
      upstream_incomplete: '回答没有完整生成，请重试',
      content_blocked: '内容未通过安全审核，无法回答',
      internal_error: '服务器出错了，请稍后再试',
      storage_error: '回答没有保存到历史记录',
      question_required: '请输入问题',
      question_too_long: '问题太长了，请缩短后再发',
      session_not_found: '这个会话已不存在，已为你开始新对话',
      duplicate_client_id: '这个问题已经发送过了',
      record_not_found: '这条记录已不存在',
      stream_lost: '回答的服务器连接丢失，已显示保存的内容',
      payload_too_large: '内容太长了',
      error: '出错了，请稍后再试',
    },
  },
  en: {
    title: 'AI Assistant',
    newChat: 'New chat',
    sessions: 'Chats',
    close: 'Close',
    noSessions: 'No chats yet',
    moreSessions: 'Load more',
    greeting: 'Hi! How can I help?',
    placeholder: 'Ask anything…',
    send: 'Send',
    stop: 'Stop',
    thinking: 'Thinking',
    copy: 'Copy',
    copied: 'Copied',
    copyFailed: 'Could not copy; select the text instead',
    like: 'Helpful',
    dislike: 'Not helpful',
    ratingFailed: 'Rating not saved; try again later',
    retry: 'Retry',
    reconnect: 'Reconnect',
    jumpToLatest: 'Latest',
    loadingOlder: 'Loading earlier messages…',
    noOlder: 'No earlier messages',
    historyFailed: 'Could not load the history',
    reconnecting: 'Connection unstable, reconnecting…',
    statusStopped: 'Stopped',
    statusInterrupted: 'The answer was interrupted',
    statusStreaming: 'Still being written',
    signingIn: 'Signing in…',
    devLoginTitle: 'Development login',
    devLoginHint:
      'This server has the development login on: any openid signs in (development and tests only).',
    devLoginButton: 'Sign in',
    openFromMiniProgram: 'Please open this page from the mini-program.',
    tooLong: 'The question is too long: {max} characters at most',
    errors: {
      network: 'No connection. Check your network and try again',
      auth: 'Your login expired. Go back to the mini-program and open this page again',
      authDev: 'Your login expired. Please sign in again',
      invalid_ticket: 'This link has expired. Go back to the mini-program and open it again',
      rate_limited: 'Too many questions. Please wait a moment',
      server_draining: 'The server is restarting. Please try again',
      upstream_timeout: 'The model took too long. Please try again',
      upstream_unavailable: 'The model is unavailable right now. Please try again later',
      upstream_error: 'The model reported an error. Please try again later',
      upstream_incomplete: 'The answer was cut off. Please try again',
      content_blocked: 'This content was blocked by the safety filter',
      internal_error: 'Something went wrong on our side. Please try again later',
      storage_error: 'This answer was not saved to your history',
      question_required: 'Please type a question',
      question_too_long: 'The question is too long. Please shorten it',
      session_not_found: 'That chat no longer exists; a new one was started',
      duplicate_client_id: 'This question was already sent',
      record_not_found: 'This message no longer exists',
      stream_lost: 'The answer lost its server; showing what was saved',
      payload_too_large: 'That is too long',
      error: 'Something went wrong. Please try again later',
    },
  },
};

const requested = new URLSearchParams(globalThis.location ? location.search : '').get('lang');
export const LANG = requested && WORDS[requested] ? requested : 'zh';
const words = WORDS[LANG];

/** The word for `key`, with `{name}` filled from `values`. */
export function t(key, values = {}) {
  return words[key].replace(/\{(\w+)\}/g, (_, name) => String(values[name]));
}

/** What to tell the user about a problem `{status, code}` (an HTTP error, a stream error
 * event, or `network`). */
export function errorText({ status = 0, code = '' } = {}) {
  const errors = words.errors;
  if (errors[code]) return errors[code];
  if (status === 401) return errors.auth;
  if (status === 429) return errors.rate_limited;
  if (status === 503) return errors.server_draining;
  return errors.error;
}
