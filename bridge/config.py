"""Configuration: flags > ``MTBRIDGE_*`` environment variables > TOML file > defaults.

Read once, at the edge (the CLI); everything below receives plain values. Every variable is
listed in docs/configuration.md.

The connection limits are not declared here: each settable field of
:class:`bridge.hub.limits.HubLimits` becomes a field of :class:`Settings` with the same name,
type, default and bounds (:func:`_limit_fields`), and :meth:`Settings.hub_limits` hands them back.
What to do with the settings (the verifier, the store, the hub) is decided in
:mod:`bridge.services`, not here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, get_type_hints

from pydantic import Field, create_model, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bridge.hub import limits as L

__all__ = ["Settings", "load_settings"]


def _limit_fields() -> dict[str, Any]:
    """One pydantic field per settable :class:`~bridge.hub.limits.HubLimits` field."""
    hints = get_type_hints(L.HubLimits)
    return {f.name: (hints[f.name], Field(f.default, **f.metadata[L.SETTING])) for f in L.settable_limits()}


if TYPE_CHECKING:
    _LimitSettings = BaseSettings
else:
    _LimitSettings = create_model("_LimitSettings", __base__=BaseSettings, **_limit_fields())


class Settings(_LimitSettings):
    model_config = SettingsConfigDict(env_prefix="MTBRIDGE_", extra="forbid")
    toml_file: ClassVar[Path | None] = None

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    data_dir: Path = Path("./mtbridge-data")
    database_url: str | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256"]
    jwt_secret_file: Path | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_audience: str | None = "mtbridge"
    jwt_issuer: str | None = "mtbridge"
    jwt_leeway: float = 5.0
    allowed_origins: Annotated[list[str], NoDecode] = []
    trusted_proxies: Annotated[list[str], NoDecode] = []
    test_mode: bool = False
    log_level: str = "info"
    retention_days: float = 30.0
    shutdown_timeout: float = 10.0
    gc_young_threshold: int = Field(20_000, ge=0)
    marketdata: list[dict[str, Any]] = []
    #: Scale-out (docs/scaling.md): several hubs share PostgreSQL (offsets, history) and Redis
    #: (the fan-out between nodes). None keeps the in-process broker of a single hub.
    redis_url: str | None = None
    #: This hub's name in a cluster (metrics label, presence, logs); default ``<hostname>-<pid>``.
    node_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    #: Seconds between the batched check of every served durable channel's top offset against the
    #: store (the repair of a lost last publication); see docs/configuration.md.
    gap_check_interval: float = Field(2.0, gt=0, le=60)

    # The connection limits (max_message_bytes, ping_interval, ...) come from HubLimits (above);
    # the HTTP limits are bridge/hub/http.py's, for every request and the WebSocket handshake.
    http_header_timeout: float = Field(L.DEFAULT_HANDSHAKE_TIMEOUT, gt=0)
    http_body_timeout: float = Field(L.DEFAULT_BODY_TIMEOUT, gt=0)
    max_request_bytes: int = Field(L.DEFAULT_MAX_REQUEST_BYTES, ge=1024)

    @field_validator("jwt_algorithms", "allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator(*L.NULLABLE_LIMITS, mode="before")
    @classmethod
    def _empty_disables(cls, value: Any) -> Any:
        """An empty value (``MTBRIDGE_RATE_PER_SECOND=``) disables a limit that may be None."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError: reported as a settings error
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)

    # -- derived --------------------------------------------------------------------------------

    @property
    def hmac(self) -> bool:
        """Whether tokens are HMAC-signed (``HS*``) with the secret at :attr:`secret_path`, which
        the hub then issues itself; else ``RS*``/``ES*``, issued by an identity provider."""
        return all(a.startswith("HS") for a in self.jwt_algorithms)

    @property
    def secret_path(self) -> Path:
        return self.jwt_secret_file or self.data_dir / "jwt-secret"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mtbridge.db').resolve()}"

    @property
    def node(self) -> str:
        """This process's node id: the configured one, or ``<hostname>-<pid>`` (unique per process)."""
        return self.node_id or f"{socket.gethostname()}-{os.getpid()}"

    def cluster_problem(self) -> str | None:
        """Why this configuration cannot start as a cluster node, or None.

        Offsets and history must be shared by every node, which SQLite (one file, one process)
        cannot do: a Redis URL with SQLite is refused rather than silently diverging."""
        if self.redis_url and self.db_url.startswith("sqlite"):
            return (
                "a Redis URL requires PostgreSQL: several hubs cannot share one SQLite file; "
                "set --database-url postgresql+asyncpg://... or drop --redis-url"
            )
        return None

    @property
    def origins(self) -> list[str]:
        if self.allowed_origins:
            return self.allowed_origins
        hosts = (
            {self.host, "127.0.0.1", "localhost"} if self.host in ("127.0.0.1", "localhost") else {self.host}
        )
        return [f"{scheme}://{h}:{self.port}" for h in sorted(hosts) for scheme in ("http", "https")]

    def hub_limits(self) -> L.HubLimits:
        """The hub's limits: the settable ones from these settings, the fixed ones at their defaults."""
        return L.HubLimits(**{f.name: getattr(self, f.name) for f in L.settable_limits()})


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides."""
    path = config_file or os.environ.get("MTBRIDGE_CONFIG")

    class _Loaded(Settings):
        toml_file: ClassVar[Path | None] = Path(path) if path else None

    return _Loaded(**{k: v for k, v in overrides.items() if v is not None})
