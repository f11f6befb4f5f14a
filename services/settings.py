"""One Settings class for every ReleaseGate process (API, worker, launcher, CLI)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """Bad configuration: the message names the file or variable and what is wrong."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path("./.data"), alias="RELEASEGATE_DATA_DIR")
    api_port: int = Field(default=8000, alias="RELEASEGATE_API_PORT", ge=1, le=65535)
    api_host: str = Field(default="127.0.0.1", alias="RELEASEGATE_API_HOST")
    temporal_address: str = Field(default="localhost:7233", alias="TEMPORAL_ADDRESS")
    temporal_ui_port: int = Field(default=8233, alias="TEMPORAL_UI_PORT", ge=1, le=65535)
    temporal_ui_url: str | None = Field(default=None, alias="TEMPORAL_UI_URL")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="releasegate", alias="RELEASEGATE_TASK_QUEUE")
    database_url: str | None = Field(default=None, alias="RELEASEGATE_DATABASE_URL")
    directory_path: Path = Field(
        default=PROJECT_ROOT / "config" / "directory.example.yaml", alias="RELEASEGATE_DIRECTORY"
    )
    policy_path: Path = Field(
        default=PROJECT_ROOT / "config" / "policy.yaml", alias="RELEASEGATE_POLICY"
    )
    env: str = Field(default="development", alias="RELEASEGATE_ENV")
    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    public_url: str = Field(default="http://localhost:8000", alias="RELEASEGATE_URL")
    hook_secret: str | None = Field(default=None, alias="RELEASEGATE_HOOK_SECRET")
    notify_webhook_url: str | None = Field(default=None, alias="RELEASEGATE_NOTIFY_WEBHOOK_URL")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.env not in ("development", "production", "test"):
            raise ValueError("RELEASEGATE_ENV must be development, production or test")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'releasegate.db').resolve()}"

    @property
    def ui_base_url(self) -> str:
        if self.temporal_ui_url:
            return self.temporal_ui_url.rstrip("/")
        host = self.temporal_address.rsplit(":", 1)[0] or "localhost"
        return f"http://{host}:{self.temporal_ui_port}"

    def workflow_ui_url(self, workflow_id: str) -> str:
        return f"{self.ui_base_url}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
