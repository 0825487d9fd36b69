"""The router factory: a name from the command line or bluegreen.yaml -> a Router. Unknown names fail.

`init --router R` records R on the app's stable Service (annotation `bluegreen.io/router`), so later
commands need no `--router`; `chosen` decides between the name given and the one recorded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bluegreen.errors import ConfigError
from bluegreen.model import AppSpec
from bluegreen.routers.base import Router

if TYPE_CHECKING:
    from lightkube import Client

RECORDED = "bluegreen.io/router"  # on the stable Service: the router `init` set the app up for
DEFAULT = "service"

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


def recorded(service: dict[str, Any] | None) -> str:
    """The router recorded on the stable Service ("" when none), as read from the apiserver (pure)."""
    return str((((service or {}).get("metadata") or {}).get("annotations") or {}).get(RECORDED, ""))


def chosen(given: str, recorded_name: str, *, app: str, namespace: str, service: str) -> str:
    """The router to use (pure): the one given, else the recorded one, else `service`. A given router
    that disagrees with the recorded one is refused: the frontend the app was set up with would be left
    pointing at the old colour while another object moved."""
    if given and recorded_name and given != recorded_name:
        raise ConfigError(
            f"--router {given} disagrees with the router recorded for app {app}: {recorded_name} "
            f"(annotation {RECORDED} on Service {namespace}/{service})",
            remedy=(
                f"Drop --router to use {recorded_name}; to move the app to {given}, run "
                f"`bluegreen init --router {given}` after removing the annotation "
                f"(kubectl -n {namespace} annotate service {service} {RECORDED}-)."
            ),
        )
    return given or recorded_name or DEFAULT
