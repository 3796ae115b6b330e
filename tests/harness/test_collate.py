"""collate turns a hub into one verdict, summary.md, junit.xml, a manifest and (only when earned) a ledger entry."""

from __future__ import annotations

import argparse
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from factory import cli
from factory import (FIX_PLAN, LOGS, PLAN, PLAN_MD, SELECTORS, attempts, collated, context, git, make_hub,
                     make_project, row_state, section, table_rows, with_git)

from harness import collate as collate_mod
from harness.context import RunContext
from harness.hub import open_hub
from harness.schema import Counts, GitState, HubFiles, Manifest, RunRecord, Verdict, VerdictRecord
from harness.validate import validate

ATTEMPT = "Attempt #35"  # the ledger baseline's next attempt


def run_main(hub: Path, *extra: str) -> int:
    return cli("collate", hub, *extra)


def collate(ctx: RunContext, hub: Path, *, ledger: bool = True) -> collate_mod.CollateResult:
    return collate_mod.collate(ctx, open_hub(hub, ctx), ledger=ledger)


def ledger_bytes(root: Path) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in (PLAN_MD, FIX_PLAN)}


# --------------------------------------------------------------------------- GREEN and the ledger

def test_green_hub_prints_hub_and_verdict_last_and_exits_0(ctx: RunContext, root: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    hub = make_hub(ctx)
    code = run_main(hub)
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, f"a GREEN hub must exit 0; printed:\n{out}"
    assert out[-2:] == [f"hub: {hub.relative_to(root).as_posix()}", "verdict: GREEN"], \
        f"the last two lines must be the hub and the verdict, got {out[-2:]}"


def test_green_hub_is_finished_and_validates(ctx: RunContext) -> None:
    hub = make_hub(ctx)
    collate(ctx, hub)
    assert not (hub / HubFiles.INCOMPLETE).exists(), "collate must remove INCOMPLETE once the run is finished"
    assert not (hub / HubFiles.BLOCKER).exists(), "a GREEN hub has no blocker.log"
    for name in (HubFiles.SUMMARY, HubFiles.MANIFEST, HubFiles.JUNIT):
        assert (hub / name).is_file(), f"collate must write {name}"
    check = validate(hub)
    assert check.ok, f"a freshly collated GREEN hub must validate, problems: {check.problems}"


def test_green_hub_marks_row_done_and_appends_one_attempt(ctx: RunContext, root: Path) -> None:
    assert row_state(root) == "[P]", "the ledger baseline starts with B3 pending"
    result = collate(ctx, make_hub(ctx))
    assert row_state(root) == "[x]", f"a GREEN hub must mark B3 done; ledger note: {result.ledger_note}"
    new = [a for a in attempts(root) if "TEST/C4.D.B3" in a]
    assert len(new) == 1 and ATTEMPT in new[0] and "**GREEN**" in new[0], \
        f"expected one GREEN {ATTEMPT} for the plan, got {new}"


def test_attempt_links_are_relative_to_fix_plan_and_point_at_real_files(ctx: RunContext, root: Path) -> None:
    collate(ctx, make_hub(ctx))
    text = (root / FIX_PLAN).read_text()
    entry = text[text.index(ATTEMPT):]
    links = [part.split(")")[0] for part in entry.split("](")[1:]]
    assert len(links) == 4, f"expected links to summary.md and the three logs, got {links}"
    for link in links:
        assert not Path(link).is_absolute(), f"{link}: attempt links must be relative"
        assert ((root / FIX_PLAN).parent / link).resolve().is_file(), f"{link}: does not resolve from {FIX_PLAN}"


def test_plan_row_links_the_hub_summary(ctx: RunContext, root: Path) -> None:
    hub = make_hub(ctx)
    collate(ctx, hub)
    b3 = next(line for line in (root / PLAN_MD).read_text().splitlines() if line.startswith("| B3 "))
    link = b3.split("](")[1].split(")")[0]
    assert ((root / PLAN_MD).parent / link).resolve() == (hub / HubFiles.SUMMARY).resolve(), \
        f"row B3 must link this hub's summary.md, links {link}"


def test_collating_twice_adds_one_attempt(ctx: RunContext, root: Path) -> None:
    hub = make_hub(ctx)
    collate(ctx, hub)
    after_first = ledger_bytes(root)

    second = collate(ctx, hub)

    assert second.exit_code == 0, f"re-collating an intact GREEN hub must stay GREEN: {second.collation.overall_reason}"
    assert second.ledger is not None and second.ledger.attempt is None, "the second collate must not number an attempt"
    assert "already recorded" in second.ledger_note, second.ledger_note
    assert ledger_bytes(root) == after_first, "the second collate must leave plan.md and fix_plan.md alone"
    assert sum(ATTEMPT in a for a in attempts(root)) == 1
    assert validate(hub).ok, f"a re-collated hub must validate: {validate(hub).problems}"


def test_no_ledger_writes_hub_files_only(ctx: RunContext, root: Path) -> None:
    before = ledger_bytes(root)
    hub = make_hub(ctx)
    result = collate(ctx, hub, ledger=False)
    assert result.exit_code == 0 and (hub / HubFiles.SUMMARY).is_file()
    assert result.ledger_note == "ledger skipped (--no-ledger)"
    assert ledger_bytes(root) == before, "--no-ledger must not touch plan.md or fix_plan.md"


# --------------------------------------------------------------------------- not GREEN

def test_red_target_writes_blocker_reverts_row_and_appends_blocker_attempt(ctx: RunContext, root: Path) -> None:
    collate(ctx, make_hub(ctx, timestamp="2026-11-29T090000Z"))
    assert row_state(root) == "[x]"

    hub = make_hub(ctx, {"integration": Verdict.RED})
    result = collate(ctx, hub)

    assert (result.exit_code, result.collation.overall) == (1, Verdict.RED)
    assert row_state(root) == "[P]", "a blocked hub must set B3 back to [P]"
    last = attempts(root)[-1]
    assert "Attempt #36" in last and "**BLOCKED**" in last, f"expected a BLOCKED Attempt #36, got {last}"
    assert "blocker.log" in (root / FIX_PLAN).read_text().split("Attempt #36")[1], \
        "the blocker attempt must link blocker.log"


def test_blocker_log_names_the_failing_target_only(ctx: RunContext) -> None:
    hub = make_hub(ctx, {"integration": Verdict.RED})
    collate(ctx, hub, ledger=False)
    blocker = (hub / HubFiles.BLOCKER).read_text()
    for expected in (SELECTORS["integration"], "1 failed: AssertionError: boom", "E   AssertionError: boom",
                     "== integration: RED =="):
        assert expected in blocker, f"blocker.log must contain {expected!r} (selector, reason, log tail):\n{blocker}"
    assert "== unit" not in blocker, "GREEN targets are not listed in blocker.log"


def test_red_manifest_lists_the_blocker(ctx: RunContext) -> None:
    hub = make_hub(ctx, {"integration": Verdict.RED})
    collate(ctx, hub, ledger=False)
    manifest = Manifest.load(hub)
    assert manifest.overall_verdict == "RED"
    blocker = [f for f in manifest.files if f.path == HubFiles.BLOCKER]
    assert blocker and blocker[0].role == "blocker", f"blocker.log must be listed with role 'blocker': {blocker}"


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"no_record": ("unit",)}, "no verdict record"),
    ({"no_log": ("integration",)}, "log pytest_integration_green.log is missing"),
], ids=["no-record", "no-log"])
def test_target_without_record_or_log_is_missing_not_green(ctx: RunContext, root: Path, kwargs: dict, reason: str) -> None:
    hub = make_hub(ctx, **kwargs)
    result = collate(ctx, hub)
    missing = [t for t in result.collation.targets if t.verdict == Verdict.MISSING]
    got = [(t.name, t.verdict, t.reason) for t in result.collation.targets]
    assert len(missing) == 1 and reason in missing[0].reason, f"expected one MISSING target saying {reason!r}, got {got}"
    assert (result.collation.overall, result.exit_code) == (Verdict.RED, 1)
    assert (hub / HubFiles.BLOCKER).is_file()
    assert row_state(root) == "[P]"


