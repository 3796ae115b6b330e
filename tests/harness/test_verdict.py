"""Verdict rules as pure functions: only a clean, non-empty, all-passed run is GREEN."""

from __future__ import annotations

import json

import pytest

from harness.schema import Verdict
from harness.verdict import PytestOutcomes, command_verdict, load_outcomes, pytest_verdict


def outcomes(*pairs: tuple[str, str], message: str = "") -> PytestOutcomes:
    return PytestOutcomes(tuple({"nodeid": f"tests/test_x.py::{n}", "outcome": o, "duration_s": 0.1,
                                 "message": message} for n, o in pairs))


PASS, FAIL, SKIP = ("test_a", "passed"), ("test_b", "failed"), ("test_c", "skipped")
XFAIL, XPASS, ERROR = ("test_d", "xfailed"), ("test_e", "xpassed"), ("test_f", "error")


@pytest.mark.parametrize(
    ("cases", "exit_code", "verdict", "words"),
    [
        ([PASS], 0, Verdict.GREEN, "1 of 1"),
        ([PASS, PASS], 0, Verdict.GREEN, "2 of 2"),
        ([PASS], 1, Verdict.RED, "exited with code 1"),
        ([PASS, FAIL], 1, Verdict.RED, "1 failed (tests/test_x.py::test_b)"),
        ([FAIL, FAIL], 1, Verdict.RED, "2 failed (tests/test_x.py::test_b, tests/test_x.py::test_b)"),
        ([ERROR], 1, Verdict.RED, "1 error(s) (tests/test_x.py::test_f)"),
        ([SKIP], 0, Verdict.SKIPPED, "1 skipped"),
        ([XFAIL], 0, Verdict.SKIPPED, "1 xfailed"),
        ([XPASS], 0, Verdict.RED, "XPASS"),
        ([PASS, XPASS], 0, Verdict.RED, "XPASS"),
        ([PASS, SKIP], 0, Verdict.RED, "every selected test must pass"),
        ([PASS, XFAIL], 0, Verdict.RED, "1 xfailed"),
        ([], 5, Verdict.RED, "no tests collected"),
        ([], 4, Verdict.RED, "does not exist"),
    ],
)
def test_pytest_verdicts(cases, exit_code, verdict, words):
    got, reason = pytest_verdict(outcomes(*cases), exit_code, timed_out=False, cuda_available=False)
    assert (got, words in reason) == (verdict, True), reason


def test_pytest_timeout_failure_is_timeout():
    stopped = outcomes(("test_f", "failed"), message="Failed: Timeout (>2.0s) from pytest-timeout.")
    assert pytest_verdict(stopped, 1, False, False)[0] == Verdict.TIMEOUT


def test_no_outcome_record_is_red_and_says_why():
    verdict, reason = pytest_verdict(None, 4, False, False)
    assert verdict == Verdict.RED and "no outcome record" in reason and "does not exist" in reason


def test_wall_clock_kill_and_visible_gpu_trump_everything():
    assert pytest_verdict(outcomes(PASS), 0, True, False)[0] == Verdict.TIMEOUT
    assert pytest_verdict(outcomes(PASS), 0, False, True)[0] == Verdict.RED
    seen_inside = PytestOutcomes(outcomes(PASS).tests, 0, cuda_available=True)
    assert "GPU was not hidden" in pytest_verdict(seen_inside, 0, False, None)[1]


def test_counts_keep_xpass_apart_from_pass():
    counts = outcomes(PASS, FAIL, SKIP, XFAIL, XPASS, ERROR).counts
    assert (counts.tests, counts.passed, counts.failed, counts.skipped, counts.xfailed, counts.xpassed,
            counts.errors) == (6, 1, 1, 1, 1, 1, 1)


def test_load_outcomes_reads_the_plugin_record_and_survives_garbage(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"pytest": "7.4.4", "exitstatus": 0, "cuda_available": None,
                                "tests": [{"nodeid": "t::a", "outcome": "passed", "duration_s": 1}]}))
    loaded = load_outcomes(good)
    assert loaded is not None and loaded.counts.passed == 1 and loaded.pytest_version == "7.4.4"
    (tmp_path / "bad.json").write_text("{not json")
    assert load_outcomes(tmp_path / "bad.json") is None and load_outcomes(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "outputs", "verdict", "words"),
    [
        (0, False, [("a/out.zip", 10)], Verdict.GREEN, "outputs present: a/out.zip"),
        (0, False, [], Verdict.GREEN, "exited 0"),
        (2, False, [("a/out.zip", 10)], Verdict.RED, "exited with code 2"),
        (1, False, [], Verdict.RED, "the command exited with code 1: KeyError: 'diff3d'"),
        (None, False, [], Verdict.RED, "could not be started"),
        (0, False, [("a/out.zip", None)], Verdict.RED, "expected output missing: a/out.zip"),
        (0, False, [("a/out.zip", 0)], Verdict.RED, "expected output is empty: a/out.zip"),
        (None, True, [], Verdict.TIMEOUT, "wall-clock limit"),
    ],
)
def test_command_verdicts(exit_code, timed_out, outputs, verdict, words):
    got, reason = command_verdict(exit_code, timed_out, outputs, cuda_available=False, error="KeyError: 'diff3d'")
    assert got == verdict and words in reason, reason


def test_one_failure_with_a_message_puts_the_cause_first():
    broken = outcomes(ERROR, message="FileNotFoundError: Source dataset not found: datasets/Run1084.npz")
    assert pytest_verdict(broken, 1, False, False)[1] == "1 error(s): FileNotFoundError: Source dataset not found: datasets/Run1084.npz"
