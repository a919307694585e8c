"""Connections to Temporal, made the same way by the API, the worker and the tools."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from settings import Settings
from stack.codec import data_converter


def temporal_target(settings: Settings) -> str:
    return settings.temporal_address or f"127.0.0.1:{settings.temporal_dev_port}"


def _tls(settings: Settings) -> TLSConfig | bool:
    if settings.temporal_tls_cert or settings.temporal_tls_ca:
        return TLSConfig(
            server_root_ca_cert=settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None,
            client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
            client_private_key=settings.temporal_tls_key.read_bytes() if settings.temporal_tls_key else None,
        )
    # Temporal Cloud's API keys only travel over TLS.
    return settings.temporal_tls or bool(settings.temporal_api_key)


def metrics_runtime(settings: Settings) -> Runtime | None:
    """The SDK's own worker metrics (task latencies, slots, polls) and ours, on METRICS_PORT for Prometheus."""
    if settings.metrics_port is None:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"{settings.metrics_host}:{settings.metrics_port}")
        )
    )


async def connect_temporal(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        temporal_target(settings),
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=_tls(settings),
        data_converter=data_converter(settings.payload_encryption_key),
        runtime=runtime,
    )
