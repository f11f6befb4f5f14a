"""The one way every ReleaseGate process connects to Temporal.

Address and namespace, TLS (server CA, mTLS client certificate) or an API key, the payload codec
when encryption is on, and the tracing interceptor when tracing is on: the API, the worker and
the benchmarks all get the same connection from here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from services import observability
from services.codec import EncryptionCodec
from services.commands.signing import SigningInterceptor
from services.settings import ConfigError, Settings
from workflows.credentials import Signer


class TemporalConnectError(ConfigError):
    """Temporal could not be reached or refused us at start; the message says what to check."""


def data_converter(settings: Settings) -> DataConverter:
    """pydantic payloads; with ``RELEASEGATE_CODEC_KEYS`` every payload is encrypted, and so are
    failure messages and stack traces (they can quote inputs)."""
    if settings.codec_keys is None:
        return pydantic_data_converter
    codec = EncryptionCodec.from_spec(settings.codec_keys.get_secret_value())
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def _read_pem(path: Path, variable: str, what: str) -> bytes:
    try:
        data = path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}={path}: cannot read the {what}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{variable}={path}: not a PEM file (the {what} must be PEM)")
    return data


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The TLS settings for Client.connect: False for plaintext, True for system roots."""
    if not settings.temporal_tls_enabled:
        return False
    ca = cert = key = None
    if settings.temporal_tls_ca is not None:
        ca = _read_pem(settings.temporal_tls_ca, "TEMPORAL_TLS_CA", "server CA certificate")
    if settings.temporal_tls_cert is not None and settings.temporal_tls_key is not None:
        cert = _read_pem(settings.temporal_tls_cert, "TEMPORAL_TLS_CERT", "client certificate")
        key = _read_pem(settings.temporal_tls_key, "TEMPORAL_TLS_KEY", "client private key")
    if ca is None and cert is None and settings.temporal_tls_server_name is None:
        return True
    return TLSConfig(
        server_root_ca_cert=ca,
        domain=settings.temporal_tls_server_name,
        client_cert=cert,
        client_private_key=key,
    )


def describe_transport(settings: Settings) -> str:
    """How we dial, for error messages: never a secret."""
    if not settings.temporal_tls_enabled:
        return "plaintext (no TLS settings)"
    parts = ["TLS"]
    parts.append(f"CA {settings.temporal_tls_ca}" if settings.temporal_tls_ca else "system CAs")
    if settings.temporal_tls_cert:
        parts.append(f"client certificate {settings.temporal_tls_cert}")
    else:
        parts.append("no client certificate")
    if settings.temporal_api_key is not None:
        parts.append("API key")
    return ", ".join(parts)


def _explain(settings: Settings, exc: BaseException) -> str:
    """Turn the transport's error into what to check. A TLS-terminating proxy that refuses a
    client answers with a plain HTTP status, which gRPC reports as a protocol error."""
    text = str(exc)
    low = text.lower()
    has_cert = settings.temporal_tls_cert is not None
    if "unknownissuer" in low.replace(" ", "") or "invalid peer certificate" in low:
        hint = "the server's certificate is not signed by TEMPORAL_TLS_CA"
    elif "status: 400" in low and settings.temporal_tls_enabled and not has_cert:
        hint = (
            "the server requires a client certificate: set TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"
        )
    elif "status: 400" in low and has_cert:
        hint = (
            "the server rejected the client certificate in TEMPORAL_TLS_CERT (is it signed by "
            "a CA the server trusts, and still valid?)"
        )
    elif "status: 401" in low or "unauthenticated" in low:
        hint = (
            "the server refused our credentials: check TEMPORAL_API_KEY"
            if settings.temporal_api_key is not None
            else "the server wants credentials: set TEMPORAL_API_KEY or a client certificate"
        )
    elif "status: 403" in low or "permission" in low:
        hint = "the server refused this identity access to the namespace"
    elif not settings.temporal_tls_enabled and (
        "http2" in low or "h2 protocol" in low or "tls" in low
    ):
        hint = "the server may expect TLS: set TEMPORAL_TLS_CA (or TEMPORAL_TLS=true)"
    else:
        hint = "check that it runs and that TEMPORAL_ADDRESS is right"
    return (
        f"cannot connect to Temporal at {settings.temporal_address} (namespace "
        f"{settings.temporal_namespace}, {describe_transport(settings)}): {hint}. "
        f"Details: {text}"
    )


async def connect(
    settings: Settings,
    *,
    lazy: bool = False,
    runtime: Runtime | None = None,
    signer: Signer | None = None,
) -> Client:
    """Connect with the project's data converter, TLS/API key and interceptors. ``lazy`` defers
    the dial to the first call, so an API can start (and answer 503) while Temporal is still
    coming up. Bad TLS files raise ConfigError at once, lazy or not; a refused dial raises
    TemporalConnectError."""
    tls = tls_config(settings)
    interceptors: list[Interceptor] = list(observability.client_interceptors())
    if signer is not None:  # a front door: every command it sends is signed
        interceptors.append(SigningInterceptor(signer))
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            tls=tls,
            api_key=api_key,
            interceptors=interceptors,
            runtime=runtime,
            lazy=lazy,
        )
    except RuntimeError as exc:
        raise TemporalConnectError(_explain(settings, exc)) from exc
