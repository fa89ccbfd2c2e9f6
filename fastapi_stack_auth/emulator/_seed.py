"""Seed data: the projects, keys and users an emulator starts with (``--seed FILE``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ._store import ProjectConfig

#: Fixed development values of the default seed, so ``make run`` prints the same project keys
#: each time. They are public: never use them for anything but the emulator. (The signing keys
#: are random per process unless ``Emulator(key_seed=...)`` / ``--key-seed`` fixes them.)
DEFAULT_PROJECT_ID = "7e57ab1e-e301-4000-8000-000000000001"
DEFAULT_PUBLISHABLE_CLIENT_KEY = "pck_emulator_dev_only_publishable_client_key"
DEFAULT_SECRET_SERVER_KEY = "ssk_emulator_dev_only_secret_server_key"
DEFAULT_SUPER_SECRET_ADMIN_KEY = "sak_emulator_dev_only_super_secret_admin_key"
DEMO_USER_ID = "de3a0000-0000-4000-8000-000000000001"
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_DISPLAY_NAME = "Demo User"


class _SeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedUser(_SeedModel):
    """A user to create at start (and after each ``reset()``)."""

    id: str | None = None
    email: str | None = None
    password: str | None = None
    display_name: str | None = None
    email_verified: bool = True
    anonymous: bool = False
    restricted_by_admin: bool = False
    restricted_by_admin_reason: str | None = None
    client_metadata: JsonValue = None
    client_read_only_metadata: JsonValue = None
    server_metadata: JsonValue = None


#: A project's settings in a seed: the store's own ``ProjectConfig`` (unknown names refused).
SeedProjectConfig = ProjectConfig


class SeedProject(_SeedModel):
    """A project with its keys and users."""

    id: str = Field(min_length=1)
    display_name: str = "Emulated project"
    publishable_client_keys: tuple[str, ...] = ()
    secret_server_keys: tuple[str, ...] = Field(min_length=1)
    super_secret_admin_keys: tuple[str, ...] = ()
    config: ProjectConfig = Field(default_factory=ProjectConfig)
    users: tuple[SeedUser, ...] = ()


class Seed(_SeedModel):
    """Everything an emulator starts with; the first project is the default one."""

    projects: tuple[SeedProject, ...] = Field(min_length=1)

    @classmethod
    def from_file(cls, path: str | Path) -> Seed:
        """Read a seed from a JSON file."""
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.model_validate(data)


def default_seed() -> Seed:
    """The seed of ``make run``: one project with fixed dev keys and a demo user."""
    return Seed(
        projects=(
            SeedProject(
                id=DEFAULT_PROJECT_ID,
                display_name="Stack Auth emulator (development only)",
                publishable_client_keys=(DEFAULT_PUBLISHABLE_CLIENT_KEY,),
                secret_server_keys=(DEFAULT_SECRET_SERVER_KEY,),
                super_secret_admin_keys=(DEFAULT_SUPER_SECRET_ADMIN_KEY,),
                users=(
                    SeedUser(
                        id=DEMO_USER_ID,
                        email=DEMO_EMAIL,
                        password=DEMO_PASSWORD,
                        display_name=DEMO_DISPLAY_NAME,
                    ),
                ),
            ),
        ),
    )
