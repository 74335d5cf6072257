"""The live stack for tests outside pytest (the mini-program client's `node --test`): the
test upstream as the model, the code2Session stand-in, and a real daphne server process on
loopback ports, on a fresh SQLite database of its own, with limits off.

    python -m tests.support.stack

prints one JSON line, `{"url", "brief_url", "control", "wechat"}`, once everything
answers, and runs until its standard input closes (the node test's child process ends with
the test). `brief_url` is a second server process on the same database that keeps a
finished answer's events for 1 s only (`CHAT_REPLAY_TTL_SECONDS=1`: a resume soon gets
`410 replay_expired`). The `control` URL scripts the upstream as `upstream.script()` does
in pytest:

    POST {control}/scenarios  {"tokens": ["你", "好"], "pace": 0.01, ...}  ->  {"tag": "scn-..."}
    GET  {control}/scenarios/{tag}  ->  {"tokens_sent", "finished", "aborted", "requests"}
    POST {control}/wechat-codes  {"openid": "o_alice"}  ->  {"code": "c-..."}

(a wx.login code for that user, single-use as WeChat's are).

A question that carries the tag is answered by that scenario. It never touches
DATABASE_URL or REDIS_URL: those may be shared databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.live import LIMIT_SETTINGS, ROOT, LiveServer
from tests.support.upstream import FakeUpstream
from tests.support.wechat import FakeWechat


def stack_env(workdir: Path, upstream: FakeUpstream, wechat: FakeWechat) -> dict[str, str]:
    """Development settings on a private SQLite file; the model is the test upstream."""
    model = {
        "name": "test-model",
        "base_url": upstream.base_url,
        "api_key": "test-key",
        "model": "upstream-model-id",
        "timeout": 10,
        "max_retries": 0,
    }
    return {
        **dict.fromkeys(LIMIT_SETTINGS, "0"),  # a test's many questions and logins
        "DEBUG": "1",
        "CHAT_DEV_LOGIN": "1",
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "SQLITE_PATH": str(workdir / "stack.sqlite3"),
        "LLM_MODELS": json.dumps([model]),
        "LLM_API_KEY": "",
        "WECHAT_APP_ID": "wx-test",
        "WECHAT_APP_SECRET": "test-secret",
        "WECHAT_API_BASE": wechat.base_url,
        "CHAT_PING_SECONDS": "1",
        # A trip to the background or a cut request leaves the answer generating this long.
        "CHAT_DETACH_GRACE_SECONDS": "20",
        "CHAT_CHECKPOINT_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
    }


def scenario_view(scenario: Any) -> dict[str, Any]:
    return {
        "tag": scenario.tag,
        "tokens_sent": scenario.tokens_sent,
        "finished": scenario.finished.is_set(),
        "aborted": scenario.aborted.is_set(),
        "requests": len(scenario.requests),
    }


def control_server(upstream: FakeUpstream, wechat: FakeWechat) -> ThreadingHTTPServer:
    """Scripting the upstream and WeChat over HTTP, for a test in another process."""
    scenarios: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/wechat-codes":
                    self._send(201, {"code": wechat.user_code(str(body["openid"]))})
                    return
                if self.path != "/scenarios":
                    self._send(404, {"error": "no such path"})
                    return
                scenario = upstream.script(**body)
            except (KeyError, TypeError, ValueError) as error:
                self._send(400, {"error": str(error)})
                return
            scenarios[scenario.tag] = scenario
            self._send(201, scenario_view(scenario))

        def do_GET(self) -> None:
            scenario = scenarios.get(self.path.removeprefix("/scenarios/"))
            if scenario is None:
                self._send(404, {"error": "no such scenario"})
                return
            self._send(200, scenario_view(scenario))

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="stack-control", daemon=True).start()
    return server


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="chat-stack-") as workdir,
        FakeUpstream() as upstream,
        FakeWechat() as wechat,
    ):
        env = stack_env(Path(workdir), upstream, wechat)
        migrate(env)
        server = LiveServer(env, Path(workdir) / "daphne.log")
        brief = LiveServer({**env, "CHAT_REPLAY_TTL_SECONDS": "1"}, Path(workdir) / "brief.log")
        control = control_server(upstream, wechat)
        try:
            server.start()
            brief.start()
            host, port = control.server_address[:2]
            ready = {
                "url": server.url,
                "brief_url": brief.url,
                "control": f"http://{host}:{port}",
                "wechat": wechat.base_url,
            }
            print(json.dumps(ready), flush=True)
            sys.stdin.read()  # until the test that started us closes our standard input
        finally:
            control.shutdown()
            server.stop()
            brief.stop()
            if os.environ.get("STACK_SHOW_LOG"):
                sys.stderr.write(server.log_text() + brief.log_text())


if __name__ == "__main__":
    main()
