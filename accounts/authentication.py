"""Who is calling: the bearer token, for plain async views and for DRF alike."""

from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import User
from accounts.tokens import InvalidToken, atoken_user, token_user
from chatproject.errors import ApplicationError


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate_request(request: HttpRequest) -> User:
    """The calling user, or a 401 ApplicationError; never blocks the event loop."""
    token = bearer_token(request)
    if token is None:
        raise ApplicationError(
            "not_authenticated", "Send Authorization: Bearer <token>.", status=401
        )
    try:
        return await atoken_user(token)
    except InvalidToken:
        raise ApplicationError(
            "invalid_token", "The token is invalid, expired or revoked.", status=401
        ) from None


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF's door to the same tokens (DRF views run in a worker thread, so sync is fine)."""

    def authenticate(self, request: Request) -> tuple[User, str] | None:
        token = bearer_token(request._request)
        if token is None:
            return None
        try:
            return token_user(token), token
        except InvalidToken:
            raise exceptions.AuthenticationFailed(
                "The token is invalid, expired or revoked."
            ) from None

    def authenticate_header(self, request: Request) -> str:
        # Present so DRF answers 401 (not 403) when the token is missing.
        return 'Bearer realm="api"'
