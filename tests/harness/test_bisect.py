"""`bisect` on a tiny 9-commit git repository whose test breaks at commit 6: real git, real steps.

Each step is a real `harness pipeline` run of one tiny pytest test (a few seconds), through the
evidence interpreter as it is (EVIDENCE_PYTHON: no venv is built). The refusals and the step
answers need no run at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

from factory import write_log

from harness import logframe
from harness.bisect import BisectError, bisect, resolve
from harness.context import project_identity
from harness.bisectrun import SKIP, step_exit
from harness.collate import collate
from harness.context import HOME, RunContext
from harness.hub import create_hub
from harness.plan import load_plan
from harness.context import git_state
from harness.schema import Counts, Provenance, Verdict, VerdictRecord

PLAN = """
[plan]
id = "TINY/1"
title = "tiny project"
hub = "reports/{timestamp}/hub"
artifacts = "artifacts/{timestamp}"

[environment]
threads = 1

[[targets]]
name = "value"
session = "value"
kind = "pytest"
selector = "tests/test_value.py"
log = "value.log"
timeout = 90
description = "the value test"
"""
NODE = "tests/test_value.py::test_value"


def value_test(k: int) -> str:
    """Commit k's test: it passes until commit 6 changes the value."""
    return f"def test_value():\n    assert {2 if k >= 6 else 1} == 1, 'value changed at commit 6'\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_history(root: Path, body: Callable[[int], str] = value_test, conftest: dict[int, str] | None = None,
                 count: int = 9, name: str = "tiny") -> list[str]:
    """A repository of `count` commits (commit k's test is `body(k)`); the shas, oldest first."""
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n')
    (root / ".gitignore").write_text("reports/\nartifacts/\n")
    (root / "plan.toml").write_text(PLAN)
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    shas = []
    for k in range(1, count + 1):
        (root / "tests" / "test_value.py").write_text(body(k))
        (root / "tests" / "conftest.py").write_text((conftest or {}).get(k, "# nothing\n"))
        git(root, "add", "-A")
        git(root, "commit", "-q", "--allow-empty", "-m", f"commit {k}")
        shas.append(git(root, "rev-parse", "HEAD"))
    return shas


def state(repo: Path) -> dict[str, object]:
    """What the user sees of a checkout: status, HEAD, branch, index, bisect state, worktrees."""
    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return done.returncode, done.stdout
    return {"status": run("status", "--porcelain", "--untracked-files=all"), "head": run("rev-parse", "HEAD"),
            "branch": run("symbolic-ref", "-q", "HEAD"), "index": run("ls-files", "-s"),
            "bisect log": run("bisect", "log"), "worktrees": run("worktree", "list", "--porcelain")}


def tried(result) -> list:
    return [s for s in result.steps if s.role == "step"]


@pytest.fixture(scope="module")
def evidence_python():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVIDENCE_PYTHON", sys.executable)  # the synthetic project's evidence venv is this interpreter
        yield


@pytest.fixture(scope="module")
def broken_at_6(tmp_path_factory, evidence_python):
    """One bisect good=commit 1, bad=commit 9, and the checkout's state before it."""
    root = tmp_path_factory.mktemp("bisect") / "repo"
    shas = make_history(root)
    before = state(root)
    return root, shas, before, bisect(root, shas[0], shas[8], plan=root / "plan.toml", targets=None)


@pytest.mark.e2e
def test_a_break_is_named_in_at_most_four_steps_with_its_failing_test(broken_at_6):
    root, shas, before, result = broken_at_6
    assert result.first is not None and result.first.sha == shas[5], result
    assert (result.first.subject, result.first.author) == ("commit 6", "Dev <dev@example.com>")
    assert len(tried(result)) <= 4, [s.commit.subject for s in tried(result)]
    assert [s.role for s in result.steps[:2]] == ["older endpoint", "newer endpoint"]
    assert result.against.commit.sha == shas[4] and result.changed.commit.sha == shas[5]
    assert f"- value: {NODE} passed" in result.changes and f"+ value: {NODE} failed" in result.changes
    assert "+ value: RED - 1 failed: AssertionError: value changed at commit 6" in result.changes, result.changes
    report = json.loads((result.folder / "bisect.json").read_text())
    assert report["first"]["sha"] == shas[5] and report["schema"] == "evidence-bisect/1"
    md = (result.folder / "bisect.md").read_text()
    assert f"first commit whose verdict changed: {shas[5]} 'commit 6' by Dev" in md and "| changed " in md
    assert result.folder.parent == root / "reports" and result.folder.name.startswith("bisect-")


@pytest.mark.e2e
def test_the_checkout_is_unchanged_and_no_worktree_is_left(broken_at_6):
    root, _, before, result = broken_at_6
    assert state(root) == before
    assert before["bisect log"][0] != 0, "the checkout was not bisecting, and still is not"
    assert not list((root / ".git" / "worktrees").glob("*"))


