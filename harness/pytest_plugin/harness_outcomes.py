"""pytest plugin loaded into a target's own pytest (`-p harness_outcomes`): record every outcome (JUnit hides XPASS).

It only observes, needs nothing but pytest, uses hooks pytest 7, 8 and 9 all have, and writes at session end the JSON
{"pytest", "exitstatus", "tests": [{nodeid, outcome, duration_s, message}], "cuda_available"}."""

import contextlib
import json
import os
import sys

RANK = {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 2, "failed": 3, "error": 4}


def pytest_addoption(parser):
    parser.addoption("--harness-outcomes", default=None, help="write test outcomes as JSON to this file")


def pytest_configure(config):
    if path := config.getoption("--harness-outcomes"):
        config.pluginmanager.register(_Recorder(path), "harness-outcomes-recorder")


def _message(report):
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (file, line, "Skipped: reason")
        return str(longrepr[2])[:300]
    xfail = getattr(report, "wasxfail", "")
    text = getattr(report, "longreprtext", "") or (f"xfail: {xfail}" if xfail else "")
    lines = [line for line in text.splitlines() if line.strip()]
    return next((line[1:].strip() for line in lines if line.startswith("E ")), lines[-1] if lines else "")[:300]


def _outcome(report):
    """passed, failed, error, skipped, xfailed or xpassed; None for a setup or teardown that passed."""
    xfail = hasattr(report, "wasxfail")
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    if report.when == "call":
        return ("xpassed" if xfail else "passed") if report.passed else "failed"
    return "error" if report.failed else None


class _Recorder:
    def __init__(self, path):
        self.path, self.tests = path, {}

    def _record(self, nodeid, outcome, duration, message):
        """Keep the worst outcome of a test's phases (a teardown error beats a pass), summing durations."""
        old = self.tests.get(nodeid)
        total = round(duration + (old["duration_s"] if old else 0.0), 3)
        if old is None or RANK[outcome] >= RANK[old["outcome"]]:
            self.tests[nodeid] = {"nodeid": nodeid, "outcome": outcome, "duration_s": total, "message": message}
        else:
            old["duration_s"] = total

    def pytest_runtest_logreport(self, report):
        if (outcome := _outcome(report)) is not None:
            self._record(report.nodeid, outcome, float(getattr(report, "duration", 0.0) or 0.0), _message(report))

    def pytest_collectreport(self, report):
        if report.failed:
            self._record(report.nodeid or "<collection>", "error", 0.0, _message(report))

    def pytest_sessionfinish(self, session, exitstatus):
        import pytest  # not at the top: the harness imports RANK where pytest may be missing

        torch, cuda = sys.modules.get("torch"), None
        with contextlib.suppress(Exception):  # a broken torch must not break the record
            cuda = None if torch is None else bool(torch.cuda.is_available())
        data = {"pytest": pytest.__version__, "exitstatus": int(exitstatus), "tests": list(self.tests.values()),
                "cuda_available": cuda}
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(self.path + ".tmp", self.path)
