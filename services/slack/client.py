"""The Slack Web API client both the bot (API process) and the worker's adapter use."""

from __future__ import annotations

from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from services.settings import Settings

# Well under the notify activity's 20 s start-to-close timeout, so a slow Slack fails a post
# instead of timing the whole activity out and posting every card again on retry.
SLACK_TIMEOUT_SECONDS = 8


def slack_configured(settings: Settings) -> bool:
    """The bot is on only when both the bot token and the signing secret are set."""
    return bool(settings.slack_bot_token and settings.slack_signing_secret)


def web_client(settings: Settings) -> AsyncWebClient:
    return AsyncWebClient(
        token=settings.slack_bot_token,
        # the client joins method names onto the base URL, which therefore ends with a slash
        base_url=settings.slack_api_url.rstrip("/") + "/",
        timeout=SLACK_TIMEOUT_SECONDS,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
        ],
    )
