"""Request plumbing shared by the routes: context, replies, body parsing, auth (contract §2.3)
and schema checks (§2.4)."""

from __future__ import annotations

import hmac
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers

from . import _errors as err
from ._backend import Backend
from ._errors import PlainError
from ._store import Project, User
from ._tokens import VerifiedToken, decode_access_token

ACCESS_TYPES = ("client", "server", "admin")
CLIENT_AND_UP = ("client", "server", "admin")
SERVER_AND_UP = ("server", "admin")
#: What the SDK sends instead of a publishable key when the project does not require one.
PUBLIC_CLIENT_SENTINEL = "__stack_public_client__"
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")


@dataclass
class Auth:
    """The outcome of ``parse_auth``: project, access type, and the token's user if any."""

    project: Project
    access_type: str
    user: User | None
    token: VerifiedToken | None

    @property
    def server(self) -> bool:
        """True for server or admin access (server-shaped responses)."""
        return self.access_type != "client"


@dataclass
class Reply:
    """A successful (or deliberately non-JSON) answer of a route."""

    status: int = 200
    body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Ctx:
    """One request as a route sees it."""

    backend: Backend
    method: str
    path: str
    headers: Headers
    query: dict[str, str]
    body: Any
    params: dict[str, str]
    auth: Auth | None = None

    def header(self, name: str) -> str | None:
        """``x-stack-<name>``, or the SDK's ``x-hexclave-<name>`` spelling."""
        value = self.headers.get(f"x-stack-{name}")
        if value is None:
            value = self.headers.get(f"x-hexclave-{name}")
        return value

    @property
    def need_auth(self) -> Auth:
        """The auth of a route that declared its access types (always set there)."""
        if self.auth is None:
            raise err.access_type_required()
        return self.auth


def parse_query(raw: bytes) -> dict[str, str]:
    """The query string as a dict; a repeated name keeps its last value (as Stack does)."""
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def parse_body(method: str, content_type: str | None, raw: bytes) -> Any:
    """The request body by content type, as Stack reads it; ``None`` when there is none."""
    if method == "GET":
        return None
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "":
        return None
    if kind == "application/octet-stream":
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise err.body_parsing_error("The request body is not valid UTF-8.") from None
    if kind == "application/json":
        try:
            return json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            raise err.body_parsing_error("The request body is not valid JSON.") from None
    if kind == "text/plain":
        return text
    if kind == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True))
    raise err.body_parsing_error(f"Unsupported content type of the request body: {kind}")


def _key_matches(given: str, valid: Iterable[str]) -> bool:
    return any(hmac.compare_digest(given.encode(), key.encode()) for key in valid)


def parse_auth(ctx: Ctx) -> Auth | None:
    """Stack's ``parseAuth``, check for check in the contract's order; the first failure wins."""
    access_type = ctx.header("access-type")
    publishable = ctx.header("publishable-client-key")
    secret = ctx.header("secret-server-key")
    admin_key = ctx.header("super-secret-admin-key")
    admin_token = ctx.header("admin-access-token")
    if not access_type:
        if publishable or secret or admin_key or admin_token:
            raise err.project_key_without_access_type()
        return None  # no auth at all: the access token is not even looked at
    if access_type not in ACCESS_TYPES:
        raise err.invalid_access_type(access_type)
    project_id = ctx.header("project-id")
    if not project_id:
        raise err.access_type_without_project_id(access_type)

    backend = ctx.backend
    token: VerifiedToken | None = None
    raw_token = ctx.header("access-token")
    if raw_token:  # checked before the project and the keys: a bad token hides a bad key
        token = decode_access_token(
            raw_token,
            keys=backend.keys,
            public_url=backend.public_url,
            project_exists=lambda pid: pid in backend.projects,
            now=backend.now(),
        )
        if token.project_id != project_id:
            raise err.invalid_project_for_access_token(project_id, token.project_id)
        allow_anonymous = ctx.header("allow-anonymous-user") == "true"
        allow_restricted = allow_anonymous or ctx.header("allow-restricted-user") == "true"
        if token.is_anonymous and not allow_anonymous:
            raise err.anonymous_authentication_not_allowed()
        if token.is_restricted and not allow_restricted:
            raise err.restricted_user_not_allowed(token.restricted_reason)

    project = backend.projects.get(project_id)
    if project is None:
        raise err.current_project_not_found(project_id)

    if admin_token:
        raise PlainError(501, "The Stack Auth emulator does not support admin access tokens.")
    if access_type == "client":
        if not publishable or publishable == PUBLIC_CLIENT_SENTINEL:
            if project.config.require_publishable_client_key:
                raise err.publishable_client_key_required(project_id)
        elif not _key_matches(publishable, project.publishable_client_keys):
            raise err.invalid_publishable_client_key(project_id)
    elif access_type == "server":
        if not secret:
            raise err.server_authentication_required()
        if not _key_matches(secret, project.secret_server_keys):
            raise err.invalid_secret_server_key(project_id)
    else:
        if not admin_key:
            raise err.admin_authentication_required()
        if not _key_matches(admin_key, project.super_secret_admin_keys):
            raise err.invalid_super_secret_admin_key(project_id)

    branch_id = ctx.header("branch-id")
    if branch_id is not None and branch_id != "main":
        raise err.branch_does_not_exist(branch_id)

    # A deleted user's token is still valid: the request just carries no user.
    user = project.users.get(token.user_id) if token is not None else None
    return Auth(project=project, access_type=access_type, user=user, token=token)


