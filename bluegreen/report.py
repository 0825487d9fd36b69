"""A Result as text for people at a terminal (JSON is Result.to_dict; Markdown is the Action's)."""

from __future__ import annotations

from typing import Any

from bluegreen.model import Result

BANNERS = {
    "deployed": "deployed",
    "switched": "switched",
    "rolled-back": "rolled back",
    "noop": "nothing to do",
    "planned": "dry run: planned",
    "adopted": "adopted",
    "retired": "retired",
    "patched": "patched (traffic not moved)",
    "failed": "FAILED",
    "refused": "refused",
}


def text(result: Result) -> str:
    if result.phase == "status":
        return _status(result)
    lines = [f"{result.app} ({result.namespace}): {result.phase} {BANNERS.get(result.result, result.result)}"]
    if result.active_color:
        previous = (
            f" (was {result.previous_color})"
            if result.previous_color and result.previous_color != result.active_color
            else ""
        )
        lines.append(f"  live colour: {result.active_color}{previous}")
    if result.candidate:
        lines.append(f"  candidate: {result.candidate}")
    if result.api_ms is not None:
        lines.append(f"  switch write: {result.api_ms:.0f} ms")
    if result.converged_ms is not None:
        lines.append(f"  write to verified: {result.converged_ms:.0f} ms")
    lines += data_plane_lines(result) or verification_lines(result)
    for color, images in sorted(result.images.items()):
        lines.append(f"  {color}: {', '.join(images) or '-'}")
    if result.changes:
        lines.append("  changes:" if not result.dry_run else "  would change:")
        lines += [f"    - {change}" for change in result.changes]
    lines += [f"  {message}" for message in result.messages]
    return "\n".join(lines)


def _status(result: Result) -> str:
    details: dict[str, Any] = result.details
    lines = [
        f"{result.app} ({result.namespace})",
        f"  live:     {result.active_color or '-'}  ({details.get('router', '')})",
        f"  previous: {result.previous_color or '-'}",
    ]
    for color, info in sorted((details.get("colors") or {}).items()):
        if not info.get("deployment"):
            lines.append(f"  {color:6}    no Deployment")
            continue
        state = "rolled out" if info.get("rolled_out") else "rolling out"
        marks = "".join(
            f", {word}"
            for word, on in (("gated", info.get("gated")), ("REJECTED", info.get("rejected")))
            if on
        )
        patched = f", patched {info['last_patched']}" if info.get("last_patched") else ""
        lines.append(
            f"  {color:6}    {info['ready']}/{info['replicas']} ready, {state}: {', '.join(info['images'])}"
            f" (release {info.get('release') or '-'}{marks}{patched})"
        )
    last = details.get("last_switch")
    if last:
        timing = last.get("timings_ms", {}).get("converged_ms")
        took = f" in {timing:.0f} ms" if timing is not None else ""
        lines.append(
            f"  last switch: {last.get('from')} -> {last.get('to')} at {last.get('time')}{took} ({last.get('reason') or last.get('action')})"
        )
    for run in (details.get("migrations") or [])[:1]:
        release = f" for release {run.get('release')}" if run.get("release") else ""
        lines.append(
            f"  last migration: {run.get('hook')} {run.get('outcome')}{release} at {run.get('time')}"
            + (f" ({run.get('reason')})" if run.get("reason") else "")
        )
    for done in (details.get("patches") or [])[:1]:
        lines.append(
            f"  last patch: {done.get('to')} at {done.get('time')} ({done.get('reason') or 'patch'})"
        )
    drifted = details.get("drift")
    if drifted is not None:  # None: not judged (one colour only, or the config could not be read)
        lines.append(
            f"  drift:    DRIFT, {len(drifted)} difference{'s' if len(drifted) != 1 else ''} beyond the release"
            if drifted
            else "  drift:    none (the colours differ only by the release)"
        )
    lines.append(f"  lock: {details.get('lock_holder') or 'free'}")
    lines += [f"  {message}" for message in result.messages]
    return "\n".join(lines)


def data_plane_lines(result: Result) -> list[str]:
    """Control plane and data plane apart (the dns router): what was checked, or that it was not."""
    plane = result.details.get("data_plane")
    if not plane:
        return []
    lines = [f"  control plane (stored objects): {plane.get('control_plane_ms', 0):.0f} ms"]
    if not plane.get("checked"):
        return [*lines, "  data plane: NOT CHECKED (no DNS server was asked; pass --dns-server)"]
    took = plane.get("data_plane_ms")
    seen = f"{took:.0f} ms" if took is not None else "not seen"
    return [*lines, f"  data plane (answer of {plane.get('server')}): {seen}"]


def verification_lines(result: Result) -> list[str]:
    """Control plane and data plane apart (a switch's `details["verification"]`): with --probe the
    probe's requests are what "verified" waited for; without, that the data plane was not checked."""
    verification = result.details.get("verification")
    if not verification:
        return []
    lines = [f"  control plane (stored objects, EndpointSlices): {verification['control_plane_ms']:.0f} ms"]
    plane = verification.get("data_plane")
    took = verification.get("data_plane_ms")
    if plane == "probe":
        seen = f"{took:.0f} ms" if took is not None else "NOT SEEN (the probe never saw the new colour alone)"
        return [*lines, f"  data plane (--probe requests answered by the new colour alone): {seen}"]
    if plane == "probe reported apart":
        return lines
    return [
        *lines,
        "  data plane: NOT CHECKED (no --probe): kube-proxy or a proxy applies the change later, "
        "up to ~1 s on a busy node",
    ]
