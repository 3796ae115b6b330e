"""The ledger step edits plan.md and fix_plan.md exactly as the seed's step 4 / "If Blocked" say, once per hub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from collatehub import FIX_PLAN, LEDGER_BASELINE, PLAN_MD, REPO

from harness.ledger import (
    AttemptLinks,
    LedgerError,
    append_attempt,
    hub_marker,
    next_attempt_number,
    record_attempt,
    set_row_state,
)

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


def test_set_row_state_changes_only_the_row_and_its_evidence_cell() -> None:
    out = set_row_state(TABLE, "B3", "[x]", "[summary.md](s.md)")
    changed = [(a, b) for a, b in zip(TABLE.splitlines(), out.splitlines()) if a != b]
    assert changed == [("| B3 | evidence for B3 | [P] | pending |", "| B3 | evidence for B3 | [x] | [summary.md](s.md) |")]
    assert set_row_state(out, "B3", "[P]").count("| B3 | evidence for B3 | [P] |") == 1


def test_set_row_state_on_a_checklist_line() -> None:
    text = "- [x] B2 done\n- [P] B3 parity evidence\n- [ ] C1 (after B3)\n"
    assert set_row_state(text, "B3", "[x]") == "- [x] B2 done\n- [x] B3 parity evidence\n- [ ] C1 (after B3)\n"


@pytest.mark.parametrize(("text", "found"), [(TABLE.replace("| B3 |", "| B4 |"), "no line"),
                                             (TABLE + "| B3 | again | [ ] | |\n", "2 lines")])
def test_set_row_state_needs_exactly_one_row(text: str, found: str) -> None:
    with pytest.raises(LedgerError, match=found):
        set_row_state(text, "B3", "[x]", source="plan.md")


def test_next_attempt_number_is_per_initiative() -> None:
    assert next_attempt_number(FIX, "ADR-003-BACKEND-API") == 35
    assert next_attempt_number(FIX, "OTHER-001") == 8
    with pytest.raises(LedgerError, match="several 'Attempts History'"):
        next_attempt_number(FIX, None)


def test_append_attempt_lands_at_the_end_of_its_section() -> None:
    out = append_attempt(FIX, "- [2026] Attempt #35 — new.\n  - detail", "ADR-003-BACKEND-API")
    lines = out.splitlines()
    i = lines.index("- [2026] Attempt #35 — new.")
    assert lines[i - 1] == "- [2025-10-20] Attempt #34 — b."
    assert lines[i + 1] == "  - detail" and lines[i + 2] == "" and lines[i + 3] == "## [LATER-002] Next item"


def test_append_attempt_without_history_heading_is_an_error() -> None:
    with pytest.raises(LedgerError, match="no '## Attempts History' heading"):
        append_attempt("# Ledger\n", "- x", None, source="fix_plan.md")


def _project(tmp_path: Path) -> Path:
    for rel, text in ((PLAN_MD, TABLE), (FIX_PLAN, FIX)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def _record(root: Path, hub: str, green: bool):
    links = AttemptLinks(summary=f"{hub}/summary.md", logs=(f"{hub}/a.log",),
                         blocker=None if green else f"{hub}/blocker.log")
    return record_attempt(root, plan_file=PLAN_MD, fix_plan=FIX_PLAN, row="B3", hub_rel=hub, timestamp=hub.split("/")[-2] if "/" in hub else hub,
                          green=green, headline="headline.", details=["d1"], links=links)


def test_record_attempt_green_then_blocked_then_idempotent(tmp_path: Path) -> None:
    root = _project(tmp_path)
    hub_a = "plans/active/ADR-003-BACKEND-API/reports/T1/phase_c4d_at_parallel"
    hub_b = "plans/active/ADR-003-BACKEND-API/reports/T2/phase_c4d_at_parallel"

    first = _record(root, hub_a, green=True)
    assert (first.state, first.attempt) == ("[x]", 35)
    assert "| B3 | evidence for B3 | [x] | [summary.md](../../T1/phase_c4d_at_parallel/summary.md) (GREEN, T1) |" \
        in (root / PLAN_MD).read_text()

    second = _record(root, hub_b, green=False)
    assert (second.state, second.attempt) == ("[P]", 36)
    plan = (root / PLAN_MD).read_text()
    assert "| B3 | evidence for B3 | [P] | [blocker.log](../../T2/phase_c4d_at_parallel/blocker.log) (blocked, T2) |" in plan
    fix = (root / FIX_PLAN).read_text()
    assert fix.count(hub_marker(hub_a)) == 1 and fix.count(hub_marker(hub_b)) == 1
    assert f"[blocker.log](../{hub_b}/blocker.log)" in fix

    again = _record(root, hub_a, green=True)  # re-collating the older GREEN hub changes nothing
    assert again.attempt is None and "already recorded" in (again.skipped_reason or "")
    assert (root / FIX_PLAN).read_text() == fix and (root / PLAN_MD).read_text() == plan


def test_missing_ledger_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fix_plan.md"):
        (tmp_path / PLAN_MD).parent.mkdir(parents=True)
        (tmp_path / PLAN_MD).write_text(TABLE)
        _record(tmp_path, "hub", green=True)


def test_shipped_plan_has_the_rows_the_seed_names() -> None:
    text = (REPO / PLAN_MD).read_text()
    states = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in {"B1", "B2", "B3", "C1", "C2", "C3"}:
            states[cells[0]] = cells[2]
    assert set(states) == {"B1", "B2", "B3", "C1", "C2", "C3"}, states
    assert set(states.values()) <= {"[x]", "[P]", "[ ]"}, states  # evidence runs move B3 between [P] and [x]


def test_shipped_fix_plan_continues_after_its_last_attempt() -> None:
    text = (REPO / FIX_PLAN).read_text()
    numbers = [int(n) for n in re.findall(r"Attempt #(\d+)", text)]
    assert max(numbers) >= 34
    assert next_attempt_number(text, "ADR-003-BACKEND-API") == max(numbers) + 1


def test_ledger_baseline_continues_at_attempt_35_with_b3_pending() -> None:
    assert next_attempt_number((LEDGER_BASELINE / "fix_plan.md").read_text(), "ADR-003-BACKEND-API") == 35
    assert "| B3 " in (LEDGER_BASELINE / "plan.md").read_text()


def test_shipped_findings_define_every_id() -> None:
    text = (REPO / "docs" / "findings.md").read_text()
    for finding in ("CONFIG-001", "BUG-TF-001", "POLICY-001", "DATA-001", "FORMAT-001"):
        assert f"\n## {finding}\n" in text, finding


def test_concurrent_collates_each_get_their_own_attempt(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root = _project(tmp_path)
    hubs = [f"plans/active/ADR-003-BACKEND-API/reports/T{i}/phase_c4d_at_parallel" for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        updates = list(pool.map(lambda hub: _record(root, hub, green=True), hubs))
    assert sorted(u.attempt for u in updates) == list(range(35, 43))
    fix = (root / FIX_PLAN).read_text()
    assert all(fix.count(hub_marker(h)) == 1 for h in hubs)
