"""Drift between the colours (pure): what differs beyond the release bluegreen declared.

Blue and green must be the same environment but for the release. Each deploy records on the colour it
wrote, in annotation `bluegreen.io/declared`, how that colour's pod template and config differed from
the live colour's at that moment (the colour label dropped, config copies named as the object they
copy, images left out: they are the release). `diff` compares the colours as they are now: a
difference the newest deploy declared, with exactly the values it declared, is the release; any
other difference, or a declared one whose values have since changed, is drift. So is a colour whose
template no longer hashes to the release deploy recorded on it (an edit after the deploy), and a
config copy whose content no longer matches the hash in its name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bluegreen import intent, manifests
from bluegreen.model import Color

DECLARED = "bluegreen.io/declared"


@dataclass(frozen=True)
class Finding:
    where: str  # a template path, or "ConfigMap shop-config" / "Secret db"
    blue: Any
    green: Any
    drift: bool
    why: str = ""

    def line(self) -> str:
        head = "drift" if self.drift else "release"
        if self.blue is None and self.green is None and self.why:
            return f"{head}: {self.where}: {self.why}"
        text = f"{head}: {self.where}: blue {manifests.shown(self.blue)}, green {manifests.shown(self.green)}"
        return f"{text} ({self.why})" if self.why else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "blue": self.blue,
            "green": self.green,
            "drift": self.drift,
            "why": self.why,
        }


@dataclass(frozen=True)
class Judgement:
    """The colours judged: every difference, and which deploy's record explained the release."""

    findings: list[Finding]
    newest: Color | None  # the colour the newest deploy wrote
    seq: int  # that deploy's sequence number; 0 when no deploy recorded one

    @property
    def drifted(self) -> list[Finding]:
        return [f for f in self.findings if f.drift]

    def summary(self) -> str:
        """One line: the verdict and what to do about it."""
        count = len(self.drifted)
        if count:
            return (
                f"{count} difference{'s' if count != 1 else ''} beyond the release: deploy the "
                "release again (`bluegreen deploy -f ...`) to make the idle colour what the files say"
            )
        return "no drift: the colours differ only by the release" + (
            f" (deploy #{self.seq} on {self.newest})" if self.newest else ""
        )


def judge(
    deployments: Mapping[Color, Mapping[str, Any]],
    copies: Mapping[tuple[str, str], str],
    content: Callable[[str, str], Mapping[str, Any] | None],
    *,
    color_label: str,
) -> Judgement:
    """Both colours' Deployments as stored, judged: `diff` and the gate's `drift` check decide here.

    copies: the app's config copies, (kind, copy name) -> the name it copies; content(kind, name):
    a copy's content with its `hash` (None: missing), asked only for copies a colour references."""
    templates = {c: d["spec"]["template"] for c, d in deployments.items()}
    views = {
        c: manifests.normalized(t, color_label=color_label, originals=copies, mask_images=True)
        for c, t in templates.items()
    }
    refs = {
        c: {(kind, copies.get((kind, name), name)): name for kind, name in manifests.references(t)}
        for c, t in templates.items()
    }
    contents: dict[str, Mapping[str, Any] | None] = {}
    for color_refs in refs.values():
        for (kind, _), name in color_refs.items():
            if (kind, name) in copies and name not in contents:
                contents[name] = content(kind, name)
    releases = {c: intent.Release.of(c, d, color_label) for c, d in deployments.items()}
    newest = max(Color, key=lambda c: releases[c].seq) if any(r.seq for r in releases.values()) else None
    declared = None
    if newest is not None:
        declared = decode(
            ((deployments[newest].get("metadata") or {}).get("annotations") or {}).get(DECLARED)
        )
    edited = {}
    for color, release in releases.items():
        recorded = (release.candidate or {}).get("hash")
        if recorded and recorded != release.hash:
            edited[color] = (
                f"changed after deploy #{release.seq} wrote it: its template is {release.hash}, "
                f"deploy recorded {recorded}"
            )
    findings = compare(
        templates=views, refs=refs, contents=contents, newest=newest, declared=declared, edited=edited
    )
    return Judgement(findings, newest, releases[newest].seq if newest else 0)


def record(
    live: Mapping[str, Any],
    idle: Mapping[str, Any],
    live_refs: Mapping[tuple[str, str], str],
    idle_refs: Mapping[tuple[str, str], str],
) -> dict[str, Any]:
    """What a deploy declares: live's and idle's normalised templates field by field, and which
    config copy each references where they differ. Values of Secrets are never part of it."""
    template = {path: [a, b] for path, (a, b) in manifests.differences(live, idle).items()}
    config = {
        f"{kind} {name}": [live_refs.get((kind, name)), idle_refs.get((kind, name))]
        for kind, name in sorted(set(live_refs) | set(idle_refs))
        if live_refs.get((kind, name)) != idle_refs.get((kind, name))
    }
    return {"template": template, "config": config}


