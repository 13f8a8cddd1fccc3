"""Process settings from the environment (and an optional .env file). Built once, passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.db import DEFAULT_DATABASE_URL, PG_POOL_SIZE

TELEGRAM_API_URL = "https://api.telegram.org/bot"
ZALO_API_URL = "https://bot-api.zaloplatforms.com/"


class Settings(BaseSettings):
    """Environment variables: CONTEST_BOT_TOKEN, CONTEST_BOT_API_URL, CONTEST_DATABASE_URL,
    CONTEST_ADMIN_IDS, CONTEST_CONFIG (and a few tuning knobs); for Zalo CONTEST_ZALO_TOKEN,
    CONTEST_ZALO_API_URL, CONTEST_ZALO_WEBHOOK_URL, CONTEST_ZALO_WEBHOOK_SECRET and
    CONTEST_ZALO_ADMIN_IDS (Zalo user ids, comma-separated)."""

    model_config = SettingsConfigDict(
        env_prefix="CONTEST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    bot_token: SecretStr | None = None
    bot_api_url: str = TELEGRAM_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    config: Path | None = None
    # Tuning (rarely changed): request backend, seconds between deadline sweeps.
    http_backend: Literal["aiohttp", "httpx"] = "aiohttp"
    sweep_seconds: float = Field(default=15.0, gt=0)
    lease_seconds: float = Field(default=45.0, gt=0)
    send_rate: float = Field(default=30.0, gt=0)  # bulk messages per second, overall
    chat_send_interval: float = Field(default=1.0, ge=0)  # seconds between bulk sends to a chat
    poll_timeout: int = Field(default=30, ge=0)
    db_pool_size: int = Field(default=PG_POOL_SIZE, ge=1)  # PostgreSQL connections per process
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8080
    # Zalo (contest-bot run --channel zalo, or telegram,zalo).
    zalo_token: SecretStr | None = None
    zalo_api_url: str = ZALO_API_URL
    zalo_webhook_url: str | None = None  # the public URL Zalo posts updates to (--webhook)
    zalo_webhook_secret: SecretStr | None = None  # 8-256 characters, sent back in a header
    zalo_admin_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    # Zalo publishes no bulk rate: a conservative pace, as for Telegram (settings to tune).
    zalo_send_rate: float = Field(default=10.0, gt=0)
    zalo_chat_send_interval: float = Field(default=1.0, ge=0)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            return frozenset(int(p) for p in parts)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("zalo_admin_ids", mode="before")
    @classmethod
    def _parse_zalo_ids(cls, value: object) -> object:
        if isinstance(value, str | int):
            parts = [p.strip() for p in str(value).replace(";", ",").split(",") if p.strip()]
            return frozenset(parts)
        return value

    @field_validator("http_backend", mode="before")
    @classmethod
    def _backend_name(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def config_path(self) -> Path:
        """CONTEST_CONFIG, else ./contest.toml, else the shipped ./contest.example.toml."""
        if self.config is not None:
            return self.config
        for candidate in (Path("contest.toml"), Path("contest.example.toml")):
            if candidate.exists():
                return candidate
        return Path("contest.toml")
