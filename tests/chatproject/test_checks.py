"""Django's system checks: what every `manage.py` command prints before it runs."""

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_the_project_passes_djangos_checks_without_a_warning():
    call_command("check", fail_level="WARNING")  # raises SystemCheckError otherwise


def test_a_wrong_model_configuration_is_an_error_at_start_up(settings):
    settings.LLM_MODELS = [{"name": "deepseek", "api_key_env": "NO_SUCH_VARIABLE_SET"}]

    with pytest.raises(SystemCheckError, match="NO_SUCH_VARIABLE_SET"):
        call_command("check")

    settings.LLM_MODELS = [{"name": "deepseek", "api_key": "k"}]
    settings.LLM_DEFAULT_MODEL = "gpt-5"
    with pytest.raises(SystemCheckError, match="LLM_DEFAULT_MODEL 'gpt-5'"):
        call_command("check")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"CHAT_CONTENT_CHECK": "no.such.Checker"}, "cannot import 'no.such.Checker'"),
        ({"CHAT_CONTENT_CHECK": "chat.models.ChatRecord"}, "is not a ContentChecker"),
        ({"CHAT_CONTENT_CHECK": "keywords", "CHAT_CONTENT_CHECK_KEYWORDS": " , "}, "needs CHAT_"),
        ({"CHAT_CONTENT_CHECK": "wechat", "WECHAT_APP_ID": ""}, "needs WECHAT_APP_ID"),
    ],
)
def test_a_wrong_content_check_is_an_error_at_start_up(settings, overrides, message):
    for name, value in overrides.items():
        setattr(settings, name, value)

    with pytest.raises(SystemCheckError, match=message):
        call_command("check")


OBSERVED = "tests.support.observed.RequestIdMiddleware"


def test_a_middleware_the_streams_would_skip_is_named(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, OBSERVED]  # below the stream lane

    (warning,) = [m for m in checks.run_checks() if m.id == "chat.W002"]

    assert warning.obj == OBSERVED
    assert "does not run on the answer streams" in warning.msg
    assert "above chatproject.middleware.StreamLaneMiddleware" in warning.hint


def test_a_middleware_above_the_stream_lane_runs_on_streams_and_is_not_named(settings):
    settings.MIDDLEWARE = [OBSERVED, *settings.MIDDLEWARE]

    assert [m for m in checks.run_checks() if m.id == "chat.W002"] == []
