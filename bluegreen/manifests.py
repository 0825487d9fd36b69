"""The app's manifests (`deploy -f`): read, checked and turned into the idle colour's objects (pure).

Users keep their app as plain multi-document YAML (`kustomize build` and `helm template` print just
that). From it bluegreen takes the one Deployment of the app, which becomes `<app>-<colour>` (the
colour label on its selector and template, everything else as written), and the ConfigMaps and
Secrets, which are copied under content-hash names (`<name>-<hash10>`, immutable) with every
reference in the pod template pointing at the copies. A config change is then a new object the idle
colour alone references: the live colour's pods never see it, and a rollback finds the old config
still there beside the old pods.

Everything is checked here, before the cluster is contacted; each problem is a ManifestError whose
text names the file, the document and what to do. Nothing in this module does network I/O; `read`
reads the local files (or stdin) the user named.
"""

from __future__ import annotations

import base64
import binascii
import copy
import glob
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bluegreen import validate

APP_LABEL = "bluegreen.io/app"  # on every config copy: which app's copies `retire` may clean up
COPY_OF = "bluegreen.io/copy-of"  # annotation on a copy: the ConfigMap or Secret it was made from
HASH_DIGITS = 10
CONFIG_KINDS = ("ConfigMap", "Secret")
# Applied once per colour, targeting that colour: kind -> apiVersion.
SCALING_KINDS = {"HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1"}
COLOR_OF = "bluegreen.io/colour-of"  # label on a per-colour HPA or PDB: the colour it targets
HANDLED = {
    ("apps/v1", "Deployment"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    *((version, kind) for kind, version in SCALING_KINDS.items()),
}
MAX_FILES = 200  # files a directory or glob may expand to: a typo such as `-f /` stops here
SUFFIXES = (".yaml", ".yml", ".json")
MAX_CONFIG_BYTES = 1024 * 1024  # the apiserver's limit for one ConfigMap or Secret


class ManifestError(ValueError):
    """Manifests that cannot be released: the message names the file and the document."""


@dataclass(frozen=True)
class Doc:
    source: str  # "path#3": the file and the document's number in it (1-based)
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name"))

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.source})"


@dataclass(frozen=True)
class Manifests:
    """The app's objects as written: exactly one Deployment, its config, other Services."""

    deployment: Doc
    configs: tuple[Doc, ...] = ()
    services: tuple[Doc, ...] = ()
    scaling: tuple[Doc, ...] = ()  # HorizontalPodAutoscalers and PodDisruptionBudgets, one per colour
    sources: tuple[str, ...] = field(default=())


# -- reading --------------------------------------------------------------------------------------


def expand(patterns: Iterable[str]) -> list[str]:
    """Paths and globs (one per Action input line) -> the files they name; `-` stays stdin."""
    out: list[str] = []
    for pattern in patterns:
        pattern = pattern.strip()
        if not pattern:
            continue
        if pattern == "-" or not glob.has_magic(pattern):
            out.append(pattern)
            continue
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise ManifestError(f"manifests: {validate._shown(pattern)} matches no file")
        out.extend(matches)
    return out


def read(paths: Sequence[str], *, stdin: Any = None) -> list[tuple[str, str]]:
    """(source, text) for each file named: a file, a directory (its *.yaml, *.yml, *.json, sorted, not
    recursive: what `kubectl apply -f DIR` reads), or `-` for stdin."""
    texts: list[tuple[str, str]] = []
    for given in paths:
        if given == "-":
            data = (stdin or sys.stdin.buffer).read(validate.MAX_YAML_BYTES + 1)
            texts.append(("<stdin>", _text(data, "<stdin>")))
            continue
        path = Path(validate.path(given, kind="a manifest file or directory"))
        try:
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
                if not files:
                    raise ManifestError(f"{given}: a directory with no *.yaml, *.yml or *.json file")
            else:
                files = [path]
            if len(texts) + len(files) > MAX_FILES:
                raise ManifestError(f"-f names more than {MAX_FILES} files: is {given} the right path?")
            for file in files:
                with file.open("rb") as handle:
                    data = handle.read(validate.MAX_YAML_BYTES + 1)
                texts.append((str(file), _text(data, str(file))))
        except OSError as error:
            raise ManifestError(f"cannot read {given}: {error.strerror or error}") from None
    return texts


