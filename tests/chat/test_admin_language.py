"""The admin speaks one language: every page of the project's models and moderation reads
all in Chinese under LANGUAGE_CODE=zh-hans (the default) and all in English under en, and
the Chinese catalog (locale/) holds a translation of every string the code marks."""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import django
import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessToken, User
from accounts.tickets import ticket_issue
from accounts.tokens import token_issue, token_key_id
from chat.models import ChatRecord, ChatSession, ModerationEvent
from chat.moderation import (
    MODERATOR_GROUP,
    record_flag,
    record_hide,
    record_mark_reviewed,
    record_unhide,
)
from tests.support.languages import chinese_runs, english_words, shown_text
from tests.support.live import ROOT

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/chat/chatrecord/"
# Compiled by `make messages`: the project's words, and Django's that its catalogs lack.
CATALOGS = (
    "locale/zh_Hans/LC_MESSAGES/django",
    "locale/django/zh_Hans/LC_MESSAGES/django",
    "locale/django/zh_Hans/LC_MESSAGES/djangojs",
)
# Latin words a Chinese page may show: names of things that have no other (WeChat's openid
# and unionid, CSV, API, the H5 page, token counts, ID), and Django's: its name in the
# header, the keys in its help text for picking several permissions (Control, Command, Mac).
ALLOWED_IN_CHINESE = {"openid", "unionid", "csv", "api", "h5", "token", "id", "django"}
ALLOWED_IN_CHINESE |= {"control", "command", "mac"}
# English that Django's templates write as it is, untranslatable: the alt text of the
# search icon and of the yes / no icons (read by screen readers, shown if an image fails).
DJANGO_UNTRANSLATABLE = ("Search", "True", "False")
GETTEXT = shutil.which("msgmerge") and shutil.which("msgcmp")
needs_gettext = pytest.mark.skipif(
    not GETTEXT, reason="GNU gettext not installed (make test installs it)"
)


@pytest.fixture
def cast(owner, other, staff) -> dict:
    """Records of every status, rating, source and terminal; each moderation action, by
    staff and automatic; a token and a web-view ticket. What they hold is data, left out of
    the checks (`_data`), not words of the admin."""
    now = timezone.now()
    session = ChatSession.objects.create(owner=owner, title="退款")
    records = [
        ChatRecord.objects.create(
            session=session, owner=owner if n % 2 else other, question=f"问题{n}",
            answer=f"回答{n}" if n % 7 else "", status=status, rating=rating,
            rating_reason="不对" if rating == "not_useful" else "", source=source,
            terminal=terminal, model_name="xyz-model", first_token_ms=None if n % 5 else 420,
            error_code="xyz_timeout" if status == "error" else "", prompt_tokens=12,
            completion_tokens=34, created_at=now - timedelta(days=n % 9, minutes=n),
            finished_at=now - timedelta(days=n % 9),
        )
        for n, (status, rating, source, terminal) in enumerate(
            zip(
                [*ChatRecord.Status.values] * 2,
                [*ChatRecord.Rating.values] * 4,
                [*ChatRecord.Source.values] * 6,
                [*ChatRecord.Terminal.values] * 4,
                strict=False,
            )
        )
    ]  # fmt: skip
    reviewed, flagged, hidden = records[1], records[2], records[3]
    record_mark_reviewed(record=reviewed, by=staff)
    record_flag(record=flagged, by=staff, note="核对")
    record_hide(record=flagged, by=None, note="自动")
    record_unhide(record=flagged, by=staff, note="误判")
    record_hide(record=hidden, by=staff, note="广告")
    token = AccessToken.objects.get(key_id=token_key_id(token_issue(user=owner).token))
    ticket_issue(token=token)
    return {"session": session, "flagged": flagged, "hidden": hidden, "token": token}


def _data(cast: dict) -> tuple[str, ...]:
    """What the data puts on the pages, which no catalog translates: names, codes, and what
    users and staff wrote (written again by the pages' own posts: 再看, 再藏, 好了)."""
    users = User.objects.values_list("username", "openid", "nickname")
    texts = ChatRecord.objects.values_list("question", "answer", "rating_reason")
    written = [
        *ChatSession.objects.values_list("title", flat=True),
        *ModerationEvent.objects.values_list("note", flat=True),
        "再看", "再藏", "好了", "问题",
    ]  # fmt: skip
    keys = AccessToken.objects.values_list("key_id", flat=True)
    codes = [
        *keys, *(key[:8] for key in keys), MODERATOR_GROUP,
        *cast["token"].webview_tickets.values_list("digest", flat=True),
        "xyz-model", "xyz_timeout", "Asia/Shanghai",
    ]  # fmt: skip
    values = [value for row in [*users, *texts] for value in row]
    return tuple(value for value in [*values, *written, *codes] if value)


