"""The ledger step edits plan.md and fix_plan.md exactly as the seed's step 4 / "If Blocked" say, once per hub."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from factory import FIX_PLAN, LEDGER_BASELINE, PLAN, PLAN_MD, context, make_hub, make_project, md_links

from harness.collation import build_collation
from harness.context import HOME
from harness.hub import open_hub
from harness.ledger import (AttemptLinks, LedgerError, LedgerUpdate, append_attempt, apply_ledger, hub_marker,
                            next_attempt_number, record_attempt, set_row_state)

TABLE = """# Plan

| ID | Task | State | Evidence |
| --- | --- | --- | --- |
| B2 | fix | [x] | old |
| B3 | evidence for B3 | [P] | pending |
| C1 | docs after B3 | [ ] | |
"""

FIX = """# Ledger

## [OTHER-001] Something else

### Attempts History

- [2025-01-01] Attempt #7 — other work.

## [ADR-003-BACKEND-API] Backend API

### Attempts History

- [2025-10-20] Attempt #33 — a.
- [2025-10-20] Attempt #34 — b.

## [LATER-002] Next item

Notes.
"""
HUB_A = "plans/active/ADR-003-BACKEND-API/reports/T1/phase_c4d_at_parallel"
HUB_B = "plans/active/ADR-003-BACKEND-API/reports/T2/phase_c4d_at_parallel"


# --------------------------------------------------------------------------- text edits

def test_set_row_state_changes_only_the_row_and_its_evidence_cell() -> None:
    out = set_row_state(TABLE, "B3", "[x]", "[summary.md](s.md)")
    changed = [(a, b) for a, b in zip(TABLE.splitlines(), out.splitlines()) if a != b]
    assert changed == [("| B3 | evidence for B3 | [P] | pending |", "| B3 | evidence for B3 | [x] | [summary.md](s.md) |")]


def test_set_row_state_without_evidence_keeps_the_evidence_cell() -> None:
    done = set_row_state(TABLE, "B3", "[x]", "[summary.md](s.md)")
    assert set_row_state(done, "B3", "[P]").count("| B3 | evidence for B3 | [P] | [summary.md](s.md) |") == 1


def test_set_row_state_on_a_checklist_line() -> None:
    text = "- [x] B2 done\n- [P] B3 parity evidence\n- [ ] C1 (after B3)\n"
    assert set_row_state(text, "B3", "[x]") == "- [x] B2 done\n- [x] B3 parity evidence\n- [ ] C1 (after B3)\n"


@pytest.mark.parametrize(("text", "found"), [(TABLE.replace("| B3 |", "| B4 |"), "no line"),
                                             (TABLE + "| B3 | again | [ ] | |\n", "2 lines")])
def test_set_row_state_needs_exactly_one_row(text: str, found: str) -> None:
    with pytest.raises(LedgerError, match=found):
        set_row_state(text, "B3", "[x]", source="plan.md")


def test_set_row_state_rejects_an_unknown_state() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        set_row_state(TABLE, "B3", "[?]")


@pytest.mark.parametrize(("initiative", "number"), [("ADR-003-BACKEND-API", 35), ("OTHER-001", 8)])
def test_next_attempt_number_is_per_initiative(initiative: str, number: int) -> None:
    assert next_attempt_number(FIX, initiative) == number


def test_next_attempt_number_needs_an_initiative_when_there_are_several_histories() -> None:
    with pytest.raises(LedgerError, match="several 'Attempts History'"):
        next_attempt_number(FIX, None)


def test_append_attempt_lands_at_the_end_of_its_section() -> None:
    out = append_attempt(FIX, "- [2026] Attempt #35 — new.\n  - detail", "ADR-003-BACKEND-API")
    lines = out.splitlines()
    i = lines.index("- [2026] Attempt #35 — new.")
    assert lines[i - 1] == "- [2025-10-20] Attempt #34 — b.", lines[i - 1]
    assert lines[i + 1:i + 4] == ["  - detail", "", "## [LATER-002] Next item"], lines[i + 1:i + 4]


def test_append_attempt_without_history_heading_is_an_error() -> None:
    with pytest.raises(LedgerError, match="no '## Attempts History' heading"):
        append_attempt("# Ledger\n", "- x", None, source="fix_plan.md")


# --------------------------------------------------------------------------- record_attempt

@pytest.fixture
def ledger_root(tmp_path: Path) -> Path:
    """A project holding only the two ledger files (TABLE and FIX)."""
    for rel, text in ((PLAN_MD, TABLE), (FIX_PLAN, FIX)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def record(root: Path, hub: str, green: bool) -> LedgerUpdate:
    links = AttemptLinks(summary=f"{hub}/summary.md", logs=(f"{hub}/a.log",),
                         blocker=None if green else f"{hub}/blocker.log")
    return record_attempt(root, plan_file=PLAN_MD, fix_plan=FIX_PLAN, row="B3", hub_rel=hub,
                          timestamp=hub.split("/")[-2] if "/" in hub else hub, green=green, headline="headline.",
                          details=["d1"], links=links)


def test_green_attempt_marks_the_row_done_and_links_the_summary(ledger_root: Path) -> None:
    update = record(ledger_root, HUB_A, green=True)
    assert (update.state, update.attempt) == ("[x]", 35)
    assert "| B3 | evidence for B3 | [x] | [summary.md](../../T1/phase_c4d_at_parallel/summary.md) (GREEN, T1) |" \
        in (ledger_root / PLAN_MD).read_text()


def test_blocked_attempt_sets_the_row_pending_and_links_the_blocker(ledger_root: Path) -> None:
    record(ledger_root, HUB_A, green=True)
    update = record(ledger_root, HUB_B, green=False)
    assert (update.state, update.attempt) == ("[P]", 36)
    assert "| B3 | evidence for B3 | [P] | [blocker.log](../../T2/phase_c4d_at_parallel/blocker.log) (blocked, T2) |" \
        in (ledger_root / PLAN_MD).read_text()
    fix = (ledger_root / FIX_PLAN).read_text()
    assert fix.count(hub_marker(HUB_A)) == 1 and fix.count(hub_marker(HUB_B)) == 1
    assert f"[blocker.log](../{HUB_B}/blocker.log)" in fix


def test_recording_a_hub_again_changes_nothing(ledger_root: Path) -> None:
    record(ledger_root, HUB_A, green=True)
    record(ledger_root, HUB_B, green=False)
    before = (ledger_root / PLAN_MD).read_text(), (ledger_root / FIX_PLAN).read_text()

    again = record(ledger_root, HUB_A, green=True)  # re-collating the older GREEN hub

    assert again.attempt is None and "already recorded" in (again.skipped_reason or ""), again
    assert ((ledger_root / PLAN_MD).read_text(), (ledger_root / FIX_PLAN).read_text()) == before, \
        "a hub already in the fix plan must not change the row back"


@pytest.mark.parametrize(("absent", "named"), [(FIX_PLAN, "fix plan"), (PLAN_MD, "plan file")])
def test_missing_ledger_file_is_named_and_not_created(ledger_root: Path, absent: str, named: str) -> None:
    (ledger_root / absent).unlink()
    with pytest.raises(LedgerError, match=f"^{named} {absent} not found in .*; create it or pass --no-ledger$"):
        record(ledger_root, HUB_A, green=True)
    assert not (ledger_root / absent).exists(), f"record_attempt must not create {absent}"


def test_concurrent_collates_each_get_their_own_attempt(ledger_root: Path) -> None:
    hubs = [f"plans/active/ADR-003-BACKEND-API/reports/T{i}/phase_c4d_at_parallel" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        updates = list(pool.map(lambda hub: record(ledger_root, hub, green=True), hubs))
    assert sorted(u.attempt for u in updates) == list(range(35, 43)), [u.attempt for u in updates]
    fix = (ledger_root / FIX_PLAN).read_text()
    assert all(fix.count(hub_marker(h)) == 1 for h in hubs), "each hub must be recorded exactly once"


def test_the_lock_file_sits_beside_the_fix_plan(ledger_root: Path) -> None:
    record(ledger_root, HUB_A, green=True)
    assert (ledger_root / FIX_PLAN).with_name(f".{Path(FIX_PLAN).name}.lock").exists(), \
        "the filelock must lock a file beside the fix plan (atomic writes replace the fix plan's inode)"


def test_attempt_links_resolve_for_a_hub_path_with_spaces(ledger_root: Path) -> None:
    hub = "plans/active/ADR-003-BACKEND-API/reports/T1 (retry)/my hub"
    record(ledger_root, hub, green=False)
    for rel, names in ((PLAN_MD, ["blocker.log"]), (FIX_PLAN, ["summary.md", "blocker.log", "a.log"])):
        doc = ledger_root / rel
        links = [(text, (doc.parent / target).resolve()) for text, target in md_links(doc.read_text())
                 if "my hub" in target]
        assert links == [(name, ledger_root / hub / name) for name in names], f"{rel}: {links}"


# --------------------------------------------------------------------------- apply_ledger (collate's step)

def absent_ledger_plan(*absent: str) -> str:
    plan = PLAN
    for rel in absent:
        plan = plan.replace(f'"{rel}"', f'"{rel}.absent"')
    return plan


NO_LEDGER_TABLE = PLAN.split("[ledger]")[0] + "[[targets]]" + PLAN.split("[[targets]]", 1)[1]


@pytest.mark.parametrize(("plan", "hub", "note"), [
    (PLAN, {"partial": ("smoke",)}, "ledger untouched: the run was interrupted"),
    (PLAN, {"targets": ("unit",)}, "ledger untouched: this run selected only part of the plan"),
    (NO_LEDGER_TABLE, {}, "has no complete [ledger] table"),
], ids=["interrupted", "partial", "no-ledger-table"])
def test_apply_ledger_leaves_the_ledger_alone_with_one_line(tmp_path: Path, plan: str, hub: dict, note: str) -> None:
    root = make_project(tmp_path / "proj", plan)
    ctx = context(root)
    before = {p: p.read_bytes() for p in (root / PLAN_MD, root / FIX_PLAN)}
    c = build_collation(ctx, open_hub(make_hub(ctx, **hub), ctx))

    update, text = apply_ledger(c, None)

    assert update is None and note in text, f"expected no update and a note containing {note!r}, got {text!r}"
    assert "\n" not in text, f"the note must be one line: {text!r}"
    assert {p: p.read_bytes() for p in before} == before, "the ledger files must be left as they were"


@pytest.mark.parametrize(("absent", "directory", "named"), [
    ((PLAN_MD,), False, f"plan file {PLAN_MD}.absent not found in "),
    ((FIX_PLAN,), False, f"fix plan {FIX_PLAN}.absent not found in "),
    ((PLAN_MD, FIX_PLAN), False, f"plan file {PLAN_MD}.absent not found and fix plan {FIX_PLAN}.absent not found in "),
    ((FIX_PLAN,), True, f"fix plan {FIX_PLAN}.absent is a directory, not a file, in "),
], ids=["no-plan-file", "no-fix-plan", "neither", "fix-plan-is-a-directory"])
def test_apply_ledger_refuses_a_missing_ledger_file(tmp_path: Path, absent: tuple[str, ...], directory: bool,
                                                    named: str) -> None:
    """With the ledger on, an absent ledger file is an error (exit 0 with "not found" hid a typo in the plan)."""
    root = make_project(tmp_path / "proj", absent_ledger_plan(*absent))
    if directory:
        (root / f"{FIX_PLAN}.absent").mkdir()
    ctx = context(root)
    c = build_collation(ctx, open_hub(make_hub(ctx), ctx))
    with pytest.raises(LedgerError) as raised:
        apply_ledger(c, None)
    assert named in str(raised.value) and str(raised.value).endswith(" or pass --no-ledger"), str(raised.value)
    assert [p.name for p in root.rglob("*.absent")] == (["fix_plan.md.absent"] if directory else []), \
        "apply_ledger must never create a missing ledger file"


def test_apply_ledger_on_a_green_hub_names_row_and_attempt(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    ctx = context(root)
    c = build_collation(ctx, open_hub(make_hub(ctx), ctx))
    update, text = apply_ledger(c, None)
    assert update is not None and update.attempt == 35
    assert text == f"ledger: row B3 → [x], Attempt #35 appended to {FIX_PLAN}", text


# --------------------------------------------------------------------------- the shipped documents

def test_shipped_plan_has_the_rows_the_seed_names() -> None:
    states = {}
    for line in (HOME / PLAN_MD).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in {"B1", "B2", "B3", "C1", "C2", "C3"}:
            states[cells[0]] = cells[2]
    assert set(states) == {"B1", "B2", "B3", "C1", "C2", "C3"}, states
    assert set(states.values()) <= {"[x]", "[P]", "[ ]"}, states  # evidence runs move B3 between [P] and [x]


def test_shipped_fix_plan_continues_after_its_last_attempt() -> None:
    text = (HOME / FIX_PLAN).read_text()
    numbers = [int(n) for n in re.findall(r"Attempt #(\d+)", text)]
    assert max(numbers) >= 34, max(numbers)
    assert next_attempt_number(text, "ADR-003-BACKEND-API") == max(numbers) + 1


def test_ledger_baseline_continues_at_attempt_35_with_b3_pending() -> None:
    assert next_attempt_number((LEDGER_BASELINE / "fix_plan.md").read_text(), "ADR-003-BACKEND-API") == 35
    assert "| B3 " in (LEDGER_BASELINE / "plan.md").read_text()


@pytest.mark.parametrize("finding", ["CONFIG-001", "BUG-TF-001", "POLICY-001", "DATA-001", "FORMAT-001"])
def test_shipped_findings_define_every_id(finding: str) -> None:
    assert f"\n## {finding}\n" in (HOME / "docs" / "findings.md").read_text(), f"docs/findings.md must define {finding}"
