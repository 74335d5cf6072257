"""Who is calling: the bearer token, for plain async views and for DRF alike.

The async stream views check a token in two steps: its signature in the request (no
database, so forgeries and missing tokens cost nothing), then its row inside the view's one
database unit of work (see chat/views.py).
"""

from django.http import HttpRequest
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import AccessToken, User
from accounts.tokens import InvalidToken, TokenOwner, token_access, token_key_id, token_owner
from chatproject.errors import ApplicationError
from chatproject.logs import log_context


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _invalid_token() -> ApplicationError:
    return ApplicationError(
        "invalid_token", "The token is invalid, expired or revoked.", status=401
    )


def signed_bearer_token(request: HttpRequest) -> str:
    """The request's bearer token if its signature holds, or a 401 ApplicationError."""
    token = bearer_token(request)
    if token is None:
        raise ApplicationError(
            "not_authenticated", "Send Authorization: Bearer <token>.", status=401
        )
    try:
        token_key_id(token)
    except InvalidToken:
        raise _invalid_token() from None
    return token


def owner_for_token(token: str) -> TokenOwner:
    """The token's active user (one lean query), or a 401 ApplicationError."""
    try:
        return token_owner(token)
    except InvalidToken:
        raise _invalid_token() from None


def owner_id_for_token(token: str) -> int:
    return owner_for_token(token).id


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF's door to the same tokens (DRF views run in a worker thread, so sync is fine).
    `request.auth` is the token's row."""

    def authenticate(self, request: Request) -> tuple[User, AccessToken] | None:
        token = bearer_token(request._request)
        if token is None:
            return None
        try:
            access = token_access(token)
            log_context(user_id=access.user_id)
            return access.user, access
        except InvalidToken:
            raise exceptions.AuthenticationFailed(
                "The token is invalid, expired or revoked."
            ) from None

    def authenticate_header(self, request: Request) -> str:
        # Present so DRF answers 401 (not 403) when the token is missing.
        return 'Bearer realm="api"'
