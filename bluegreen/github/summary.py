"""A phase's outcome as the job summary (GitHub-flavoured Markdown) and as annotations. Pure.

The summary leads with a banner a reviewer can read at a glance, then the facts: colours and images,
the checks and their measurements, the switch timings against the one-second target, a Mermaid
timeline (GitHub renders it), and the recorded history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bluegreen.errors import BlueGreenError
from bluegreen.github.runner import Annotation, Level
from bluegreen.gitops import DOC as GITOPS_DOC
from bluegreen.model import Result

SWITCH_TARGET_MS = 1000.0
GOOD = {
    "deployed",
    "passed",
    "switched",
    "noop",
    "retired",
    "adopted",
    "status",
    "planned",
    "preempted",
    "patched",
}
HEADLINES = {
    "deployed": "deployed to the idle colour",
    "passed": "gate passed",
    "failed": "failed",
    "inconclusive": "inconclusive: not enough evidence to pass",
    "switched": "switched",
    "noop": "nothing to do",
    "rolled-back": "rolled back",
    "refused": "refused",
    "retired": "idle colour retired",
    "patched": "rollback target patched, traffic not moved",
    "adopted": "adopted",
    "status": "status",
    "planned": "dry run: nothing changed",
    "preempted": "ended: a rollback took over",
    "cancelled": "cancelled at a safe point",
    "error": "error: a check could not measure",
}


def cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ").strip() or "-"


def banner(result: Result | None, error: BlueGreenError | None, phase: str, app: str) -> str:
    if error is not None:
        return f"> [!CAUTION]\n> **{app} {phase}: stopped: {error.title}**\n> {error.message}" + (
            f"\n>\n> What to do: {error.remedy}" if error.remedy else ""
        )
    assert result is not None
    headline = HEADLINES.get(result.result, result.result)
    where = f" to **{result.active_color}**" if result.result in ("switched", "rolled-back") else ""
    kind = "TIP" if result.result in GOOD else "WARNING" if result.result == "rolled-back" else "CAUTION"
    return f"> [!{kind}]\n> **{app} {result.phase}: {headline}**{where}"


def facts(result: Result) -> list[str]:
    rows = [("namespace", result.namespace), ("phase", result.phase), ("result", f"`{result.result}`")]
    if result.active_color:
        rows.append(("live colour", result.active_color))
    if result.previous_color:
        rows.append(("previous colour", result.previous_color))
    for color, images in sorted(result.images.items()):
        rows.append((f"{color} images", ", ".join(f"`{i}`" for i in images) or "-"))
    if result.dry_run:
        rows.append(("dry run", "yes: every write was sent with dryRun=All"))
    return ["| | |", "|---|---|", *(f"| {cell(k)} | {cell(v)} |" for k, v in rows)]


def timings(result: Result) -> list[str]:
    if result.api_ms is None and result.converged_ms is None:
        return []
    lines = ["### Switch timings", "", "| measure | ms | target |", "|---|---:|---|"]
    if result.api_ms is not None:
        lines.append(f"| the write (API round trip) | {result.api_ms:.0f} | |")
    if result.converged_ms is not None:
        met = "met" if result.converged_ms < SWITCH_TARGET_MS else "**missed**"
        lines.append(
            f"| write to verified on the new colour | {result.converged_ms:.0f} | < {SWITCH_TARGET_MS:.0f}: {met} |"
        )
    plane = result.details.get("data_plane")
    if plane:
        lines.append(f"| control plane: the stored objects | {plane.get('control_plane_ms', 0):.0f} | |")
        took = plane.get("data_plane_ms")
        if not plane.get("checked"):
            lines.append("| data plane | not checked | no DNS server was asked (`--dns-server`) |")
        else:
            seen = f"{took:.0f}" if took is not None else "not seen"
            lines.append(
                f"| data plane: {cell(str(plane.get('server')))} answers the new address only | {seen} | |"
            )
    verification = result.details.get("verification") or {}
    if verification.get("control_plane_ms") is not None and verification.get("data_plane") == "probe":
        # With a probe converged_ms waits for its traffic; each plane's time is shown apart.
        lines.append(f"| write to the control plane verified | {verification['control_plane_ms']:.0f} | |")
        took = verification.get("data_plane_ms")
        lines.append(
            "| write to the data plane verified (probe: the new colour alone) | "
            + (f"{took:.0f} | |" if took is not None else "not seen | |")
        )
    if result.probe_failed is not None:
        # The probe's own figures: packets through the user's load balancer, over its whole run.
        cutover = f"{result.probe_cutover_ms:.0f}" if result.probe_cutover_ms is not None else "not seen"
        lines.append(f"| probe: write to the new colour answering alone | {cutover} | |")
        lines.append(f"| probe: failed requests | {result.probe_failed} | 0 |")
    if (
        result.converged_ms is not None
        and result.probe_failed is None
        and not (plane and plane.get("checked"))
    ):
        lines += [
            "",
            "Verified is the control plane (the EndpointSlices, or the router's object), not packets: "
            "kube-proxy or a proxy (Traefik re-reads the cluster at most every 2 s) applies it later; the "
            "data plane was not checked. `probe-url` measures what clients see.",
        ]
    return lines


def checks(result: Result) -> list[str]:
    """The last round of each gate/watch, one row per check with its measurements."""
    lines: list[str] = []
    for name in ("gate", "watch"):
        report: dict[str, Any] | None = result.details.get(name)
        if not report:
            continue
        rounds = report.get("rounds") or []
        lines += [
            f"### {name.capitalize()}: {report.get('result')}",
            "",
            f"{cell(report.get('reason', ''))} ({len(rounds)} rounds"
            + (
                f", healthy for {report['healthy_for_seconds']:.0f}s"
                if report.get("healthy_for_seconds") is not None
                else ""
            )
            + ")",
            "",
        ]
        if not rounds:
            continue
        lines += ["| check | kind | verdict | measurements | why |", "|---|---|---|---|---|"]
        for judged in rounds[-1].get("checks", []):
            values = ", ".join(f"{k}={_number(v)}" for k, v in sorted((judged.get("values") or {}).items()))
            lines.append(
                f"| {cell(judged['check'])} | {cell(judged.get('kind', ''))} | {cell(judged['phase'])} "
                f"| {cell(values)} | {cell('; '.join(judged.get('reasons') or []))} |"
            )
        lines.append("")
    return lines


def drift(result: Result) -> list[str]:
    """Differences between the colours beyond the release: diff's and status's findings field by
    field, and what a gate's `drift` check saw in its last round (values of Secrets are never in them)."""
    found: list[dict[str, Any]] | None = result.details.get("drift")
    lines: list[str] = []
    if found is not None and result.phase in ("diff", "status"):
        from bluegreen import manifests  # diff and status only: PyYAML's loader comes with it

        if not found:
            return ["### Drift", "", "None: the colours differ only by the release.", ""]
        lines += ["### Drift", "", "| where | blue | green | why |", "|---|---|---|---|"]
        for item in found:
            blue = "-" if item.get("blue") is None else manifests.shown(item["blue"])
            green = "-" if item.get("green") is None else manifests.shown(item["green"])
            lines.append(
                f"| {cell(item.get('where', ''))} | {cell(blue)} | {cell(green)} | {cell(item.get('why', ''))} |"
            )
        return [
            *lines,
            "",
            "Deploy the release again (`bluegreen deploy -f ...`) to make the idle colour what the files say.",
            "",
        ]
    for name in ("gate", "watch"):
        rounds = (result.details.get(name) or {}).get("rounds") or []
        for judged in rounds[-1].get("checks", []) if rounds else []:
            if judged.get("kind") != "drift":
                continue
            lines += [f"### Drift ({name} check {cell(judged['check'])}: {cell(judged['phase'])})", ""]
            lines += [f"- {cell(line)}" for line in (judged.get("detail") or "").splitlines()]
            lines += [
                f"- {cell(reason)}" for reason in judged.get("reasons") or [] if not judged.get("detail")
            ]
            lines.append("")
    return lines