def _text(data: bytes, source: str) -> str:
    try:
        return validate.yaml_text(data, source=source)
    except ValueError as error:
        raise ManifestError(str(error)) from None


# -- checking -------------------------------------------------------------------------------------


def parse(texts: Sequence[tuple[str, str]], *, app: str, namespace: str) -> Manifests:
    """The app's objects, every one checked; one ManifestError naming every problem otherwise."""
    import yaml  # here: `status` and `diff` use this module's hashing, not its parser

    from bluegreen import yamlsafe

    docs: list[Doc] = []
    problems: list[str] = []
    for source, text in texts:
        try:
            loaded = list(yaml.load_all(text, Loader=yamlsafe.BoundedLoader))  # SafeLoader subclass
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark is not None else source
            problem = getattr(error, "problem", None) or str(error)
            problems.append(f"{where}: invalid YAML: {problem}")
            continue
        for number, obj in enumerate(loaded, start=1):
            where = f"{source}#{number}"
            if obj is None:
                continue  # an empty document (`---` at the end): kubectl skips it too
            problem = _shape(obj)
            if problem:
                problems.append(f"{where}: {problem}")
                continue
            docs.append(Doc(where, obj))
    if problems:
        raise ManifestError("; ".join(problems))
    if not docs:
        raise ManifestError("the manifests hold no object: -f must name the app's Deployment at least")

    seen: dict[tuple[str, str], Doc] = {}
    unknown: list[Doc] = []
    for doc in docs:
        ns = (doc.obj.get("metadata") or {}).get("namespace")
        if ns not in (None, namespace):
            problems.append(f"{doc} is for namespace {ns!r}, not {namespace!r}")
        if (doc.obj["apiVersion"], doc.kind) not in HANDLED:
            unknown.append(doc)
        key = (doc.kind, doc.name)
        if key in seen:
            problems.append(f"{doc} repeats {seen[key]}")
        seen[key] = doc
    if unknown:
        problems.append(
            "kinds bluegreen does not release: "
            + ", ".join(f"{d.obj['apiVersion']} {d}" for d in unknown)
            + " (it releases one apps/v1 Deployment with its v1 ConfigMaps and Secrets, its autoscaling/v2 "
            "HorizontalPodAutoscalers and policy/v1 PodDisruptionBudgets, and Services that do not select "
            "the app's pods: leave the others out of -f and apply them yourself)"
        )
    deployments = [d for d in docs if d.kind == "Deployment" and d.obj["apiVersion"] == "apps/v1"]
    if len(deployments) != 1:
        found = ", ".join(map(str, deployments)) or "none"
        problems.append(
            f"the manifests must hold exactly one Deployment, the app {app}'s; found {len(deployments)}: {found}"
        )
    for doc in docs:
        if doc.kind in CONFIG_KINDS and doc.obj["apiVersion"] == "v1":
            problems.extend(f"{doc}: {p}" for p in _config_problems(doc.obj))
    scaling = tuple(d for d in docs if (d.obj["apiVersion"], d.kind) in HANDLED and d.kind in SCALING_KINDS)
    if len(deployments) == 1:
        problems.extend(f"{deployments[0]}: {p}" for p in _deployment_problems(deployments[0].obj))
        for doc in scaling:
            problems.extend(f"{doc}: {p}" for p in _scaling_problems(doc.obj, deployments[0].obj))
    if problems:
        raise ManifestError("; ".join(problems))
    return Manifests(
        deployment=deployments[0],
        configs=tuple(d for d in docs if d.kind in CONFIG_KINDS),
        services=tuple(d for d in docs if d.kind == "Service"),
        scaling=scaling,
        sources=tuple(source for source, _ in texts),
    )


def _shape(obj: Any) -> str:
    if not isinstance(obj, dict):
        return f"not a Kubernetes object (a {type(obj).__name__}, not a mapping)"
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            return f"no {key}: not a Kubernetes object"
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return f"{obj['kind']} without metadata.name (generateName is not supported: names must be stable)"
    try:
        validate.dns_subdomain(meta["name"], kind=f"a {obj['kind']} name")
    except ValueError as error:
        return str(error)
    return ""


