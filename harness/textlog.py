"""Read the logs `| tee` keeps (pytest's text output, the CLI's) by the producer's own final word, streamed.

pytest's final line, checked against the result lines of its progress part (never captured output); text after it makes
GREEN UNKNOWN, a `!!!` banner RED. A command log is GREEN at TRAIN_RECORD or "`Trainer.fit` stopped" with no traceback.
Missed: a log cut right after a captured would-be final line that agrees with every result line."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

from harness.schema import Counts, Verdict
from harness.verdict import OUTCOMES, RECORD_PREFIX, PytestOutcomes, parse_record, pytest_verdict

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_WORD = r"PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"
_NODE = r"[^\s\[:]+(?:::[^\s\[:]+)+(?:\[.*?\])?"
_RESULT = re.compile(rf"^(?:\[gw\d+\] \[\s*\d+%\] (?P<xword>{_WORD}) (?P<xnode>{_NODE})|(?P<node>{_NODE}) "
                     rf"(?P<sub>SUB)?(?P<word>{_WORD})(?:\[.*?\])?(?: \(.*\))?(?:\s+\[\s*\d+(?:%|/\d+)\])?)$")
_NAMED = re.compile(rf"^(?P<word>{_WORD}) (?P<node>\S+)(?: - .*| .*)?$")  # a short test summary line
_PART = r"\d+ (?:subtests )?(?:passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun)"
_FINAL = re.compile(rf"^(?:=+ )?(?P<body>no tests ran|{_PART}(?:, {_PART})*) in [\d.]+s(?: \([\d:]+\))?(?: =+)?$")
_BANNER, _STOP = re.compile(r"^=+(?: .* =+)?$"), re.compile(r"^!{3,} .* !{3,}$")
_SESSION = re.compile(r"^=+ test session starts =+$")
_PYTHON = re.compile(r"^platform \S+ -- Python (?P<python>[\d.]+)")
_OUTCOME = dict(zip(_WORD.split("|"), OUTCOMES))
_TRACEBACK, _CLI_DONE = "Traceback (most recent call last)", (RECORD_PREFIX, "`Trainer.fit` stopped")
UNNAMED = "?"  # a test a -q log counts but never names
_LONGEST = 4096  # no result line is longer; matching longer ones could take quadratic time


def log_lines(path: Path, limit: int = 1 << 20) -> Iterator[str]:
    """The lines of a log in bounded memory; one over `limit` (a `\\r` progress bar) keeps its tail, where news is."""
    with Path(path).open(encoding="utf-8", errors="replace", newline="") as handle:
        pending = ""
        for chunk in iter(partial(handle.read, limit), ""):
            *done, pending = (pending + chunk).split("\n")
            yield from (line[-limit:] for line in done)
            pending = pending[-limit:]
        if pending:
            yield pending


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    return ((n, _ANSI.sub("", line).rstrip()) for n, line in enumerate(lines, start=1))


def _quote(number: int, line: str) -> str:
    return f"line {number}: `{' '.join(line.split())[:160]}`"


def _said(body: str) -> Counter:
    """The outcome counts of a final line's body (`1 failed, 2 passed, 1 warning`); others are not tests."""
    said = Counter()
    for count, _, word in (part.partition(" ") for part in body.split(", ")):
        if (word := "error" if word == "errors" else word) in OUTCOMES:
            said[word] += int(count)
    return said


def _text(counts: Counter) -> str:
    return ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]) or "none"


@dataclass(frozen=True)
class PytestLog:
    """What a pytest log shows: the verdict, a reason quoting the deciding line, and its tests."""
    verdict: Verdict
    reason: str
    counts: Counts | None = None
    tests: tuple[dict, ...] = ()  # {nodeid, outcome}, a test's worst phase as the harness plugin keeps it
    python: str | None = None


@dataclass
class _Seen:
    """What one pass over a pytest log keeps: as much as there are tests, however long the log."""
    tests: dict[str, dict] = field(default_factory=dict)  # result lines: nodeid -> its worst phase
    tally: Counter = field(default_factory=Counter)  # result lines per outcome, every phase counted
    named: dict[str, list] = field(default_factory=lambda: {o: [] for o in OUTCOMES})  # short summary: (nodeid, quote)
    final: tuple[int, str, Counter] | None = None
    trail: str | None = None  # the first text after the final line
    stop: str | None = None  # `!!! KeyboardInterrupt !!!`, `!!! stopping after 1 failures !!!`
    cause: str | None = None  # the first `E ` line
    last: str | None = None  # the last result line
    python: str | None = None

    def result(self, node: str, outcome: str, quote: str) -> None:
        from harness.pytest_plugin.harness_outcomes import RANK  # the plugin's own ranking of a test's phases
        self.tally[outcome] += 1
        if node not in self.tests or RANK[outcome] >= RANK[self.tests[node]["outcome"]]:
            self.tests[node] = {"nodeid": node, "outcome": outcome, "duration_s": 0.0, "message": quote}


