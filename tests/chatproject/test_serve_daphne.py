"""daphne on uvloop: the launcher and `manage.py` install uvloop's policy before daphne
makes its loop."""

import asyncio
import subprocess
import sys

import pytest

from chatproject import serve_daphne
from tests.support.live import ROOT, free_port, get_when_up


def test_the_launcher_serves_with_daphnes_options_on_uvloop(tmp_path):
    port = free_port()
    app = "tests.chatproject.test_serve_daphne:loop_kind_app"
    command = [sys.executable, "-m", "chatproject.serve_daphne", "-p", str(port), app]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=(tmp_path / "serve.log").open("wb"))  # fmt: skip
    try:
        response = get_when_up(f"http://127.0.0.1:{port}/", process)
    finally:
        process.kill()
        process.wait()

    assert response.text == "uvloop.Loop"  # plain daphne: asyncio's _UnixSelectorEventLoop
    assert response.headers["server"] == "daphne"


def test_manage_py_puts_daphnes_loop_on_uvloop():
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c",
         "import daphne.server; print(type(daphne.server.twisted_loop).__module__)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "uvloop"


def test_installing_uvloop_after_daphne_made_its_loop_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "daphne.server", object())
    with pytest.raises(RuntimeError, match="before uvloop"):
        serve_daphne.use_uvloop()


async def loop_kind_app(scope, receive, send):
    if scope["type"] != "http":
        return
    loop = asyncio.get_running_loop()
    kind = f"{type(loop).__module__}.{type(loop).__name__}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": kind})