def _pages(client: Client, cast: dict) -> dict[str, str]:
    """Every admin page of the project's models and moderation, as staff see them."""
    flagged, hidden, owner = cast["flagged"], cast["hidden"], cast["token"].user
    gets = {
        "index": "/admin/",
        "chat app": "/admin/chat/",
        "records": CHANGELIST,
        "queue of one user": f"{CHANGELIST}?moderation=queue&owner={owner.pk}",
        "records found": f"{CHANGELIST}?q=问题",
        "flagged record": reverse("admin:chat_chatrecord_change", args=[flagged.pk]),
        "hidden record": reverse("admin:chat_chatrecord_change", args=[hidden.pk]),
        "dashboard": reverse("chat-dashboard"),
        "sessions": "/admin/chat/chatsession/",
        "session": reverse("admin:chat_chatsession_change", args=[cast["session"].pk]),
        "users": "/admin/accounts/user/",
        "user": reverse("admin:accounts_user_change", args=[owner.pk]),
        "tokens": "/admin/accounts/accesstoken/",
        "token": reverse("admin:accounts_accesstoken_change", args=[cast["token"].pk]),
        "tickets": "/admin/accounts/webviewticket/",
    }
    pages = {name: _ok(client.get(path)) for name, path in gets.items()}
    picked = {"action": "records_flagged", "_selected_action": [flagged.pk, hidden.pk]}
    pages["note asked"] = _ok(client.post(CHANGELIST, picked))
    pages["note missing"] = _ok(client.post(CHANGELIST, {**picked, "apply": "1"}))
    pages["selection flagged"] = _ok(
        client.post(CHANGELIST, {**picked, "apply": "1", "note": "再看"}, follow=True)
    )
    moderate = reverse("admin:chat_chatrecord_moderate", args=[hidden.pk])
    pages["hide refused"] = _ok(client.post(moderate, {"moderation": "hidden"}, follow=True))
    pages["nothing changed"] = _ok(
        client.post(moderate, {"moderation": "hidden", "note": "再藏"}, follow=True)
    )
    pages["unhidden"] = _ok(
        client.post(moderate, {"moderation": "unhidden", "note": "好了"}, follow=True)
    )
    pages["export refused"] = _ok(client.get(f"{CHANGELIST}export/?nonsense=1"), status=400)
    return pages


def _ok(response, status: int = 200) -> str:
    assert response.status_code == status, response.content[:300]
    return response.content.decode()


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@override_settings(LANGUAGE_CODE="zh-hans")
def test_under_chinese_every_admin_page_is_chinese(staff_client, cast):
    data = (*_data(cast), *DJANGO_UNTRANSLATABLE)
    english = {
        name: english_words(shown_text(html, leaving_out=data), allowed=ALLOWED_IN_CHINESE)
        for name, html in _pages(staff_client, cast).items()
    }

    assert {name: words for name, words in english.items() if words} == {}
    record = _pages(staff_client, cast)["flagged record"]
    assert "已标记待复核" in record  # and the words are the catalog's: Chinese, not empty
    # The scripts' words too (the user's and group's permission pickers).
    script = staff_client.get("/admin/jsi18n/").text
    scripts_catalog = json.loads(re.search(r"const newcatalog = (\{.*?\});", script, re.S)[1])
    assert scripts_catalog["Choose all %s"] == "选择全部 %s"


@override_settings(LANGUAGE_CODE="en")
def test_under_english_every_admin_page_is_english(staff_client, cast):
    data = _data(cast)
    chinese = {
        name: chinese_runs(shown_text(html, leaving_out=data))
        for name, html in _pages(staff_client, cast).items()
    }

    assert {name: runs for name, runs in chinese.items() if runs} == {}


@needs_gettext
def test_the_chinese_catalog_translates_every_marked_string_and_is_compiled(tmp_path):
    """`make messages` on a copy of the code finds nothing new, changed (fuzzy) or left
    untranslated, and compiles what is committed: no string marked in the code reaches a
    Chinese page in English, and no translation waits for a compile."""
    copy = tmp_path / "project"
    for folder in ("accounts", "chat", "chatproject", "templates", "locale", "scripts"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "manage.py", copy)

    made = subprocess.run(
        ["scripts/messages.sh"],
        cwd=copy,
        env={**os.environ, "PY": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )

    assert made.returncode == 0, made.stderr
    # msgfmt's count: "N translated messages, M fuzzy translations, K untranslated messages."
    counts = made.stderr.splitlines()
    assert len(counts) == len(CATALOGS), made.stderr
    assert all(re.fullmatch(r"\S+: \d+ translated messages\.", line) for line in counts), counts
    for catalog in CATALOGS:
        assert _compiled(copy / catalog) == _compiled(ROOT / catalog), "run `make messages`"


def _compiled(catalog: Path) -> list[str]:
    """The translations in a compiled catalog, as text; without its header (dates)."""
    shown = subprocess.run(
        ["msgunfmt", f"{catalog}.mo"], capture_output=True, text=True, check=True
    ).stdout
    return [entry for entry in shown.split("\n\n") if not entry.startswith('msgid ""\nmsgstr')]


@needs_gettext
@pytest.mark.parametrize(
    ("package", "domain"),
    [
        ("contrib/admin", "django"),
        ("contrib/admin", "djangojs"),
        ("contrib/auth", "django"),
        ("contrib/contenttypes", "django"),
        ("conf", "django"),  # forms' and fields' messages
    ],
)
def test_every_word_of_django_the_admin_shows_has_its_chinese(package, domain, tmp_path):
    """Django's own Chinese, with locale/django/ for what it lacks, translates every
    message of Django's English catalogs: a newer Django's new words fail here, listed."""
    locale = Path(django.__file__).parent / package / "locale"
    translated = tmp_path / "translated.po"
    subprocess.run(
        ["msgattrib", "--translated", "--no-obsolete", "-o", str(translated),
         str(locale / "zh_Hans/LC_MESSAGES" / f"{domain}.po")],
        check=True,
    )  # fmt: skip
    ours = ROOT / "locale/django/zh_Hans/LC_MESSAGES" / f"{domain}.po"
    both = tmp_path / "both.po"
    subprocess.run(
        ["msgcat", "--use-first", "-o", str(both), str(translated), str(ours)], check=True
    )

    compared = subprocess.run(
        ["msgcmp", str(both), str(locale / "en/LC_MESSAGES" / f"{domain}.po")],
        capture_output=True,
        text=True,
        check=False,
    )

    missing = [line for line in compared.stderr.splitlines() if "warning" not in line]
    assert compared.returncode == 0, missing
