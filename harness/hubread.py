"""`read_hub`: any finished hub (a harness hub with manifest or run.json, or a teammate's hand-made one) as a HubView.

A hub that cannot be read raises HubUnreadable listing what is wrong; reading never writes."""

from __future__ import annotations

from pathlib import Path

from harness.hubview import HubUnreadable, HubView, read_handmade
from harness.plan import EvidencePlan
from harness.hub import load_verdicts
from harness.schema import EnvironmentRecord, HubFiles, Manifest, RunRecord, SchemaError
from harness.validate import validate


def read_harness_hub(hub: Path) -> HubView:
    """A hub the harness made; it must pass `validate`'s integrity checks (RED verdicts are fine)."""
    problems = validate(hub, mode="hub-only", ignore_incomplete=False).integrity_problems
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
    verdicts = {t.name: verdicts[t.name] for t in manifest.targets if t.name in verdicts} | verdicts  # extras last
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