@pytest.mark.e2e
def test_hub_endpoints_stand_for_their_commits_and_a_bisect_in_the_checkout_is_kept(broken_at_6):
    root, shas, _, first = broken_at_6
    hubs = {s.role: first.folder / s.hub for s in first.steps[:2]}
    git(root, "bisect", "start")
    git(root, "bisect", "bad")  # the user's own bisect, under way
    try:
        before = state(root)
        result = bisect(root, str(hubs["older endpoint"]), str(hubs["newer endpoint"]), plan=root / "plan.toml",
                        targets=None)
        assert state(root) == before and before["bisect log"][0] == 0
    finally:
        git(root, "bisect", "reset")
    assert result.first is not None and result.first.sha == shas[5]
    assert [s.n for s in result.steps[:2]] == [None, None], "hub endpoints are read, not run"
    assert len(tried(result)) <= 4 and f"+ value: {NODE} failed" in result.changes


@pytest.mark.e2e
def test_a_commit_pytest_cannot_start_at_is_skipped(tmp_path, evidence_python):
    root = tmp_path / "repo"
    shas = make_history(root, conftest={5: "import no_such_module_in_this_repo\n"})  # pytest exits 4 at commit 5
    result = bisect(root, shas[8], shas[0], plan=root / "plan.toml", targets=["value"])  # labels swapped: same search
    assert [c.sha for c in result.candidates] in ([shas[5]], [shas[4], shas[5]]), result.candidates
    at_5 = [s for s in tried(result) if s.commit.sha == shas[4]]  # git's first midpoint of commits 2..9
    assert at_5 and all(s.answer == "skip" and "exit code 4" in s.note for s in at_5), tried(result)


@pytest.mark.parametrize("verdicts, record, expected", [
    ({"a": "GREEN"}, None, 0),
    ({"a": "RED"}, None, 1),
    ({"a": "TIMEOUT"}, None, 1),  # neither endpoint's: changed
    ({"a": "BLOCKED"}, None, SKIP),
    ({"a": "MISSING"}, None, SKIP),
    ({"a": "NOT RUN"}, None, SKIP),
    ({"a": "INCOMPLETE"}, None, SKIP),
    ({"a": "RED"}, dict(exit_code=4), SKIP),  # usage error: no outcome record
    ({"a": "RED"}, dict(exit_code=3), SKIP),
    ({"a": "RED"}, dict(exit_code=2, counts=Counts(1, errors=1)), 1),  # a collection error is a finding
    ({"a": "RED"}, dict(exit_code=1), 1),
])
def test_step_exit_codes(verdicts, record, expected):
    records = {} if record is None else {"a": VerdictRecord("a", "pytest", "a.log", Verdict.RED, **record)}
    assert step_exit(verdicts, records, {"a": "GREEN"}) == expected


def fake_hub(root: Path, hub: Path, plan: Path | None = None) -> Path:
    """A collated hub of the checkout as it is, with a GREEN `value` record, made through the harness's classes."""
    ctx = RunContext(home=HOME, project=root, plan=load_plan(plan or root / "plan.toml"))
    made = create_hub(ctx, explicit=hub, targets=("value",))
    text = (logframe.frame([f"{logframe.FIRST} target value", logframe.OUTPUT]) + f"{NODE} PASSED\n"
            + logframe.frame([logframe.END, "verdict: GREEN - 1 of 1 passed"]))
    seal = write_log(made.path / "value.log", text)
    seal(VerdictRecord("value", "pytest", "value.log", Verdict.GREEN, "1 of 1 passed", exit_code=0,
                       counts=Counts(1, passed=1), tests=({"nodeid": NODE, "outcome": "passed", "duration_s": 0.1},),
                       provenance=Provenance(git_state(root, ())))).write(made.verdict_path("value"))
    collate(ctx, made, ledger=False)
    return made.path


@pytest.fixture
def small(tmp_path, monkeypatch):
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)  # a refusal that failed must not build a venv
    root = tmp_path / "repo"
    return root, make_history(root, count=3)


def at(root: Path, sha: str, hub: Path) -> str:
    """A hub made at commit `sha` (the checkout goes back to its branch afterwards)."""
    branch = git(root, "symbolic-ref", "--short", "HEAD")
    git(root, "checkout", "-q", sha)
    try:
        return str(fake_hub(root, hub))
    finally:
        git(root, "checkout", "-q", branch)


def side_branch(root: Path, base: str) -> str:
    """A commit on a branch started at `base`, after one more commit on the current branch."""
    git(root, "commit", "-q", "--allow-empty", "-m", "on the branch")
    git(root, "checkout", "-q", "-b", "side", base)
    git(root, "commit", "-q", "--allow-empty", "-m", "on the side")
    return git(root, "rev-parse", "HEAD")


def other_project(root: Path, tmp: Path) -> str:
    make_history(tmp / "other", count=1, name="other")  # same files and second would make the same commit
    return str(fake_hub(tmp / "other", tmp / "other-hub"))