def gitops(result: Result) -> list[str]:
    """The objects Argo CD or Flux manage (status, switch), and a selector one of them wrote back."""
    managed: dict[str, dict[str, Any]] = result.details.get("gitops") or {}
    reverted: dict[str, Any] = result.details.get("reverted") or {}
    if not managed and not reverted:
        return []
    lines = ["### GitOps", ""]
    if reverted:
        lines += [
            f"**The selector was written back** to `{cell(reverted.get('to', ''))}` by "
            f"`{cell(reverted.get('by') or 'an unknown writer')}` after the switch.",
            "",
        ]
    if managed:
        lines += ["| object | managed by | how we know | keeps off the selector |", "|---|---|---|---|"]
        for key, found in managed.items():
            what = "Service" if key == "service" else f"{key} Deployment"
            tool = f"{found.get('tool', '')} {found.get('owner', '')}".strip()
            if not found.get("certain"):
                tool = f"possibly {tool}"
            lines.append(
                f"| {cell(what)} | {cell(tool)} | {cell(found.get('evidence', ''))} "
                f"| {cell(found.get('protected') or 'not seen')} |"
            )
        lines.append("")
    lines += [f"Configure it to leave the Service's selector alone: see bluegreen's `{GITOPS_DOC}`.", ""]
    return lines


