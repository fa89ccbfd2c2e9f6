"""The emulator's team invitations, connected accounts and ``send-email`` against the contract
(§9.10-9.12): client and server access, Stack's order of checks, codes that expire or are used,
the outbox, and fidelity of their bodies to the contract's fixtures (field names and JSON
types, statuses and error headers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from fastapi_stack_auth.emulator import Emulator, KnownError, User
from tests.emulator_helpers import (
    UNKNOWN_UUID,
    Clock,
    World,
    assert_error_like,
    assert_success_like,
    client_headers,
    fixture,
    known_error,
    seed,
    server_headers,
)

pytest_plugins = ["tests.emulator_fixtures"]

CALLBACK = "http://localhost:3000/handler/team-invitation"
WEEK = 7 * 24 * 3600


def token(emu: Emulator, user: User) -> dict[str, str]:
    return {"x-stack-access-token": emu.sign_in(user.id).access_token}


def send_body(team_id: str, email: str = "ada@example.com", url: str = CALLBACK) -> dict[str, Any]:
    return {"team_id": team_id, "email": email, "callback_url": url}


def code_of(emu: Emulator, invitation_id: str) -> str:
    return next(i.code for i in emu.team_invitations() if i.id == invitation_id)


# --- team invitations ---------------------------------------------------------------------------


async def test_client_invitations_need_team_permissions(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    owner = emu.create_user(email="owner@example.com")
    member = emu.create_user(email="member@example.com")
    outsider = emu.create_user(email="outsider@example.com")
    team = emu.create_team("Docs", creator=owner.id)  # team_admin: every $ permission
    emu.add_member(team.id, member.id)  # team_member: $invite_members and $read_members
    as_member = client_headers(**token(emu, member))
    as_outsider = client_headers(**token(emu, outsider))
    invite = "/team-invitations/send-code"

    refused = await api.post(invite, json=send_body(team.id), headers=as_outsider)
    details = known_error(refused, 401, "TEAM_PERMISSION_REQUIRED")["details"]
    assert details["permission_id"] == "$invite_members"
    no_user = await api.post(invite, json=send_body(team.id), headers=client_headers())
    known_error(no_user, 401, "USER_AUTHENTICATION_REQUIRED")

    sent = await api.post(invite, json=send_body(team.id), headers=as_member)
    assert sent.status_code == 200, sent.text
    invitation_id = sent.json()["id"]
    query = {"team_id": team.id}
    listed = await api.get("/team-invitations", params=query, headers=as_member)
    assert [i["id"] for i in listed.json()["items"]] == [invitation_id]
    outsider_list = await api.get("/team-invitations", params=query, headers=as_outsider)
    known_error(outsider_list, 404, "TEAM_MEMBERSHIP_NOT_FOUND")

    path = f"/team-invitations/{invitation_id}"
    revoke = await api.delete(path, params=query, headers=as_member)
    details = known_error(revoke, 401, "TEAM_PERMISSION_REQUIRED")["details"]
    assert details["permission_id"] == "$remove_members"
    as_owner = client_headers(**token(emu, owner))
    revoked = await api.delete(path, params=query, headers=as_owner)
    assert (revoked.status_code, revoked.json()) == (200, {"success": True})
    assert emu.team_invitations(team.id) == []


async def test_list_and_revoke_need_exactly_their_parameters(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    team = emu.create_team("Docs")
    both = await api.get(
        "/team-invitations",
        params={"team_id": team.id, "user_id": UNKNOWN_UUID},
        headers=server_headers(),
    )
    assert both.status_code == 400
    assert "x-stack-known-error" not in both.headers
    neither = await api.get("/team-invitations", headers=server_headers())
    assert neither.status_code == 400
    assert neither.headers["content-type"].startswith("text/plain")
    invitation = emu.send_team_invitation(team.id, "ada@example.com")
    no_team = await api.delete(f"/team-invitations/{invitation.id}", headers=server_headers())
    assert no_team.status_code == 400
    other_team = emu.create_team("Other")
    wrong = await api.delete(
        f"/team-invitations/{invitation.id}",
        params={"team_id": other_team.id},
        headers=server_headers(),
    )
    assert wrong.status_code == 404  # an invitation of another team is not revoked
    assert [i.id for i in emu.team_invitations(team.id)] == [invitation.id]
    unknown_user = await api.get(
        "/team-invitations", params={"user_id": UNKNOWN_UUID}, headers=server_headers()
    )
    known_error(unknown_user, 404, "USER_NOT_FOUND")


async def test_accept_by_code_then_the_code_is_used(api: httpx.AsyncClient, emu: Emulator) -> None:
    team = emu.create_team("Docs")
    bob = emu.create_user(email="bob@example.com")
    invitation = emu.send_team_invitation(team.id, "someone@example.com")
    code = code_of(emu, invitation.id)
    assert emu.sent_emails(kind="team_invitation")[0].link == f"{CALLBACK}?code={code}"

    checked = await api.post(
        "/team-invitations/accept/check-code", json={"code": code.upper()}, headers=client_headers()
    )
    assert checked.json() == {"is_code_valid": True}  # codes match case-insensitively
    as_bob = client_headers(**token(emu, bob))
    details = await api.post(
        "/team-invitations/accept/details", json={"code": code}, headers=as_bob
    )
    assert details.json() == {"team_id": team.id, "team_display_name": "Docs"}
    no_user = await api.post(
        "/team-invitations/accept", json={"code": code}, headers=client_headers()
    )
    known_error(no_user, 401, "USER_AUTHENTICATION_REQUIRED")

    # Anyone holding the code may accept it: it went to the invited address.
    accepted = await api.post("/team-invitations/accept", json={"code": code}, headers=as_bob)
    assert (accepted.status_code, accepted.json()) == (200, {})
    assert emu.project.is_member(team.id, bob.id)
    again = await api.post("/team-invitations/accept", json={"code": code}, headers=as_bob)
    known_error(again, 409, "VERIFICATION_CODE_ALREADY_USED")
    unknown = await api.post("/team-invitations/accept", json={"code": "x" * 45}, headers=as_bob)
    known_error(unknown, 404, "VERIFICATION_CODE_NOT_FOUND")
    short = await api.post("/team-invitations/accept", json={"code": "x"}, headers=as_bob)
    known_error(short, 400, "SCHEMA_ERROR")


async def test_codes_expire_after_seven_days(
    api: httpx.AsyncClient, emu: Emulator, clock: Clock
) -> None:
    team = emu.create_team("Docs")
    ada = emu.create_user(email="ada@example.com")
    invitation = emu.send_team_invitation(team.id, "ada@example.com")
    code = code_of(emu, invitation.id)
    clock.now += WEEK + 1
    expired = await api.post(
        "/team-invitations/accept", json={"code": code}, headers=client_headers(**token(emu, ada))
    )
    known_error(expired, 400, "VERIFICATION_CODE_EXPIRED")
    listed = await api.get(
        "/team-invitations", params={"team_id": team.id}, headers=server_headers()
    )
    assert listed.json()["items"] == []
    by_id = await api.post(
        f"/team-invitations/{invitation.id}/accept",
        params={"user_id": ada.id},
        headers=server_headers(),
    )
    known_error(by_id, 404, "VERIFICATION_CODE_NOT_FOUND")


async def test_accept_by_id_rules(api: httpx.AsyncClient, emu: Emulator) -> None:
    team = emu.create_team("Docs")
    ada = emu.create_user(email="ada@example.com")
    unverified = emu.create_user(email="eve@example.com", email_verified=False)
    emu.add_member(team.id, ada.id)
    for_ada = emu.send_team_invitation(team.id, "ada@example.com")
    for_eve = emu.send_team_invitation(team.id, "eve@example.com")

    # A client accepts for itself only.
    as_ada = client_headers(**token(emu, ada))
    other = await api.post(
        f"/team-invitations/{for_eve.id}/accept", params={"user_id": unverified.id}, headers=as_ada
    )
    known_error(other, 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")
    # The recipient address must be a verified email of the user.
    not_verified = await api.post(
        f"/team-invitations/{for_eve.id}/accept",
        params={"user_id": unverified.id},
        headers=server_headers(),
    )
    known_error(not_verified, 404, "VERIFICATION_CODE_NOT_FOUND")
    # Already a member: no error, nothing added, the invitation is used up.
    member = await api.post(
        f"/team-invitations/{for_ada.id}/accept", params={"user_id": "me"}, headers=as_ada
    )
    assert (member.status_code, member.json()) == (200, {})
    assert [i.id for i in emu.team_invitations(team.id)] == [for_eve.id]
    listed = await api.get("/team-invitations", params={"user_id": "me"}, headers=as_ada)
    assert listed.json()["items"] == []


def test_python_invitation_errors(emu: Emulator) -> None:
    team = emu.create_team("Docs")
    with pytest.raises(KnownError) as untrusted:
        emu.send_team_invitation(team.id, "ada@example.com", callback_url="https://evil.example/")
    assert untrusted.value.code == "REDIRECT_URL_NOT_WHITELISTED"
    with pytest.raises(KnownError) as no_team:
        emu.send_team_invitation(UNKNOWN_UUID, "ada@example.com")
    assert no_team.value.code == "TEAM_NOT_FOUND"
    assert emu.sent_emails() == []  # nothing recorded for refused invitations


def test_trusted_domains_and_localhost(clock: Clock) -> None:
    domains = [
        {"domain": "https://app.example.com", "handler_path": "/handler"},
        {"domain": "https://*.example.org"},
    ]
    emu = Emulator(seed(domains=domains, allow_localhost=False), clock=clock)
    team = emu.create_team("Docs")
    allowed = [
        "https://app.example.com/handler/team-invitation",
        "https://eu.example.org/invite?x=1",
    ]
    refused = [
        CALLBACK,  # localhost is not allowed in this project
        "https://app.example.com/elsewhere",
        "http://app.example.com/handler",
        "https://app.example.com:8443/handler",
        "https://a.b.example.org/",
        "not a url",
    ]
    for url in allowed:
        invitation = emu.send_team_invitation(team.id, "ada@example.com", callback_url=url)
        assert invitation.link.startswith(url.split("?")[0])
    for url in refused:
        with pytest.raises(KnownError) as error:
            emu.send_team_invitation(team.id, "ada@example.com", callback_url=url)
        assert error.value.code == "REDIRECT_URL_NOT_WHITELISTED", url


# --- connected accounts -------------------------------------------------------------------------


async def test_client_reads_only_its_own_connected_accounts(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada = emu.create_user(email="ada@example.com")
    bob = emu.create_user(email="bob@example.com")
    link = emu.link_oauth_account(ada.id, "github", "ada-gh", scopes=["repo", "user"])
    as_ada = client_headers(**token(emu, ada))

    mine = await api.get("/connected-accounts/me", headers=as_ada)
    assert mine.json()["items"] == [
        {"user_id": ada.id, "provider": "github", "provider_account_id": "ada-gh"}
    ]
    theirs = await api.get(f"/connected-accounts/{bob.id}", headers=as_ada)
    assert theirs.status_code == 403
    assert theirs.text == "Client can only list connected accounts for their own user."
    their_token = await api.post(
        f"/connected-accounts/{bob.id}/github/access-token", json={}, headers=as_ada
    )
    assert their_token.status_code == 403
    assert "x-stack-known-error" not in their_token.headers

    scoped = await api.post(
        "/connected-accounts/me/github/access-token", json={"scope": "user repo"}, headers=as_ada
    )
    assert (scoped.status_code, scoped.json()) == (201, {"access_token": link.access_token})
    too_much = await api.post(
        "/connected-accounts/me/github/access-token", json={"scope": "gist"}, headers=as_ada
    )
    known_error(too_much, 400, "OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE")
    no_user = await api.get("/connected-accounts/me", headers=client_headers())
    known_error(no_user, 400, "CANNOT_GET_OWN_USER_WITHOUT_USER")


async def test_links_closed_to_connected_accounts_and_deleted_users(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    ada = emu.create_user(email="ada@example.com")
    emu.link_oauth_account(ada.id, "google", "ada-g", allow_connected_accounts=False)
    emu.link_oauth_account(ada.id, "github", "ada-gh")
    listed = await api.get(f"/connected-accounts/{ada.id}", headers=server_headers())
    assert [i["provider"] for i in listed.json()["items"]] == ["github"]
    # The per-provider form ignores allow_connected_accounts; the per-account form does not.
    per_provider = await api.post(
        f"/connected-accounts/{ada.id}/google/access-token", json={}, headers=server_headers()
    )
    assert per_provider.status_code == 201
    per_account = await api.post(
        f"/connected-accounts/{ada.id}/google/ada-g/access-token", json={}, headers=server_headers()
    )
    known_error(per_account, 400, "OAUTH_CONNECTION_NOT_CONNECTED_TO_USER")
    assert [p["id"] for p in emu.user_json(ada.id)["oauth_providers"]] == ["google", "github"]

    emu.delete_user(ada.id)
    assert emu.connected_accounts(ada.id) == []
    gone = await api.get(f"/connected-accounts/{ada.id}", headers=server_headers())
    known_error(gone, 404, "USER_NOT_FOUND")


async def test_accounts_created_with_the_user_have_no_token(
    api: httpx.AsyncClient, emu: Emulator
) -> None:
    created = await api.post(
        "/users",
        json={"oauth_providers": [{"id": "github", "account_id": "gh-1", "email": None}]},
        headers=server_headers(),
    )
    user_id = created.json()["id"]
    emu.project.config.enabled_oauth_providers.append("github")
    listed = await api.get(f"/connected-accounts/{user_id}", headers=server_headers())
    assert [i["provider_account_id"] for i in listed.json()["items"]] == ["gh-1"]
    no_token = await api.post(
        f"/connected-accounts/{user_id}/github/access-token", json={}, headers=server_headers()
    )
    known_error(no_token, 400, "OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE")


# --- email --------------------------------------------------------------------------------------


async def test_send_email_schema(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    bad_bodies: list[dict[str, Any]] = [
        {"html": "x"},  # no recipients
        {"user_ids": [ada.id], "all_users": True, "html": "x"},
        {"user_ids": [ada.id]},  # no content
        {"user_ids": [ada.id], "html": "x", "draft_id": "d"},
        {"user_ids": [ada.id], "html": "x", "variables": {}},
        {"user_ids": [ada.id], "template_id": "not-a-uuid"},
        {"user_ids": [ada.id], "html": "x", "theme_id": True},
        {"user_ids": ["me"], "html": "x"},
        {"user_ids": [ada.id], "html": "x", "to": "ada@example.com"},
    ]
    for body in bad_bodies:
        response = await api.post("/emails/send-email", json=body, headers=server_headers())
        known_error(response, 400, "SCHEMA_ERROR")
    category = await api.post(
        "/emails/send-email",
        json={"user_ids": [ada.id], "html": "x", "notification_category_name": "News"},
        headers=server_headers(),
    )
    assert category.status_code == 400
    assert "x-stack-known-error" not in category.headers
    client = await api.post(
        "/emails/send-email",
        json={"user_ids": [ada.id], "html": "x"},
        headers=client_headers(**token(emu, ada)),
    )
    known_error(client, 401, "INSUFFICIENT_ACCESS_TYPE")
    empty = await api.post(
        "/emails/send-email", json={"user_ids": [], "html": "x"}, headers=server_headers()
    )
    assert (empty.status_code, empty.json()) == (200, {"results": []})
    assert emu.sent_emails() == []


async def test_outbox_route_and_all_users(api: httpx.AsyncClient, emu: Emulator) -> None:
    ada = emu.create_user(email="ada@example.com")
    ghost = emu.create_user(anonymous=True)
    team = emu.create_team("Docs")
    emu.send_team_invitation(team.id, "new@example.com")
    sent = await api.post(
        "/emails/send-email",
        json={"all_users": True, "html": "<p>hi</p>", "subject": "News", "theme_id": False},
        headers=server_headers(),
    )
    assert {r["user_id"] for r in sent.json()["results"]} == {ada.id, ghost.id}

    outbox = await api.get("/emulator/sent-emails", headers=server_headers())
    items = outbox.json()["items"]
    assert [i["kind"] for i in items] == ["team_invitation", "email", "email"]
    assert items[0]["link"].startswith(f"{CALLBACK}?code=")
    assert {(i["to"], i["theme_id"]) for i in items[1:]} == {
        ("ada@example.com", False),
        (None, False),
    }
    only_ada = await api.get(
        "/emulator/sent-emails", params={"user_id": ada.id}, headers=server_headers()
    )
    assert [i["subject"] for i in only_ada.json()["items"]] == ["News"]
    invitations = await api.get(
        "/emulator/sent-emails", params={"kind": "team_invitation"}, headers=server_headers()
    )
    assert [i["to"] for i in invitations.json()["items"]] == ["new@example.com"]
    refused = await api.get("/emulator/sent-emails", headers=client_headers())
    known_error(refused, 401, "INSUFFICIENT_ACCESS_TYPE")

    emu.reset()
    assert emu.sent_emails() == []
    assert emu.team_invitations() == []


# --- fidelity -----------------------------------------------------------------------------------

Probe = Callable[[World], Awaitable[httpx.Response]]


async def _send_code(w: World, url: str = CALLBACK) -> httpx.Response:
    body = send_body(w.team.id, url=url)
    return await w.request("POST", "/team-invitations/send-code", json=body, headers=w.headers())


async def _list_invitations(w: World) -> httpx.Response:
    await _send_code(w)
    query = {"team_id": w.team.id}
    return await w.request("GET", "/team-invitations", params=query, headers=w.headers())


async def _list_accounts(w: World) -> httpx.Response:
    w.emulator.link_oauth_account(w.user.id, "github", "default@example.com")
    return await w.request("GET", f"/connected-accounts/{w.user.id}", headers=w.headers())


async def _token(
    w: World, scope: str = "", link: bool = True, provider: str = "github"
) -> httpx.Response:
    if link:
        w.emulator.link_oauth_account(w.user.id, "github", "default@example.com", scopes=["repo"])
    path = f"/connected-accounts/{w.user.id}/{provider}/access-token"
    body = {"scope": scope} if scope else {}
    return await w.request("POST", path, json=body, headers=w.headers())


async def _send_email(w: World, user_id: str | None = None) -> httpx.Response:
    body = {"user_ids": [user_id or w.user.id], "html": "<p>Hello</p>", "subject": "Hi"}
    return await w.request("POST", "/emails/send-email", json=body, headers=w.headers())


async def _shared_email_server(w: World) -> httpx.Response:
    w.emulator.project.config.shared_email_server = True
    return await _send_email(w)


async def _restricted_accept(w: World) -> httpx.Response:
    invitation = w.emulator.send_team_invitation(w.team.id, "someone@example.com")
    anonymous = w.emulator.create_user(anonymous=True)
    headers = w.headers(
        **{
            "x-stack-access-token": w.emulator.sign_in(anonymous.id).access_token,
            "x-stack-allow-anonymous-user": "true",
        }
    )
    body = {"code": code_of(w.emulator, invitation.id)}
    return await w.request("POST", "/team-invitations/accept", json=body, headers=headers)


async def _client_lists_other_user(w: World) -> httpx.Response:
    other = w.emulator.create_user(email="other@example.com")
    headers = w.signed_in("client")
    return await w.request("GET", f"/connected-accounts/{other.id}", headers=headers)


#: Fixture -> (status, probe): successes compared field for field (names and JSON types).
MESSAGING_SUCCESS: dict[str, tuple[int, Probe]] = {
    "team-invitations-send-code.json": (200, _send_code),
    "team-invitations-list.json": (200, _list_invitations),
    "connected-accounts-list.json": (200, _list_accounts),
    "connected-accounts-access-token.json": (201, lambda w: _token(w, "repo")),
    "emails-send-email.json": (200, _send_email),
}

#: Fixture -> probe: errors compared with the fixture (status, headers, code, details).
MESSAGING_ERRORS: dict[str, Probe] = {
    "errors/OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE.json": lambda w: _token(w, "gist"),
    "errors/OAUTH_CONNECTION_NOT_CONNECTED_TO_USER.json": lambda w: _token(w, link=False),
    "errors/OAUTH_PROVIDER_NOT_FOUND_OR_NOT_ENABLED.json": lambda w: _token(w, provider="spotify"),
    "errors/REDIRECT_URL_NOT_WHITELISTED.json": lambda w: _send_code(w, "https://evil.example/"),
    "errors/REQUIRES_CUSTOM_EMAIL_SERVER.json": _shared_email_server,
    "errors/TEAM_INVITATION_RESTRICTED_USER_NOT_ALLOWED.json": _restricted_accept,
    "errors-constructed/USER_ID_DOES_NOT_EXIST.json": lambda w: _send_email(w, UNKNOWN_UUID),
    "errors/plain/CONNECTED_ACCOUNTS_CLIENT_FORBIDDEN.json": _client_lists_other_user,
}

#: A verbatim copy of the contract's fixture not yet in ``tests/fixtures``.
NOT_YET_COPIED: dict[str, Any] = {
    "errors/plain/CONNECTED_ACCOUNTS_CLIENT_FORBIDDEN.json": {
        "status": 403,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": "Client can only list connected accounts for their own user.",
    },
}


def _expected(name: str) -> Any:
    try:
        return fixture(name)
    except FileNotFoundError:
        return NOT_YET_COPIED[name]


@pytest.mark.parametrize("name", sorted(MESSAGING_SUCCESS))
async def test_success_bodies(world: World, name: str) -> None:
    status, probe = MESSAGING_SUCCESS[name]
    assert_success_like(await probe(world), status, _expected(name))


@pytest.mark.parametrize("name", sorted(MESSAGING_ERRORS))
async def test_error_bodies(world: World, name: str) -> None:
    response = await MESSAGING_ERRORS[name](world)
    expected = _expected(name)
    assert_error_like(response, expected)
    if isinstance(expected["body"], str):  # Stack's plain-text errors, word for word
        assert response.text == expected["body"]