# --- schema checks ----------------------------------------------------------------------------

#: A field check returns a problem (``"must be a boolean"``) or ``None``.
FieldCheck = Callable[[Any], "str | None"]


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def f_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean"


def f_true(value: Any) -> str | None:
    return None if value is True else "must be true"


def f_false(value: Any) -> str | None:
    return None if value is False else "must be false"


def f_json(value: Any) -> str | None:
    return None


def _nullable(nullable: bool, check: FieldCheck) -> FieldCheck:
    """``check`` behind the null rule: ``None`` passes only when ``nullable``."""
    return lambda value: (
        (None if nullable else "must not be null") if value is None else check(value)
    )


def f_str(*, max_len: int | None = None, nullable: bool = False) -> FieldCheck:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        too_long = max_len is not None and len(value) > max_len
        return f"must be at most {max_len} characters" if too_long else None

    return _nullable(nullable, check)


def f_email(*, nullable: bool = False) -> FieldCheck:
    def check(value: Any) -> str | None:
        valid = isinstance(value, str) and _EMAIL.fullmatch(value) is not None
        return None if valid else "must be a valid email"

    return _nullable(nullable, check)


def f_uuid(*, nullable: bool = False) -> FieldCheck:
    return _nullable(nullable, lambda value: None if is_uuid(value) else "must be a valid UUID")


def f_int(*, minimum: int | None = None, maximum: int | None = None) -> FieldCheck:
    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be an integer"
        if minimum is not None and value < minimum:
            return f"must be at least {minimum}"
        if maximum is not None and value > maximum:
            return f"must be at most {maximum}"
        return None

    return check


def q_bool(value: str) -> str | None:
    return None if value in ("true", "false") else "must be 'true' or 'false'"


def q_uuid(value: str) -> str | None:
    return None if is_uuid(value) else "must be a valid UUID"


def q_positive_int(value: str) -> str | None:
    return None if value.isdigit() and int(value) >= 1 else "must be an integer of at least 1"


def q_one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of: {', '.join(choices)}"

    return check


def validate(
    ctx: Ctx,
    query: Mapping[str, Callable[[str], str | None]] | None = None,
    *,
    body: Mapping[str, FieldCheck] | None = None,
    required: Iterable[str] = (),
    uuid_param: str | None = None,
    problems: Iterable[str] = (),
) -> dict[str, Any]:
    """Check the query (none unless given), a path parameter, and a JSON object body (none
    unless given); one ``SCHEMA_ERROR`` lists every problem. Returns the body (``{}`` if none)."""
    found: list[str] = []
    allowed = query or {}
    unknown = [name for name in ctx.query if name not in allowed]
    if unknown:
        found.append(f"query contains unknown properties: {', '.join(unknown)}")
    for name, check in allowed.items():
        if name in ctx.query and (problem := check(ctx.query[name])):
            found.append(f"query.{name} {problem}")
    if uuid_param is not None and not is_uuid(ctx.params[uuid_param]):
        found.append(f"params.{uuid_param} must be a valid UUID")
    value: dict[str, Any] = ctx.body if isinstance(ctx.body, dict) else {}
    if body is not None and not isinstance(ctx.body, dict):
        found.append("body must be a JSON object")
    elif body is not None:
        unknown = [name for name in value if name not in body]
        if unknown:
            found.append(f"body contains unknown properties: {', '.join(unknown)}")
        found += [f"body.{name} is a required field" for name in required if name not in value]
        for name, check_field in body.items():
            if name in value and (problem := check_field(value[name])):
                found.append(f"body.{name} {problem}")
    found += problems
    if found:
        raise err.schema_error(ctx.method, ctx.path, found)
    return value
