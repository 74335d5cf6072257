import pytest
from django.core.exceptions import ImproperlyConfigured

from chatproject.env import env_bool, env_int, env_json, env_str


def test_env_bool_refuses_values_it_does_not_know(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "ture")
    with pytest.raises(ImproperlyConfigured):
        env_bool("FLAG")


def test_env_int_checks_type_and_minimum(monkeypatch):
    monkeypatch.setenv("N", "12")
    assert env_int("N", 3) == 12
    monkeypatch.setenv("N", "-1")
    with pytest.raises(ImproperlyConfigured):
        env_int("N", 3)
    monkeypatch.setenv("N", "many")
    with pytest.raises(ImproperlyConfigured):
        env_int("N", 3)


def test_secrets_can_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "key"
    secret.write_text("sk-from-file\n")
    monkeypatch.setenv("LLM_API_KEY_FILE", str(secret))
    assert env_str("LLM_API_KEY") == "sk-from-file"


def test_env_json_reports_bad_json(monkeypatch):
    monkeypatch.setenv("LLM_MODELS", "[{")
    with pytest.raises(ImproperlyConfigured):
        env_json("LLM_MODELS")
