"""A target's verdict from facts (outcome record, exit code, time limit, outputs); pure functions.

A pytest target is GREEN only when a test ran, every one passed and pytest exited 0. Outcomes come from the
`harness_outcomes` plugin's record, never from scraped text or JUnit XML (which writes an XPASS as a pass)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.schema import Counts, Verdict

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
RECORD_PREFIX = "TRAIN_RECORD "  # a command target's last line of this form is its record
_TIMEOUT_MARK = "from pytest-timeout"
_EXIT_MEANING = {2: "interrupted, e.g. by a collection error", 3: "pytest internal error",
                 4: "usage error: the selector's file or test does not exist",
                 5: "no tests collected: the selector matched nothing"}


@dataclass(frozen=True)
class PytestOutcomes:
    """What the plugin recorded: each test's outcome, pytest's exit status, GPU visibility."""
    tests: tuple[dict, ...]
    exitstatus: int | None = None
    cuda_available: bool | None = None
    pytest_version: str | None = None

    @property
    def counts(self) -> Counts:
        tally = Counter("errors" if t["outcome"] == "error" else t["outcome"] for t in self.tests)
        return Counts(len(self.tests), **tally)

    def named(self, outcome: str) -> str:
        named = [t["nodeid"] for t in self.tests if t["outcome"] == outcome]
        return ", ".join(named[:3]) + (f" (+{len(named) - 3} more)" if len(named) > 3 else "")


def load_outcomes(path: Path) -> PytestOutcomes | None:
    """The plugin's record; None when pytest wrote none (it never started, or was killed)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        tests = tuple({"nodeid": str(t["nodeid"]), "outcome": str(t["outcome"]),
                       "duration_s": float(t.get("duration_s") or 0.0), "message": str(t.get("message") or "")}
                      for t in data["tests"] if t.get("outcome") in OUTCOMES)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return PytestOutcomes(tests, data.get("exitstatus"), data.get("cuda_available"), data.get("pytest"))


def pytest_verdict(outcomes: PytestOutcomes | None, exit_code: int | None, timed_out: bool,
                   cuda_available: bool | None, *, hidden: bool = True) -> tuple[Verdict, str]:
    """(verdict, one-sentence reason) of a pytest target; `hidden`: the GPU must have been hidden (a CPU target)."""
    if timed_out:
        return Verdict.TIMEOUT, "killed at the target's wall-clock limit before pytest finished"
    if hidden and (cuda_available or (outcomes and outcomes.cuda_available)):
        return Verdict.RED, "torch.cuda.is_available() was True in the child: the GPU was not hidden"
    if outcomes is None:
        why = _EXIT_MEANING.get(exit_code, "pytest failed to start or was killed")
        return Verdict.RED, f"pytest wrote no outcome record (exit code {exit_code}: {why}); see the log"
    c, tests = outcomes.counts, outcomes.tests
    if stopped := [t["nodeid"] for t in tests if t["outcome"] == "failed" and _TIMEOUT_MARK in t["message"]]:
        return Verdict.TIMEOUT, f"pytest-timeout stopped {', '.join(stopped[:3])}"
    if c.tests == 0:
        why = _EXIT_MEANING.get(exit_code, "the selector matched nothing")
        return Verdict.RED, f"no tests ran (pytest exit code {exit_code}: {why})"
    if c.failed or c.errors:
        parts = [_tally(outcomes, "failed", "failed")] if c.failed else []
        parts += [_tally(outcomes, "error", "error(s)")] if c.errors else []
        return Verdict.RED, " and ".join(parts)
    if c.xpassed:
        return Verdict.RED, (f"{c.xpassed} XPASS ({outcomes.named('xpassed')}): a test marked xfail passed, "
                             "so the mark or the test is wrong; an XPASS is not evidence")
    if c.skipped + c.xfailed and not c.passed:
        return Verdict.SKIPPED, (f"no test passed: {c.skipped} skipped, {c.xfailed} xfailed "
                                 f"({_first(tests, 'skipped') or _first(tests, 'xfailed')}); a skip is not evidence")
    if c.skipped + c.xfailed:
        return Verdict.RED, (f"{c.passed} passed but {c.skipped} skipped and {c.xfailed} xfailed: "
                             "every selected test must pass")
    if exit_code != 0:
        return Verdict.RED, f"every test passed but pytest exited with code {exit_code}"
    return Verdict.GREEN, f"{c.passed} of {c.tests} selected test(s) passed, none skipped"


def _tally(outcomes: PytestOutcomes, outcome: str, word: str) -> str:
    """`1 failed: <message>`, or `2 failed (a, b): <first message>`: the cause first, short."""
    named = [t for t in outcomes.tests if t["outcome"] == outcome]
    message = _first(outcomes.tests, outcome)
    collection = any("::" not in t["nodeid"] for t in named)  # a module that failed to collect: name it
    which = "" if len(named) == 1 and message and not collection else f" ({outcomes.named(outcome)})"
    return f"{len(named)} {word}{which}" + (f": {message}" if message else "")


def _first(tests: Sequence[dict], outcome: str) -> str:
    return next((t["message"] for t in tests if t["outcome"] == outcome and t["message"]), "")


def parse_record(payload: str | None) -> dict | None:
    """The JSON object that follows `TRAIN_RECORD ` on a line, or None when there is none."""
    try:
        record = json.loads(payload) if payload is not None else None
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def command_verdict(exit_code: int | None, timed_out: bool, outputs: Sequence[tuple[str, int | None]],
                    cuda_available: bool | None, error: str | None = None) -> tuple[Verdict, str]:
    """(verdict, reason) of a command target; `outputs`: (path, bytes or None); `error`: its last traceback line."""
    if timed_out:
        return Verdict.TIMEOUT, "killed at the target's wall-clock limit"
    if cuda_available:
        return Verdict.RED, "torch.cuda.is_available() was True in the evidence venv: the GPU was not hidden"
    if exit_code is None:
        return Verdict.RED, "the command could not be started (see the log)"
    if exit_code != 0:
        return Verdict.RED, f"the command exited with code {exit_code}" + (f": {error}" if error else "")
    if missing := [p for p, size in outputs if size is None]:
        return Verdict.RED, f"expected output missing: {', '.join(missing)}"
    if empty := [p for p, size in outputs if size == 0]:
        return Verdict.RED, f"expected output is empty: {', '.join(empty)}"
    produced = f"; outputs present: {', '.join(p for p, _ in outputs)}" if outputs else ""
    return Verdict.GREEN, f"exited 0 within its time limit{produced}"
