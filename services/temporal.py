"""The one way every ReleaseGate process connects to Temporal."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from services.settings import Settings


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """Connect with the pydantic data converter. ``lazy`` defers the dial to the first call, so
    an API can start (and answer 503) while Temporal is still coming up."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )
