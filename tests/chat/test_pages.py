"""The H5 page's frame as the server sends it (what runs in it: test_h5_chat.py)."""

import json
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from chat import pages


def _config(response) -> dict:
    match = re.search(
        rb'<script id="h5-config" type="application/json">(.*?)</script>', response.content
    )
    return json.loads(match.group(1))


def test_the_page_forbids_inline_script_and_loads_only_its_own_files():
    response = Client().get("/h5/")

    assert response.status_code == 200
    policy = dict(
        directive.split(" ", 1) for directive in response["Content-Security-Policy"].split("; ")
    )
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    # Every script is a file of ours, or data (JSON) that no browser runs.
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/build/h5.js?v=' in tag or 'type="application/json"' in tag
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from elsewhere


@pytest.mark.parametrize("enabled", [True, False])
def test_the_page_offers_the_dev_login_only_where_the_server_has_it(settings, enabled):
    settings.CHAT_DEV_LOGIN = enabled
    settings.CHAT_QUESTION_MAX_CHARS = 321

    config = _config(Client().get("/h5/"))

    assert config == {"devLogin": enabled, "questionMaxChars": 321}


def test_without_the_slash_the_page_is_a_redirect_that_keeps_the_ticket():
    response = Client().get("/h5", {"ticket": "t-1", "lang": "en"})

    assert response.status_code == 302
    assert response["Location"] == "/h5/?ticket=t-1&lang=en"


def test_the_page_is_only_read():
    assert Client().post("/h5/").status_code == 405


def test_a_bundle_url_changes_with_its_content(tmp_path, monkeypatch):
    bundle = tmp_path / "h5.js"
    bundle.write_text("one")
    monkeypatch.setattr(pages.finders, "find", lambda name: str(bundle))
    first = pages.asset_url("build/h5.js")
    bundle.write_text("two")

    assert first.startswith("/static/build/h5.js?v=")
    assert pages.asset_url("build/h5.js") != first


def test_a_missing_bundle_says_how_to_build_it(monkeypatch):
    monkeypatch.setattr(pages.finders, "find", lambda name: None)

    with pytest.raises(ImproperlyConfigured, match="npm ci && npm run build"):
        pages.asset_url("build/h5.js")
