"""Read a teammate's hub made by hand, the seed's way: logs named `*_green.log` and a summary.md.

Such a folder has no manifest, run.json or verdict records, only what `| tee` kept, so each
verdict is derived from its log by `harness.textlog` and marked "derived from a hand-made log"
(the rules are in docs/reproduce.md). A summary.md claiming more than the logs show is reported
line by line. Nothing is written.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.context import resolve_plan
from harness.hubview import HubUnreadable, HubView
from harness.plan import EvidencePlan, Target, load_plan
from harness.schema import PlanRef, Provenance, Runtime, Verdict, VerdictRecord
from harness.textlog import command_log_verdict, log_lines, read_command_log, read_pytest_log

DERIVED = "derived from a hand-made log"
_POSITIVE = re.compile(r"\b(green|pass(?:ed|es)?|ok|success(?:ful)?)\b|✅", re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(skip\w*|fail\w*|error\w*|blocked|red|xfail\w*|xpass\w*|not green|unknown)\b", re.IGNORECASE)


def derive_record(target: Target, log: Path) -> VerdictRecord:
    """A verdict record for one target of a hand-made hub, from its log alone (streamed, never read whole)."""
    base = dict(target=target.name, kind=target.kind, log=target.log, session=target.session, selector=target.selector,
                argv=target.argv, derived_from=DERIVED)
    if target.kind == "pytest":
        shown = read_pytest_log(log_lines(log))
        return VerdictRecord(verdict=shown.verdict, reason=shown.reason, counts=shown.counts, tests=shown.tests,
                             provenance=Provenance(runtime=Runtime(python=shown.python)), **base)
    ran = read_command_log(log_lines(log))
    verdict, reason = command_log_verdict(ran)
    return VerdictRecord(verdict=verdict, reason=reason, record=ran.record, **base)


def summary_overclaims(summary: str, records: dict[str, VerdictRecord], plan: EvidencePlan) -> list[str]:
    """Lines of a hand-made summary.md that call GREEN what the logs do not show as GREEN."""
    bad = {n: r for n, r in records.items() if r.verdict != Verdict.GREEN}
    notes = []
    for number, line in enumerate(summary.splitlines(), start=1):
        if not _POSITIVE.search(line) or _NEGATIVE.search(line):
            continue
        named = [n for n in bad if n in line or plan.target(n).log in line
                 or (plan.target(n).selector or "").rsplit("::", 1)[-1] in line]
        if not named and re.search(r"\ball\b|\b\d+\s*/\s*\d+\b", line, re.IGNORECASE) and bad:
            named = list(bad)
        for name in named:
            notes.append(f"summary.md line {number} claims `{line.strip()[:120]}`, but {plan.target(name).log} "
                         f"shows {bad[name].verdict}")
    return notes


def read_handmade(hub: Path, plan: EvidencePlan | None = None) -> HubView:
    """A HubView of a hand-made hub; HubUnreadable when none of the plan's logs is in it."""
    plan = plan or load_plan(resolve_plan(None))
    records = {t.name: derive_record(t, hub / t.log) for t in plan.targets if (hub / t.log).is_file()}
    if not records:
        logs = ", ".join(t.log for t in plan.targets)
        raise HubUnreadable(hub, [f"{hub} is neither a harness hub (no manifest.json, no run.json) nor a hand-made "
                                  f"one in the seed's format (none of {logs}); check the path (compare and reproduce "
                                  "take --plan "
                                  "to name other logs)"])
    summary = hub / "summary.md"
    notes = summary_overclaims(summary.read_text(encoding="utf-8", errors="replace"), records, plan) \
        if summary.is_file() else []
    bad = [f"{n} {r.verdict}" for n, r in records.items() if r.verdict != Verdict.GREEN]
    missing = [t.name for t in plan.targets if t.name not in records]
    overall = Verdict.GREEN if not bad and not missing else Verdict.RED
    reason = "; ".join(filter(None, [f"not GREEN: {', '.join(bad)}" if bad else "",
                                     f"no log for {', '.join(missing)}" if missing else ""])) \
        or "every log shows a GREEN run (derived from hand-made logs; no provenance recorded)"
    return HubView(hub, records, str(overall), reason, PlanRef(None, None, plan.id), handmade=True, notes=tuple(notes))
