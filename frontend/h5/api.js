// The page's side of the API: the bearer token, a fetch transport for the stream module,
// and JSON calls through that same transport.

import { httpProblem, requestJson } from '../chat-stream/index.js';

const TOKEN_KEY = 'chat.token';

// Kept for this tab only: a web-view page gets a fresh ticket, hence a fresh token, each
// time the mini-program opens it; a reload keeps the tab's token.
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** The stream module's transport over fetch: response.body read chunk by chunk. */
export function fetchTransport(request, sink) {
  const controller = new AbortController();
  let aborted = false;
  const headers = { Accept: request.accept || 'application/json' };
  const bearer = token.get();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (request.body !== undefined) headers['Content-Type'] = 'application/json';
  (async () => {
    let response;
    try {
      response = await fetch(request.path, {
        method: request.method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        signal: controller.signal,
        cache: 'no-store',
        credentials: 'omit', // the API takes the bearer token, never cookies
      });
    } catch (error) {
      if (!aborted) sink.fail(error);
      return;
    }
    if (aborted) return;
    sink.response({ status: response.status, header: (name) => response.headers.get(name) });
    try {
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (aborted) return;
        if (done) break;
        sink.chunk(value);
      }
    } catch (error) {
      if (!aborted) sink.fail(error);
      return;
    }
    if (!aborted) sink.end();
  })();
  return {
    abort() {
      aborted = true;
      controller.abort();
    },
  };
}

export class ApiError extends Error {
  constructor(problem) {
    super(problem.message || problem.code);
    this.status = problem.status;
    this.code = problem.code;
  }
}

let onAuthLost = () => {};

/** Called once with the problem when any call answers 401. */
export function whenAuthLost(callback) {
  onAuthLost = callback;
}

/** A JSON call; resolves the answer's data, throws ApiError (code `network` offline). */
export async function api(method, path, body) {
  let answer;
  try {
    answer = await requestJson(fetchTransport, { method, path, body });
  } catch {
    throw new ApiError({ status: 0, code: 'network', message: '' });
  }
  if (answer.status >= 200 && answer.status < 300) return answer.data;
  const problem = httpProblem(answer.status, answer.data);
  if (answer.status === 401) onAuthLost(problem);
  throw new ApiError(problem);
}

/** The path and query of a link the API returned: paging links are absolute URLs built
 * from the Host the server saw, which a proxy may have changed. */
export function linkPath(link) {
  const url = new URL(link, location.href);
  return url.pathname + url.search;
}
