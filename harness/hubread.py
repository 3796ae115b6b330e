"""`read_hub`: any finished hub for compare and reproduce, made by the harness or by hand.

A folder with a manifest or run.json is a harness hub (format 1 or 2); a folder with only the
seed's logs and summary.md is a teammate's hand-made hub. Either way the result is a HubView,
or HubUnreadable listing what is wrong; reading never writes.
"""

from __future__ import annotations

from pathlib import Path

from harness.handmade import read_handmade
from harness.hubview import HubUnreadable, HubView, read_harness_hub
from harness.plan import EvidencePlan
from harness.schema import HubFiles


def read_hub(path: str | Path, plan: EvidencePlan | None = None) -> HubView:
    """The hub at `path`; `plan` maps a hand-made hub's log names to targets (default plan otherwise)."""
    hub = Path(path).expanduser()
    if not hub.exists():
        raise HubUnreadable(hub, [f"{hub} does not exist (check the path; hubs live under the plan's reports/ folder)"])
    if not hub.is_dir():
        raise HubUnreadable(hub, [f"{hub} is a file, expected a hub folder (the one holding {HubFiles.MANIFEST})"])
    hub = hub.resolve()
    if (hub / HubFiles.MANIFEST).exists() or (hub / HubFiles.RUN).exists():
        return read_harness_hub(hub)
    return read_handmade(hub, plan)
