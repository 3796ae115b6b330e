"""Verdict rules as pure functions: only a clean, non-empty, all-passed run is GREEN."""

from __future__ import annotations

import pytest

from harness.verdict import classname_to_nodeid, command_verdict, parse_junit, pytest_verdict

CASE = '<testcase classname="tests.test_x" name="{name}" time="0.5">{body}</testcase>'


def junit(*cases: tuple[str, str]) -> str:
    body = "".join(CASE.format(name=n, body=b) for n, b in cases)
    return f'<testsuites><testsuite name="pytest" tests="{len(cases)}">{body}</testsuite></testsuites>'


PASS = ("test_a", "")
FAIL = ("test_b", '<failure message="assert 1 == 2">trace</failure>')
SKIP = ("test_c", '<skipped type="pytest.skip" message="nope" />')
XFAIL = ("test_d", '<skipped type="pytest.xfail" message="known" />')
ERROR = ("test_e", '<error message="fixture broke" />')
TIMEOUT = ("test_f", '<failure message="Failed: Timeout (&gt;2.0s) from pytest-timeout.">x</failure>')


@pytest.mark.parametrize(
    ("cases", "exit_code", "verdict", "words"),
    [
        ([PASS], 0, "GREEN", "1 of 1"),
        ([PASS, PASS], 0, "GREEN", "2 of 2"),
        ([PASS], 1, "RED", "exited with code 1"),
        ([PASS, FAIL], 1, "RED", "1 failed (tests/test_x.py::test_b)"),
        ([ERROR], 1, "RED", "error"),
        ([SKIP], 0, "SKIPPED", "1 skipped"),
        ([XFAIL], 0, "SKIPPED", "1 xfailed"),
        ([PASS, SKIP], 0, "RED", "every selected test must pass"),
        ([PASS, XFAIL], 0, "RED", "1 xfailed"),
        ([], 5, "RED", "no tests collected"),
        ([TIMEOUT], 1, "TIMEOUT", "pytest-timeout stopped"),
    ],
)
def test_pytest_verdicts(cases, exit_code, verdict, words):
    result = parse_junit(junit(*cases), lambda rel: rel == "tests/test_x.py")
    got, reason = pytest_verdict(result, exit_code, timed_out=False, cuda_available=False)
    assert (got, words in reason) == (verdict, True), reason


def test_counts_and_outcomes_from_junit():
    result = parse_junit(junit(PASS, FAIL, SKIP, XFAIL, ERROR))
    assert result.counts == {"tests": 5, "passed": 1, "failed": 1, "errors": 1, "skipped": 1, "xfailed": 1}
    assert [t.outcome for t in result.tests] == ["passed", "failed", "skipped", "xfailed", "error"]


def test_missing_junit_wall_clock_timeout_and_visible_gpu_are_never_green():
    assert pytest_verdict(None, 4, False, False)[0] == "RED"
    assert pytest_verdict(parse_junit(junit(PASS)), None, True, False)[0] == "TIMEOUT"
    verdict, reason = pytest_verdict(parse_junit(junit(PASS)), 0, False, True)
    assert verdict == "RED" and "GPU" in reason


def test_nodeid_from_classname():
    exists = {"tests/torch/test_workflows_components.py"}.__contains__
    assert classname_to_nodeid("tests.torch.test_workflows_components.TestWorkflowsComponentsTraining",
                               "test_lightning_training_respects_gridsize", exists) == (
        "tests/torch/test_workflows_components.py::TestWorkflowsComponentsTraining::"
        "test_lightning_training_respects_gridsize")
    assert classname_to_nodeid("tests.torch.test_workflows_components", "test_x[a-b]", exists) == (
        "tests/torch/test_workflows_components.py::test_x[a-b]")
    # a collection error has no class name; its name is the module
    assert classname_to_nodeid("", "tests.torch.test_workflows_components", exists) == (
        "tests/torch/test_workflows_components.py")


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "outputs", "verdict", "words"),
    [
        (0, False, [("a/wts.h5.zip", 10)], "GREEN", "outputs present: a/wts.h5.zip"),
        (0, False, [], "GREEN", "exited 0"),
        (0, False, [("a/wts.h5.zip", None)], "RED", "missing: a/wts.h5.zip"),
        (0, False, [("a/last.ckpt", 0)], "RED", "empty: a/last.ckpt"),
        (2, False, [("a/wts.h5.zip", 10)], "RED", "code 2"),
        (None, True, [], "TIMEOUT", "wall-clock"),
        (None, False, [], "RED", "could not be started"),
    ],
)
def test_command_verdicts(exit_code, timed_out, outputs, verdict, words):
    got, reason = command_verdict(exit_code, timed_out, outputs, cuda_available=False)
    assert got == verdict and words in reason, reason