def _scan(lines: Iterable[str]) -> _Seen:
    seen, zone, summary = _Seen(), True, False  # zone: the progress part, where pytest writes result lines
    for number, line in _numbered(lines):
        if hit := _FINAL.match(line):
            seen.final, seen.trail = (number, line, _said(hit["body"])), None
        elif seen.final and seen.trail is None and line:
            seen.trail = _quote(number, line)
        if _BANNER.match(line):
            zone, summary = bool(_SESSION.match(line)), "short test summary info" in line
        elif _STOP.match(line):
            seen.stop = _quote(number, line)
        elif zone and len(line) < _LONGEST and (hit := _RESULT.match(line)):
            if not hit["sub"] or hit["word"] == "FAILED":  # pytest counts failed subtests as failures, passed apart
                seen.last = _quote(number, line)
                seen.result(hit["node"] or hit["xnode"], _OUTCOME[hit["word"] or hit["xword"]], seen.last)
        elif summary and (hit := _NAMED.match(line)):
            if "::" in hit["node"]:
                seen.named[_OUTCOME[hit["word"]]].append((hit["node"], _quote(number, line)))
            elif hit["word"] == "ERROR":  # a module that failed to collect: it has no result line
                seen.result(hit["node"], "error", _quote(number, line))
        elif seen.cause is None and line.startswith("E "):
            seen.cause = _quote(number, line)
        seen.python = seen.python or ((m := _PYTHON.match(line)) and m["python"])
    return seen


def read_pytest_log(lines: Iterable[str]) -> PytestLog:
    """The verdict of a `pytest ... | tee` log, from pytest's final line checked against its result lines."""
    seen = _scan(lines)
    if seen.final is None:
        where = f"; last result {seen.last}" if seen.last else ""
        return PytestLog(Verdict.UNKNOWN, f"the log ends without pytest's final summary line (cut short?){where}",
                         python=seen.python)
    said, said_line = seen.final[2], _quote(*seen.final[:2])
    if seen.tally and seen.tally != said:
        return PytestLog(Verdict.UNKNOWN, f"pytest's final {said_line} counts {_text(said)}, but its per-test result "
                                          f"lines show {_text(seen.tally)}: one of them is not pytest's own",
                         python=seen.python)
    quiet = not seen.tally and said.total() > 0  # a -q log: named where its short test summary names them
    tests = [{"nodeid": node, "outcome": o, "duration_s": 0.0, "message": quote} for o in OUTCOMES
             for node, quote in (seen.named[o] + [(UNNAMED, "")] * said[o])[:said[o]]] if quiet else seen.tests.values()
    outcomes = PytestOutcomes(tuple(tests))
    c = outcomes.counts
    verdict, reason = pytest_verdict(outcomes, 5 if not c.tests else 0 if c.passed == c.tests else 1, False, None)
    if seen.stop:  # interrupted (pytest then exits 2), or -x: the final line counts only what ran
        reason = f"pytest stopped early: {seen.stop}" + ("" if verdict == Verdict.GREEN else f"; {reason}")
        verdict = Verdict.RED
    if verdict == Verdict.GREEN and seen.trail:
        verdict, reason = Verdict.UNKNOWN, (f"text follows pytest's final {said_line}: {seen.trail}; pytest writes "
                                            "nothing after it (cut short after a line a test printed?)")
    elif verdict == Verdict.GREEN:
        reason = f"{reason}; {said_line}"
    else:
        deciding = f"cause {seen.cause}" if seen.cause else next(
            (t["message"] for t in outcomes.tests if t["outcome"] != "passed" and t["message"]), said_line)
        reason = reason if deciding in reason else f"{reason}; {deciding}"
    reason += "; no per-test result lines (a -q log?): pytest's final line alone decides" if quiet else ""
    kept = tuple({"nodeid": t["nodeid"], "outcome": t["outcome"]} for t in outcomes.tests if t["nodeid"] != UNNAMED)
    return PytestLog(verdict, reason, c, kept, seen.python)


@dataclass(frozen=True)
class CommandLog:
    """What a command's log shows: its first failure line, last exception, completion line and record."""
    failure: str | None = None
    error: str | None = None
    done: str | None = None
    record: dict | None = None


def read_command_log(lines: Iterable[str]) -> CommandLog:
    """One pass over a command's log: traceback or `ERROR` lines, the completion marks, the TRAIN_RECORD."""
    failure = error = done = record = None
    in_traceback = False
    for number, line in _numbered(lines):
        if _TRACEBACK in line:
            failure, in_traceback = failure or _quote(number, line), True
        elif in_traceback and line and not line.startswith(" "):
            error, in_traceback = line.strip()[:300], False  # frames are indented; the exception is not
        elif line.startswith("ERROR"):
            failure = failure or _quote(number, line)
        if any(mark in line for mark in _CLI_DONE):
            done = _quote(number, line)
        if line.startswith(RECORD_PREFIX):
            record = line[len(RECORD_PREFIX):]
    return CommandLog(failure, error, done, parse_record(record))


def command_log_verdict(log: CommandLog) -> tuple[Verdict, str]:
    """(verdict, reason): a `| tee` keeps no exit status, so the log itself must say how the command ended."""
    if log.failure:
        return Verdict.RED, f"the command failed: {log.error + '; ' if log.error else ''}{log.failure}"
    if log.done:
        return Verdict.GREEN, f"completed: {log.done} and no traceback"
    return Verdict.UNKNOWN, "no completion record, no Lightning 'Trainer.fit stopped' line: how it ended is unknown"


def last_error_line(lines: Iterable[str]) -> str | None:
    """The exception line of the log's final traceback (`KeyError: 'diff3d'`), for a RED reason."""
    return read_command_log(lines).error
