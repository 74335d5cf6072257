"""The OpenAPI schema and Swagger UI, and a schema-driven fuzz run of the history API."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from chat.models import ChatRecord, ChatSession

# The JSON API of the history; the stream endpoints (stream, a record's events and stop)
# answer SSE or wait on a live answer, and are not fuzzed here.
HISTORY_API = r"^/api/chat/(sessions|records|search)(?!.*/(events|stop)$)"


@pytest.mark.django_db
def test_schema_documents_every_endpoint_including_the_stream():
    response = Client().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/chat/sessions/",
        "/api/chat/sessions/{session_id}/",
        "/api/chat/sessions/{session_id}/records/",
        "/api/chat/records/{record_id}/",
        "/api/chat/records/{record_id}/rating",
        "/api/chat/records/bulk",
        "/api/chat/search/",
        "/api/chat/stream",
        "/api/chat/records/{record_id}/events",
        "/api/chat/records/{record_id}/stop",
        "/api/auth/dev/login",
    } <= set(schema["paths"])
    assert set(schema["paths"]["/api/chat/sessions/{session_id}/"]) == {"get", "patch", "delete"}
    stream = schema["paths"]["/api/chat/stream"]["post"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"start", "delta", "error", "done"} <= {
        word.strip("`") for word in stream["description"].split() if word.startswith("`")
    }
    body = schema["components"]["schemas"]["StreamRequest"]["properties"]
    assert set(body) == {
        "question",
        "session_id",
        "model",
        "client_id",
        "terminal",
        "question_type",
    }
    item = schema["components"]["schemas"]["HandoffItem"]["properties"]
    assert {"question", "answer", "useful", "createTime", "largeModel", "window", "id"} <= set(item)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/chat/"):
                assert operation["security"] == [{"bearerAuth": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


@pytest.mark.django_db
def test_swagger_ui_is_served_without_a_cdn():
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr" not in html


def _seed(owner) -> dict[str, int]:
    """Real rows for the fuzzer to aim at, so it gets past 404s into the actual logic."""
    session = ChatSession.objects.create(owner=owner, title="fuzz")
    throwaway = ChatSession.objects.create(owner=owner, title="to delete")
    now = timezone.now()
    records = [
        ChatRecord.objects.create(
            session=session, owner=owner, question=f"问题 {i}", answer=f"answer {i}",
            status=status, finished_at=now, client_id=f"seed-{i}",
        )
        for i, status in enumerate(["done", "interrupted", "error", "pending"])
    ]  # fmt: skip
    return {"session": session.pk, "throwaway": throwaway.pk, "record": records[0].pk}


def _strategies(schema, seeded: dict[str, int]) -> list:
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        pinned = {}
        if "{session_id}" in operation.path:
            key = "throwaway" if operation.method.upper() == "DELETE" else "session"
            pinned = {"session_id": seeded[key]}
        elif "{record_id}" in operation.path:
            pinned = {"record_id": seeded["record"]}
        deletes = operation.method.upper() == "DELETE"
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if not deletes:  # a random DELETE would sooner or later hit the seeded session
                strategies.append(operation.as_strategy(generation_mode=mode))
            if pinned:
                strategies.append(
                    operation.as_strategy(generation_mode=mode, path_parameters=pinned)
                )
    return strategies


@pytest.mark.django_db(transaction=True)
def test_fuzzing_the_history_api_finds_no_5xx_and_no_off_schema_answer(owner, owner_token):
    # In process, over WSGI: the real middleware, URL routing and error handler.
    config = schemathesis.Config.from_dict(
        {
            # Unknown query parameters are ignored on purpose (cache busters), and the token
            # is sent below, not generated.
            "generation": {"allow-extra-parameters": False, "with-security-parameters": False}
        }
    )
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", get_wsgi_application(), config=config
    )
    schema = schema.include(path_regex=HISTORY_API)
    strategies = _strategies(schema, _seed(owner))
    # Identity: the in-process client does not un-gzip, as a real HTTP client would.
    headers = {"Authorization": f"Bearer {owner_token}", "Accept-Encoding": "identity"}

    @given(data=st.data())
    @settings(
        max_examples=25 * len(strategies),  # about 750 requests, 20-30 s
        deadline=None,
        database=None,  # no example database: derandomized runs need none
        derandomize=True,  # the same cases on every run, so CI is repeatable
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(data):
        case = data.draw(st.sampled_from(strategies).flatmap(lambda s: s))
        # Every built-in check but two. One expects any schema-valid request to succeed, but
        # an opaque cursor or a date like 2026-02-30 is valid JSON Schema and still rightly
        # refused (a documented 400). The other expects any schema-invalid body to be
        # refused, but the handoff answers a bad item with an error *in* its 200 on purpose.
        excluded = [positive_data_acceptance]
        if case.operation.path == "/api/chat/records/bulk":
            excluded.append(negative_data_rejection)
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    fuzz()
