"""Checks: one module per kind and this factory, which rejects kinds it does not know."""

from __future__ import annotations

import httpx2
from lightkube import Client
from lightkube.config import client_adapter

from bluegreen.checks.base import Check, Target
from bluegreen.checks.command import CommandCheck
from bluegreen.checks.drift import DriftCheck
from bluegreen.checks.http import HttpCheck
from bluegreen.checks.job import JobCheck
from bluegreen.checks.kubernetes import KubernetesCheck
from bluegreen.checks.probe import ProbeCheck
from bluegreen.checks.prometheus import PrometheusCheck
from bluegreen.config import (
    KINDS,
    CheckConfig,
    CommandCheckConfig,
    DriftCheckConfig,
    HttpCheckConfig,
    JobCheckConfig,
    KubernetesCheckConfig,
    ProbeCheckConfig,
    PrometheusCheckConfig,
)
from bluegreen.errors import ConfigError, UsageError

__all__ = ["Check", "Target", "build"]


def _apiserver(kube: Client) -> httpx2.Client:
    """An authenticated HTTP client on the apiserver (same config as `kube`), for the service proxy."""
    return client_adapter.Client(kube.config, client_adapter.ConnectionParams())


def build(config: CheckConfig, *, kube: Client | None = None) -> Check:
    """The check `config` describes. ConfigError for an unknown kind, never a silent default."""
    if isinstance(config, KubernetesCheckConfig):
        return KubernetesCheck(config, kube=_need(kube, config))
    if isinstance(config, HttpCheckConfig):
        return HttpCheck(config, apiserver=None if config.url else _apiserver(_need(kube, config)))
    if isinstance(config, CommandCheckConfig):
        return CommandCheck(config)
    if isinstance(config, JobCheckConfig):
        return JobCheck(config, kube=_need(kube, config))
    if isinstance(config, PrometheusCheckConfig):
        return PrometheusCheck(config)
    if isinstance(config, ProbeCheckConfig):
        return ProbeCheck(config)
    if isinstance(config, DriftCheckConfig):
        return DriftCheck(config, kube=_need(kube, config))
    raise ConfigError(
        f"check {config.name!r}: no valid kind {config.kind!r}",
        remedy=f"Use one of: {', '.join(KINDS)}.",
    )


def _need(kube: Client | None, config: CheckConfig) -> Client:
    if kube is None:
        raise UsageError(f"check {config.name!r} ({config.kind}) needs a cluster connection")
    return kube