def encode(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def decode(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def compare(
    templates: Mapping[Color, Mapping[str, Any]],
    refs: Mapping[Color, Mapping[tuple[str, str], str]],
    contents: Mapping[str, Mapping[str, Any] | None],
    *,
    newest: Color | None,
    declared: Mapping[str, Any] | None,
    edited: Mapping[Color, str],
) -> list[Finding]:
    """Every difference between the colours, each marked release or drift.

    templates: each colour's normalised pod template; refs: (kind, name as written) -> the copy or
    object it references; contents: copy name -> its content (None: missing); newest: the colour the
    newest deploy wrote, whose `declared` record explains the release; edited: colour -> why its
    template is not the one deploy recorded (empty when it is)."""
    blue, green = Color.BLUE, Color.GREEN
    findings: list[Finding] = []
    declared = declared or {}
    said: dict[str, list[Any]] = dict(declared.get("template") or {})
    said_config: dict[str, list[Any]] = dict(declared.get("config") or {})

    def as_blue_green(pair: list[Any]) -> tuple[Any, Any]:
        # A record is [live's, idle's] at the deploy; the idle colour is `newest`.
        return (pair[1], pair[0]) if newest is blue else (pair[0], pair[1])

    found = manifests.differences(templates[blue], templates[green])
    for path, (b, g) in found.items():
        pair = said.get(path)
        if newest is not None and pair is not None and as_blue_green(pair) == (b, g):
            findings.append(Finding(path, b, g, drift=False))
        else:
            why = "not part of any release bluegreen deployed"
            if pair is not None and newest is not None:
                was_b, was_g = as_blue_green(pair)
                why = f"released as blue {manifests.shown(was_b)}, green {manifests.shown(was_g)}"
            findings.append(Finding(path, b, g, drift=True, why=why))
    for path, pair in said.items():
        if path not in found and newest is not None:
            b, g = as_blue_green(pair)
            value = manifests.leaves(templates[blue]).get(path)
            findings.append(
                Finding(
                    path,
                    value,
                    value,
                    drift=True,
                    why=f"released as blue {manifests.shown(b)}, "
                    f"green {manifests.shown(g)}; the colours agree now: one was changed",
                )
            )
    for color, why in sorted(edited.items()):
        findings.append(Finding(f"{color} pod template", None, None, drift=True, why=why))

    # The copies the colours reference side by side: by the object they copy, or, when the release
    # renamed it (kustomize's generators add a hash of their own), by the place that references it.
    pairs: dict[tuple[str, str, str], str] = {}
    for key in sorted(set(refs[blue]) | set(refs[green])):
        b_name, g_name = refs[blue].get(key), refs[green].get(key)
        for name in sorted({n for n in (b_name, g_name) if n is not None}):
            if name in contents and contents[name] is None:
                findings.append(
                    Finding(f"{key[0]} {name}", None, None, drift=True, why="referenced but missing")
                )
        if b_name and g_name and b_name != g_name:
            pairs[(key[0], b_name, g_name)] = f"{key[0]} {key[1]}"
    for path, (b, g) in found.items():
        kind = _referenced_kind(path)
        if kind and isinstance(b, str) and isinstance(g, str):
            b_copy, g_copy = refs[blue].get((kind, b)), refs[green].get((kind, g))
            if b_copy and g_copy and b_copy != g_copy:
                pairs.setdefault((kind, b_copy, g_copy), f"{kind} {b} / {g}")
    released = [as_blue_green(pair) for pair in said_config.values()] if newest is not None else []
    for (kind, b_copy, g_copy), label in sorted(pairs.items()):
        declared_here = b_copy in {b for b, _ in released} and g_copy in {g for _, g in released}
        changed = _content_differences(kind, contents.get(b_copy), contents.get(g_copy))
        for field, (b, g) in changed.items():
            findings.append(
                Finding(
                    f"{label}: {field}",
                    b,
                    g,
                    drift=not declared_here,
                    why="" if declared_here else "config not part of any release bluegreen deployed",
                )
            )
    for name, content in sorted(contents.items()):
        if content is None or "hash" not in content:
            continue
        if not name.endswith("-" + content["hash"]):
            findings.append(
                Finding(
                    f"{content.get('kind')} {name}",
                    None,
                    None,
                    drift=True,
                    why=f"its content hashes to {content['hash']}: it was changed after bluegreen made it",
                )
            )
    return findings


def _referenced_kind(path: str) -> str | None:
    """The kind a template path's value names, for the paths pod specs reference config by."""
    tail = path.rsplit(".", 2)[-2:]
    if tail[-1] not in ("name", "secretName") or len(tail) < 2:
        return None
    holder = tail[0].split("[")[0]
    if holder in ("configMapKeyRef", "configMapRef", "configMap"):
        return "ConfigMap"
    if holder in ("secretKeyRef", "secretRef", "secret"):
        return "Secret"
    return None


def _content_differences(
    kind: str, blue: Mapping[str, Any] | None, green: Mapping[str, Any] | None
) -> dict[str, tuple[Any, Any]]:
    """Key by key; a Secret's values are never shown, only that they differ."""
    out: dict[str, tuple[Any, Any]] = {}
    b_data, g_data = dict((blue or {}).get("data") or {}), dict((green or {}).get("data") or {})
    for key in sorted(set(b_data) | set(g_data)):
        if b_data.get(key) != g_data.get(key):
            if kind == "Secret":
                out[key] = (_present(b_data, key), _present(g_data, key))
            else:
                out[key] = (b_data.get(key), g_data.get(key))
    return out


def _present(data: Mapping[str, Any], key: str) -> str | None:
    return "(value hidden)" if key in data else None
