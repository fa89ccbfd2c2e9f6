"""Issue 11 end to end over loopback: the emulator deletes a user, signs and sends
``user.deleted`` (and its membership events) to the example app served by uvicorn, the app's
receiver verifies it and drops the user from the library's caches, and the next request with
that user's cached token is refused, in remote and JWT mode.

Without the webhook (the control case) the same token keeps passing from the cache: remote
mode until ``STACK_CACHE_TTL``, JWT mode until the token's ``exp``. That is what the webhook
shortens to its delivery time.
"""

from __future__ import annotations

import httpx
import pytest

from fastapi_stack_auth.testing import EmulatedStack
from tests.servers import uvicorn_process

pytest_plugins = ["fastapi_stack_auth.testing"]


@pytest.mark.parametrize("verify", ["remote", "jwt"])
@pytest.mark.parametrize("webhooks", [True, False], ids=["with-webhooks", "without"])
def test_a_deleted_users_cached_token_is_refused_once_the_webhook_arrives(
    stack_emulator: EmulatedStack, verify: str, webhooks: bool
) -> None:
    env = {
        **stack_emulator.env(),
        "STACK_VERIFY": verify,
        "STACK_CACHE_TTL": "300",  # far longer than this test: only the webhook can end it
        "STACK_WEBHOOK_SECRET": stack_emulator.webhook_secret.get_secret_value(),
    }
    user = stack_emulator.create_user(display_name="Leaving")
    team = stack_emulator.create_team(user)
    with (
        uvicorn_process("example_app.main:app", env) as server,
        httpx.Client(base_url=server.url, timeout=20) as client,
    ):
        if webhooks:
            stack_emulator.add_webhook_endpoint(f"{server.url}/webhooks/stack")
        assert client.get("/me", headers=user.headers).status_code == 200  # now cached
        assert client.get("/me", headers=user.headers).status_code == 200

        stack_emulator.delete_user(user)

        if webhooks:
            deliveries = stack_emulator.wait_for_webhooks(2, timeout=20)
            by_type = {d.event_type: d for d in deliveries}
            assert set(by_type) == {"user.deleted", "team_membership.deleted"}
            assert by_type["user.deleted"].payload["data"] == {
                "id": user.id,
                "teams": [{"id": team.id}],
            }
            assert all(d.status == "delivered" for d in deliveries)
            assert all(a.status_code == 204 for d in deliveries for a in d.attempts)
            refused = client.get("/me", headers=user.headers)
            assert refused.status_code == 401
            assert "www-authenticate" in refused.headers
        else:
            assert stack_emulator.webhook_deliveries() == []
            assert client.get("/me", headers=user.headers).status_code == 200  # from the cache
    output = server.output.decode()
    assert user.access_token not in output
    assert stack_emulator.webhook_secret.get_secret_value() not in output