@pytest.mark.parametrize(("change", "reason"), [
    (lambda r: replace(r, counts=Counts(tests=0, passed=0)), "record says GREEN but counts are 0/0 passed"),
    (lambda r: replace(r, exit_code=3), "record says GREEN but exit code is 3"),
    (lambda r: replace(r, log="other.log"), "record names log 'other.log'"),
], ids=["counts", "exit-code", "log-name"])
def test_green_record_that_contradicts_itself_is_red(ctx: RunContext, change, reason: str) -> None:
    hub = make_hub(ctx, change={"unit": change})
    unit = collate(ctx, hub, ledger=False).collation.targets[0]
    assert unit.verdict == Verdict.RED and reason in unit.reason, \
        f"expected RED saying {reason!r}, got {unit.verdict}: {unit.reason}"


def test_interrupted_hub_stays_incomplete_and_leaves_ledger_alone(ctx: RunContext, root: Path) -> None:
    before = ledger_bytes(root)
    hub = make_hub(ctx, partial=("smoke",))

    result = collate(ctx, hub)

    assert (result.collation.overall, result.exit_code) == (Verdict.INCOMPLETE, 1)
    assert (hub / HubFiles.INCOMPLETE).exists(), "an interrupted hub must stay visibly incomplete"
    assert ledger_bytes(root) == before, "an interrupted run must not touch the ledger"
    assert "interrupted" in result.ledger_note, result.ledger_note
    assert "smoke" in (hub / HubFiles.BLOCKER).read_text()
    assert "[cli_smoke.log.partial](cli_smoke.log.partial) (unfinished)" in (hub / HubFiles.SUMMARY).read_text()


