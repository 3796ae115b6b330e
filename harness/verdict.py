"""Decide a target's verdict from facts: JUnit XML counts, exit code, timeout, outputs.

The verdict must not lie: GREEN only when at least one test ran and every one passed (no skip,
xfail, error), and pytest agreed by exiting 0. Counts come from the JUnit XML (xunit2), never
from scraping text. Pure functions, stdlib-only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

GREEN, RED, TIMEOUT, SKIPPED = "GREEN", "RED", "TIMEOUT", "SKIPPED"
VERDICTS = (GREEN, RED, TIMEOUT, SKIPPED)
COUNT_KEYS = ("tests", "passed", "failed", "errors", "skipped", "xfailed")
_PYTEST_TIMEOUT_MARK = "Timeout"  # pytest-timeout fails a test with "Failed: Timeout (>Ns) from pytest-timeout."


@dataclass(frozen=True)
class TestResult:
    nodeid: str
    outcome: str  # passed | failed | error | skipped | xfailed
    duration_s: float
    message: str = ""

    def as_record(self) -> dict:
        return {"nodeid": self.nodeid, "outcome": self.outcome, "duration_s": round(self.duration_s, 3)}


@dataclass(frozen=True)
class JUnitResult:
    tests: tuple[TestResult, ...] = ()
    counts: dict = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))

    @property
    def timed_out(self) -> tuple[TestResult, ...]:
        """Tests that pytest-timeout stopped."""
        return tuple(t for t in self.tests if t.outcome == "failed" and _PYTEST_TIMEOUT_MARK in t.message
                     and "pytest-timeout" in t.message)


def classname_to_nodeid(classname: str, name: str, is_file: Callable[[str], bool]) -> str:
    """Turn JUnit's dotted `classname` back into a pytest node id.

    `tests.torch.test_x.TestY` + `test_z` → `tests/torch/test_x.py::TestY::test_z`, using
    `is_file(relative_path)` to find where the module path ends.
    """
    parts = [p for p in classname.split(".") if p]
    if not parts:  # a collection error: `name` is the dotted module path
        module = name.replace(".", "/") + ".py"
        return module if is_file(module) else name
    for cut in range(len(parts), 0, -1):
        candidate = "/".join(parts[:cut]) + ".py"
        if is_file(candidate):
            return "::".join([candidate, *parts[cut:], name])
    return "::".join([*parts, name]) if parts else name


def parse_junit(text: str, is_file: Callable[[str], bool] = lambda _: False) -> JUnitResult:
    """Per-test outcomes and counts from a pytest xunit2 report.

    xfail appears as <skipped type="pytest.xfail">; a collection error as a testcase with <error>.
    """
    root = ET.fromstring(text)
    results: list[TestResult] = []
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for case in root.iter("testcase"):
        children = {child.tag: child for child in case}
        if "error" in children:
            outcome, node = "error", children["error"]
        elif "failure" in children:
            outcome, node = "failed", children["failure"]
        elif "skipped" in children:
            node = children["skipped"]
            outcome = "xfailed" if node.get("type") == "pytest.xfail" else "skipped"
        else:
            outcome, node = "passed", None
        message = "" if node is None else f"{node.get('message') or ''}\n{node.text or ''}"
        nodeid = classname_to_nodeid(case.get("classname", ""), case.get("name", ""), is_file)
        results.append(TestResult(nodeid, outcome, float(case.get("time") or 0.0), message))
        counts["tests"] += 1
        counts[{"error": "errors"}.get(outcome, outcome)] += 1
    return JUnitResult(tuple(results), counts)


def load_junit(path: Path, project_root: Path) -> JUnitResult | None:
    """`parse_junit` of a file; None when pytest wrote no (or an unreadable) report."""
    try:
        text = path.read_text(encoding="utf-8")
        return parse_junit(text, lambda rel: (project_root / rel).is_file())
    except (OSError, ET.ParseError):
        return None


_EXIT_MEANING = {
    2: "interrupted, e.g. by a collection error",
    3: "pytest internal error",
    4: "usage error: the selector's file or test does not exist",
    5: "no tests collected: the selector matched nothing",
}


def _names(tests: Sequence[TestResult], outcome: str, limit: int = 3) -> str:
    chosen = [t.nodeid for t in tests if t.outcome == outcome]
    more = f" (+{len(chosen) - limit} more)" if len(chosen) > limit else ""
    return ", ".join(chosen[:limit]) + more


def pytest_verdict(
    junit: JUnitResult | None, exit_code: int | None, timed_out: bool, cuda_available: bool | None
) -> tuple[str, str]:
    """(verdict, one-sentence reason) of a pytest target."""
    if timed_out:
        return TIMEOUT, "killed at the target's wall-clock limit before pytest finished"
    if cuda_available:
        return RED, "torch.cuda.is_available() was True in the child: the GPU was not hidden"
    if junit is None:
        return RED, (f"pytest wrote no JUnit XML (exit code {exit_code}): the selector may not exist "
                     "or pytest failed to start; see the log")
    c = junit.counts
    if junit.timed_out:
        return TIMEOUT, f"pytest-timeout stopped {_names(junit.tests, 'failed')}"
    if c["tests"] == 0:
        why = _EXIT_MEANING.get(exit_code, "the selector matched nothing")
        return RED, f"no tests ran (pytest exit code {exit_code}: {why})"
    if c["failed"] or c["errors"]:
        parts = []
        if c["failed"]:
            parts.append(f"{c['failed']} failed ({_names(junit.tests, 'failed')})")
        if c["errors"]:
            parts.append(f"{c['errors']} error(s) ({_names(junit.tests, 'error')})")
        return RED, " and ".join(parts)
    not_run = c["skipped"] + c["xfailed"]
    if not_run and not c["passed"]:
        return SKIPPED, f"no test passed: {c['skipped']} skipped, {c['xfailed']} xfailed; a skip is not evidence"
    if not_run:
        return RED, (f"{c['passed']} passed but {c['skipped']} skipped and {c['xfailed']} xfailed: "
                     "every selected test must pass")
    if exit_code != 0:
        return RED, f"pytest exited with code {exit_code} although {c['passed']} test(s) passed"
    return GREEN, f"{c['passed']} of {c['tests']} test(s) passed, none skipped"


def command_verdict(
    exit_code: int | None,
    timed_out: bool,
    outputs: Sequence[tuple[str, int | None]],
    cuda_available: bool | None,
) -> tuple[str, str]:
    """(verdict, reason) of a command target; `outputs` = (path, bytes or None when missing)."""
    if timed_out:
        return TIMEOUT, "killed at the target's wall-clock limit"
    if cuda_available:
        return RED, "torch.cuda.is_available() was True in the child: the GPU was not hidden"
    if exit_code is None:
        return RED, "the command could not be started (see the log)"
    if exit_code != 0:
        return RED, f"the command exited with code {exit_code}"
    missing = [p for p, size in outputs if size is None]
    if missing:
        return RED, f"expected output missing: {', '.join(missing)}"
    empty = [p for p, size in outputs if size == 0]
    if empty:
        return RED, f"expected output is empty: {', '.join(empty)}"
    produced = f"; outputs present: {', '.join(p for p, _ in outputs)}" if outputs else ""
    return GREEN, f"exited 0 within its time limit{produced}"
