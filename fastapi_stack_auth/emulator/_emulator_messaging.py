"""The Python API of team invitations, linked OAuth accounts and the outbox (``Emulator``
inherits it): what the HTTP endpoints do, plus what only an emulator can do -- link a provider
account to a user, make the provider refuse its token, read the mail it did not send."""

from __future__ import annotations

from collections.abc import Iterable

from . import _connected_accounts as accounts
from . import _invitation_flow as invitation_flow
from ._backend import Backend
from ._invitations import Invitation
from ._oauth_links import OAuthLink
from ._outbox import EmailKind, OutboxEmail

#: The callback URL of invitations sent from Python unless one is given (a loopback URL, which
#: projects trust by default).
DEFAULT_INVITATION_CALLBACK = "http://localhost:3000/handler/team-invitation"


class MessagingApi(Backend):
    """Invitations, connected accounts and the outbox, without HTTP. Every method takes
    ``project_id`` (default: the first project); Stack's errors raise ``KnownError``."""

    # --- connected accounts ----------------------------------------------------------------

    def link_oauth_account(
        self,
        user_id: str,
        provider_id: str,
        account_id: str,
        *,
        scopes: Iterable[str] = (),
        email: str | None = None,
        allow_connected_accounts: bool = True,
        access_token: str | None = None,
        project_id: str | None = None,
    ) -> OAuthLink:
        """Link the account ``account_id`` of provider ``provider_id`` (a config ID such as
        ``github``) to a user, as signing in with it would: the provider is enabled in the
        project, the account listed in the user's ``oauth_providers`` and in
        ``/connected-accounts``, and ``access_token`` (made up when omitted) is what
        ``.../access-token`` answers for requests within ``scopes``."""
        with self.lock:
            return accounts.link_account(
                self._project(project_id),
                user_id,
                provider_id,
                account_id,
                scopes=list(scopes),
                email=email,
                allow_connected_accounts=allow_connected_accounts,
                access_token=access_token,
            )

    def refuse_oauth_tokens(
        self,
        user_id: str,
        provider_id: str,
        account_id: str | None = None,
        *,
        project_id: str | None = None,
    ) -> int:
        """The provider refuses the stored tokens of the user's links to it (one account, or
        all): access-token requests answer ``OAUTH_CONNECTION_DOES_NOT_HAVE_REQUIRED_SCOPE``
        until the account is linked again. Returns how many links were affected."""
        with self.lock:
            project = self._project(project_id)
            user = project.users.get(user_id)
            found = [] if user is None else accounts.links_of(project, user)
            hit = [
                link
                for link in found
                if link.provider_id == provider_id
                and (account_id is None or link.account_id == account_id)
            ]
            for link in hit:
                link.token_valid = False
                project.oauth_links.put(link)
            return len(hit)

    def connected_accounts(self, user_id: str, *, project_id: str | None = None) -> list[OAuthLink]:
        """The user's linked accounts, oldest first (also those closed to connected
        accounts); ``[]`` for an unknown user."""
        with self.lock:
            project = self._project(project_id)
            user = project.users.get(user_id)
            return [] if user is None else accounts.links_of(project, user)

    # --- team invitations ------------------------------------------------------------------

    def send_team_invitation(
        self,
        team_id: str,
        email: str,
        *,
        callback_url: str = DEFAULT_INVITATION_CALLBACK,
        project_id: str | None = None,
    ) -> Invitation:
        """Invite ``email`` to a team (as ``POST /team-invitations/send-code``); the email
        with its link lands in the outbox."""
        with self.lock:
            return invitation_flow.send_invitation(
                self._project(project_id),
                team_id=team_id,
                email=email,
                callback_url=callback_url,
                now_millis=self.now_millis(),
            )

    def team_invitations(
        self, team_id: str | None = None, *, project_id: str | None = None
    ) -> list[Invitation]:
        """The pending invitations (of one team, or all), oldest first."""
        with self.lock:
            project, now = self._project(project_id), self.now_millis()
            if team_id is None:
                return project.invitations.pending(now)
            return invitation_flow.of_team(project, team_id, now)

    # --- the outbox --------------------------------------------------------------------------

    def sent_emails(
        self,
        *,
        user_id: str | None = None,
        kind: EmailKind | None = None,
        project_id: str | None = None,
    ) -> list[OutboxEmail]:
        """What the project would have mailed, oldest first: ``send-email`` messages (one per
        recipient user) and team invitations; ``user_id`` and ``kind`` narrow it."""
        with self.lock:
            return self._project(project_id).outbox.emails(user_id=user_id, kind=kind)

    def clear_sent_emails(self, *, project_id: str | None = None) -> None:
        """Empty the project's outbox (``reset`` does it too)."""
        with self.lock:
            self._project(project_id).outbox.clear()