def test_partial_selection_leaves_ledger_alone(ctx: RunContext, root: Path) -> None:
    before = ledger_bytes(root)
    result = collate(ctx, make_hub(ctx, targets=("unit",)))
    assert result.collation.partial_run and result.collation.overall == Verdict.GREEN, "a partial hub can be GREEN"
    assert [t.name for t in result.collation.targets] == ["unit"], "its verdict covers the targets it selected"
    assert "a partial hub (1 of 3 targets) never marks it" in result.ledger_note, result.ledger_note
    assert ledger_bytes(root) == before


# --------------------------------------------------------------------------- the production-code guard

def test_src_change_during_run_is_not_green_and_named(ctx: RunContext, root: Path) -> None:
    hub = make_hub(ctx)
    (root / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 1  # 'fixed' during an evidence run\n")

    result = collate(ctx, hub)

    assert (result.collation.overall, result.exit_code) == (Verdict.RED, 1)
    assert result.collation.production_changes == {"at collate": ("src/pkg/core.py",)}
    env = {r[0]: r[1] for r in table_rows(section((hub / HubFiles.SUMMARY).read_text(), "Environment"))}
    assert env["Production code (src) changed"] == "src/pkg/core.py", env
    assert "src/pkg/core.py" in (hub / HubFiles.BLOCKER).read_text()
    assert row_state(root) == "[P]"


def test_src_change_at_start_is_not_green(ctx: RunContext, root: Path) -> None:
    (root / "src" / "pkg" / "new_module.py").write_text("x = 1\n")  # untracked production code
    hub = make_hub(ctx)
    (root / "src" / "pkg" / "new_module.py").unlink()  # gone again by collate: still not GREEN
    result = collate(ctx, hub, ledger=False)
    assert result.collation.overall == Verdict.RED
    assert result.collation.production_changes == {"at run start": ("src/pkg/new_module.py",)}


def test_src_change_at_a_target_start_is_not_green(ctx: RunContext) -> None:
    hub = make_hub(ctx, change={"integration": with_git(production_changed=("src/pkg/core.py",))})
    result = collate(ctx, hub, ledger=False)
    assert result.collation.overall == Verdict.RED
    assert result.collation.production_changes == {"at integration start": ("src/pkg/core.py",)}


def test_src_change_committed_during_run_is_not_green(ctx: RunContext, root: Path) -> None:
    hub = make_hub(ctx)
    (root / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 3\n")
    git(root, "commit", "-q", "-am", "sneak a fix in")
    result = collate(ctx, hub, ledger=False)
    assert result.collation.overall == Verdict.RED
    (phase, files), = result.collation.production_changes.items()
    assert phase.startswith("committed during the run") and files == ("src/pkg/core.py",), (phase, files)


PRODUCTION_LIB = '[project]\nproduction = ["lib"]\n' + PLAN


@pytest.mark.parametrize(("changed", "verdict"), [("lib/engine.py", Verdict.RED), ("src/pkg/core.py", Verdict.GREEN)])
def test_guard_watches_the_plans_production_folders(tmp_path: Path, changed: str, verdict: Verdict) -> None:
    root = make_project(tmp_path / "proj", PRODUCTION_LIB)
    (root / "lib").mkdir()
    (root / "lib" / "engine.py").write_text("A = 1\n")
    git(root, "add", "lib")
    git(root, "commit", "-q", "-m", "lib")
    ctx = context(root)
    hub = make_hub(ctx)
    (root / changed).write_text("changed during the run\n")
    result = collate(ctx, hub, ledger=False)
    assert result.collation.overall == verdict, \
        f"with production = ['lib'], a change to {changed} must make the hub {verdict}: {result.collation.overall_reason}"
    if verdict == Verdict.RED:
        assert "production code (lib) written during the run or differing from HEAD (lib/engine.py)" in result.collation.overall_reason


def test_dirty_tree_outside_src_is_a_warning_not_a_blocker(root: Path) -> None:
    (root / FIX_PLAN).write_text((root / FIX_PLAN).read_text() + "\n")
    ctx = context(root)
    hub = make_hub(ctx)
    result = collate(ctx, hub, ledger=False)
    assert result.collation.overall == Verdict.GREEN, result.collation.overall_reason
    risks = section((hub / HubFiles.SUMMARY).read_text(), "Remaining risks")
    assert "Warning: The working tree was dirty" in risks and FIX_PLAN in risks, risks


def test_hub_whose_checkout_lost_git_cannot_be_green(ctx: RunContext, root: Path) -> None:
    hub = make_hub(ctx)
    shutil.rmtree(root / ".git")
    result = collate(ctx, hub, ledger=False)
    assert result.collation.overall == Verdict.RED
    assert "production-code guard not checked" in result.collation.overall_reason, result.collation.overall_reason


def test_hub_of_a_checkout_without_git_cannot_be_green(ctx: RunContext, root: Path) -> None:
    """A hub made in a checkout git cannot read (commit given by --project-commit) is never GREEN."""
    hub = make_hub(ctx)
    run = RunRecord.load(hub)
    replace(run, git=GitState("unknown", None, note=f"{root} is not a git repository"), project_commit="c0ffee" * 6,
            commit_source="--project-commit").write(hub)
    shutil.rmtree(root / ".git")

    result = collate(RunContext(ctx.home, ctx.project, ctx.plan, project_commit="c0ffee" * 6), hub, ledger=False)

    assert (result.collation.overall, result.exit_code) == (Verdict.RED, 1)
    reason = result.collation.overall_reason
    assert "commit c0ffeec0ffee (--project-commit); production-code guard not checked" in reason, reason
    risks = section((hub / HubFiles.SUMMARY).read_text(), "Remaining risks")
    assert "**Blocker:** The checkout is not a git repository" in risks, risks


# --------------------------------------------------------------------------- the ledger files

@pytest.mark.parametrize("absent", [(PLAN_MD,), (FIX_PLAN,), (PLAN_MD, FIX_PLAN)], ids=["plan-file", "fix-plan", "both"])
def test_absent_ledger_files_fail_collate_in_one_line_and_are_not_created(tmp_path: Path, absent: tuple[str, ...],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    plan = PLAN
    for rel in absent:
        plan = plan.replace(f'"{rel}"', f'"{Path(rel).with_name("absent_" + Path(rel).name)}"')
    root = make_project(tmp_path / "proj", plan)
    ctx = context(root)
    names = [str(Path(rel).with_name("absent_" + Path(rel).name)) for rel in absent]

    code = run_main(make_hub(ctx))

    lines = [line for line in capsys.readouterr().out.splitlines() if "ledger" in line]
    assert len(lines) == 1, f"expected one line about the ledger, got {lines}"
    assert all(name in lines[0] for name in names) and lines[0].startswith("ledger NOT updated: "), lines[0]
    assert lines[0].endswith(" not found in " + str(root) + "; create " + ("it" if len(names) == 1 else "them")
                             + " or pass --no-ledger"), lines[0]
    assert not any((root / name).exists() for name in names), f"collate must never create {names}"
    assert code != 0, "with the ledger on, a ledger file that is not there makes collate fail"


def test_plan_without_its_ledger_row_is_reported_and_fails(ctx: RunContext, root: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    plan_md = root / PLAN_MD
    plan_md.write_text("\n".join(line for line in plan_md.read_text().splitlines() if not line.startswith("| B3 ")))
    before = ledger_bytes(root)
    code = run_main(make_hub(ctx))
    out = capsys.readouterr().out
    assert code == 2, "a ledger that cannot be updated is a user mistake: exit 2"
    assert "ledger NOT updated:" in out and "'B3'" in out, out
    assert ledger_bytes(root) == before, "a failed ledger update must leave both files unchanged"


# --------------------------------------------------------------------------- junit.xml

HUBS = {
    "green": {},
    "red": {"verdicts": {"integration": Verdict.RED}},
    "missing": {"no_record": ("smoke",)},
    "interrupted": {"partial": ("smoke",)},
}


@pytest.mark.parametrize("kind", HUBS)
def test_junit_has_one_testcase_per_target_and_a_failure_for_each_non_green(ctx: RunContext, kind: str) -> None:
    kwargs = dict(HUBS[kind])
    hub = make_hub(ctx, kwargs.pop("verdicts", None), **kwargs)
    c = collate(ctx, hub, ledger=False).collation

    suite = ET.parse(hub / HubFiles.JUNIT).getroot().find("testsuite")
    assert suite is not None, "junit.xml must hold a <testsuite>"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    expected = [t.name for t in c.targets] + ["(overall verdict)"]
    assert list(cases) == expected, f"expected one testcase per plan target and one for the hub, got {list(cases)}"
    assert (cases["(overall verdict)"].find("failure") is None) == c.green
    for t in c.targets:
        failure = cases[t.name].find("failure")
        if t.verdict == Verdict.GREEN:
            assert failure is None, f"GREEN target {t.name} must not fail in junit.xml"
        else:
            assert failure is not None, f"{t.name} is {t.verdict}: junit.xml must show a <failure>"
            assert failure.get("type") == str(t.verdict) and failure.get("message") == t.reason
            assert failure.text == f"{t.verdict}: {t.reason}"
    assert suite.get("failures") == str(sum(t.verdict != Verdict.GREEN for t in c.targets) + (not c.green))


def test_junit_fails_a_hub_whose_targets_are_green_but_whose_guard_is_not(ctx: RunContext) -> None:
    """Every target GREEN, production code changed: CI must not show the evidence as passing."""
    hub = make_hub(ctx)
    (ctx.project / "src" / "pkg" / "core.py").write_text("GRIDSIZE = 3\n")
    c = collate(ctx, hub, ledger=False).collation
    assert not c.green and all(t.verdict == Verdict.GREEN for t in c.targets)
    overall = next(case for case in ET.parse(hub / HubFiles.JUNIT).getroot().iter("testcase")
                   if case.get("name") == "(overall verdict)")
    assert overall.find("failure") is not None and "differing from HEAD" in overall.find("failure").get("message")


def test_junit_is_listed_in_the_manifest(ctx: RunContext) -> None:
    hub = collated(ctx)
    entries = [f for f in Manifest.load(hub).files if f.path == HubFiles.JUNIT]
    assert len(entries) == 1 and entries[0].role == "junit", f"junit.xml must be listed once with role 'junit': {entries}"
    assert entries[0].bytes == (hub / HubFiles.JUNIT).stat().st_size


# --------------------------------------------------------------------------- inputs collate refuses

def test_folder_without_run_json_gets_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hub").mkdir()
    assert run_main(tmp_path / "hub") == 2
    err = capsys.readouterr().err
    assert "run.json" in err and "not a hub the harness created" in err, err


def test_collate_reads_every_plan_log_name(ctx: RunContext) -> None:
    result = collate(ctx, make_hub(ctx), ledger=False)
    assert [t.log for t in result.collation.targets] == list(LOGS.values())
    assert all(t.log_present for t in result.collation.targets)


def test_recollating_a_tampered_hub_is_refused(ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    hub = collated(ctx, {"unit": Verdict.RED})
    path = hub / HubFiles.verdict("unit")
    laundered = replace(VerdictRecord.load(path), verdict=Verdict.GREEN, counts=Counts(tests=1, passed=1), exit_code=0)
    laundered.write(path)  # launder the RED verdict, then try to re-collate

    assert run_main(hub, "--no-ledger") == 2
    err = capsys.readouterr().err
    assert "refusing to re-collate" in err and "verdicts/unit.json: size changed" in err, err
    assert Manifest.load(hub).overall_verdict == "RED", "the refused collate must leave the manifest as it was"
