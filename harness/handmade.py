"""Read a teammate's hub made by hand, the seed's way: logs named `*_green.log` and a summary.md.

Such a folder has no manifest, run.json or verdict records, only what `| tee` kept, so each
verdict is derived from its log and marked "derived from a hand-made log" (the rules are in
docs/reproduce.md: a pytest log needs pytest's final line and every test passed, a command log
its completion line and no traceback). A summary.md claiming more than the logs show is
reported line by line. Nothing is written.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.context import resolve_plan
from harness.hubview import HubUnreadable, HubView
from harness.plan import EvidencePlan, Target, load_plan
from harness.schema import PlanRef, Provenance, Runtime, Verdict, VerdictRecord
from harness.verdict import RECORD_PREFIX, PytestOutcomes, parse_record, pytest_verdict

DERIVED = "derived from a hand-made log"
_RESULT = re.compile(r"^(?P<nodeid>\S+::\S+)\s+(?P<word>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
_WORDS = {"PASSED": "passed", "FAILED": "failed", "ERROR": "error", "SKIPPED": "skipped", "XFAIL": "xfailed",
          "XPASS": "xpassed"}
_FINAL = re.compile(r"^=+ (?P<body>.*(?:passed|failed|error|errors|skipped|xfailed|xpassed|no tests ran).*) in "
                    r"[\d.]+s(?: \([^)]*\))? =+$")
_PYTHON = re.compile(r"^platform \S+ -- Python (?P<python>[\d.]+)")
_CLI_DONE = (RECORD_PREFIX, "`Trainer.fit` stopped")
_POSITIVE = re.compile(r"\b(green|pass(?:ed|es)?|ok|success(?:ful)?)\b|✅", re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(skip\w*|fail\w*|error\w*|blocked|red|xfail\w*|xpass\w*|not green|unknown)\b", re.IGNORECASE)


def _quote(number: int, line: str) -> str:
    return f"line {number}: `{line.strip()[:160]}`"


def pytest_log_verdict(lines: list[str]) -> tuple[Verdict, str, PytestOutcomes | None]:
    """(verdict, reason quoting the deciding line, outcomes) of a hand-made pytest log."""
    tests: dict[str, dict] = {}
    final = cause = None
    for number, line in enumerate(lines, start=1):
        hit = _RESULT.match(line)
        if hit:
            tests[hit["nodeid"]] = {"nodeid": hit["nodeid"], "outcome": _WORDS[hit["word"]], "duration_s": 0.0,
                                    "message": _quote(number, line)}
        elif _FINAL.match(line.strip()):
            final = (number, line)
        elif line.startswith("E ") and cause is None:
            cause = _quote(number, line)
    if final is None:
        where = f"; last result {list(tests.values())[-1]['message']}" if tests else ""
        return Verdict.UNKNOWN, f"the log ends without pytest's final summary line (cut short?){where}", None
    outcomes = PytestOutcomes(tuple(tests.values()), None, None)
    # A `| tee` keeps no exit status; pytest's own would have been 0 (all passed), 5 (none ran) or 1.
    passed = outcomes.counts.tests and all(t["outcome"] == "passed" for t in tests.values())
    verdict, reason = pytest_verdict(outcomes, 0 if passed else 5 if not tests else 1, False, None)
    if verdict == Verdict.GREEN or not tests:
        return verdict, f"{reason}; {_quote(*final)}", outcomes
    deciding = cause or next(t["message"] for t in tests.values() if t["outcome"] != "passed")
    return verdict, reason if deciding in reason else f"{reason}; {'cause ' if cause else ''}{deciding}", outcomes


def command_log_verdict(lines: list[str]) -> tuple[Verdict, str]:
    """(verdict, reason) of a hand-made command log, which records no exit status."""
    for number, line in enumerate(lines, start=1):
        if line.startswith("Traceback (most recent call last)") or line.startswith("ERROR"):
            return Verdict.RED, f"the command failed: {_quote(number, line)}"
    for number in range(len(lines), 0, -1):
        if any(mark in lines[number - 1] for mark in _CLI_DONE):
            return Verdict.GREEN, f"completed: {_quote(number, lines[number - 1])} and no traceback"
    return Verdict.UNKNOWN, "no completion record, no Lightning 'Trainer.fit stopped' line: how it ended is unknown"


def train_record(lines: list[str]) -> dict | None:
    """The object of the log's last `TRAIN_RECORD {json}` line (what the runner keeps), if readable."""
    last = next((line for line in reversed(lines) if line.startswith(RECORD_PREFIX)), None)
    return None if last is None else parse_record(last[len(RECORD_PREFIX):])


def derive_record(target: Target, log: Path) -> VerdictRecord:
    """A verdict record for one target of a hand-made hub, from its log alone."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    python = next((m["python"] for m in map(_PYTHON.match, lines) if m), None)
    base = dict(target=target.name, kind=target.kind, log=target.log, session=target.session, selector=target.selector,
                argv=target.argv, derived_from=DERIVED, provenance=Provenance(runtime=Runtime(python=python)))
    if target.kind == "pytest":
        verdict, reason, outcomes = pytest_log_verdict(lines)
        return VerdictRecord(verdict=verdict, reason=reason, counts=outcomes.counts if outcomes else None,
                             tests=tuple({k: t[k] for k in ("nodeid", "outcome")} for t in outcomes.tests) if outcomes else (),
                             **base)
    verdict, reason = command_log_verdict(lines)
    return VerdictRecord(verdict=verdict, reason=reason, record=train_record(lines), **base)


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
                                  f"one in the seed's format (none of {logs}); check the path (compare and reproduce take --plan "
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
