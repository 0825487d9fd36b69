"""The one seam to the cluster: connecting, and turning lightkube's failures into ours.

Everything that talks to the apiserver goes through `call()`, so every failure reaches the user as one
BlueGreenError with a remedy: 403 names the verb and resource to grant, 404 what is missing, 409 a
concurrent change; a refused connection is retried a few times with backoff, then reported.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import os
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from bluegreen import cancel, validate
from bluegreen.apiclient import Api, ApiStatusError, NoAnswer, plain_server
from bluegreen.errors import (
    BlueGreenError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnreachableError,
    UsageError,
)

if TYPE_CHECKING:
    import httpx2
    from lightkube import Client, KubeConfig

T = TypeVar("T")
FIELD_MANAGER = "bluegreen"
RETRIES = 4  # attempts for a call whose request never reached the apiserver
BACKOFF = 0.25  # seconds, doubled after each failed attempt: 0.25 + 0.5 + 1 = under 2 s in all
RBAC_REMEDY = "Grant it to this identity: deploy/rbac.yaml lists every verb bluegreen uses."
# Opt-in: a file to which every request sent is appended as "<unix time> <METHOD> <path?query>", so the
# bench and the tests can count what a phase sends. Read once, at connect; unset costs nothing more.
REQUEST_LOG = "BLUEGREEN_REQUEST_LOG"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
RETRY_STATUS = (429, 500, 502, 503, 504)  # overloaded or a proxy that lost the apiserver: a read again


def connect(*, kubeconfig: str | None = None, context: str | None = None, timeout: float = 10.0) -> Client:
    """A client for the cluster named by `kubeconfig` (else $KUBECONFIG, ~/.kube/config, in-cluster).

    The kubeconfig is read through the same safe YAML as bluegreen.yaml and its shape checked field by
    field (kubeconfig_data), so a hand-edited file gets a message naming the bad field, exit 2.

    A plain kubeconfig (apiclient.plain_server) gets the lean client: the plain-dict calls of this
    module never import lightkube, and typed calls build lightkube's Client on first use. Anything
    else (exec plugins, token files, proxies, the in-cluster account) is lightkube's from the start."""
    where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config or the in-cluster account"
    remedy = "Pass --kubeconfig (and --context) naming a cluster you can reach."
    in_cluster = not kubeconfig and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if not in_cluster:
        path = Path(kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config").expanduser()
        lean = _lean(path, context, timeout)
        if lean is not None:
            return lean
    return _lightkube(kubeconfig=kubeconfig, context=context, timeout=timeout, where=where, remedy=remedy)


def _lean(path: Path, context: str | None, timeout: float) -> Client | None:
    """The lean client when the kubeconfig is plain and its checks pass, else None (the full path then
    reads it again and says what is wrong, as before)."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as file:
            raw = file.read(validate.MAX_YAML_BYTES + 1)
        data = parsed_kubeconfig(validate.yaml_text(raw, source=str(path)))
        cluster, user = _chosen(data, context)
        if cluster is None or not plain_shape(data):
            return None
        server = plain_server(cluster, user, path.resolve().parent)
    except Exception:  # anything odd: the full path decides, and words the error
        return None
    if server is None:
        return None
    log = os.environ.get(REQUEST_LOG)

    def typed() -> Client:
        return _typed_client(data, path, context, timeout, server.tls, Path(log) if log else None)

    from bluegreen import __version__

    api = Api(
        server,
        timeout=timeout,
        typed=typed,
        request_log=Path(log) if log else None,
        user_agent=f"bluegreen/{__version__}",
    )
    api.prewarm()
    return api  # type: ignore[return-value]  # a Client to its users: lightkube's calls are delegated


def parsed_kubeconfig(text: str) -> Any:
    """The kubeconfig's document: as JSON when it is JSON (`kubectl config view -o json`, the local
    cluster's) within the YAML bounds, which spares PyYAML's import; else through the safe YAML."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if data is not None and _depth(data) <= validate.MAX_DEPTH:
            return data
    return validate.load_yaml(text)


def _depth(data: Any) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((v, level + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, level + 1) for v in node)
    return deepest


def _chosen(data: Any, context: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The cluster and user sections of the context asked for (else the current one), or None."""
    if not isinstance(data, dict):
        return None, {}
    name = context or data.get("current-context")
    entries = {
        key: {e["name"]: e.get(field) for e in data.get(key) or [] if isinstance(e, dict) and "name" in e}
        for key, field in (("contexts", "context"), ("clusters", "cluster"), ("users", "user"))
    }
    chosen = entries["contexts"].get(name)
    if not isinstance(chosen, dict):
        return None, {}
    cluster = entries["clusters"].get(chosen.get("cluster"))
    user = entries["users"].get(chosen.get("user"), {}) if chosen.get("user") else {}
    if not isinstance(cluster, dict) or not isinstance(user, dict):
        return None, {}
    return cluster, user


def plain_shape(data: dict[str, Any]) -> bool:
    """Every entry of the file of the plain shape, each reference resolved: what kubeconfig_data would
    accept, checked without msgspec. False sends the file to the full check, which names the fault."""
    sections = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))
    names: dict[str, set[str]] = {}
    for key, field in sections:
        entries = data.get(key, [] if key == "users" else None)
        if not isinstance(entries, list):
            return False
        names[key] = set()
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                return False
            body = entry.get(field)
            if not isinstance(body, dict):
                return False
            if not all(isinstance(v, str) for k, v in body.items() if k != "insecure-skip-tls-verify"):
                return False
            names[key].add(entry["name"])
    for entry in data["clusters"]:
        cluster = entry["cluster"]
        if not isinstance(cluster.get("server", ""), str) or not _pem_ok(
            cluster, "certificate-authority-data"
        ):
            return False
    for entry in data.get("users") or []:
        user = entry["user"]
        if not (_pem_ok(user, "client-certificate-data") and _pem_ok(user, "client-key-data")):
            return False
        if bool(user.get("client-certificate") or user.get("client-certificate-data")) != bool(
            user.get("client-key") or user.get("client-key-data")
        ):
            return False
    for entry in data["contexts"]:
        context = entry["context"]
        if context.get("cluster") not in names["clusters"]:
            return False
        if context.get("user") and context["user"] not in names["users"]:
            return False
    current = data.get("current-context")
    return current is None or current in names["contexts"]


def _pem_ok(section: dict[str, Any], key: str) -> bool:
    try:
        _pem(section, key, "")
    except ValueError:
        return False
    return True


def _typed_client(
    data: dict[str, Any],
    path: Path,
    context: str | None,
    timeout: float,
    tls: ssl.SSLContext | None,
    log: Path | None,
) -> Client:
    """lightkube's Client for the lean client's typed calls: same kubeconfig, same TLS context."""
    import httpx2
    from lightkube import Client, KubeConfig

    from bluegreen.transport import StdlibTransport

    config = KubeConfig.from_dict(data, fname=path)
    single = config.get(context_name=context) if context else config.get()
    client = Client(
        single, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER, transport=StdlibTransport(tls)
    )
    if log is not None:
        _log_requests(client, log)
    return client


def _lightkube(
    *, kubeconfig: str | None, context: str | None, timeout: float, where: str, remedy: str
) -> Client:
    import httpx2
    import yaml
    from lightkube import Client, ConfigError, KubeConfig

    try:
        if kubeconfig:
            config = _from_file(Path(kubeconfig).expanduser(), explicit=True)
        else:
            try:
                config = KubeConfig.from_service_account()
            except ConfigError:
                config = _from_file(
                    Path(os.environ.get("KUBECONFIG") or "~/.kube/config").expanduser(), explicit=False
                )
        single = config.get(context_name=context) if context else config.get()
    except UsageError:
        raise
    except (ConfigError, OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise UsageError(f"cannot use the kubeconfig ({where}): {error}", remedy=remedy) from None
    try:
        client = Client(
            single, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER, transport=_transport(single)
        )
    except (ssl.SSLError, OSError, ValueError, TypeError, ConfigError, httpx2.InvalidURL) as error:
        # What the shape check cannot see: PEM that parses as base64 but not as a certificate or key,
        # a certificate file that cannot be read, a key that does not match its certificate.
        raise UsageError(
            f"cannot use the kubeconfig ({where}), context {getattr(single, 'context_name', context)!r}: "
            f"its TLS settings (certificate-authority*, client-certificate*, client-key*) are unusable: "
            f"{type(error).__name__}: {error}",
            remedy="Fix or re-export the certificate and key data, e.g. with `kubectl config view --raw`.",
        ) from None
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


def _from_file(path: Path, *, explicit: bool) -> KubeConfig:
    from lightkube import KubeConfig

    if not path.is_file():
        raise UsageError(
            f"kubeconfig {path} does not exist",
            remedy="Pass the path of a kubeconfig file."
            if explicit
            else "Pass --kubeconfig, set $KUBECONFIG, or run inside the cluster.",
        )
    with path.open("rb") as file:
        raw = file.read(validate.MAX_YAML_BYTES + 1)
    data = kubeconfig_data(validate.yaml_text(raw, source=str(path)), source=str(path))
    return KubeConfig.from_dict(data, fname=path)


@functools.cache
def _kubeconfig_shape() -> Any:
    """The shape lightkube reads, field by field, as msgspec Structs (built when the full check runs:
    msgspec and lightkube's models are imported only then); msgspec names the path of whatever does
    not fit."""
    import msgspec
    from lightkube.config import models as kubeconfig_models

    def named(kind: str, field: str, model: type) -> Any:
        return msgspec.defstruct(f"_Named{kind}", [("name", str), (field, model)])

    return msgspec.defstruct(
        "_Kubeconfig",
        [
            ("clusters", list[named("Cluster", "cluster", kubeconfig_models.Cluster)]),  # type: ignore[misc]
            ("contexts", list[named("Context", "context", kubeconfig_models.Context)]),  # type: ignore[misc]
            ("users", list[named("User", "user", kubeconfig_models.User)], []),  # type: ignore[misc]
            ("current_context", str | None, msgspec.field(name="current-context", default=None)),
        ],
    )


_PEM_FIELDS = ("certificate-authority-data", "client-certificate-data", "client-key-data")


def kubeconfig_data(text: str, *, source: str = "kubeconfig") -> dict[str, Any]:
    """The kubeconfig in `text` as the plain dict lightkube takes, checked: ValueError naming the field.

    Refused: an empty document, anything but a mapping, a wrong type anywhere lightkube reads, a
    server that is not an http(s) URL with a host, certificate data that is not base64 PEM, a context
    naming a cluster or user that is not there. Aliases, depth and size are refused by the safe YAML.
    """
    import httpx2
    import msgspec
    import yaml

    try:
        data = validate.load_yaml(text)
    except yaml.MarkedYAMLError as error:
        # The problem and its place only: PyYAML's own message quotes the line, which may hold a token.
        mark = error.problem_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ValueError(f"{where}: not valid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: not valid YAML ({type(error).__name__})") from None
    if data is None:
        raise ValueError(f"{source}: the kubeconfig is empty")
    if not isinstance(data, dict):
        raise ValueError(
            f"{source}: expected a mapping with clusters, contexts and users, got a {type(data).__name__}"
        )
    try:
        shape = msgspec.convert(data, _kubeconfig_shape(), strict=True)
    except msgspec.ValidationError as error:
        raise ValueError(f"{source}: {error}".replace("`$.", "`").replace(" - at `$`", "")) from None
    clusters = {c.name for c in shape.clusters}
    users = {u.name for u in shape.users}
    contexts = {c.name for c in shape.contexts}
    for i, named in enumerate(shape.clusters):
        where = f"{source}: clusters[{i}] ({named.name!r}).cluster"
        server = named.cluster.server
        try:
            parts = urlsplit(server)
            parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
            httpx2.URL(server)
        except (ValueError, httpx2.InvalidURL) as error:
            raise ValueError(f"{where}.server: {validate._shown(server)} is not a URL ({error})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}.server: {validate._shown(server)} is not a URL like https://HOST:6443")
        raw_cluster = data["clusters"][i]["cluster"]
        _pem(raw_cluster, "certificate-authority-data", where)
    for i, named_user in enumerate(shape.users):
        raw_user = data["users"][i]["user"]
        where = f"{source}: users[{i}] ({named_user.name!r}).user"
        for key in ("client-certificate-data", "client-key-data"):
            _pem(raw_user, key, where)
        has_cert = bool(named_user.user.client_cert or named_user.user.client_cert_data)
        has_key = bool(named_user.user.client_key or named_user.user.client_key_data)
        if has_cert != has_key:
            given, missing = (
                ("client-certificate", "client-key") if has_cert else ("client-key", "client-certificate")
            )
            raise ValueError(f"{where}: {given}(-data) without {missing}(-data): give both or neither")
    for i, named_context in enumerate(shape.contexts):
        where = f"{source}: contexts[{i}] ({named_context.name!r}).context"
        if named_context.context.cluster not in clusters:
            raise ValueError(
                f"{where}.cluster: no cluster named {named_context.context.cluster!r} "
                f"(clusters: {', '.join(sorted(clusters)) or 'none'})"
            )
        if named_context.context.user and named_context.context.user not in users:
            raise ValueError(
                f"{where}.user: no user named {named_context.context.user!r} "
                f"(users: {', '.join(sorted(users)) or 'none'})"
            )
    if shape.current_context is not None and shape.current_context not in contexts:
        raise ValueError(
            f"{source}: current-context: no context named {shape.current_context!r} "
            f"(contexts: {', '.join(sorted(contexts)) or 'none'})"
        )
    return data


def _pem(section: dict[str, Any], key: str, where: str) -> None:
    value = section.get(key)
    if value is None:
        return
    try:
        decoded = base64.b64decode("".join(str(value).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}.{key}: not base64 (it holds base64 of PEM data)") from None
    if b"-----BEGIN " not in decoded:
        raise ValueError(f"{where}.{key}: the base64 does not hold PEM data (-----BEGIN ...)")
    if key == "certificate-authority-data":
        try:
            ssl.create_default_context(cadata=decoded.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError) as error:
            raise ValueError(f"{where}.{key}: not a usable CA certificate ({error})") from None


def _foreign(name: str, attribute: str) -> type | None:
    """An error class of lightkube, httpx2 or msgspec if that module is loaded, else None: an error of
    a library this process never imported cannot be raised, so it is never imported to be checked."""
    module = sys.modules.get(name)
    found: type | None = getattr(module, attribute, None) if module is not None else None
    return found


def _status_of(error: Exception) -> tuple[int, str] | None:
    """The HTTP status and message of an error answer, from our client or lightkube's."""
    if isinstance(error, ApiStatusError):
        return error.code, error.message
    api_error = _foreign("lightkube.core.exceptions", "ApiError")
    if api_error is not None and isinstance(error, api_error):
        status: Any = error.status  # type: ignore[attr-defined]
        return status.code or 0, status.message or str(error)
    status_error = _foreign("httpx2", "HTTPStatusError")
    if status_error is not None and isinstance(error, status_error):
        # lightkube raises ApiError only for a JSON body; proxies in front of the API answer otherwise.
        response: Any = error.response  # type: ignore[attr-defined]
        return response.status_code, response.text[:300]
    return None


def _no_answer(error: Exception) -> bool:
    transport_error = _foreign("httpx2", "TransportError")
    return isinstance(error, NoAnswer) or (transport_error is not None and isinstance(error, transport_error))


def _cut_short(error: Exception) -> bool:
    decode_error = _foreign("msgspec", "DecodeError")
    return isinstance(error, json.JSONDecodeError) or (
        decode_error is not None and isinstance(error, decode_error)
    )


def _api_failure(error: Exception) -> bool:
    """One of the failures `call` maps: an error answer, no answer, or an answer cut short."""
    http_error = _foreign("httpx2", "HTTPError")
    return (
        isinstance(error, ApiStatusError | NoAnswer | json.JSONDecodeError)
        or (http_error is not None and isinstance(error, http_error))
        or _cut_short(error)
        or _status_of(error) is not None
    )


def mapped(what: str, error: Exception) -> BlueGreenError:
    """Our error for an error answer, no answer or a cut answer (of our client or lightkube's) met
    while doing `what`."""
    if isinstance(error, BlueGreenError):
        return error
    if _no_answer(error):
        name = type(error).__name__
        detail = str(error) if isinstance(error, NoAnswer) else f"{name}: {error}"
        return UnreachableError(
            f"{what}: the Kubernetes API did not answer ({detail})",
            remedy="Check the kubeconfig's server address, the network, and that the cluster is up.",
        )
    if _cut_short(error):
        # The connection closed mid-answer (a proxy's limit, a reset): a write may have landed.
        return UnreachableError(
            f"{what}: the Kubernetes API's answer was cut short ({error})",
            remedy="Check the network and any proxy between here and the cluster, then run it again.",
        )
    status = _status_of(error)
    if status is None:
        return ClusterError(f"{what}: {error}")
    code, message = status
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
    if code in (400, 422):  # 400: e.g. a field the apiserver does not know (fieldValidation=Strict)
        return UsageError(f"{what}: the apiserver rejected it: {message}", remedy="Fix the value it names.")
    return ClusterError(f"{what}: HTTP {code}: {message}")


def _retryable(error: Exception, *, idempotent: bool) -> bool:
    if isinstance(error, NoAnswer):
        if not error.sent:
            return True  # the request never left: safe whatever it was
        return idempotent and error.kind in ("timeout", "protocol")
    connect_error = _foreign("httpx2", "ConnectError")
    if connect_error is not None and isinstance(error, connect_error):
        return True
    timeout, protocol = _foreign("httpx2", "TimeoutException"), _foreign("httpx2", "RemoteProtocolError")
    if timeout is not None and protocol is not None and isinstance(error, timeout | protocol):
        return idempotent
    if _cut_short(error):
        return idempotent  # an answer cut short: a read can be asked again
    if isinstance(error, ApiStatusError):
        return idempotent and error.code in RETRY_STATUS
    api_error = _foreign("lightkube.core.exceptions", "ApiError")
    if api_error is not None and isinstance(error, api_error):
        return idempotent and error.status.code in RETRY_STATUS  # type: ignore[attr-defined]
    return False


def call(
    what: str, fn: Callable[[], T], *, idempotent: bool = True, guard: bool = True, begins_step: bool = True
) -> T:
    """Run one API call; retry what is safe to retry, with backoff; map every failure to ours.

    `idempotent=False` for writes: a write that timed out may have landed, so it is not sent again.
    Once the run is cancelled no call is started (cancel.before_read), nor a write once it has lost
    its Lease (cancel.before_write); `guard=False` for the Lease's own calls, which releasing needs.
    A write once sent is awaited: a signal cannot cut it. `begins_step=False`: see cancel.wrote.
    """
    if idempotent:
        if guard:
            cancel.before_read()
        return _call(what, fn, idempotent=True)
    if guard:
        cancel.before_write(what)
    with cancel.shield():
        done = _call(what, fn, idempotent=False)
        if guard:
            cancel.wrote(what, begins_step=begins_step)
        return done


def _call(what: str, fn: Callable[[], T], *, idempotent: bool) -> T:
    delay = BACKOFF
    for attempt in range(1, RETRIES + 1):
        try:
            return fn()
        except Exception as error:
            if not _api_failure(error):
                raise
            if attempt == RETRIES or not _retryable(error, idempotent=idempotent):
                raise mapped(what, error) from None
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def found(what: str, fn: Callable[[], T], *, guard: bool = True) -> T | None:
    """`call`, but None where the object does not exist."""
    try:
        return call(what, fn, guard=guard)
    except NotFoundError:
        return None


def _send(
    kube: Client,
    method: str,
    path: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One request through the lean client, or through the HTTP client of a lightkube Client (the
    tests', the fallback's): the body of a 2xx answer; the client's own errors otherwise, which `call`
    maps and retries alike."""
    if isinstance(kube, Api):
        return kube.request(method, path, params=params, headers=headers, body=body)
    response = kube._client._client.request(method, path, params=params, headers=headers, content=body)
    kube._client.raise_for_status(response)  # type: ignore[no-untyped-call]
    content: bytes = response.content
    return content


def get_json(kube: Client, path: str, *, params: dict[str, str] | None = None) -> dict[str, Any]:
    """GET an API path as the plain dict the apiserver sent (an object, or a list with its items).

    For reads that pure decision code takes as dicts anyway: decoding into lightkube's typed model
    first builds msgspec decoders for the model's whole type tree on first use (a Deployment: ~25 ms
    of CPU, a Pod list ~8 ms, in every process), only for to_dict() to undo it."""
    out: dict[str, Any] = json.loads(_send(kube, "GET", path, params=params))
    return out


def write_json(
    kube: Client,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    dry_run: bool = False,
    apply: bool = False,
) -> dict[str, Any]:
    """POST, PUT or (apply=True) server-side-apply PATCH one object as JSON, with fieldValidation=Strict:
    a field the apiserver does not know (a typo in a manifest) is refused instead of dropped. Server-side
    apply writes as our own field manager and takes over fields another manager set (force)."""
    params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict"}
    if dry_run:
        params["dryRun"] = "All"
    headers = {"Content-Type": "application/json"}
    if apply:
        params["force"] = "true"
        headers["Content-Type"] = "application/apply-patch+yaml"  # JSON is YAML
    sent = _send(kube, method, path, params=params, headers=headers, body=json.dumps(body).encode())
    out: dict[str, Any] = json.loads(sent)
    return out


PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",  # RFC 6902: a list of operations, "test" ones included
}


def patch_json(
    kube: Client,
    path: str,
    body: dict[str, Any] | list[dict[str, Any]],
    *,
    patch: str = "merge",
    dry_run: bool = False,
) -> dict[str, Any]:
    """PATCH one object with `body` (`patch`: merge, strategic or json) as our field manager; the
    object as the apiserver returned it, as a plain dict. A failed JSON-patch "test" is a 422."""
    params = {"fieldManager": FIELD_MANAGER}
    if dry_run:
        params["dryRun"] = "All"
    headers = {"Content-Type": PATCH_TYPES[patch]}
    out: dict[str, Any] = json.loads(
        _send(kube, "PATCH", path, params=params, headers=headers, body=json.dumps(body).encode())
    )
    return out


def delete_json(kube: Client, path: str, *, dry_run: bool = False) -> None:
    _send(kube, "DELETE", path, params={"dryRun": "All"} if dry_run else None)


def metadata_list(kube: Client, path: str, *, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The objects at a list path as metadata only (PartialObjectMetadataList): a list of Secrets
    without their values."""
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
    sent = _send(kube, "GET", path, params=params, headers={"Accept": accept})
    items: list[dict[str, Any]] = json.loads(sent).get("items") or []
    return items


def label_selector(labels: dict[str, Any]) -> str:
    """A labelSelector of equalities, as lightkube writes one."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def to_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as the plain dict the apiserver sent: what pure decision code takes."""
    out: dict[str, Any] = obj.to_dict()
    return out


@contextlib.contextmanager
def _lines(kube: Client, path: str, params: dict[str, str], read_timeout: float) -> Iterator[Iterator[bytes]]:
    """A streamed GET's lines, through the lean client or lightkube's HTTP client."""
    if isinstance(kube, Api):
        with kube.stream(path, params=params, read_timeout=read_timeout) as lines:
            yield lines
        return
    import httpx2

    http: httpx2.Client = kube._client._client  # the authenticated HTTP client lightkube built
    with http.stream("GET", path, params=params, timeout=httpx2.Timeout(10.0, read=read_timeout)) as response:
        if response.status_code != 200:
            response.read()
            response.raise_for_status()
        yield (line.encode() for line in response.iter_lines())


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
        with _lines(kube, path, query, remaining + 5) as lines:
            for line in lines:
                if not line.strip():
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
    except Exception as error:
        if not _api_failure(error):
            raise
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