def dirty(root: Path, tmp: Path) -> str:
    (root / "tests" / "test_value.py").write_text("# edited, not committed\n")
    try:
        return str(fake_hub(root, tmp / "dirty-hub"))
    finally:
        git(root, "checkout", "-q", "--", "tests/test_value.py")


def other_plan(root: Path, tmp: Path) -> str:
    (tmp / "other.toml").write_text(PLAN.replace('"TINY/1"', '"OTHER/1"'))
    return str(fake_hub(root, tmp / "other-plan-hub", tmp / "other.toml"))


@pytest.mark.parametrize("good, bad, message", [
    (lambda r, s, t: "no-such-rev", lambda r, s, t: s[2], "GOOD 'no-such-rev' is neither a hub folder nor a commit"),
    (lambda r, s, t: s[0], lambda r, s, t: "0" * 40, "BAD '0000000000000000000000000000000000000000' is neither"),
    (lambda r, s, t: s[1], lambda r, s, t: s[1], "both commit"),
    (lambda r, s, t: s[2], lambda r, s, t: side_branch(r, s[0]), "are not in one line of history"),
    (lambda r, s, t: other_project(r, t), lambda r, s, t: s[2], "belongs to another project"),
    (lambda r, s, t: s[0], lambda r, s, t: other_plan(r, t), "was made with plan 'OTHER/1', not 'TINY/1'"),
    (lambda r, s, t: s[0], lambda r, s, t: dirty(r, t), "was made on a dirty tree (tests/test_value.py)"),
    (lambda r, s, t: at(r, s[0], t / "h1"), lambda r, s, t: at(r, s[2], t / "h3"), "nothing to bisect: the endpoints"),
])
def test_refusals_are_one_line_and_nothing_runs(small, tmp_path, good, bad, message):
    root, shas = small
    endpoints = good(root, shas, tmp_path), bad(root, shas, tmp_path)
    with pytest.raises(BisectError) as caught:
        bisect(root, *endpoints, plan=root / "plan.toml", targets=None)
    assert message in str(caught.value) and "\n" not in str(caught.value), caught.value
    assert not (root / "reports").exists(), "a refusal makes no bisect folder"


@pytest.mark.parametrize("ours, theirs, same", [
    (None, None, True),
    ("git@github.com:team/tiny.git", "https://github.com/team/tiny", True),
    ("ssh://git@github.com/team/tiny.git", None, True),
    ("https://github.com/team/tiny", "https://github.com/fork/tiny", False),
])
def test_a_clone_is_the_same_project_and_a_fork_is_not(small, tmp_path, ours, theirs, same):
    root, shas = small
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    git(clone, "remote", "remove", "origin")
    for repo, url in ((root, ours), (clone, theirs)):
        if url:
            git(repo, "remote", "add", "origin", url)
    hub = fake_hub(clone, tmp_path / "clone-hub")
    plan = load_plan(root / "plan.toml")
    if same:
        assert resolve(root, "GOOD", str(hub), plan, project_identity(root)).sha == shas[-1]
    else:
        with pytest.raises(BisectError, match="belongs to another project"):
            resolve(root, "GOOD", str(hub), plan, project_identity(root))


DRIVER = """
import sys
from pathlib import Path
from harness.bisect import bisect
try:
    bisect(Path(sys.argv[1]), sys.argv[2], sys.argv[3], plan=Path(sys.argv[4]), targets=None)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _as_typed_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a suite started with `&` would hand SIGINT down ignored


@pytest.mark.e2e
def test_ctrl_c_mid_step_leaves_the_checkout_unchanged_and_no_worktree(tmp_path):
    root = tmp_path / "repo"
    shas = make_history(root, lambda k: "import time\n\ndef test_value():\n    time.sleep(120)\n" if 1 < k < 9
                        else value_test(k))  # the endpoints are quick; every commit between hangs
    before = state(root)
    env = dict(os.environ, PYTHONPATH=str(HOME), EVIDENCE_PYTHON=sys.executable)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(root), shas[0], shas[8], str(root / "plan.toml")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=_as_typed_in_a_terminal)
    deadline = time.monotonic() + 90
    while not list(root.glob("reports/bisect-*/step-3-*/value.log.partial")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None and list(root.glob("reports/bisect-*/step-3-*/value.log.partial")), "no step started"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 130, out
    assert state(root) == before, out
    assert not list((root / ".git" / "worktrees").glob("*")), "the bisect's worktree is registered still"
    step = next(root.glob("reports/bisect-*/step-3-*"))
    assert (step / "INCOMPLETE").exists() and not step.with_suffix(".json").exists(), "an interrupted step is no answer"
    key = f"{root.name}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]}"
    worktree = Path(tempfile.gettempdir()) / f"harness-bisect-{os.getuid()}" / key
    assert not worktree.exists(), "the bisect's worktree folder is left"
    left = [p for p in Path("/proc").glob("[0-9]*") if str(worktree).encode() in _cmdline(p)]
    assert not left, [_cmdline(p) for p in left]


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
