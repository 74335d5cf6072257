"""A scriptable stand-in for WeChat's code2Session, stable_token and msgSecCheck endpoints,
on a loopback port.

Like the real one, it answers `GET /sns/jscode2session` with HTTP 200 and a JSON body typed
`text/plain`, and a code works once (then `errcode 40163`). Fixed codes act out failures:

    c-invalid  -> errcode 40029        c-limit   -> errcode 45011
    c-busy     -> errcode -1           c-denied  -> errcode 40013 (bad app id)
    c-slow     -> answers after 3 s    c-garbage -> a 200 body that is not JSON
    c-http500  -> HTTP 500             anything else unknown -> errcode 40029

`user_code(openid)` makes a fresh code for a user; codes `c-as-<openid>` work without
scripting (for the demo: `python -m tests.support.wechat --port 8094`). Every request's
query is recorded in `requests`.

`POST /cgi-bin/stable_token` hands out tokens (`tok-1`, `tok-2`... ; each request counted
in `token_requests`) valid `token_seconds`; `POST /wxa/msg_sec_check` answers for the
current (or any earlier, unexpired) token, `risky` for content holding a word of
`risky_words`, `review` for `review_words`, `pass` otherwise, after `check_delay` seconds
(a fixed delay or a (low, high) range drawn per call), each call kept in `checks`.
`check_failure` makes every check fail (`"http500"`, `"timeout"` (answers after 10 s),
`"errcode"`, `"garbage"`); `expire_tokens()` makes every token so far refused (40001).

Usage::

    with FakeWechat() as wechat:
        code = wechat.user_code("o_alice", unionid="u_alice")
        ...  # WECHAT_API_BASE=wechat.base_url
        assert wechat.requests[-1]["js_code"] == code
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from tests.support.servers import BackgroundServer

PATH = "/sns/jscode2session"
TOKEN_PATH = "/cgi-bin/stable_token"
CHECK_PATH = "/wxa/msg_sec_check"
SLOW_SECONDS = 3.0
CHECK_TIMEOUT_DELAY = 10.0
LABELS = {"risky": 20001, "review": 20002}  # politics, porn: any category would do


@dataclass(frozen=True)
class Answer:
    body: dict | bytes
    status: int = 200
    delay: float = 0.0


_FIXED = {
    "c-invalid": Answer({"errcode": 40029, "errmsg": "invalid code, rid: 0001"}),
    "c-limit": Answer({"errcode": 45011, "errmsg": "api minute-quota reach limit, rid: 0002"}),
    "c-busy": Answer({"errcode": -1, "errmsg": "system error, rid: 0003"}),
    "c-denied": Answer({"errcode": 40013, "errmsg": "invalid appid, rid: 0004"}),
    "c-slow": Answer({"openid": "o_slow", "session_key": "c2xvdw=="}, delay=SLOW_SECONDS),
    "c-garbage": Answer(b"<html>upstream error</html>"),
    "c-http500": Answer({"errcode": -1, "errmsg": "oops"}, status=500),
}
_CHECK_FAILURES = {
    "http500": Answer({"errcode": -1, "errmsg": "oops"}, status=500),
    "timeout": Answer({"errcode": 0}, delay=CHECK_TIMEOUT_DELAY),
    "errcode": Answer({"errcode": -1, "errmsg": "system error, rid: 000a"}),
    "garbage": Answer(b"<html>upstream error</html>"),
}


def _check_problem(body: dict) -> str:
    """What the real msgSecCheck v2 would refuse in a request body, if anything."""
    if body.get("version") != 2:
        return "version must be 2"
    if not body.get("openid"):
        return "invalid openid"
    if body.get("scene") not in (1, 2, 3, 4):
        return "invalid scene"
    content = body.get("content")
    if not isinstance(content, str) or not 0 < len(content) <= 2500:
        return "content must be 1 to 2500 characters"
    return ""


_UNKNOWN = Answer({"errcode": 40029, "errmsg": "invalid code, rid: 0000"})
_USED = Answer({"errcode": 40163, "errmsg": "code been used, rid: 0005"})


def session_key() -> str:
    return secrets.token_urlsafe(16)


class FakeWechat(BackgroundServer):
    """http.server in a daemon thread; one thread per request, so a slow answer blocks none."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, Answer] = {}
        self._used: set[str] = set()
        self.requests: list[dict[str, str]] = []
        # stable_token and msgSecCheck (scripting: set the attributes; reading: the lists).
        self.app_id, self.app_secret = "wx-test-app", "test-app-secret"
        self.token_seconds = 7200
        self.token_delay = 0.0
        self.token_requests: list[dict] = []
        self._tokens: dict[str, float] = {}  # token -> expiry (time.monotonic())
        self.risky_words: set[str] = set()
        self.review_words: set[str] = set()
        self.check_delay: float | tuple[float, float] = 0.0
        self.check_failure: str = ""
        self.checks: list[dict] = []  # each msgSecCheck body, with the token it came with
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-wechat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting -----------------------------------------------------------------------

    def user_code(self, openid: str, *, unionid: str = "", key: str | None = None) -> str:
        """A fresh single-use code that logs in as `openid`."""
        body = {"openid": openid, "session_key": key or session_key()}
        if unionid:
            body["unionid"] = unionid
        code = f"c-{secrets.token_hex(8)}"
        self.script(code, Answer(body))
        return code

    def script(self, code: str, answer: Answer) -> None:
        with self._lock:
            self._answers[code] = answer

    def _answer(self, code: str) -> Answer:
        with self._lock:
            if code in _FIXED:
                return _FIXED[code]
            if code in self._used:
                return _USED
            answer = self._answers.get(code)
            if answer is None and code.startswith("c-as-"):
                answer = Answer({"openid": code[5:], "session_key": session_key()})
            if answer is None:
                return _UNKNOWN
            self._used.add(code)
            return answer

    def expire_tokens(self) -> None:
        """Every token handed out so far is refused from now on (errcode 40001)."""
        with self._lock:
            self._tokens.clear()

    def checked_texts(self, scene: int | None = None) -> list[str]:
        with self._lock:
            return [c["content"] for c in self.checks if scene is None or c["scene"] == scene]

    def _stable_token(self, body: dict) -> Answer:
        with self._lock:
            self.token_requests.append(body)
            if body.get("appid") != self.app_id or body.get("secret") != self.app_secret:
                return Answer({"errcode": 40013, "errmsg": "invalid appid, rid: 0006"})
            if body.get("grant_type") != "client_credential":
                return Answer({"errcode": 40002, "errmsg": "invalid grant_type, rid: 0007"})
            token = f"tok-{len(self.token_requests)}"
            self._tokens[token] = time.monotonic() + self.token_seconds
        body = {"access_token": token, "expires_in": self.token_seconds}
        return Answer(body, delay=self.token_delay)

    def _msg_sec_check(self, token: str, body: dict) -> Answer:
        delay = self.check_delay
        if isinstance(delay, tuple):
            delay = random.uniform(*delay)
        with self._lock:
            if self._tokens.get(token, 0) < time.monotonic():
                return Answer({"errcode": 40001, "errmsg": "invalid credential, rid: 0008"})
            self.checks.append({**body, "access_token": token})
            failure = self.check_failure
        if failure:
            return _CHECK_FAILURES[failure]
        problem = _check_problem(body)
        if problem:
            return Answer({"errcode": 40003, "errmsg": f"{problem}, rid: 0009"}, delay=delay)
        content = body["content"]
        suggest = "pass"
        if any(word in content for word in self.review_words):
            suggest = "review"
        if any(word in content for word in self.risky_words):
            suggest = "risky"
        label = LABELS.get(suggest, 100)
        trace_id = f"trace-{secrets.token_hex(6)}"
        answer = {
            "errcode": 0,
            "errmsg": "ok",
            "detail": [{"strategy": "content_model", "errcode": 0, "suggest": suggest,
                        "label": label, "prob": 90}],
            "trace_id": trace_id,
            "result": {"suggest": suggest, "label": label},
        }  # fmt: skip
        return Answer(answer, delay=delay)

    # -- serving -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # Kept-alive connections, as WeChat's: a check is not a TCP handshake each; and
            # no Nagle, whose wait for an ACK (~40 ms) would pass for WeChat's own delay.
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != PATH:
                    self._send(Answer({"errcode": 404, "errmsg": "no such api"}, status=404))
                    return
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                with fake._lock:
                    fake.requests.append(query)
                self._send(fake._answer(query.get("js_code", "")))

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    self._send(Answer({"errcode": 47001, "errmsg": "data format error"}))
                elif url.path == TOKEN_PATH:
                    self._send(fake._stable_token(body))
                elif url.path == CHECK_PATH:
                    query = dict(parse_qsl(url.query))
                    self._send(fake._msg_sec_check(query.get("access_token", ""), body))
                else:
                    self._send(Answer({"errcode": 404, "errmsg": "no such api"}, status=404))

            def _send(self, answer: Answer) -> None:
                time.sleep(answer.delay)
                raw = answer.body
                data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
                try:
                    self.send_response(answer.status)
                    # What WeChat really sends, and why clients must not trust the header.
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:
                    pass  # the client gave up waiting (c-slow)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet; the query holds the app secret anyway

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument("--risky", default="", help="comma-separated words msgSecCheck finds risky")
    parser.add_argument("--check-delay-ms", default="0", help="msgSecCheck's delay: 50 or 30-80")
    args = parser.parse_args()
    with FakeWechat(port=args.port) as wechat:
        wechat.risky_words = {word for word in args.risky.split(",") if word}
        low, _, high = args.check_delay_ms.partition("-")
        wechat.check_delay = (float(low) / 1000, float(high) / 1000) if high else float(low) / 1000
        print(f"fake code2Session at {wechat.base_url}{PATH}; codes c-as-<openid>", flush=True)
        print(f"stable_token for appid {wechat.app_id}, secret {wechat.app_secret}; msgSecCheck "
              f"finds risky: {', '.join(sorted(wechat.risky_words))}", flush=True)  # fmt: skip
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
