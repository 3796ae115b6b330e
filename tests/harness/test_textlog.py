"""harness.textlog against the text pytest and the CLI really print (properties: test_textlog_properties.py).

The samples are what pytest 7.4.4, 8.4.2 and 9.2.0 printed for SAMPLE_TESTS (identical but for the
header's platform line and the times; paths shortened); the `*_9` ones are pytest 9.2.0's. The test
test_the_samples_are_what_this_pytest_prints reruns SAMPLE_TESTS with this venv's pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from harness.schema import Verdict
from harness.textlog import (PytestLog, command_log_verdict, last_error_line, log_lines, read_command_log,
                             read_pytest_log)

SAMPLE_TESTS = '''\
def test_pass():
    print("test_sample.py::test_other FAILED")


def test_fail():
    print("test_sample.py::test_fail PASSED [100%]")
    print("============ 2 passed in 0.01s ============")
    assert 1 == 2
'''
HEADERS = {v: f"platform linux -- Python 3.11.7, pytest-{v}, pluggy-1.7.0 -- /tmp/venv/bin/python"
           for v in ("7.4.4", "8.4.2", "9.2.0")}
SESSION = "============================= test session starts =============================="
VV = """\
rootdir: /tmp/tl/s
collecting ... collected 2 items

test_sample.py::test_pass PASSED                                         [ 50%]
test_sample.py::test_fail FAILED                                         [100%]

=================================== FAILURES ===================================
__________________________________ test_fail ___________________________________

    def test_fail():
        print("test_sample.py::test_fail PASSED [100%]")
        print("============ 2 passed in 0.01s ============")
>       assert 1 == 2
E       assert 1 == 2

