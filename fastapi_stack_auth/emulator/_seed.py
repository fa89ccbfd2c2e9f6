"""Seed data: the projects, keys, users, teams and permissions an emulator starts with
(``--seed FILE``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ._rows import ProjectConfig

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
DEMO_TEAM_ID = "de3a7ea3-0000-4000-8000-000000000001"
DEMO_TEAM_NAME = "Demo Team"


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
    #: Project permissions granted directly (besides the project's defaults).
    project_permissions: tuple[str, ...] = ()


class SeedPermission(_SeedModel):
    """A permission definition: what it contains must be defined before it (or be a system
    ``$...`` permission, for team permissions)."""

    id: str = Field(pattern=r"^[a-z0-9_:]+$")
    contained_permission_ids: tuple[str, ...] = ()
    description: str | None = None


class SeedMember(_SeedModel):
    """A member of a seeded team; ``user_id`` names a seeded user (give that user an ``id``)."""

    user_id: str
    #: The creator's default permissions (``team_admin``) instead of a member's (``team_member``).
    creator: bool = False
    #: Team permissions granted directly, besides the defaults.
    permissions: tuple[str, ...] = ()
    #: The user's selected team (``selected_team_id``, in their tokens too).
    selected: bool = False


class SeedTeam(_SeedModel):
    """A team and its members."""

    id: str | None = None
    display_name: str
    profile_image_url: str | None = None
    client_metadata: JsonValue = None
    client_read_only_metadata: JsonValue = None
    server_metadata: JsonValue = None
    members: tuple[SeedMember, ...] = ()


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
    #: Definitions besides Stack's defaults (``team_admin``, ``team_member`` and the system
    #: ``$...`` ones), which a definition of the same ID replaces.
    team_permission_definitions: tuple[SeedPermission, ...] = ()
    project_permission_definitions: tuple[SeedPermission, ...] = ()
    #: Team permissions granted to a team's creator, and to each member added later.
    default_team_creator_permissions: tuple[str, ...] = ("team_admin",)
    default_team_member_permissions: tuple[str, ...] = ("team_member",)
    #: Project permissions granted to every new user.
    default_project_permissions: tuple[str, ...] = ()
    teams: tuple[SeedTeam, ...] = ()


class Seed(_SeedModel):
    """Everything an emulator starts with; the first project is the default one."""

    projects: tuple[SeedProject, ...] = Field(min_length=1)

    @classmethod
    def from_file(cls, path: str | Path) -> Seed:
        """Read a seed from a JSON file."""
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls.model_validate(data)

    def with_definitions(
        self, *, team: Iterable[SeedPermission] = (), project: Iterable[SeedPermission] = ()
    ) -> Seed:
        """This seed with more permission definitions in its first (default) project."""
        first = self.projects[0]
        first = first.model_copy(
            update={
                "team_permission_definitions": (*first.team_permission_definitions, *team),
                "project_permission_definitions": (
                    *first.project_permission_definitions,
                    *project,
                ),
            }
        )
        return self.model_copy(update={"projects": (first, *self.projects[1:])})


def default_seed() -> Seed:
    """The seed of ``make run``: one project with fixed dev keys and user and team API keys
    allowed; a demo user with the project permission ``admin``, creator of a demo team (their
    selected team) in which they also have ``docs:delete`` (which contains ``docs:read``)."""
    return Seed(
        projects=(
            SeedProject(
                id=DEFAULT_PROJECT_ID,
                display_name="Stack Auth emulator (development only)",
                publishable_client_keys=(DEFAULT_PUBLISHABLE_CLIENT_KEY,),
                secret_server_keys=(DEFAULT_SECRET_SERVER_KEY,),
                super_secret_admin_keys=(DEFAULT_SUPER_SECRET_ADMIN_KEY,),
                config=ProjectConfig(allow_user_api_keys=True, allow_team_api_keys=True),
                users=(
                    SeedUser(
                        id=DEMO_USER_ID,
                        email=DEMO_EMAIL,
                        password=DEMO_PASSWORD,
                        display_name=DEMO_DISPLAY_NAME,
                        project_permissions=("admin",),
                    ),
                ),
                team_permission_definitions=(
                    SeedPermission(id="docs:read", description="Read the team's documents"),
                    SeedPermission(
                        id="docs:delete",
                        contained_permission_ids=("docs:read",),
                        description="Delete the team's documents",
                    ),
                ),
                project_permission_definitions=(
                    SeedPermission(id="admin", description="Administer the application"),
                ),
                teams=(
                    SeedTeam(
                        id=DEMO_TEAM_ID,
                        display_name=DEMO_TEAM_NAME,
                        members=(
                            SeedMember(
                                user_id=DEMO_USER_ID,
                                creator=True,
                                permissions=("docs:delete",),
                                selected=True,
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )
