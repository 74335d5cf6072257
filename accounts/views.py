"""Login endpoints. Each view parses, calls one service, shapes the answer."""

from django.conf import settings
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import user_get_or_create_by_openid
from accounts.tokens import token_issue
from chatproject.errors import ApplicationError

OPENID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class DevLoginApi(APIView):
    """Development login: an openid in, a token out. Only with DEBUG or CHAT_DEV_LOGIN=1."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    class InputSerializer(serializers.Serializer):
        openid = serializers.RegexField(OPENID_PATTERN)

    def post(self, request: Request) -> Response:
        if not settings.CHAT_DEV_LOGIN:
            raise ApplicationError("not_found", "No such endpoint.", status=404)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, created = user_get_or_create_by_openid(openid=data.validated_data["openid"])
        issued = token_issue(user=user)
        body = TokenOutput(issued).data | {"created": created}
        return Response(body, status=201 if created else 200)
