"""One Settings class for every ReleaseGate process (API, worker, launcher, CLI)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.hook_targets import HookAllowList

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The directory shipped for demos and tests: its people carry development tokens everyone knows.
DEMO_DIRECTORY = PROJECT_ROOT / "config" / "directory.example.yaml"


SIGNAL_SOURCE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SIGNAL_TOKEN_MIN = 16


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
    directory_path: Path = Field(default=DEMO_DIRECTORY, alias="RELEASEGATE_DIRECTORY")
    policy_path: Path = Field(
        default=PROJECT_ROOT / "config" / "policy.yaml", alias="RELEASEGATE_POLICY"
    )
    # the control catalog (frameworks -> what satisfies each control), pinned into runs at start
    controls_path: Path = Field(
        default=PROJECT_ROOT / "config" / "controls.yaml", alias="RELEASEGATE_CONTROLS"
    )
    env: str = Field(default="development", alias="RELEASEGATE_ENV")
    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    public_url: str = Field(default="http://localhost:8000", alias="RELEASEGATE_URL")
    hook_secret: str | None = Field(default=None, alias="RELEASEGATE_HOOK_SECRET")
    # Hosts deploy/rollback hooks may call (services/hook_targets.py); empty allows none.
    hook_allowed_hosts: str = Field(default="", alias="RELEASEGATE_HOOK_ALLOWED_HOSTS")
    notify_webhook_url: str | None = Field(default=None, alias="RELEASEGATE_NOTIFY_WEBHOOK_URL")
    # OIDC bearer tokens: on when issuer, audience and JWKS URL are all set (services/api/oidc.py)
    oidc_issuer: str | None = Field(default=None, alias="RELEASEGATE_OIDC_ISSUER")
    oidc_audience: str | None = Field(default=None, alias="RELEASEGATE_OIDC_AUDIENCE")
    oidc_jwks_url: str | None = Field(default=None, alias="RELEASEGATE_OIDC_JWKS_URL")
    oidc_user_claim: str = Field(default="email", alias="RELEASEGATE_OIDC_USER_CLAIM", min_length=1)
    oidc_groups_claim: str = Field(
        default="groups", alias="RELEASEGATE_OIDC_GROUPS_CLAIM", min_length=1
    )
    # Approver console sign-in (services/api/ui): OIDC Authorization Code with PKCE when a client
    # id is set (with the OIDC settings above); endpoints from the issuer's discovery document
    # unless given. The session secret defaults to one derived from the command-signing key.
    oidc_client_id: str | None = Field(default=None, alias="RELEASEGATE_OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(
        default=None, alias="RELEASEGATE_OIDC_CLIENT_SECRET"
    )
    oidc_authorization_url: str | None = Field(
        default=None, alias="RELEASEGATE_OIDC_AUTHORIZATION_URL"
    )
    oidc_token_url: str | None = Field(default=None, alias="RELEASEGATE_OIDC_TOKEN_URL")
    session_secret: SecretStr | None = Field(default=None, alias="RELEASEGATE_SESSION_SECRET")
    # Browser origins allowed to call the API, comma-separated; empty keeps CORS closed.
    cors_origins: str = Field(default="", alias="RELEASEGATE_CORS_ORIGINS")
    max_body_bytes: int = Field(default=1024 * 1024, alias="RELEASEGATE_MAX_BODY_BYTES", ge=1)
    # Temporal connection security (services/temporal.py): mTLS client certificate and key, the
    # server's CA, or an API key (Temporal Cloud; implies TLS). TEMPORAL_TLS turns TLS on with the
    # system's roots when no CA file is given.
    temporal_tls: bool = Field(default=False, alias="TEMPORAL_TLS")
    temporal_tls_cert: Path | None = Field(default=None, alias="TEMPORAL_TLS_CERT")
    temporal_tls_key: Path | None = Field(default=None, alias="TEMPORAL_TLS_KEY")
    temporal_tls_ca: Path | None = Field(default=None, alias="TEMPORAL_TLS_CA")
    temporal_tls_server_name: str | None = Field(default=None, alias="TEMPORAL_TLS_SERVER_NAME")
    temporal_api_key: SecretStr | None = Field(default=None, alias="TEMPORAL_API_KEY")
    # Payload encryption (services/codec.py): "kid:base64key,..."; the first key encrypts, all
    # decrypt. Unset = payloads stored as plain JSON.
    codec_keys: SecretStr | None = Field(default=None, alias="RELEASEGATE_CODEC_KEYS")
    # JSON file with the command-signing key (API) and the trusted public keys (worker);
    # default <data dir>/command-keys.json, made on first use in development
    command_keys: Path | None = Field(default=None, alias="RELEASEGATE_COMMAND_KEYS")
    # Transparency log (services/tlog): signed checkpoints of the ledger's Merkle tree, written
    # outside the ledger database. Keys: <data dir>/checkpoint-keys.json, made on first use in
    # development; checkpoints: <data dir>/checkpoints. A checkpoint every N entries or T
    # seconds (and at every gate decision of a high-tier run); an optional tlog-witness.
    checkpoints_enabled: bool = Field(default=True, alias="RELEASEGATE_CHECKPOINTS")
    checkpoint_dir: Path | None = Field(default=None, alias="RELEASEGATE_CHECKPOINT_DIR")
    checkpoint_keys: Path | None = Field(default=None, alias="RELEASEGATE_CHECKPOINT_KEYS")
    checkpoint_every: int = Field(default=256, alias="RELEASEGATE_CHECKPOINT_EVERY", ge=1)
    checkpoint_seconds: float = Field(default=30.0, alias="RELEASEGATE_CHECKPOINT_SECONDS", gt=0)
    checkpoint_witness_url: str | None = Field(
        default=None, alias="RELEASEGATE_CHECKPOINT_WITNESS_URL"
    )
    checkpoint_witness_key: str | None = Field(
        default=None, alias="RELEASEGATE_CHECKPOINT_WITNESS_KEY"
    )
    # Monitoring signals (services/api/routes/signals.py): "source:token,..." per source (the
    # Alertmanager's is `alertmanager`), sent as a bearer token or used as the HMAC key; the
    # alert label naming the use case an alert concerns.
    signal_tokens: SecretStr | None = Field(default=None, alias="RELEASEGATE_SIGNAL_TOKENS")
    signal_use_case_label: str = Field(
        default="releasegate_use_case",
        alias="RELEASEGATE_SIGNAL_USE_CASE_LABEL",
        min_length=1,
        max_length=128,
    )
    # A static Authorization value the codec endpoint also accepts (`temporal --codec-auth`).
    codec_auth: SecretStr | None = Field(default=None, alias="RELEASEGATE_CODEC_AUTH")
    # Observability (services/observability.py)
    log_format: str = Field(default="text", alias="RELEASEGATE_LOG_FORMAT")
    metrics_token: SecretStr | None = Field(default=None, alias="RELEASEGATE_METRICS_TOKEN")
    worker_metrics_port: int | None = Field(
        default=None, alias="RELEASEGATE_WORKER_METRICS_PORT", ge=1, le=65535
    )
    worker_metrics_host: str = Field(default="127.0.0.1", alias="RELEASEGATE_WORKER_METRICS_HOST")
    # Worker (services/worker/main.py): runs kept in memory between their workflow tasks; a run
    # evicted from the cache is replayed from its history on its next command (bench/cached_runs)
    max_cached_workflows: int = Field(
        default=2_000, alias="RELEASEGATE_MAX_CACHED_WORKFLOWS", ge=0, le=1_000_000
    )
    otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.env not in ("development", "production", "test"):
            raise ValueError("RELEASEGATE_ENV must be development, production or test")
        return self

    @model_validator(mode="after")
    def _check_oidc_and_cors(self) -> Settings:
        oidc = {
            "RELEASEGATE_OIDC_ISSUER": self.oidc_issuer,
            "RELEASEGATE_OIDC_AUDIENCE": self.oidc_audience,
            "RELEASEGATE_OIDC_JWKS_URL": self.oidc_jwks_url,
        }
        missing = [name for name, value in oidc.items() if not value]
        if len(missing) not in (0, len(oidc)):
            raise ValueError(f"OIDC needs all three settings; missing {', '.join(missing)}")
        if self.oidc_jwks_url:
            url = urlsplit(self.oidc_jwks_url)
            loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
            if url.scheme != "https" and not (url.scheme == "http" and loopback):
                raise ValueError("RELEASEGATE_OIDC_JWKS_URL must be https (http only on loopback)")
        for name, value in (
            ("RELEASEGATE_OIDC_AUTHORIZATION_URL", self.oidc_authorization_url),
            ("RELEASEGATE_OIDC_TOKEN_URL", self.oidc_token_url),
        ):
            if value:
                url = urlsplit(value)
                loopback = url.hostname in ("127.0.0.1", "localhost", "::1")
                if url.scheme != "https" and not (url.scheme == "http" and loopback):
                    raise ValueError(f"{name} must be https (http only on loopback)")
        for origin in self.cors_origin_list:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(
                    f"RELEASEGATE_CORS_ORIGINS: {origin!r} is not an origin like "
                    "https://app.example.com (no '*', no path)"
                )
        return self

    @model_validator(mode="after")
    def _check_transport_and_observability(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both or neither"
            )
        if self.codec_keys is not None:
            from services.codec import parse_keys  # the codec owns the key format

            parse_keys(self.codec_keys.get_secret_value())  # ValueError names the bad entry
        if self.log_format not in ("text", "json"):
            raise ValueError("RELEASEGATE_LOG_FORMAT must be text or json")
        self.hook_allow_list  # noqa: B018 - parsing it fails fast, naming the bad entry
        self.signal_sources  # noqa: B018 - likewise RELEASEGATE_SIGNAL_TOKENS
        if bool(self.checkpoint_witness_url) != bool(self.checkpoint_witness_key):
            raise ValueError(
                "RELEASEGATE_CHECKPOINT_WITNESS_URL and RELEASEGATE_CHECKPOINT_WITNESS_KEY go "
                "together: the witness's cosignatures are checked with its vkey"
            )
        return self

    @property
    def temporal_tls_enabled(self) -> bool:
        return bool(
            self.temporal_tls
            or self.temporal_tls_cert
            or self.temporal_tls_ca
            or self.temporal_api_key
        )

    @property
    def hook_allow_list(self) -> HookAllowList:
        return HookAllowList.parse(self.hook_allowed_hosts)

    @property
    def signal_sources(self) -> dict[str, str]:
        """RELEASEGATE_SIGNAL_TOKENS as source -> token; ValueError names a bad entry."""
        if self.signal_tokens is None:
            return {}
        out: dict[str, str] = {}
        for entry in self.signal_tokens.get_secret_value().split(","):
            if not entry.strip():
                continue
            source, sep, token = entry.strip().partition(":")
            if not sep or not SIGNAL_SOURCE.match(source):
                raise ValueError(
                    "RELEASEGATE_SIGNAL_TOKENS: each entry is source:token, source "
                    f"[a-z][a-z0-9_-]{{0,31}} (entry {len(out) + 1})"
                )
            if len(token) < SIGNAL_TOKEN_MIN or source in out:
                raise ValueError(
                    f"RELEASEGATE_SIGNAL_TOKENS: source {source}: a token of at least "
                    f"{SIGNAL_TOKEN_MIN} characters, once per source"
                )
            out[source] = token
        return out

    @property
    def encryption_enabled(self) -> bool:
        return self.codec_keys is not None

    @property
    def codec_ui_origin(self) -> str:
        """The one browser origin allowed to call /codec: the Temporal UI's."""
        if self.temporal_ui_url:
            parts = urlsplit(self.temporal_ui_url)
            return f"{parts.scheme}://{parts.netloc}"
        return f"http://localhost:{self.temporal_ui_port}"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_audience and self.oidc_jwks_url)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def command_keys_path(self) -> Path:
        return self.command_keys or self.data_dir / "command-keys.json"

    @property
    def checkpoint_keys_path(self) -> Path:
        return self.checkpoint_keys or self.data_dir / "checkpoint-keys.json"

    @property
    def checkpoint_dir_path(self) -> Path:
        return self.checkpoint_dir or self.data_dir / "checkpoints"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

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
