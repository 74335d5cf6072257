"""Unconfigured means production; development is asked for. And `runserver` behaves: a taken
port ends it, each request is one log line."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx

from tests.support.live import ROOT, free_port

# What the suite itself runs with (`make test` opts in to development), removed so the
# settings' own defaults show.
_DEVELOPMENT_VARIABLES = ("DEBUG", "SECRET_KEY", "CHAT_DEV_LOGIN", "DJANGO_SETTINGS_MODULE")

_PRINT_SETTINGS = """
import django, json
django.setup()
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "CHAT_DEV_LOGIN": settings.CHAT_DEV_LOGIN,
    "persistAuthorization": settings.SPECTACULAR_SETTINGS["SWAGGER_UI_SETTINGS"][
        "persistAuthorization"
    ],
}))
"""


def _environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DEVELOPMENT_VARIABLES}
    return {**env, "DJANGO_SETTINGS_MODULE": "chatproject.settings", **variables}


def _settings_of(**variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _PRINT_SETTINGS],
        cwd=ROOT,
        env=_environment(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_configuration_the_settings_refuse_to_start_without_a_secret_key():
    started = _settings_of()

    assert started.returncode != 0
    assert "SECRET_KEY must be set" in started.stderr


def test_production_settings_have_no_dev_login_and_no_remembered_swagger_token():
    started = _settings_of(SECRET_KEY="a-real-secret")

    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == {
        "DEBUG": False,
        "CHAT_DEV_LOGIN": False,
        "persistAuthorization": False,
    }


def test_debug_alone_does_not_open_the_dev_login():
    started = _settings_of(DEBUG="1")

    assert json.loads(started.stdout)["CHAT_DEV_LOGIN"] is False


def test_the_dev_login_is_there_when_asked_for():
    started = _settings_of(SECRET_KEY="a-real-secret", CHAT_DEV_LOGIN="1")

    assert json.loads(started.stdout)["CHAT_DEV_LOGIN"] is True


# --- runserver ----------------------------------------------------------------------------


def _runserver(port: int, *extra: str, **variables: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", *extra],
        cwd=ROOT,
        env=_environment(**{**variables, "DEBUG": "1", "CHAT_DEV_LOGIN": "1"}),  # as `make run`
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_taken_port_ends_runserver_with_a_clear_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = _runserver(port)
        try:
            output, _ = server.communicate(timeout=60)
        finally:
            server.kill()

    assert server.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in output
    assert f"make run PORT={port + 1}" in output


def test_each_request_is_one_log_line(live_env):
    port = free_port()
    server = _runserver(port, "--noreload", **live_env)  # on the test database
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz?first")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "runserver did not start"
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz?counted").status_code == 200
        time.sleep(0.5)  # the access log is written after the response
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    assert len([line for line in output.splitlines() if "/healthz" in line]) == 2, output
    assert output.count("Watching for file changes") <= 1