def beyond_images(result: Result) -> list[str]:
    """What a deploy's release changes beyond images against the live colour (paths and names only)."""
    if "beyond_images" not in result.details:
        return []
    changed: list[str] = result.details["beyond_images"] or []
    if not changed:
        return ["### Changed beyond images", "", "Nothing: this release changes only images.", ""]
    return ["### Changed beyond images", "", *(f"- `{cell(item)}`" for item in changed), ""]


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def timeline(result: Result) -> list[str]:
    """A Mermaid timeline, times relative to the first event (colons would end a Mermaid label)."""
    if not result.timeline:
        return []
    start = datetime.fromisoformat(result.timeline[0][0])
    lines = ["### Timeline", "", "```mermaid", "timeline", f"    title {result.app}: {result.phase}"]
    for at, label in result.timeline:
        offset = (datetime.fromisoformat(at) - start).total_seconds()
        text = label.replace(":", " -").replace(";", ",").replace("#", "")
        lines.append(f"    +{_offset(offset)} : {text}")
    return [*lines, "```", ""]


def _offset(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def history(result: Result) -> list[str]:
    entries: Sequence[dict[str, Any]] = result.details.get("history") or []
    if not entries:
        return []
    lines = [
        "### History (newest first)",
        "",
        "| time | action | from | to | by | reason |",
        "|---|---|---|---|---|---|",
    ]
    for entry in entries[:5]:
        who = entry.get("actor") or "-"
        if entry.get("run_url"):
            who = f"[{cell(who)}]({entry['run_url']})"
        lines.append(
            f"| {cell(entry.get('time', ''))} | {cell(entry.get('action', ''))} | {cell(entry.get('from'))} "
            f"| {cell(entry.get('to', ''))} | {who} | {cell(entry.get('reason', ''))} |"
        )
    return [*lines, ""]


def patch(result: Result) -> list[str]:
    """What a patch changed on the rollback target (patch), or when each colour was last patched (status)."""
    done: dict[str, Any] = result.details.get("patch") or {}
    if done:
        changed: dict[str, dict[str, str]] = done.get("changed") or {}
        lines = [
            f"### Patch of {cell(done.get('color', ''))} (the rollback target)",
            "",
            f"Traffic was not moved: it stays on {cell(result.active_color or '-')}.",
            "",
        ]
        if not changed:
            return [*lines, "Nothing to patch: it already runs these images.", ""]
        lines += ["| container | before | after |", "|---|---|---|"]
        lines += [
            f"| {cell(name)} | `{cell(pair.get('from'))}` | `{cell(pair.get('to'))}` |"
            for name, pair in sorted(changed.items())
        ]
        return [*lines, ""]
    colors: dict[str, dict[str, Any]] = result.details.get("colors") or {}
    if result.phase != "status" or not colors:
        return []
    lines = ["### Last patched", "", "| colour | last patched |", "|---|---|"]
    lines += [
        f"| {cell(color)} | {cell(info.get('last_patched') or 'not since its deploy')} |"
        for color, info in sorted(colors.items())
        if info.get("deployment")
    ]
    return [*lines, ""]


def migration(result: Result) -> list[str]:
    """The migration hook this phase ran (expand, contract, or post-switch after a switch)."""
    run: dict[str, Any] = result.details.get("migration") or {}
    if not run:
        return []
    seconds = run.get("seconds")
    took = f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "-"
    lines = [
        "### Migration",
        "",
        "| hook | outcome | took | what | why |",
        "|---|---|---|---|---|",
        f"| {cell(run.get('hook', ''))} | {cell(run.get('outcome', ''))} | {took} | {cell(run.get('target', ''))} "
        f"| {cell(run.get('reason') or '-')} |",
    ]
    if run.get("forced"):
        lines += ["", f"**Forced** although {cell(run['forced'])}"]
    return [*lines, ""]


def markdown(
    result: Result | None, error: BlueGreenError | None, *, phase: str, app: str, correlation_id: str = ""
) -> str:
    parts = [f"## bluegreen {phase}: {app}", "", banner(result, error, phase, app), ""]
    if correlation_id:  # the one ID to search the logs, Events, history and the app's requests for
        parts += [f"Correlation ID: `{cell(correlation_id)}`", ""]
    if result is not None:
        parts += [*facts(result), ""]
        parts += (
            [*timings(result), ""] if result.api_ms is not None or result.converged_ms is not None else []
        )
        parts += checks(result)
        parts += drift(result)
        parts += gitops(result)
        parts += beyond_images(result)
        parts += patch(result)
        parts += migration(result)
        parts += [f"- {cell(m)}" for m in result.messages] + ([""] if result.messages else [])
        if result.changes:
            parts += ["**Would change:**" if result.dry_run else "**Changed:**", ""]
            parts += [f"- `{change}`" for change in result.changes] + [""]
        parts += timeline(result)
        parts += history(result)
    return "\n".join(parts).rstrip() + "\n"


def notes(result: Result | None, error: BlueGreenError | None, *, phase: str, app: str) -> list[Annotation]:
    """What the job's annotations say: the error, a failed or inconclusive check, a rollback."""
    if error is not None:
        return [
            Annotation(
                level="error",
                title=f"bluegreen {phase} ({app}): {error.title}",
                message=f"{error.message}" + (f"\nWhat to do: {error.remedy}" if error.remedy else ""),
            )
        ]
    assert result is not None
    found: list[Annotation] = []
    title = f"bluegreen {phase} ({app})"
    for name in ("gate", "watch"):
        report = result.details.get(name) or {}
        rounds = report.get("rounds") or []
        for judged in rounds[-1].get("checks", []) if rounds else []:
            if judged["phase"] != "successful":
                level: Level = "error" if judged["phase"] in ("failed", "error") else "warning"
                found.append(
                    Annotation(
                        level=level,
                        title=f"{title}: {name} check {judged['check']} {judged['phase']}",
                        message=("; ".join(judged.get("reasons") or []) or judged["phase"])
                        # a drift check's differences, field by field: the reason alone is a count
                        + (
                            f"\n{judged['detail']}"
                            if judged.get("kind") == "drift" and judged.get("detail")
                            else ""
                        ),
                    )
                )
    if result.result == "rolled-back" and phase != "rollback":
        found.append(
            Annotation(
                level="error",
                title=f"{title}: rolled back to {result.active_color}",
                message=next(
                    (m for m in result.messages if m.startswith("watch")), "the error budget was spent"
                ),
            )
        )
    elif result.result in ("failed", "refused", "inconclusive", "error"):
        found.append(
            Annotation(
                level="error",
                title=f"{title}: {HEADLINES.get(result.result, result.result)}",
                message="\n".join(result.messages) or result.result,
            )
        )
    elif result.result in ("switched", "rolled-back"):
        found.append(
            Annotation(
                level="notice",
                title=f"{title}: {result.result} to {result.active_color}",
                message=f"traffic now goes to {result.active_color}"
                + (f"; verified in {result.converged_ms:.0f} ms" if result.converged_ms is not None else ""),
            )
        )
    elif result.dry_run:
        found.append(Annotation(level="notice", title=f"{title}: dry run", message="nothing was changed"))
    return found