def _deployment_problems(dep: dict[str, Any]) -> list[str]:
    spec = dep.get("spec")
    if not isinstance(spec, dict):
        return ["no spec"]
    selector = (spec.get("selector") or {}).get("matchLabels")
    template = spec.get("template")
    if not isinstance(selector, dict) or not selector:
        return ["spec.selector.matchLabels is empty: name the app's pod labels there"]
    if not isinstance(template, dict) or not isinstance((template.get("spec") or {}).get("containers"), list):
        return ["spec.template.spec.containers is missing"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    missing = {k: v for k, v in selector.items() if labels.get(k) != v}
    if missing:
        return [f"spec.selector.matchLabels {missing} do not match spec.template.metadata.labels"]
    return []


def _scaling_problems(obj: dict[str, Any], dep: dict[str, Any]) -> list[str]:
    """An HPA must scale the app's Deployment, a PDB select its pods: each is made per colour from it."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return ["no spec"]
    name = (dep.get("metadata") or {}).get("name")
    if obj["kind"] == "HorizontalPodAutoscaler":
        ref = spec.get("scaleTargetRef") or {}
        if (ref.get("apiVersion"), ref.get("kind"), ref.get("name")) != ("apps/v1", "Deployment", name):
            return [
                f"spec.scaleTargetRef must be the app's Deployment (apps/v1 Deployment {name}), "
                f"got {ref.get('apiVersion')} {ref.get('kind')} {ref.get('name')}"
            ]
        return []
    selector = spec.get("selector") or {}
    wanted = selector.get("matchLabels")
    labels = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not isinstance(wanted, dict) or not wanted or set(selector) - {"matchLabels"}:
        return ["spec.selector must be matchLabels naming the app's pod labels (no matchExpressions)"]
    missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
    if missing:
        return [f"spec.selector.matchLabels {missing} do not select the Deployment's pods"]
    return []


def per_color(
    obj: Mapping[str, Any], *, app: str, namespace: str, deployment: str, color_label: str, color: str
) -> dict[str, Any]:
    """An HPA or PDB of one colour: named `<name>-<colour>`, scaling that colour's Deployment or
    selecting its pods only (the colour label added); the rest as written."""
    out = copy.deepcopy(dict(obj))
    meta = out.get("metadata") or {}
    kept = {k: meta[k] for k in ("labels", "annotations") if meta.get(k)}
    out["metadata"] = {**kept, "name": f"{meta['name']}-{color}", "namespace": namespace}
    out["metadata"].setdefault("labels", {}).update({APP_LABEL: app, COLOR_OF: color})
    out["metadata"].setdefault("annotations", {})[COPY_OF] = meta["name"]
    if out["kind"] == "HorizontalPodAutoscaler":
        out["spec"]["scaleTargetRef"]["name"] = deployment
    else:
        out["spec"]["selector"]["matchLabels"][color_label] = color
    out.pop("status", None)
    return out


def _config_problems(obj: dict[str, Any]) -> list[str]:
    """Values are never quoted here: a Secret's may be secret."""
    problems: list[str] = []
    for key in ("data", "stringData", "binaryData"):
        section = obj.get(key)
        if section is None:
            continue
        if not isinstance(section, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in section.items()
        ):
            problems.append(f"{key} must map names to strings")
            continue
        if (obj["kind"] == "Secret" and key == "data") or key == "binaryData":
            for name, value in section.items():
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    problems.append(f"{key}.{name} is not base64 (its value is not shown)")
    if obj["kind"] == "ConfigMap" and "stringData" in obj:
        problems.append("a ConfigMap has no stringData (use data)")
    if not problems and len(json.dumps(content(obj))) > MAX_CONFIG_BYTES:
        problems.append(f"larger than {MAX_CONFIG_BYTES // 1024} KiB, the apiserver's limit")
    return problems


def service_problems(
    manifests: Manifests, *, service: str, preview_service: str, color_label: str
) -> list[str]:
    """Services in the manifests that would fight bluegreen: its own Services (it owns their
    selectors: the live colour, and the candidate's for the preview), or one selecting the app's pods
    of both colours."""
    labels = template_labels(manifests)
    problems = []
    for doc in manifests.services:
        if doc.name in (service, preview_service):
            problems.append(
                f"{doc} is bluegreen's own Service: only bluegreen changes its selector (`switch` the live "
                "Service's, `deploy` and the gate the preview's); leave it out of -f (`bluegreen init` made it)"
            )
            continue
        selector = (doc.obj.get("spec") or {}).get("selector") or {}
        if selector and color_label not in selector and all(labels.get(k) == v for k, v in selector.items()):
            problems.append(
                f"{doc} selects the app's pods without the colour label {color_label}: it would send "
                "traffic to both colours; select one colour or leave it out of -f"
            )
    return problems


def template_labels(manifests: Manifests) -> dict[str, str]:
    return dict(((manifests.deployment.obj["spec"]["template"].get("metadata") or {}).get("labels")) or {})


# -- config copies --------------------------------------------------------------------------------


def content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a ConfigMap or Secret holds, normalised: a Secret's stringData folded into data (base64),
    as the apiserver stores it, so the same content hashes the same however it was written."""
    data = dict(obj.get("data") or {})
    if obj.get("kind") == "Secret":
        for key, value in (obj.get("stringData") or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    out: dict[str, Any] = {"data": data}
    if obj.get("binaryData"):
        out["binaryData"] = dict(obj["binaryData"])
    if obj.get("kind") == "Secret":
        out["type"] = obj.get("type") or "Opaque"
    return out


def content_hash(obj: Mapping[str, Any]) -> str:
    text = json.dumps({"kind": obj.get("kind"), **content(obj)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]


def copy_name(obj: Mapping[str, Any]) -> str:
    return f"{obj['metadata']['name']}-{content_hash(obj)}"


def config_copy(obj: Mapping[str, Any], *, app: str, namespace: str) -> dict[str, Any]:
    """The immutable, content-named copy of a ConfigMap or Secret that one colour references."""
    meta = obj.get("metadata") or {}
    body = content(obj)
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": obj["kind"],
        "metadata": {
            "name": copy_name(obj),
            "namespace": namespace,
            "labels": {**(meta.get("labels") or {}), APP_LABEL: app},
            "annotations": {**(meta.get("annotations") or {}), COPY_OF: meta["name"]},
        },
        "immutable": True,  # a copy never changes: a new content is a new copy
        "data": body["data"],
    }
    if "binaryData" in body:
        out["binaryData"] = body["binaryData"]
    if obj["kind"] == "Secret":
        out["type"] = body["type"]
    return out


def copy_names(manifests: Manifests) -> dict[tuple[str, str], str]:
    """(kind, name as written) -> the copy's name."""
    return {(d.kind, d.name): copy_name(d.obj) for d in manifests.configs}


# -- references in a pod template -----------------------------------------------------------------


def _refs(spec: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any], str]]:
    """Every (kind, holder, key) naming a ConfigMap or Secret in a pod spec: holder[key] is the name."""
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            for env in container.get("env") or []:
                source = env.get("valueFrom") or {}
                if source.get("configMapKeyRef"):
                    yield "ConfigMap", source["configMapKeyRef"], "name"
                if source.get("secretKeyRef"):
                    yield "Secret", source["secretKeyRef"], "name"
            for env_from in container.get("envFrom") or []:
                if env_from.get("configMapRef"):
                    yield "ConfigMap", env_from["configMapRef"], "name"
                if env_from.get("secretRef"):
                    yield "Secret", env_from["secretRef"], "name"
    for volume in spec.get("volumes") or []:
        if volume.get("configMap"):
            yield "ConfigMap", volume["configMap"], "name"
        if volume.get("secret"):
            yield "Secret", volume["secret"], "secretName"
        for source in (volume.get("projected") or {}).get("sources") or []:
            if source.get("configMap"):
                yield "ConfigMap", source["configMap"], "name"
            if source.get("secret"):
                yield "Secret", source["secret"], "name"


