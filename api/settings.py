"""gridmap's one settings object, read from ``GRIDMAP_*`` environment variables.

The spatial core never reads the environment: the API and CLI build ``Settings`` once and
pass plain values down.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.store.embedded import EmbeddedCluster

#: The project's data folder (resolved from the package, not the working directory).
PROJECT_DATA = Path(__file__).resolve().parents[1] / "data"


#: Seconds an idle keep-alive connection stays open. Longer than clients' and proxies' own
#: idle timeouts (httpx and uvicorn both use 5 s, most load balancers 60 s), so the client
#: is always the side that drops an idle connection. With equal timeouts a client reuses a
#: connection at the moment the server closes it, and its request dies unanswered ("server
#: disconnected"), which a tablet cannot tell from a lost report.
KEEP_ALIVE_S = 75


class Settings(BaseSettings):
    """Configuration; every field is ``GRIDMAP_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_file=None, extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL + PostGIS URL. Unset: the embedded cluster in data_dir.",
    )
    database_read_url: str | None = Field(
        default=None,
        description="A streaming replica for maps, feeds and lists; the primary when unset.",
    )
    data_dir: Path = Field(default=Path(".gridmap"), description="Embedded cluster and state.")
    pg_port: int | None = Field(
        default=None, description="Embedded cluster port (default: any free)."
    )
    pg_replica_port: int | None = Field(
        default=None, description="Embedded replica port (default: any free)."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    keep_alive_s: int = Field(
        default=KEEP_ALIVE_S,
        ge=1,
        le=3600,
        description="How long an idle HTTP connection stays open (see KEEP_ALIVE_S).",
    )
    secret_key: str | None = Field(default=None, description="Signs bearer tokens (HS256).")
    token_ttl_minutes: int = Field(default=12 * 60, ge=1, le=7 * 24 * 60)
    refresh_ttl_days: int = Field(
        default=30, ge=1, le=365, description="How long a sign-in can be renewed by refresh."
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    migrate_on_start: bool = True
    api_key_cache_s: float = Field(
        default=10.0, ge=0, le=300, description="How long a verified API key is trusted."
    )
    login_hash_workers: int = Field(
        default=2, ge=1, le=64, description="Threads hashing passwords at sign-in."
    )
    login_max_waiting: int = Field(
        default=16, ge=1, le=10_000, description="Sign-ins waiting for a hashing thread (429)."
    )
    login_account_failures: int = Field(
        default=5, ge=1, description="Failed sign-ins per account per window before 429."
    )
    login_address_failures: int = Field(
        default=30, ge=1, description="Failed sign-ins per client address per window before 429."
    )
    login_window_s: float = Field(
        default=300.0, gt=0, le=86_400, description="The window failed sign-ins are counted in."
    )
    activation_interval_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How often the leading process puts scheduled boundary versions in force.",
    )
    overdue_interval_s: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How often the leading process flags events past their due time.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of gridmap's own log lines (on stderr)."
    )
    heap_trim_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="How often each process gives malloc's free pages back (0: never).",
    )
    timezone: str = Field(default="Asia/Shanghai", description="Local time of duty schedules.")
    due_soon_hours: float = Field(
        default=2.0, gt=0, le=240, description="The due_soon queue's window, in working hours."
    )
    calendar: Path = Field(
        default=PROJECT_DATA / "calendar.toml",
        description="Working-hours calendar (TOML) on which time limits are counted.",
    )
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, description="One report's body.")
    max_batch_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024, description="A batch request's body."
    )
    assessment_weights: Path | None = Field(
        default=None,
        description="Assessment score weights, a .toml or .json file (default 0.4/0.2/0.2/0.2).",
    )
    intake_hot_path: bool = Field(
        default=True,
        description="Serve reports on the event loop with an asyncpg pool (api/fast_intake.py).",
    )
    open_tasks_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long the hot path trusts a worker's open-task count (0: read each time).",
    )
    max_in_flight: int = Field(
        default=32,
        ge=0,
        le=10_000,
        description="Requests one process serves at once; more get 503 + Retry-After. 0: no bound.",
    )
    max_db_wait_ms: float = Field(
        default=100.0,
        ge=0,
        le=60_000,
        description="Longest a report waits for a database connection before a 503; 0: no bound.",
    )
    shed_queue_ms: float = Field(
        default=25.0,
        ge=0,
        le=60_000,
        description=(
            "Shed new requests (503 + Retry-After, before reading them) while the database "
            "queue holds a request this long, waited or predicted; 0: shed by count only."
        ),
    )
    rate_limit_per_key: float = Field(
        default=1000.0, ge=0, description="Requests/s per API key and process; 0: no limit."
    )
    rate_limit_per_user: float = Field(
        default=50.0, ge=0, description="Requests/s per signed-in user and process; 0: no limit."
    )
    rate_limit_burst_s: float = Field(
        default=2.0, gt=0, le=60, description="A bucket holds this many seconds of its rate."
    )
    tiles: Literal["none", "xyz", "tianditu"] = Field(
        default="none", description="Map background: none, an XYZ tile server, or Tianditu."
    )
    tiles_url: str | None = Field(
        default=None, description="XYZ tile template, e.g. http://tiles.lan/{z}/{x}/{y}.png"
    )
    tianditu_key: str | None = Field(default=None, description="Tianditu key (tk).")
    tiles_crs: Literal["wgs84", "gcj02"] = Field(
        default="wgs84", description="Datum of the tiles: gcj02 for AMap-style tiles."
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            if not self.secret_key or len(self.secret_key) < 32:
                raise ValueError(
                    "GRIDMAP_SECRET_KEY must be set to at least 32 random characters in production"
                )
            if not self.database_url:
                raise ValueError("GRIDMAP_DATABASE_URL must be set in production")
        return self

    @model_validator(mode="after")
    def _tiles_complete(self) -> Settings:
        if self.tiles == "xyz" and not self.tiles_url:
            raise ValueError("GRIDMAP_TILES=xyz needs GRIDMAP_TILES_URL")
        if self.tiles == "tianditu" and not self.tianditu_key:
            raise ValueError("GRIDMAP_TILES=tianditu needs GRIDMAP_TIANDITU_KEY")
        return self

    @cached_property
    def embedded(self) -> EmbeddedCluster:
        """The embedded cluster used when no database URL is configured."""
        return EmbeddedCluster(self.data_dir / "pg", port=self.pg_port)

    @cached_property
    def embedded_replica(self) -> EmbeddedCluster:
        """The embedded streaming replica started by ``gridmap db start --replica``."""
        return EmbeddedCluster(self.data_dir / "pg-replica", port=self.pg_replica_port)

    def signing_key(self) -> str:
        """Return the token signing key; in development, one kept in the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.is_file():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def server_options(settings: Settings) -> dict[str, int]:
    """Uvicorn's options that come from the settings, for ``gridmap serve`` and ``demo``.

    The test and bench servers (:mod:`api.devserver`) pass the same ``KEEP_ALIVE_S``.
    """
    return {"timeout_keep_alive": settings.keep_alive_s}
