"""release: the phases in a row, as one command: deploy, then switch.

The gate and watch phases join in between and after when configured (bluegreen.yaml).
"""

from __future__ import annotations

from bluegreen.model import Result
from bluegreen.phases import deploy, switch
from bluegreen.phases.context import Context


def run(ctx: Context, *, image: str | None = None, set_images: dict[str, str] | None = None) -> Result:
    deployed = deploy.run(ctx, image=image, set_images=set_images)
    if ctx.dry_run:
        deployed.phase = "release"
        return deployed
    new_images = deployed.images.get(deployed.details.get("idle_color", ""), [])
    switched = switch.run(ctx, reason=f"release of {', '.join(new_images)}")
    switched.phase = "release"
    switched.timeline = deployed.timeline + switched.timeline
    switched.messages = deployed.messages + switched.messages
    switched.changes = deployed.changes + switched.changes
    return switched