def references(template: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod template names."""
    spec = dict(template.get("spec") or {})
    return {(kind, str(holder.get(key))) for kind, holder, key in _refs(spec) if holder.get(key)}


def renamed(template: Mapping[str, Any], names: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """A copy of the pod template whose references are renamed by `names` ((kind, old) -> new)."""
    out = copy.deepcopy(dict(template))
    for kind, holder, key in _refs(out.get("spec") or {}):
        new = names.get((kind, str(holder.get(key))))
        if new:
            holder[key] = new
    return out


def cluster_sources(
    template: Mapping[str, Any], copies: Mapping[tuple[str, str], str]
) -> dict[tuple[str, str], str]:
    """deploy --copy-cluster-config: for each ConfigMap and Secret the pod template names, the object
    in the cluster its per-colour copy is made from: the original a copy was made from (so a release
    takes the original's content as it is now), or the object named (pure). `copies`: the app's
    copies, (kind, copy name) -> the name it copies."""
    return {(kind, name): copies.get((kind, name), name) for kind, name in sorted(references(template))}


def colored(
    manifests: Manifests, *, name: str, namespace: str, color_label: str, color: str
) -> dict[str, Any]:
    """The idle colour's Deployment from the one in the manifests: renamed, the colour label on its
    labels, selector and template, references pointing at the config copies; the rest as written."""
    dep = copy.deepcopy(manifests.deployment.obj)
    meta = dep.setdefault("metadata", {})
    kept = {k: meta[k] for k in ("labels", "annotations") if meta.get(k)}
    dep["metadata"] = {**kept, "name": name, "namespace": namespace}
    dep["metadata"].setdefault("labels", {})[color_label] = color
    spec = dep["spec"]
    spec["selector"]["matchLabels"][color_label] = color
    template = renamed(spec["template"], copy_names(manifests))
    template.setdefault("metadata", {}).setdefault("labels", {})[color_label] = color
    spec["template"] = template
    dep.pop("status", None)
    return dep


# -- comparing the colours ------------------------------------------------------------------------


def normalized(
    template: Mapping[str, Any],
    *,
    color_label: str,
    originals: Mapping[tuple[str, str], str],
    mask_images: bool,
) -> dict[str, Any]:
    """A pod template as `diff` compares it: without the colour label, config copies named as the
    object they copy (their content is compared apart), images masked when they are the release."""
    out = renamed(template, originals)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(color_label, None)
    if mask_images:
        for group in ("initContainers", "containers"):
            for container in (out.get("spec") or {}).get(group) or []:
                container.pop("image", None)
    return out


def differences(a: Any, b: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """Field by field: path -> (value in a, value in b), for every leaf that differs. Lists of named
    items (containers, env, volumes, ports) are matched by name, so one inserted item is one line."""
    if a is None and isinstance(b, dict | list) and b:
        a = type(b)()  # absent on one side: each of the other's fields is a line of its own
    if b is None and isinstance(a, dict | list) and a:
        b = type(a)()
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(a) | set(b), key=str):
            out.update(differences(a.get(key), b.get(key), f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if _named(a) and _named(b):
            return _named_differences(a, b, path)
        if len(a) == len(b):
            out = {}
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                out.update(differences(x, y, f"{path}[{index}]"))
            return out
    return {} if a == b else {path: (a, b)}


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of `value` by the paths `differences` uses."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            out.update(leaves(value[key], f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        named = _named(value)
        for index, item in enumerate(value):
            out.update(leaves(item, f"{path}[{item['name'] if named else index}]"))
        return out
    return {path: value}


def _named(items: list[Any]) -> bool:
    names = [i.get("name") for i in items if isinstance(i, dict)]
    return (
        len(names) == len(items) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
    )


def _named_differences(a: list[Any], b: list[Any], path: str) -> dict[str, tuple[Any, Any]]:
    by_a, by_b = {i["name"]: i for i in a}, {i["name"]: i for i in b}
    out: dict[str, tuple[Any, Any]] = {}
    for name in sorted(set(by_a) | set(by_b)):
        out.update(differences(by_a.get(name), by_b.get(name), f"{path}[{name}]"))
    return out


def shown(value: Any, *, limit: int = 80) -> str:
    """A value for a diff line: JSON, cut to `limit` characters."""
    text = "(absent)" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
