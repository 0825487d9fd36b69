"""What every phase needs: the cluster, the app, who runs it, where progress goes; and shared reads."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from bluegreen import cancel
from bluegreen.errors import ForbiddenError, NotFoundError, RolloutError
from bluegreen.kube import call, found, get_json, label_selector
from bluegreen.lock import Lock
from bluegreen.model import AppSpec, Color, NullReporter, Reporter, RunInfo
from bluegreen.rollout import pod_problems, rollout_status

if TYPE_CHECKING:
    from lightkube import Client

PROGRESS_EVERY = 3.0  # seconds between progress lines while waiting

P = ParamSpec("P")
R = TypeVar("R")


class Context:
    """A plain class, not a dataclass: a switch's start-up imports no dataclasses (issue 14)."""

    def __init__(
        self,
        *,
        kube: Client,
        app: AppSpec,
        run: RunInfo | None = None,
        reporter: Reporter | None = None,
        dry_run: bool = False,
        router: str = "",  # as given; "" -> the router recorded on the stable Service, else service
        router_options: dict[str, Any] | None = None,  # the router's own (dns_server)
        lock_wait: float = 0.0,
        timeout: float = 600.0,
    ) -> None:
        self.kube, self.app = kube, app
        self.run = run if run is not None else RunInfo()
        self.reporter = reporter if reporter is not None else NullReporter()
        self.dry_run, self.router = dry_run, router
        self.router_options = router_options if router_options is not None else {}
        self.lock_wait, self.timeout = lock_wait, timeout
        self._lock: Lock | None = None
        self._router: str | None = None

    def __repr__(self) -> str:
        return f"Context(app={self.app!r}, router={self.router!r}, dry_run={self.dry_run})"

    def router_name(self, service: dict[str, Any] | None = None) -> str:
        """The router to use: the one given, else the one `init --router` recorded on the stable
        Service, else `service`; a given one that disagrees with the recorded one is refused
        (routers.chosen). `service`: the stable Service as just read, to spare a second GET."""
        if self._router is None:
            from bluegreen import routers

            live = service if service is not None else self.service()
            self._router = routers.chosen(
                self.router,
                routers.recorded(live),
                app=self.app.name,
                namespace=self.app.namespace,
                service=self.app.service,
            )
        return self._router

    @contextmanager
    def lock(self, *, preemptible: bool = False, preempt: bool = False) -> Iterator[Lock]:
        """Hold the app's lock for the block: one Lock per context and re-entrant, so phases compose
        (release; the watch's own rollback). Every write inside first checks the Lease is still ours.
        `preemptible` (the watch) lets a rollback take it over; `preempt` (rollback) does so."""
        if self._lock is None:
            self._lock = Lock(self.kube, self.app, self.run, wait=self.lock_wait, reporter=self.reporter)
        with self._lock.hold(preemptible=preemptible, preempt=preempt) as held:
            yield held

    def peek_lock(self, *, take: bool = False) -> None:
        """Read the Lease ahead of the reads a phase decides on (Lock.peek, Lock.undisturbed); `take`:
        take it at once if it is free (the phase must call drop_claim() on its way out)."""
        if self._lock is None:
            self._lock = Lock(self.kube, self.app, self.run, wait=self.lock_wait, reporter=self.reporter)
        self._lock.peek(take=take)

    def drop_claim(self) -> None:
        """Give back a Lease peek_lock(take=True) took that the phase never went on to hold."""
        if self._lock is not None:
            self._lock.drop_claim()

    # -- reads ------------------------------------------------------------------------------------

    def require_namespace(self) -> None:
        ns = self.app.namespace
        try:
            exists = (
                found(f"reading Namespace {ns}", lambda: get_json(self.kube, f"/api/v1/namespaces/{ns}"))
                is not None
            )
        except ForbiddenError:
            return  # least-privilege RBAC cannot read Namespaces: the caller's message covers both
        if not exists:
            raise NotFoundError(
                f"namespace {ns} does not exist", remedy="Pass -n/--namespace with the app's namespace."
            )

    def service(self) -> dict[str, Any]:
        app = self.app
        svc = found(
            f"reading Service {app.namespace}/{app.service}",
            lambda: get_json(self.kube, f"/api/v1/namespaces/{app.namespace}/services/{app.service}"),
        )
        if svc is None:
            self.require_namespace()
            raise NotFoundError(
                f"app {app.name}: Service {app.namespace}/{app.service} does not exist",
                remedy="Check --app and --namespace (the namespace too); bluegreen needs the app's live Service.",
            )
        return svc

    def deployment(self, color: Color) -> dict[str, Any] | None:
        name, ns = self.app.deployment(color), self.app.namespace
        # Plain dicts straight from the JSON (kube.get_json): no typed model built only to be undone.
        return found(
            f"reading Deployment {ns}/{name}",
            lambda: get_json(self.kube, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
        )

    def deployments(self) -> dict[Color, dict[str, Any] | None]:
        """Both colours' Deployments (None: missing) in one request instead of two (issue 14).

        The list is narrowed by the colour label, which init and deploy put on every colour's
        Deployment, and each colour is picked from it by name: the name is what names it, the label
        only narrows the list (it also holds other apps' colours in the namespace). No label selects
        exactly this app's two: the name label is the pods', and an adopted Deployment keeps the labels
        it had. A colour not in the list (missing, or made by hand without the label) is read by name
        as deployment() reads it, so a missing one is None as before; so are both under a Role without
        `list` on deployments (deploy/rbac.yaml grants it since this change)."""
        ns = self.app.namespace
        selector = f"{self.app.color_label} in ({','.join(str(c) for c in Color)})"
        try:
            listed = call(
                f"listing the Deployments of app {self.app.name} in {ns}",
                lambda: get_json(
                    self.kube,
                    f"/apis/apps/v1/namespaces/{ns}/deployments",
                    params={"labelSelector": selector},
                )["items"],
            )
        except ForbiddenError:
            listed = []
        by_name = {(dep.get("metadata") or {}).get("name"): dep for dep in listed}
        return {
            color: by_name[name] if name in by_name else self.deployment(color)
            for color in Color
            for name in [self.app.deployment(color)]
        }

    def pods(self, color: Color, selector: dict[str, str]) -> list[dict[str, Any]]:
        labels: dict[str, Any] = {**selector, self.app.color_label: str(color)}
        return call(
            f"listing the {color} pods",
            lambda: get_json(
                self.kube,
                f"/api/v1/namespaces/{self.app.namespace}/pods",
                params={"labelSelector": label_selector(labels)},
            )["items"],
        )

    def config_copies(self) -> dict[tuple[str, str], str]:
        """The app's ConfigMap and Secret copies (deploy -f): (kind, copy name) -> the name it copies."""
        from bluegreen import driftread

        return driftread.config_copies(self.kube, self.app)

    def history_annotations(self) -> dict[str, str]:
        return dict((self.service().get("metadata") or {}).get("annotations") or {})

    # -- waits ------------------------------------------------------------------------------------

    def wait_rollout(self, color: Color, *, timeout: float) -> dict[str, Any]:
        """Wait until `color`'s Deployment is rolled out; WaitTimeoutError with one line per pod reason."""
        deadline = time.monotonic() + timeout
        last_note = 0.0
        name = self.app.deployment(color)
        while True:
            dep = self.deployment(color)
            if dep is None:
                raise NotFoundError(f"Deployment {self.app.namespace}/{name} disappeared during the rollout")
            state = rollout_status(dep)
            if state.done:
                return dep
            if time.monotonic() - last_note >= PROGRESS_EVERY:
                self.reporter.progress(state.message)
                last_note = time.monotonic()
            if state.failed or time.monotonic() >= deadline:
                selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                problems = pod_problems(self.pods(color, selector))
                why = "; ".join(problems) or state.message
                verdict = "failed" if state.failed else f"timed out after {timeout:.0f}s"
                raise RolloutError(
                    f"rollout of {name} {verdict}: {why}",
                    remedy=f"Inspect with `kubectl -n {self.app.namespace} describe deployment {name}`; "
                    "the live colour was not touched.",
                )
            cancel.sleep(0.2)


def gives_back_claim(phase: Callable[Concatenate[Context, P], R]) -> Callable[Concatenate[Context, P], R]:
    """A phase that takes its Lease ahead (Context.peek_lock(take=True)) gives it back however it
    ends before holding it: nothing to do, refused, an error, a signal."""

    @functools.wraps(phase)
    def run(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return phase(ctx, *args, **kwargs)
        finally:
            ctx.drop_claim()

    return run