test_sample.py:8: AssertionError
----------------------------- Captured stdout call -----------------------------
test_sample.py::test_fail PASSED [100%]
============ 2 passed in 0.01s ============
=========================== short test summary info ============================
FAILED test_sample.py::test_fail - assert 1 == 2
========================= 1 failed, 1 passed in 0.02s ==========================
"""
Q_RA_COLOUR = """\
\x1b[32m.\x1b[0m\x1b[32m                                                                        [100%]\x1b[0m
==================================== PASSES ====================================
\x1b[32m\x1b[1m__________________________________ test_pass ___________________________________\x1b[0m
----------------------------- Captured stdout call -----------------------------
test_sample.py::test_other FAILED
\x1b[36m\x1b[1m=========================== short test summary info ============================\x1b[0m
\x1b[32mPASSED\x1b[0m test_sample.py::\x1b[1mtest_pass\x1b[0m
\x1b[32m\x1b[32m\x1b[1m1 passed\x1b[0m\x1b[32m in 0.01s\x1b[0m\x1b[0m
"""
HEAD9 = f"{SESSION}\n{HEADERS['9.2.0']}\nrootdir: /tmp/tl/r\n"
INTERRUPTED_9 = HEAD9 + """\
collecting ... collected 3 items

test_int.py::test_a PASSED                                               [ 33%]
test_int.py::test_b 

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!! KeyboardInterrupt !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
/tmp/tl/proj3/test_int.py:4: KeyboardInterrupt
(to show a full traceback on KeyboardInterrupt use --full-trace)
============================== 1 passed in 0.89s ===============================
"""
TEARDOWN_9 = HEAD9 + """\
collecting ... collected 2 items

test_td.py::test_ok PASSED                                               [ 50%]
test_td.py::test_td PASSED                                               [100%]
test_td.py::test_td ERROR                                                [100%]

==================================== ERRORS ====================================
_________________________ ERROR at teardown of test_td _________________________

    @pytest.fixture
    def td():
        yield
>       raise RuntimeError("teardown boom")
E       RuntimeError: teardown boom

test_td.py:7: RuntimeError
=========================== short test summary info ============================
ERROR test_td.py::test_td - RuntimeError: teardown boom
========================== 2 passed, 1 error in 0.02s ==========================
"""
XDIST_9 = HEAD9 + """\
created: 2/2 workers
2 workers [1 item]

scheduling tests via LoadScheduling

test_td.py::test_ok 
[gw0] [100%] PASSED test_td.py::test_ok 

============================== 1 passed in 1.87s ===============================
"""
COLLECTION_Q_9 = """
==================================== ERRORS ====================================
_________________________ ERROR collecting test_bad.py _________________________
ImportError while importing test module '/tmp/tl/r/c/test_bad.py'.
test_bad.py:1: in <module>
    import nonexistent_module_xyz
E   ModuleNotFoundError: No module named 'nonexistent_module_xyz'
=========================== short test summary info ============================
ERROR test_bad.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
1 error in 0.08s
"""
SUBTESTS_9 = HEAD9 + """\
collecting ... collected 2 items

test_sub.py::test_sub SUBPASSED[loop] (i=0)                              [ 50%]
test_sub.py::test_sub SUBFAILED[loop] (i=1)                              [ 50%]
test_sub.py::test_sub SUBPASSED[loop] (i=2)                              [ 50%]
test_sub.py::test_sub FAILED                                             [ 50%]
test_sub.py::test_ok PASSED                                              [100%]

=================================== FAILURES ===================================
____________________________ test_sub [loop] (i=1) _____________________________

subtests = <_pytest.subtests.Subtests object at 0x7f622b5ae050>

    def test_sub(subtests):
        for i in range(3):
            with subtests.test(msg="loop", i=i):
>               assert i != 1
E               assert 1 != 1

test_sub.py:4: AssertionError
___________________________________ test_sub ___________________________________
contains 1 failed subtest
=========================== short test summary info ============================
SUBFAILED[loop] (i=1) test_sub.py::test_sub - assert 1 != 1
FAILED test_sub.py::test_sub - contains 1 failed subtest
================ 2 failed, 1 passed, 2 subtests passed in 0.05s ================
"""


def vv_log(version: str) -> str:
    return f"{SESSION}\n{HEADERS[version]}\n{VV}"


def shown(log: PytestLog) -> tuple:
    """What a reader compares: verdict, counts and (nodeid, outcome) pairs."""
    return log.verdict, log.counts, sorted((t["nodeid"], t["outcome"]) for t in log.tests)


def lines_of(text: str) -> list[str]:
    return text.split("\n")


# --------------------------------------------------------------------------- real pytest output


@pytest.mark.parametrize("version", HEADERS)
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_real_vv_log_goes_by_the_final_line_not_the_captured_one(version, newline):
    log = read_pytest_log(vv_log(version).replace("\n", newline).split("\n"))
    assert shown(log) == (Verdict.RED, log.counts, [("test_sample.py::test_fail", "failed"),
                                                      ("test_sample.py::test_pass", "passed")]), log.reason
    assert (log.counts.tests, log.counts.passed, log.counts.failed) == (2, 1, 1)
    assert log.reason.startswith("1 failed: line 7: `test_sample.py::test_fail FAILED [100%]`; cause line 16: `E "), \
        log.reason
    assert log.python == "3.11.7"


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_real_coloured_q_ra_log_is_green_and_counts_each_pass_once(newline):
    log = read_pytest_log(Q_RA_COLOUR.replace("\n", newline).split("\n"))
    assert shown(log) == (Verdict.GREEN, log.counts, [("test_sample.py::test_pass", "passed")]), log.reason
    assert log.counts.tests == 1, "the -rA `PASSED` line names the pass the final line counts, it is no second one"
    assert "line 8: `1 passed in 0.01s`; no per-test result lines (a -q log?)" in log.reason, log.reason


@pytest.mark.parametrize(
    ("text", "verdict", "counts", "words"),
    [
        (INTERRUPTED_9, Verdict.RED, (1, 1, 0, 0), "pytest stopped early: line 9: `!!!!!!"),
        (TEARDOWN_9, Verdict.RED, (2, 1, 0, 1), "1 error(s): line 8: `test_td.py::test_td ERROR [100%]`"),
        (XDIST_9, Verdict.GREEN, (1, 1, 0, 0), "1 of 1 selected test(s) passed"),
        (COLLECTION_Q_9, Verdict.RED, (1, 0, 0, 1), "1 error(s) (test_bad.py): line 9: `ERROR test_bad.py`"),
        (SUBTESTS_9, Verdict.RED, (2, 1, 1, 0), "1 failed"),
        ("\n2 deselected in 0.00s\n", Verdict.RED, (0, 0, 0, 0), "no tests ran"),
        (TEARDOWN_9.replace("test_td.py::test_td ERROR ", ""), Verdict.UNKNOWN, None,
         "counts 2 passed, 1 error, but its per-test result lines show 2 passed"),
        (XDIST_9 + "Exception ignored in atexit callback\n", Verdict.UNKNOWN, (1, 1, 0, 0),
         "text follows pytest's final line 12: `====="),
        (XDIST_9.split("=" * 30 + " 1 passed")[0], Verdict.UNKNOWN, None,
         "ends without pytest's final summary line (cut short?); last result line 10: `[gw0] [100%] PASSED"),
    ],
    ids=["keyboard-interrupt", "teardown-error", "xdist", "collection-error-q", "subtests", "all-deselected",
         "result-line-missing", "text-after-final", "cut-short"],
)
def test_real_pytest_9_logs(text, verdict, counts, words):
    log = read_pytest_log(lines_of(text))
    assert log.verdict == verdict, log.reason
    assert words in log.reason, f"expected {words!r} in {log.reason!r}"
    got = log.counts and (log.counts.tests, log.counts.passed, log.counts.failed, log.counts.errors)
    assert got == counts, f"(tests, passed, failed, errors) should be {counts}, got {got}"


def test_a_teardown_error_keeps_the_tests_worst_phase_as_the_harness_plugin_does():
    assert [(t["nodeid"], t["outcome"]) for t in read_pytest_log(lines_of(TEARDOWN_9)).tests] == \
        [("test_td.py::test_ok", "passed"), ("test_td.py::test_td", "error")]


def run_pytest(folder: Path, *args: str) -> str:
    """What this venv's pytest prints, uncoloured unless asked, as a `| tee` would keep it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PY_COLORS", "FORCE_COLOR", "NO_COLOR", "PYTEST_ADDOPTS")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.stdout


@pytest.mark.parametrize(("args", "sample"), [(("-vv",), vv_log("9.2.0")),
                                              (("-q", "-rA", "--color=yes", "test_sample.py::test_pass"), Q_RA_COLOUR)],
                         ids=["vv", "q-rA-colour"])
def test_the_samples_are_what_this_pytest_prints(tmp_path, args, sample):
    (tmp_path / "test_sample.py").write_text(SAMPLE_TESTS)
    real = read_pytest_log(lines_of(run_pytest(tmp_path, *args)))
    assert shown(real) == shown(read_pytest_log(lines_of(sample))), real.reason


# --------------------------------------------------------------------------- command logs, reading in bounded memory

TRACEBACK = """\
Traceback (most recent call last):
  File "/home/teammate/ptycho/ptycho_torch/train.py", line 88, in load
    data = npz["diff3d"]
           ~~~^^^^^^^^^^
KeyError: 'diff3d'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/home/teammate/ptycho/ptycho_torch/train.py", line 402, in <module>
    main()
ValueError: no diffraction in the NPZ: expected `diffraction` or `diff3d`
"""


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (TRACEBACK.split("\n\nDuring")[0], "KeyError: 'diff3d'"),
        (TRACEBACK, "ValueError: no diffraction in the NPZ: expected `diffraction` or `diff3d`"),
        ("Epoch 0:  50%|█████     | 8/16 [00:02<00:02]\rEpoch 0:  56%|█████▋    | 9/16 [00:02<00:02]"
         + TRACEBACK.split("\n\nDuring")[0], "KeyError: 'diff3d'"),
        ('  File "x.py", line 1\n    foo(\n       ^\nSyntaxError: \'(\' was never closed\n', None),
        ("loss 0.04\nTRAIN_RECORD {}\n", None),
    ],
    ids=["one", "chained", "glued-to-a-progress-bar", "no-traceback-header", "none"],
)
def test_last_error_line(text, error):
    assert last_error_line(lines_of(text)) == error


def test_a_command_log_with_a_traceback_is_red_naming_the_exception():
    verdict, reason = command_log_verdict(read_command_log(lines_of("Loading data\n" + TRACEBACK)))
    assert verdict == Verdict.RED
    assert reason == ("the command failed: ValueError: no diffraction in the NPZ: expected `diffraction` or `diff3d`; "
                      "line 2: `Traceback (most recent call last):`")


def test_a_huge_progress_line_is_read_in_bounded_memory_and_keeps_its_tail(tmp_path):
    """40 MB of `\\r`-redrawn progress bar on one line, then Lightning's line glued to its end."""
    log = tmp_path / "manual_cli_smoke_gs2.log"
    with log.open("w", encoding="utf-8") as out:
        out.write("GPU available: False, used: False\n")
        for _ in range(40):
            out.write("\rEpoch 0:  50%|#####     | 8/16 [00:02<00:02,  3.71it/s]" * 18_000)
        out.write("`Trainer.fit` stopped: `max_epochs=1` reached.\nTRAIN_RECORD {\"epochs\": 1}\r\n")
    tracemalloc.start()
    try:
        ran = read_command_log(log_lines(log))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert command_log_verdict(ran) == (Verdict.GREEN,
                                        'completed: line 3: `TRAIN_RECORD {"epochs": 1}` and no traceback')
    assert ran.record == {"epochs": 1}
    assert peak < 16 * 2**20, f"reading a {log.stat().st_size >> 20} MB log peaked at {peak >> 20} MB"


def test_a_pytest_log_with_a_huge_captured_line_is_read_in_bounded_memory(tmp_path):
    log = tmp_path / "pytest_bundle_loader_green.log"
    head, tail = vv_log("9.2.0").split("test_sample.py::test_fail PASSED [100%]\n")
    with log.open("w", encoding="utf-8") as out:
        out.write(head)
        for _ in range(40):
            out.write("x" * 2**20)
        out.write("\n" + tail)
    tracemalloc.start()
    try:
        shown_log = read_pytest_log(log_lines(log))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert shown_log.verdict == Verdict.RED and shown_log.counts.failed == 1, shown_log.reason
    assert peak < 16 * 2**20, f"peaked at {peak >> 20} MB"


def test_log_lines_splits_like_an_editor_counts(tmp_path):
    log = tmp_path / "x.log"
    log.write_bytes(b"a\r\nb\rc\n\nlast")
    assert list(log_lines(log)) == ["a\r", "b\rc", "", "last"]
    assert [line for line in log_lines(log, limit=2)] == ["a\r", "\rc", "", "st"], "an over-long line keeps its tail"
