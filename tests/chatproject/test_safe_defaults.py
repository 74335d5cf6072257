"""Unconfigured means production; development is asked for. Production passes Django's
deployment checks. And `runserver` behaves: a taken port ends it, each request is one log
line."""

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.live import ROOT, free_port

# What an operator generates (docs/deploy.md): 50+ random characters.
STRONG_KEY = "kV3n8dQ2-xT7Lw0pZr5Ys9Ub1Mf4Hc6Ja2Ne8Gq3Rt7Wk0Xv5Bz9Ld1Sp4Fh6Cm2Yj"

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
    started = _settings_of(SECRET_KEY=STRONG_KEY)

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
    started = _settings_of(SECRET_KEY=STRONG_KEY, CHAT_DEV_LOGIN="1")

    assert json.loads(started.stdout)["CHAT_DEV_LOGIN"] is True


def test_a_weak_secret_key_stops_production_at_start_up():
    started = _settings_of(SECRET_KEY="a-real-secret")

    assert started.returncode != 0
    assert "SECRET_KEY is too weak" in started.stderr


def _manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=_environment(**variables),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_production_settings_pass_the_deployment_checks_without_a_warning():
    checked = _manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=STRONG_KEY)

    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout


def test_each_deployment_setting_can_be_turned_off_and_the_check_then_says_so():
    checked = _manage(
        "check", "--deploy", SECRET_KEY=STRONG_KEY, SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0", SESSION_COOKIE_SECURE="0", CSRF_COOKIE_SECURE="0",
    )  # fmt: skip

    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in checked.stderr


@pytest.fixture(scope="module")
def production_server(start_server):
    """Production's transport settings, as they are when nothing turns them off."""
    server = start_server(
        software="uvicorn", BEHIND_PROXY="1", SECURE_SSL_REDIRECT="1",
        SESSION_COOKIE_SECURE="1", CSRF_COOKIE_SECURE="1", SECURE_HSTS_SECONDS="31536000",
    )  # fmt: skip
    yield server
    server.stop()  # its database connections go back now, not at the end of the session


def test_plain_http_is_sent_to_https_except_the_health_check_and_the_metrics(production_server):
    url = production_server.url
    https = url.replace("http://", "https://")

    me = httpx.get(f"{url}/api/auth/me")
    stream = httpx.post(f"{url}/api/chat/stream", json={"question": "hi"})

    assert (me.status_code, me.headers["Location"]) == (301, f"{https}/api/auth/me")
    assert (stream.status_code, stream.headers["Location"]) == (301, f"{https}/api/chat/stream")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/metrics").status_code == 200


def test_behind_the_proxy_https_gets_hsts_and_secure_cookies(production_server):
    as_https = {"X-Forwarded-Proto": "https"}

    me = httpx.get(f"{production_server.url}/api/auth/me", headers=as_https)
    admin = httpx.get(f"{production_server.url}/admin/login/", headers=as_https)

    assert me.status_code == 401
    assert me.headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )
    assert "; secure" in admin.headers["Set-Cookie"].lower()


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
