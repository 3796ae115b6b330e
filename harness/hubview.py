"""A finished hub as compare and reproduce read it (`HubView`), why one cannot be (`HubUnreadable`), and a
teammate's hand-made hub (`*_green.log` files and a summary.md) read into one. Reading never writes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import UserError
from harness.context import resolve_plan
from harness.fsio import sha256_file
from harness.plan import EvidencePlan, Target, load_plan
from harness.schema import EnvironmentRecord, PlanRef, Provenance, RunRecord, Runtime, Verdict, VerdictRecord
from harness.textlog import command_log_verdict, log_lines, read_command_log, read_pytest_log

DERIVED = "derived from a hand-made log"
_POSITIVE = re.compile(r"\b(green|pass(?:ed|es)?|ok|success(?:ful)?)\b|✅", re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(skip\w*|fail\w*|error\w*|blocked|red|xfail\w*|xpass\w*|not green|unknown)\b", re.IGNORECASE)


class HubUnreadable(UserError):
    """A hub cannot be compared; `problems` says what is missing and how to fix it."""

    def __init__(self, hub: Path, problems: list[str]) -> None:
        self.hub, self.problems = hub, list(dict.fromkeys(problems))
        super().__init__(f"hub {hub} cannot be compared:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True)
class HubView:
    """The parts of a finished hub that comparison needs (parsed records; nothing is re-run)."""
    path: Path
    verdicts: dict[str, VerdictRecord]
    overall: str
    overall_reason: str
    plan: PlanRef
    run: RunRecord | None = None
    environment: EnvironmentRecord | None = None
    handmade: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. a hand-made summary's over-claims

    @property
    def targets(self) -> list[str]:
        return list(self.verdicts)

    @property
    def git_sha(self) -> str | None:
        shas = {r.provenance.git.sha for r in self.verdicts.values() if r.provenance.git.known}
        return ", ".join(sorted(shas)) or (self.run.project_commit if self.run else None)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root (relative posix path -> hex): a before/after fingerprint."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def derive_record(target: Target, log: Path) -> VerdictRecord:
    """A verdict record for one target of a hand-made hub, from its log alone (rules: docs/reproduce.md)."""
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
    bad, notes = {n: r for n, r in records.items() if r.verdict != Verdict.GREEN}, []
    for number, line in enumerate(summary.splitlines(), start=1):
        if not _POSITIVE.search(line) or _NEGATIVE.search(line):
            continue
        named = [n for n in bad if n in line or plan.target(n).log in line
                 or (plan.target(n).selector or "").rsplit("::", 1)[-1] in line]
        if not named and re.search(r"\ball\b|\b\d+\s*/\s*\d+\b", line, re.IGNORECASE) and bad:
            named = list(bad)
        notes += [f"summary.md line {number} claims `{line.strip()[:120]}`, but {plan.target(name).log} "
                  f"shows {bad[name].verdict}" for name in named]
    return notes


def read_handmade(hub: Path, plan: EvidencePlan | None = None) -> HubView:
    """A HubView of a hand-made hub; HubUnreadable when none of the plan's logs is in it."""
    plan = plan or load_plan(resolve_plan(None))
    records = {t.name: derive_record(t, hub / t.log) for t in plan.targets if (hub / t.log).is_file()}
    if not records:
        raise HubUnreadable(hub, [f"{hub} is neither a harness hub (no manifest.json, no run.json) nor a hand-made "
                                  f"one in the seed's format (none of {', '.join(t.log for t in plan.targets)}); "
                                  "check the path (compare and reproduce take --plan to name other logs)"])
    summary = hub / "summary.md"
    notes = summary_overclaims(summary.read_text(encoding="utf-8", errors="replace"), records, plan) \
        if summary.is_file() else []
    bad = [f"{n} {r.verdict}" for n, r in records.items() if r.verdict != Verdict.GREEN]
    missing = [t.name for t in plan.targets if t.name not in records]
    reason = "; ".join(filter(None, [f"not GREEN: {', '.join(bad)}" if bad else "",
                                     f"no log for {', '.join(missing)}" if missing else ""])) \
        or "every log shows a GREEN run (derived from hand-made logs; no provenance recorded)"
    return HubView(hub, records, str(Verdict.RED if bad or missing else Verdict.GREEN), reason,
                   PlanRef(None, None, plan.id), handmade=True, notes=tuple(notes))
