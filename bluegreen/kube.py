"""The one seam to the cluster: connecting, and turning lightkube's failures into ours.

Everything that talks to the apiserver goes through `call()`, so every failure reaches the user as one
BlueGreenError with a remedy: 403 names the verb and resource to grant, 404 what is missing, 409 a
concurrent change; a refused connection is retried a few times with backoff, then reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import yaml
from lightkube import ApiError, Client, ConfigError, KubeConfig

from bluegreen.errors import (
    BlueGreenError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnreachableError,
    UsageError,
)

T = TypeVar("T")
FIELD_MANAGER = "bluegreen"
RETRIES = 4  # attempts for a call whose request never reached the apiserver
BACKOFF = 0.25  # seconds, doubled after each failed attempt: 0.25 + 0.5 + 1 = under 2 s in all
RBAC_REMEDY = "Grant it to this identity: deploy/rbac.yaml lists every verb bluegreen uses."
# Opt-in: a file to which every request sent is appended as "<unix time> <METHOD> <path?query>", so the
# bench and the tests can count what a phase sends. Read once, at connect; unset costs nothing more.
REQUEST_LOG = "BLUEGREEN_REQUEST_LOG"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def connect(*, kubeconfig: str | None = None, context: str | None = None, timeout: float = 10.0) -> Client:
    """A client for the cluster named by `kubeconfig` (else $KUBECONFIG, ~/.kube/config, in-cluster)."""
    try:
        if kubeconfig:
            path = Path(kubeconfig).expanduser()
            if not path.is_file():
                raise UsageError(
                    f"kubeconfig {path} does not exist", remedy="Pass the path of a kubeconfig file."
                )
            config = KubeConfig.from_file(path)
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=context) if context else config.get()
    except (ConfigError, OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config or the in-cluster account"
        raise UsageError(
            f"cannot use the kubeconfig ({where}): {error}",
            remedy="Pass --kubeconfig (and --context) naming a cluster you can reach.",
        ) from None
    client = Client(
        single, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER, transport=_transport(single)
    )
    log = os.environ.get(REQUEST_LOG)
    if log:
        _log_requests(client, Path(log))
    return client


def _transport(single: Any) -> httpx2.BaseTransport | None:
    """The standard library's HTTP/1.1 (bluegreen/transport.py) instead of httpcore2, which costs a
    fifth of a switch's CPU in imports alone. Proxied URLs keep httpx2's own transport, as before."""
    from lightkube.config.client_adapter import verify_cluster

    from bluegreen.transport import StdlibTransport

    return StdlibTransport(verify_cluster(single.cluster, single.user, single.abs_file))


def _log_requests(client: Client, path: Path) -> None:
    http: httpx2.Client = client._client._client  # the HTTP client lightkube built (as watch_until uses)

    def note(request: httpx2.Request) -> None:
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{time.time():.6f} {request.method} {request.url.raw_path.decode()}\n")

    http.event_hooks = {**http.event_hooks, "request": [*http.event_hooks["request"], note]}


def mapped(what: str, error: Exception) -> BlueGreenError:
    """Our error for a lightkube ApiError or an httpx2 failure met while doing `what`."""
    if isinstance(error, BlueGreenError):
        return error
    if isinstance(error, httpx2.TransportError):
        return UnreachableError(
            f"{what}: the Kubernetes API did not answer ({type(error).__name__}: {error})",
            remedy="Check the kubeconfig's server address, the network, and that the cluster is up.",
        )
    if isinstance(error, ApiError):
        code, message = error.status.code or 0, error.status.message or str(error)
    elif isinstance(error, httpx2.HTTPStatusError):
        # lightkube raises ApiError only for a JSON body; proxies in front of the API answer otherwise.
        code, message = error.response.status_code, error.response.text[:300]
    else:
        return ClusterError(f"{what}: {error}")
    if code == 409:
        return ConflictError(
            f"{what}: {message}",
            remedy="Someone changed it at the same moment; run the command again to decide on fresh state.",
        )
    if code == 404:
        return NotFoundError(f"{what}: {message}", remedy="Check the namespace and the app name.")
    if code == 401:
        return ForbiddenError(
            f"{what}: not authenticated: {message}", remedy="Refresh the kubeconfig's credentials."
        )
    if code == 403:
        return ForbiddenError(f"{what}: {message}", remedy=RBAC_REMEDY)
    if code == 422:
        return UsageError(f"{what}: the apiserver rejected it: {message}", remedy="Fix the value it names.")
    return ClusterError(f"{what}: HTTP {code}: {message}")


def _retryable(error: Exception, *, idempotent: bool) -> bool:
    if isinstance(error, httpx2.ConnectError):
        return True  # the request never left: safe whatever it was
    if isinstance(error, httpx2.TimeoutException | httpx2.RemoteProtocolError):
        return idempotent
    code = error.status.code if isinstance(error, ApiError) else None
    return idempotent and code in (429, 500, 502, 503, 504)


def call(what: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
    """Run one API call; retry what is safe to retry, with backoff; map every failure to ours.

    `idempotent=False` for writes: a write that timed out may have landed, so it is not sent again.
    """
    delay = BACKOFF
    for attempt in range(1, RETRIES + 1):
        try:
            return fn()
        except (ApiError, httpx2.HTTPError) as error:
            if attempt == RETRIES or not _retryable(error, idempotent=idempotent):
                raise mapped(what, error) from None
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def found(what: str, fn: Callable[[], T]) -> T | None:
    """`call`, but None where the object does not exist."""
    try:
        return call(what, fn)
    except NotFoundError:
        return None


def get_json(kube: Client, path: str, *, params: dict[str, str] | None = None) -> dict[str, Any]:
    """GET an API path as the plain dict the apiserver sent (an object, or a list with its items).

    For reads that pure decision code takes as dicts anyway: decoding into lightkube's typed model
    first builds msgspec decoders for the model's whole type tree on first use (a Deployment: ~25 ms
    of CPU, a Pod list ~8 ms, in every process), only for to_dict() to undo it. Failures are the same
    ApiError and httpx2 errors as from `kube.get`, so `call` maps and retries them alike."""
    response = kube._client._client.get(path, params=params)
    kube._client.raise_for_status(response)  # type: ignore[no-untyped-call]
    out: dict[str, Any] = json.loads(response.content)
    return out


def label_selector(labels: dict[str, Any]) -> str:
    """A labelSelector of equalities, as lightkube writes one."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def to_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as the plain dict the apiserver sent: what pure decision code takes."""
    out: dict[str, Any] = obj.to_dict()
    return out


