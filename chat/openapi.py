"""The OpenAPI 3 schema (drf-spectacular): naming, auth, and what it cannot see by itself.

Wired up in settings (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS and SPECTACULAR_SETTINGS). The
stream endpoints, plain async views, are described by hand in chat/openapi_streams.py.
This module must not import views: DRF loads the schema class while views are defined.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.views import APIView

from chat.serializers import ErrorOutput

_ERROR_TEXT = {
    400: "`invalid_input` (with `fields`) or `malformed_json`.",
    401: "`not_authenticated` or `invalid_token`.",
    404: "Not found; also when it is not yours.",
    409: "The record's state does not allow this.",
    413: "`payload_too_large`.",
    415: "`unsupported_media_type`: send `Content-Type: application/json`.",
}


def errors(*statuses: int, **notes: str) -> dict[int, OpenApiResponse]:
    """The documented error answers of an operation, all in the one error shape.

    `notes` adds the codes particular to it, keyed by status: `errors(401, e404="...")`.
    """
    return {
        status: OpenApiResponse(
            ErrorOutput, description=notes.get(f"e{status}") or _ERROR_TEXT[status]
        )
        for status in statuses
    }


class ApiAutoSchema(AutoSchema):
    """Schemas for our APIViews, which nest an InputSerializer and an OutputSerializer."""

    # Without an explicit @extend_schema, document the nested serializers rather than
    # guess (and warn) as drf-spectacular does for a plain APIView.
    def get_request_serializer(self) -> Any:
        if isinstance(self.view, GenericAPIView):
            return super().get_request_serializer()
        return getattr(self.view, "InputSerializer", None)

    def get_response_serializers(self) -> Any:
        if isinstance(self.view, GenericAPIView):
            return super().get_response_serializers()
        return getattr(self.view, "OutputSerializer", None)

    def get_serializer_name(self, serializer: serializers.BaseSerializer, direction: str) -> str:
        # Nested serializers share names (every view has an InputSerializer): name each
        # after its view, e.g. SessionCreateApi.InputSerializer -> SessionCreateInput.
        parts = type(serializer).__qualname__.split(".")
        return "".join(p.removesuffix("Api").removesuffix("Serializer") for p in parts)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The `token` from `POST /api/auth/dev/login`.",
        }


class DevLoginOutput(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()
    created = serializers.BooleanField(help_text="True when this login created the user.")


class DevLoginSchema(OpenApiViewExtension):
    """Documents accounts' dev login (its view carries no schema of its own)."""

    target_class = "accounts.views.DevLoginApi"

    def view_replacement(self) -> type[APIView]:
        login_view = self.target_class

        class DocumentedDevLogin(login_view):
            @extend_schema(
                tags=["auth"],
                operation_id="auth_dev_login",
                summary="Development login: an openid in, a token out",
                description="Only with CHAT_DEV_LOGIN=1; otherwise 404 `not_found`.",
                request=login_view.InputSerializer,
                responses={
                    200: DevLoginOutput,
                    201: DevLoginOutput,
                    **errors(400, 415),
                    404: OpenApiResponse(ErrorOutput, description="Dev login is off."),
                },
            )
            def post(self, *args: Any, **kwargs: Any) -> Any:
                return super().post(*args, **kwargs)

        return DocumentedDevLogin
