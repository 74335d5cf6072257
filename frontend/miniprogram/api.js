// The JSON side of the client: login (wx.login -> POST /api/auth/wechat/login, the token in
// storage), every call with one re-login and retry on 401, the history, ratings, and the
// web-view (a fresh ticket to open the H5 page, its posted list saved in bulk).

import { httpProblem, requestJson } from '../chat-stream/answer.js';

export class ChatError extends Error {
  constructor({ status = 0, code = 'network', message = '' }) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** The path and query of a link the API gave (paging links are absolute URLs). */
export function linkPath(link) {
  return String(link).replace(/^[a-z]+:\/\/[^/]+/i, '');
}

function wxLoginCode(wx) {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) =>
        res && res.code ? resolve(res.code) : reject(new ChatError({ code: 'wechat_login_failed' })),
      fail: (error) =>
        reject(new ChatError({ code: 'wechat_login_failed', message: error && error.errMsg })),
    });
  });
}

/** Login and the token: `token()`, `login()` (one at a time), `ensure()`, `forget()`.
 * `transport` sends no token (a stale one must not get in the way of the login). */
export function createAuth({ wx, transport, tokenKey }) {
  let cached = null;
  let running = null;

  function token() {
    if (cached === null) {
      try {
        cached = wx.getStorageSync(tokenKey) || null;
      } catch {
        cached = null;
      }
    }
    return cached;
  }

  async function loginOnce() {
    const code = await wxLoginCode(wx);
    let answer;
    try {
      answer = await requestJson(transport, {
        method: 'POST',
        path: '/api/auth/wechat/login',
        body: { code },
      });
    } catch {
      throw new ChatError({ code: 'network' });
    }
    if (answer.status !== 200 && answer.status !== 201) {
      throw new ChatError(httpProblem(answer.status, answer.data));
    }
    cached = answer.data.token;
    wx.setStorageSync(tokenKey, cached);
    return cached;
  }

  return {
    token,
    /** A new token from a fresh wx.login code; concurrent callers share one login. */
    login() {
      if (!running) {
        running = loginOnce().finally(() => {
          running = null;
        });
      }
      return running;
    },
    ensure() {
      return token() ? Promise.resolve(token()) : this.login();
    },
    forget(stale) {
      if (stale === undefined || stale === cached) {
        cached = null;
        try {
          wx.removeStorageSync(tokenKey);
        } catch {
          // storage unavailable: the next login overwrites it anyway
        }
      }
    },
  };
}

/** `call(method, path, body)`: the answer's data, or a thrown ChatError. On 401 the client
 * logs in again and retries once. */
export function createApi({ auth, transport }) {
  async function once(method, path, body) {
    let answer;
    try {
      answer = await requestJson(transport, { method, path, body });
    } catch {
      throw new ChatError({ code: 'network' });
    }
    if (answer.status >= 200 && answer.status < 300) return answer.data;
    throw new ChatError(httpProblem(answer.status, answer.data));
  }

  async function call(method, path, body) {
    const used = await auth.ensure();
    try {
      return await once(method, path, body);
    } catch (error) {
      if (error.status !== 401) throw error;
      auth.forget(used);
      await auth.login();
      return once(method, path, body);
    }
  }

  return {
    call,
    sessions: ({ pageSize = 20 } = {}) => call('GET', `/api/chat/sessions/?page_size=${pageSize}`),
    /** A session's latest page of records (reading order); `before` a link to older ones. */
    records: (sessionId, { before = null, pageSize = 20 } = {}) =>
      call(
        'GET',
        before ? linkPath(before) : `/api/chat/sessions/${sessionId}/records/?page_size=${pageSize}`,
      ),
    record: (recordId) => call('GET', `/api/chat/records/${recordId}/`),
    /** `rating`: 'useful', 'not_useful' or 'none'; resolves the record. */
    rate: (recordId, rating, reason) =>
      call('POST', `/api/chat/records/${recordId}/rating`, reason ? { rating, reason } : { rating }),
    /** The H5 page's address with a fresh single-use ticket (open it in <web-view>). */
    async webviewUrl({ baseUrl, h5Path = '/h5/', query = '' }) {
      const { ticket } = await call('POST', '/api/auth/webview-ticket');
      const extra = query ? `&${query}` : '';
      return `${baseUrl}${h5Path}?ticket=${encodeURIComponent(ticket)}${extra}`;
    },
    /** `<web-view bindmessage>`'s `e.detail.data` (every post so far) saved in bulk; resolves
     * the bulk answer, or null when there was nothing to save. */
    saveHandoff(posts) {
      const items = handoffItems(posts);
      if (!items.length) return Promise.resolve(null);
      return call('POST', '/api/chat/records/bulk', { items: items.slice(-200) });
    },
  };
}

/** The items of a web-view's posts: our page posts its whole list each time (the last post
 * is the list); pages that post one message per call make the posts the list. */
export function handoffItems(posts) {
  if (!Array.isArray(posts) || !posts.length) return [];
  const last = posts[posts.length - 1];
  if (Array.isArray(last)) return last.filter((item) => item && typeof item === 'object');
  return posts.filter((item) => item && typeof item === 'object' && !Array.isArray(item));
}