def watch_until(
    kube: Client,
    path: str,
    *,
    params: dict[str, str],
    resource_version: str,
    deadline: float,
    on_event: Callable[[str, dict[str, Any]], bool],
    initial_events: bool = False,
) -> str:
    """One watch request on `path` from `resource_version`, until `on_event` returns True or `deadline`.

    lightkube's own watch reconnects forever, so a caller cannot stop it at a deadline; this is a single
    bounded stream (the server ends it at timeoutSeconds, we stop reading at the deadline). Returns the
    last resourceVersion seen, for the caller to list or watch again from.

    `initial_events` (with resource_version ""): the stream starts with every current object as ADDED
    and then a BOOKMARK annotated k8s.io/initial-events-end (a list and a watch in one request, the
    apiserver's WatchList); bookmarks are then passed to `on_event` too, so the caller knows when it
    has seen everything. An apiserver that ignores the parameters sends the objects without the mark.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return resource_version
    http: httpx2.Client = kube._client._client  # the authenticated HTTP client lightkube built
    query = {
        **params,
        "watch": "1",
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(max(1, int(remaining + 0.999))),
    }
    if initial_events:
        query.update(sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
    try:
        with http.stream(
            "GET", path, params=query, timeout=httpx2.Timeout(10.0, read=remaining + 5)
        ) as response:
            if response.status_code != 200:
                response.read()
                response.raise_for_status()
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                if event.get("type") == "ERROR":
                    break  # e.g. 410 Gone: the caller lists again
                if (initial_events or event.get("type") != "BOOKMARK") and on_event(event["type"], obj):
                    break
                if time.monotonic() >= deadline:
                    break
    except (httpx2.HTTPError, json.JSONDecodeError) as error:
        raise mapped(f"watching {path}", error) from None
    return resource_version


def initial_events_end(event_type: str, obj: dict[str, Any]) -> bool:
    """The bookmark that ends a watch's initial events (see watch_until)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return event_type == "BOOKMARK" and annotations.get(INITIAL_EVENTS_END) == "true"


def prime_decoders(*resources: type) -> None:
    """Build lightkube's msgspec decoders for these resource types now, in this thread.

    msgspec builds a type's decoder on first use, and two threads doing that for the same type at
    once can crash the interpreter (seen here as a segfault in `bluegreen group`). Code that is about
    to call the API from several threads calls this first.
    """
    import msgspec
    from lightkube.core import decoders

    for resource in resources:
        with contextlib.suppress(msgspec.ValidationError):  # the decoder is built before it validates
            decoders.decode_object(b"{}", resource)
