"""Login, logout, profile and web-view ticket endpoints.

Each view parses, calls one service, shapes the answer.
"""

from django.conf import settings
from django.core.validators import RegexValidator, URLValidator
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import bearer_token
from accounts.models import User
from accounts.services import user_login_by_openid, user_login_by_wechat_code, user_profile_update
from accounts.tickets import InvalidTicket, ticket_exchange, ticket_issue
from accounts.tokens import InvalidToken, token_issue, token_revoke, tokens_revoke_all
from chat.limits import LoginThrottle, TicketExchangeThrottle
from chatproject.drf import TextField
from chatproject.errors import ApplicationError

OPENID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_CHALLENGE = 'Bearer realm="api"'


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class _ChallengeOn401:
    """Our own 401s carry the same WWW-Authenticate challenge as DRF's."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if response.status_code == 401:
            response["WWW-Authenticate"] = _CHALLENGE
        return response


def _login_response(*, user: User, created: bool) -> Response:
    issued = token_issue(user=user)
    body = TokenOutput(issued).data | {"created": created}
    return Response(body, status=201 if created else 200)


class DevLoginApi(APIView):
    """Development login: an openid in, a token out. Only with CHAT_DEV_LOGIN=1."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (LoginThrottle,)

    class InputSerializer(serializers.Serializer):
        openid = TextField(validators=[RegexValidator(OPENID_PATTERN)])

    def post(self, request: Request) -> Response:
        if not settings.CHAT_DEV_LOGIN:
            raise ApplicationError("not_found", "No such endpoint.", status=404)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, created = user_login_by_openid(openid=data.validated_data["openid"])
        return _login_response(user=user, created=created)


class WechatLoginApi(APIView):
    """Mini-program login: the code from `wx.login` in, a token out (code2Session)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (LoginThrottle,)

    class InputSerializer(serializers.Serializer):
        code = TextField(max_length=128)

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, created = user_login_by_wechat_code(code=data.validated_data["code"])
        return _login_response(user=user, created=created)


class LogoutApi(_ChallengeOn401, APIView):
    """Revoke the presented token. Idempotent: an expired or revoked token also gets 204."""

    # Not DRF's authentication: it would answer 401 to a retried logout.
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def post(self, request: Request) -> Response:
        token = bearer_token(request._request)
        if token is None:
            raise ApplicationError(
                "not_authenticated", "Send Authorization: Bearer <token>.", status=401
            )
        try:
            token_revoke(token=token)
        except InvalidToken:
            raise ApplicationError(
                "invalid_token", "The token is invalid, expired or revoked.", status=401
            ) from None
        return Response(status=204)


class LogoutEverywhereApi(APIView):
    """Revoke every token of the caller (every device, every web-view page, every ticket)."""

    class OutputSerializer(serializers.Serializer):
        revoked = serializers.IntegerField(help_text="How many live tokens were revoked.")

    def post(self, request: Request) -> Response:
        revoked = tokens_revoke_all(user=request.user)
        return Response(self.OutputSerializer({"revoked": revoked}).data)


class MeApi(APIView):
    """The caller's own profile: read it, or change nickname and avatar."""

    class InputSerializer(serializers.Serializer):
        nickname = TextField(max_length=64, allow_blank=True, required=False)
        avatar_url = TextField(
            max_length=500,
            allow_blank=True,
            required=False,
            # Shown in <image> tags: web addresses only.
            validators=[URLValidator(schemes=["https", "http"])],
        )

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        openid = serializers.CharField()  # the caller's own; never anyone else's
        unionid = serializers.CharField()
        nickname = serializers.CharField()
        avatar_url = serializers.CharField()
        created_at = serializers.DateTimeField()

    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(request.user).data)

    def patch(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_profile_update(user=request.user, **data.validated_data)
        return Response(self.OutputSerializer(user).data)


class WebviewTicketApi(APIView):
    """A one-minute, single-use ticket for opening the H5 page as the caller."""

    class OutputSerializer(serializers.Serializer):
        ticket = serializers.CharField()
        expires_at = serializers.DateTimeField()

    def post(self, request: Request) -> Response:
        issued = ticket_issue(token=request.auth)
        return Response(self.OutputSerializer(issued).data, status=201)


class WebviewTicketExchangeApi(_ChallengeOn401, APIView):
    """The H5 page's login: a ticket in (once), a token out."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (TicketExchangeThrottle,)

    class InputSerializer(serializers.Serializer):
        ticket = TextField(max_length=128)

    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            issued = ticket_exchange(ticket=data.validated_data["ticket"])
        except InvalidTicket:
            raise ApplicationError(
                "invalid_ticket", "The ticket is unknown, expired or already used.", status=401
            ) from None
        return Response(TokenOutput(issued).data)
