"""A scriptable stand-in for WeChat's code2Session endpoint, on a loopback port.

Like the real one, it answers `GET /sns/jscode2session` with HTTP 200 and a JSON body typed
`text/plain`, and a code works once (then `errcode 40163`). Fixed codes act out failures:

    c-invalid  -> errcode 40029        c-limit   -> errcode 45011
    c-busy     -> errcode -1           c-denied  -> errcode 40013 (bad app id)
    c-slow     -> answers after 3 s    c-garbage -> a 200 body that is not JSON
    c-http500  -> HTTP 500             anything else unknown -> errcode 40029

`user_code(openid)` makes a fresh code for a user; codes `c-as-<openid>` work without
scripting (for the demo: `python -m tests.support.wechat --port 8094`). Every request's
query is recorded in `requests`.

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
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from tests.support.servers import BackgroundServer

PATH = "/sns/jscode2session"
SLOW_SECONDS = 3.0


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

    # -- serving -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != PATH:
                    self._send(Answer({"errcode": 404, "errmsg": "no such api"}, status=404))
                    return
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                with fake._lock:
                    fake.requests.append(query)
                self._send(fake._answer(query.get("js_code", "")))

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
    port = parser.parse_args().port
    with FakeWechat(port=port) as wechat:
        print(f"fake code2Session at {wechat.base_url}{PATH}; codes c-as-<openid>", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
