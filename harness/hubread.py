"""`read_hub`: any finished hub for compare and reproduce, made by the harness or by hand.

A folder with a manifest or run.json is a harness hub (format 1 or 2); a folder with only the
seed's logs and summary.md is a teammate's hand-made hub. Either way the result is a HubView,
or HubUnreadable listing what is wrong; reading never writes.
"""

from __future__ import annotations

from pathlib import Path

from harness.hubview import HubUnreadable, HubView, read_handmade
from harness.plan import EvidencePlan
from harness.hub import load_verdicts
from harness.schema import EnvironmentRecord, HubFiles, Manifest, RunRecord, SchemaError
from harness.validate import validate


def read_harness_hub(hub: Path) -> HubView:
    """A hub the harness made; it must pass `validate`'s integrity checks (RED verdicts are fine)."""
    problems = list(validate(hub, mode="hub-only", ignore_incomplete=False).integrity_problems)
    manifest = run = None
    try:
        manifest = Manifest.load(hub)
    except (FileNotFoundError, SchemaError) as exc:
        problems.append(str(exc))
    try:
        run = RunRecord.load(hub)
    except (FileNotFoundError, SchemaError) as exc:
        problems.append(str(exc))
    verdicts, errors = load_verdicts(hub)
    problems += errors
    if not verdicts and not errors:
        problems.append(f"{hub / HubFiles.VERDICTS} holds no verdict records: no target ran; rerun the plan")
    if problems or manifest is None:
        raise HubUnreadable(hub, problems)
    order = [t.name for t in manifest.targets]
    verdicts = {n: verdicts[n] for n in order if n in verdicts} | verdicts  # run order, extras last
    return HubView(hub, verdicts, manifest.overall_verdict, manifest.overall_reason, manifest.plan, run,
                   EnvironmentRecord.load(hub))


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
