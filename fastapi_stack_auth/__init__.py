"""Stack Auth for FastAPI: ``Depends(current_user)`` gives you a typed, verified ``StackUser``.

Quick start::

    from fastapi import Depends, FastAPI
    from fastapi_stack_auth import StackAuth, StackUser, current_user

    stack = StackAuth()          # reads STACK_PROJECT_ID, STACK_SECRET_SERVER_KEY, ...
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}
"""

from ._auth import StackAuth
from ._cache import TokenCache
from ._client import StackClient
from ._dependencies import (
    ClaimsDependency,
    CurrentClaims,
    CurrentUser,
    OptionalUser,
    UserDependency,
    current_user,
    full_user,
    optional_user,
    require_user,
    token_claims,
)
from ._errors import (
    AuthError,
    InvalidAccessTokenError,
    ProjectCredentialsError,
    StackAPIError,
    StackAuthConfigError,
    StackAuthError,
    StackBadResponseError,
    StackUnavailableError,
    UserGoneError,
    UserNotAllowedError,
)
from ._jwks import JwksCache
from ._jwt import JwtVerifier
from ._models import (
    OAuthProvider,
    RestrictedReason,
    RiskScores,
    SignUpRiskScores,
    StackUser,
    Team,
    TokenClaims,
)
from ._settings import StackAuthSettings
from ._verifiers import Identity, RemoteVerifier, Verifier
from ._version import __version__

__all__ = [
    "AuthError",
    "ClaimsDependency",
    "CurrentClaims",
    "CurrentUser",
    "Identity",
    "InvalidAccessTokenError",
    "JwksCache",
    "JwtVerifier",
    "OAuthProvider",
    "OptionalUser",
    "ProjectCredentialsError",
    "RemoteVerifier",
    "RestrictedReason",
    "RiskScores",
    "SignUpRiskScores",
    "StackAPIError",
    "StackAuth",
    "StackAuthConfigError",
    "StackAuthError",
    "StackAuthSettings",
    "StackBadResponseError",
    "StackClient",
    "StackUnavailableError",
    "StackUser",
    "Team",
    "TokenCache",
    "TokenClaims",
    "UserDependency",
    "UserGoneError",
    "UserNotAllowedError",
    "Verifier",
    "__version__",
    "current_user",
    "full_user",
    "optional_user",
    "require_user",
    "token_claims",
]
