"""A real ASGI server process (daphne on uvloop, or uvicorn) for end-to-end tests, and a
client for its streams."""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from django.db import connection

from tests.support.sse import FrameReader, StreamTranscript

# Every limit (chat/limits.py). Their own tests (tests/chat/test_limits.py) set them; for
# the rest of the suite, a suite's worth of questions and logins from one address and
# user ids reused between tests must not run into them.
LIMIT_SETTINGS = (
    "CHAT_LIMIT_CONCURRENT_STREAMS",
    "CHAT_LIMIT_QUESTIONS_PER_MINUTE",
    "CHAT_LIMIT_QUESTIONS_PER_DAY",
    "CHAT_LIMIT_ANSWER_TOKENS_PER_DAY",
    "CHAT_LIMIT_LOGINS_PER_IP_PER_MINUTE",
    "CHAT_LIMIT_TICKET_EXCHANGES_PER_IP_PER_MINUTE",
)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_when_up(url: str, process: subprocess.Popen) -> httpx.Response:
    """GET `url` from a server process that is starting, once it answers."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited at start"
        try:
            return httpx.get(url)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def database_env() -> dict[str, str]:
    """Point a child process at the test database pytest-django created."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return {"SQLITE_PATH": str(db["NAME"]), "DATABASE_URL": ""}
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return {"DATABASE_URL": f"postgres://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"}


class LiveServer:
    def __init__(self, env: dict[str, str], log_path: Path, *, software: str = "daphne") -> None:
        self.software = software
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        app = "chatproject.asgi:application"
        if self.software == "uvicorn":
            # The production server: uvicorn's own command line (docs/deploy.md).
            command = [sys.executable, "-m", "uvicorn", app, "--port", str(self.port)]
            command += ["--backlog", "1024", "--no-access-log", "--timeout-graceful-shutdown", "5"]
        else:
            # Twisted's default listen backlog (50) drops connections in a burst of streams.
            endpoint = f"tcp:port={self.port}:interface=127.0.0.1:backlog=1024"
            command = [sys.executable, "-m", "chatproject.serve_daphne", "-e", endpoint, app]
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(command, cwd=ROOT, env=self._env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited; see {self._log_path}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start; see {self._log_path}")

    def send_signal(self, signum: int) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    def wait_exit(self, timeout: float) -> int | None:
        assert self._process is not None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def log_text(self) -> str:
        return self._log_path.read_text(errors="replace")


async def read_events(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    token: str | None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    on_event: Callable | None = None,
) -> StreamTranscript:
    """Send one request and read its event stream frame by frame, strictly.

    `on_event(event, transcript)` may return True to hang up right there.
    """
    all_headers = dict(headers or {})
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    async with client.stream(method, path, content=content, headers=all_headers) as response:
        transcript = StreamTranscript(response.status_code, dict(response.headers))
        reader = FrameReader(transcript)
        async for chunk in response.aiter_raw():
            transcript.raw += chunk
            if response.status_code != 200:
                continue
            for event in reader.feed(chunk):
                if on_event and on_event(event, transcript):
                    return transcript  # leaving the block closes the connection
        if response.status_code == 200:
            reader.finish()
    return transcript


async def stream_chat(
    client: httpx.AsyncClient,
    token: str | None,
    body: dict | bytes,
    *,
    on_event: Callable | None = None,
    headers: dict[str, str] | None = None,
) -> StreamTranscript:
    """Ask a question and read the answer's events."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await read_events(
        client,
        "POST",
        "/api/chat/stream",
        token=token,
        content=content,
        headers={"Content-Type": "application/json", **(headers or {})},
        on_event=on_event,
    )


def hang_up_after(deltas: int) -> Callable:
    """An `on_event` that hangs up once this many deltas have arrived."""

    def on_event(event, transcript) -> bool:
        return event.event == "delta" and len(transcript.of_type("delta")) == deltas

    return on_event


async def hang_up_after_sending(url: str, token: str, body: dict, *, delay: float) -> None:
    """Send a question over a plain socket and close it `delay` seconds later, reading
    nothing: a user who taps send and leaves the page."""
    host, port = url.removeprefix("http://").split(":")
    content = json.dumps(body).encode()
    request = (
        f"POST /api/chat/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    ).encode() + content
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    await asyncio.sleep(delay)
    writer.close()
    await writer.wait_closed()


async def resume_chat(
    client: httpx.AsyncClient,
    token: str | None,
    record_id: int,
    last_event_id: int | None,
    *,
    via: str = "header",
    on_event: Callable | None = None,
) -> StreamTranscript:
    """Resume an answer's events after `last_event_id` (header, or query parameter)."""
    path, headers = f"/api/chat/records/{record_id}/events", {}
    if last_event_id is not None and via == "header":
        headers["Last-Event-ID"] = str(last_event_id)
    elif last_event_id is not None:
        path += f"?last_event_id={last_event_id}"
    return await read_events(client, "GET", path, token=token, headers=headers, on_event=on_event)
