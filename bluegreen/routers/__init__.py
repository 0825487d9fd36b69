"""The router factory: a name from the command line or bluegreen.yaml -> a Router. Unknown names fail."""

from __future__ import annotations

import importlib
from typing import Any

from lightkube import Client

from bluegreen.errors import ConfigError
from bluegreen.model import AppSpec
from bluegreen.routers.base import Router

# Imported on use: a `bluegreen switch` process loads only the router it needs.
ROUTERS = {
    "service": "bluegreen.routers.service:ServiceRouter",
    "ingress": "bluegreen.routers.ingress:IngressRouter",
    "gateway": "bluegreen.routers.gateway:GatewayRouter",
    "istio": "bluegreen.routers.istio:IstioRouter",
    "smi": "bluegreen.routers.smi:SmiRouter",
    "dns": "bluegreen.routers.dns:DnsRouter",
}


def make(name: str, app: AppSpec, kube: Client, **options: Any) -> Router:
    """The router called `name` for `app`; options are the router's own (object_name, ...)."""
    target = ROUTERS.get(name)
    if target is None:
        raise ConfigError(f"no router called {name!r}", remedy=f"Use one of: {', '.join(ROUTERS)}.")
    module, cls = target.split(":")
    router: Router = getattr(importlib.import_module(module), cls)(app, kube, **options)
    return router
