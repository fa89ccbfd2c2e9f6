"""A project's user and team API keys (contract §9.6): minted in Stack's format, kept as a
digest, checked in Stack's order against the emulator's clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _authz_errors as authz
from ._crypto import api_key_digest, new_api_key, new_id
from ._rows import ApiKey, ApiKeyType


@dataclass
class ApiKeys:
    """The keys of one project, by ID and by the digest of their value."""

    by_id: dict[str, ApiKey] = field(default_factory=dict)
    by_digest: dict[bytes, str] = field(default_factory=dict)

    def create(
        self,
        kind: ApiKeyType,
        owner_id: str,
        *,
        now_millis: int,
        description: str = "",
        expires_at_millis: int | None = None,
        is_public: bool = False,
    ) -> tuple[ApiKey, str]:
        """A new key and its value (the only time the value exists: keep it)."""
        key_id = new_id()
        value = new_api_key(key_id, kind, is_public=is_public)
        key = ApiKey(
            id=key_id,
            type=kind,
            owner_id=owner_id,
            description=description,
            created_at_millis=now_millis,
            digest=api_key_digest(value),
            last_four=value[-4:],
            is_public=is_public,
            expires_at_millis=expires_at_millis,
        )
        self.by_id[key_id] = key
        self.by_digest[key.digest] = key_id
        return key, value

    def find(self, value: str) -> ApiKey | None:
        """The key whose value is ``value`` (looked up by digest), whatever its state."""
        key_id = self.by_digest.get(api_key_digest(value))
        return self.by_id.get(key_id) if key_id is not None else None

    def check(self, value: str, kind: ApiKeyType, now_millis: int) -> ApiKey:
        """Stack's order: unknown, then the wrong kind, revoked, expired (the first wins)."""
        key = self.find(value)
        if key is None:
            raise authz.api_key_not_found()
        if key.type != kind:
            raise authz.wrong_api_key_type(kind, key.type)
        if key.manually_revoked_at_millis is not None:
            raise authz.api_key_revoked()
        if key.expires_at_millis is not None and key.expires_at_millis < now_millis:
            raise authz.api_key_expired()
        return key

    def of(self, kind: ApiKeyType, owner_id: str) -> list[ApiKey]:
        """The keys of one user or team, newest first (as Stack lists them)."""
        keys = [k for k in self.by_id.values() if k.type == kind and k.owner_id == owner_id]
        # Reversed first: keys of the same millisecond stay newest first through the stable sort.
        return sorted(reversed(keys), key=lambda k: k.created_at_millis, reverse=True)

    def revoke(self, key_id: str, now_millis: int) -> ApiKey:
        """Mark a key revoked (a second revocation keeps the first time)."""
        key = self.by_id[key_id]
        if key.manually_revoked_at_millis is None:
            key.manually_revoked_at_millis = now_millis
        return key

    def forget_owner(self, kind: ApiKeyType, owner_id: str) -> None:
        """Delete every key of a deleted user or team (Stack cascades: they become unknown)."""
        for key in self.of(kind, owner_id):
            del self.by_id[key.id]
            del self.by_digest[key.digest]
