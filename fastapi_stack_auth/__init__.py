"""Stack Auth for FastAPI: ``Depends(current_user)`` gives you a typed, verified ``StackUser``.

Quick start::

    from fastapi import Depends, FastAPI
    from fastapi_stack_auth import StackAuth, StackUser, current_user

    stack = StackAuth()          # STACK_PROJECT_ID, STACK_SECRET_SERVER_KEY, ... read at startup
    app = FastAPI()
    stack.init_app(app)

    @app.get("/me")
    async def me(user: StackUser = Depends(current_user)) -> dict[str, str]:
        return {"id": user.id}

More models are in ``fastapi_stack_auth.models``, every exception in ``fastapi_stack_auth.errors``.
"""

from ._answers import AuthError
from ._authorization import (
    TeamAccess,
    TeamMember,
    current_team_member,
    require_project_permission,
    require_team_permission,
)
from ._dependencies import (
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
from ._exceptions import StackAuthConfigError, StackAuthError
from ._principals import (
    ApiKeyPrincipal,
    CurrentPrincipal,
    PrincipalDependency,
    api_key_principal,
    current_principal,
)
from ._requirements import TeamFrom, all_of, any_of
from ._settings import StackAuthSettings
from ._stack import StackAuth
from ._version import __version__
from .models import ApiKey, Principal, StackUser, TokenClaims

__all__ = [
    "ApiKey",
    "ApiKeyPrincipal",
    "AuthError",
    "CurrentClaims",
    "CurrentPrincipal",
    "CurrentUser",
    "OptionalUser",
    "Principal",
    "PrincipalDependency",
    "StackAuth",
    "StackAuthConfigError",
    "StackAuthError",
    "StackAuthSettings",
    "StackUser",
    "TeamAccess",
    "TeamFrom",
    "TeamMember",
    "TokenClaims",
    "UserDependency",
    "__version__",
    "all_of",
    "any_of",
    "api_key_principal",
    "current_principal",
    "current_team_member",
    "current_user",
    "full_user",
    "optional_user",
    "require_project_permission",
    "require_team_permission",
    "require_user",
    "token_claims",
]
