"""Properties of harness.textlog on logs of random outcomes, rendered in pytest's styles by `render`.

Whatever the outcomes, style (-q, -v, -rA), colour or line ends, and whatever the tests printed into
their captured output, the verdict is the one BRIEF §4 gives those outcomes; a log cut before its
final line is UNKNOWN; junk never raises. test_the_renderer_reads_like_real_pytest checks the
renderer against this venv's pytest for the same outcomes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict
from typing import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_textlog import HEADERS, SESSION, lines_of, run_pytest, shown

from harness.schema import Verdict
from harness.textlog import command_log_verdict, read_command_log, read_pytest_log
from harness.verdict import OUTCOMES

SETTINGS = settings(database=None, deadline=None, max_examples=150)  # no example database in the checkout

WORDS = dict(zip(OUTCOMES, ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")))
ORDER = ("failed", "passed", "skipped", "xfailed", "xpassed", "error")  # the order of pytest's final line
SOURCE = {"passed": "def test_{i}():\n    print('tests/test_x.py::test_{i} FAILED')\n",
          "failed": "def test_{i}():\n    print('tests/test_x.py::test_{i} PASSED')\n    assert False\n",
          "error": "def test_{i}(broken):\n    pass\n",
          "skipped": "@pytest.mark.skip(reason='why')\ndef test_{i}():\n    pass\n",
          "xfailed": "@pytest.mark.xfail(reason='why')\ndef test_{i}():\n    assert False\n",
          "xpassed": "@pytest.mark.xfail(reason='why')\ndef test_{i}():\n    pass\n"}


def sep(title: str, char: str = "=") -> str:
    """pytest's section line: equal fills up to 80 columns, at least one each side."""
    fill = char * max((80 - len(title) - 2) // 2, 1)
    line = f"{fill} {title} {fill}"
    return line + char if len(line) < 80 else line


def render(outcomes: Sequence[str], style: str, captured: Sequence[str] = ("hello",)) -> str:
    """The log pytest writes for tests/test_x.py::test_<i> with these outcomes; style `q`, `v` or `rA` (-v -rA).

    Every failure and error shows `captured` as its output, and under -rA every pass does.
    """
    ids = [f"tests/test_x.py::test_{i}" for i in range(len(outcomes))]
    if style == "q":
        lines = ["".join(".FEsxX"[OUTCOMES.index(o)] for o in outcomes).ljust(73) + "[100%]"] if ids else [""]
    else:
        lines = [SESSION, HEADERS["9.2.0"], "rootdir: /work", f"collecting ... collected {len(ids)} items", ""]
        lines += [f"{n} {WORDS[o]}{' (why)' if o in ('skipped', 'xfailed') else ''}".ljust(73)
                  + f"[{(i + 1) * 100 // len(ids):3d}%]" for i, (n, o) in enumerate(zip(ids, outcomes))] + [""]
    for section, outcome in (("ERRORS", "error"), ("FAILURES", "failed"), ("PASSES", "passed")):
        shown_here = [n for n, o in zip(ids, outcomes) if o == outcome and (style == "rA" or outcome != "passed")]
        lines += [sep(section)] if shown_here else []
        for n in shown_here:
            title = f"{'ERROR at setup of ' if outcome == 'error' else ''}{n.rsplit('::', 1)[1]}"
            trace = [] if outcome == "passed" else ["", ">       assert False", "E       assert False", "",
                                                    "tests/test_x.py:3: AssertionError"]
            lines += [sep(title, "_"), *trace, sep("Captured stdout call", "-"), *captured]
    summary = [f"{WORDS[o]} {n}" + (" - assert False" if o in ("failed", "error") else " - why" if o[0] == "x" else "")
               if o != "skipped" else "SKIPPED [1] tests/test_x.py:3: why"
               for n, o in zip(ids, outcomes) if style == "rA" or o in ("failed", "error")]
    lines += [sep("short test summary info"), *summary] if summary else []
    counts = Counter(outcomes)
    body = ", ".join(f"{counts[o]} {o}{'s' if o == 'error' and counts[o] > 1 else ''}" for o in ORDER if counts[o])
    final = f"{body or 'no tests ran'} in 0.12s"
    return "\n".join(lines + [final if style == "q" else sep(final)]) + "\n"


def colour(text: str) -> str:
    """Escape codes around pytest's words, counts and banners, as `--color=yes` writes them."""
    return re.sub(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS|\d+ [a-z]+|=+|_+)", "\x1b[32m\x1b[1m\\1\x1b[0m", text)


def implied(outcomes: Sequence[str]) -> Verdict:
    """BRIEF §4, written out again: GREEN only when tests ran and every one passed."""
    if not outcomes or {"failed", "error", "xpassed"} & set(outcomes):
        return Verdict.RED
    if "passed" not in outcomes:
        return Verdict.SKIPPED
    return Verdict.GREEN if set(outcomes) == {"passed"} else Verdict.RED


NODE = st.integers(0, 9).map(lambda i: f"tests/test_x.py::test_{i}")
FAKE = st.one_of(
    st.builds(lambda n, w, tail: f"{n} {w}{tail}", NODE, st.sampled_from(list(WORDS.values())),
              st.sampled_from(["", " [100%]", "                    [ 50%]"])),
    st.builds(lambda n, w: f"[gw0] [100%] {w} {n}", NODE, st.sampled_from(list(WORDS.values()))),
    st.builds(lambda k, w, framed: sep(f"{k} {w} in 0.01s") if framed else f"{k} {w} in 0.01s",
              st.integers(0, 9), st.sampled_from(["passed", "failed", "errors", "skipped"]), st.booleans()),
    st.builds(lambda w, n: f"{w} {n} - boom", st.sampled_from(["PASSED", "FAILED"]), NODE),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\n\r!"), max_size=30),
)
STYLED = dict(outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=7), style=st.sampled_from(["q", "v", "rA"]),
              coloured=st.booleans(), crlf=st.booleans())


def styled(outcomes: list[str], style: str, coloured: bool, crlf: bool, captured: Sequence[str] = ("hello",)) -> str:
    text = render(outcomes, style, captured)
    text = colour(text) if coloured else text
    return text.replace("\n", "\r\n") if crlf else text


@SETTINGS
@given(**STYLED, captured=st.lists(FAKE, max_size=6))
def test_the_verdict_is_the_one_the_outcomes_imply_whatever_the_tests_printed(outcomes, style, coloured, crlf,
                                                                               captured):
    log = read_pytest_log(lines_of(styled(outcomes, style, coloured, crlf, captured)))
    assert log.verdict == implied(outcomes), f"{style}: {log.reason}"
    assert Counter({o: n for o, n in asdict(log.counts).items() if n and o != "tests"}) == \
        Counter("errors" if o == "error" else o for o in outcomes), log.counts


@SETTINGS
@given(**STYLED, data=st.data())
def test_a_log_cut_before_its_final_line_is_never_green(outcomes, style, coloured, crlf, data):
    lines = lines_of(styled(outcomes, style, coloured, crlf))
    cut = data.draw(st.integers(0, len(lines) - 3))  # the last two: the final line and the empty one after it
    assert read_pytest_log(lines[:cut + 1]).verdict == Verdict.UNKNOWN


@SETTINGS
@given(st.lists(st.text(max_size=200), max_size=30))
def test_random_junk_never_raises(lines):
    assert read_pytest_log(lines).verdict in Verdict
    assert command_log_verdict(read_command_log(lines))[0] in Verdict


@pytest.mark.parametrize("outcomes", [["passed", "passed"], list(OUTCOMES)], ids=["all-passed", "one-of-each"])
@pytest.mark.parametrize(("style", "args"), [("q", ["-q"]), ("v", ["-v"]), ("rA", ["-v", "-rA"])])
def test_the_renderer_reads_like_real_pytest(tmp_path, outcomes, style, args):
    """The fake the properties use reads exactly as what pytest prints for the same outcomes."""
    (tmp_path / "tests").mkdir()
    source = "import pytest\n\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError('setup')\n\n\n"
    (tmp_path / "tests" / "test_x.py").write_text(source + "\n\n".join(SOURCE[o].format(i=i)
                                                                       for i, o in enumerate(outcomes)))
    real = read_pytest_log(lines_of(run_pytest(tmp_path, *args, "tests/test_x.py")))
    assert shown(real) == shown(read_pytest_log(lines_of(render(outcomes, style)))), real.reason
