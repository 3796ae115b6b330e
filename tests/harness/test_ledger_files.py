"""The ledger's two documents as files: each keeps its bytes (line endings, BOM), and both change or neither."""

from __future__ import annotations

import codecs
import errno
import os
import shutil
from pathlib import Path

import pytest
from factory import FIX_PLAN, PLAN_MD, context, make_hub

from harness.collate import collate
from harness.hub import open_hub
from harness.ledger import AttemptLinks, LedgerError, record_attempt

HUB = "plans/active/ADR-003-BACKEND-API/reports/T1/phase_c4d_at_parallel"
FILES = (PLAN_MD, FIX_PLAN)


def ledger_bytes(root: Path) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in FILES}


def record(root: Path) -> None:
    """Record one GREEN hub in the project's ledger (the shipped baseline: B3 `[P]`, last attempt #34)."""
    record_attempt(root, plan_file=PLAN_MD, fix_plan=FIX_PLAN, row="B3", hub_rel=HUB, timestamp="T1", green=True,
                   headline="headline.", details=["d1"], links=AttemptLinks(f"{HUB}/summary.md", (f"{HUB}/a.log",)))


@pytest.mark.parametrize(("newline", "bom"), [("\r\n", b""), ("\r\n", codecs.BOM_UTF8), ("\n", codecs.BOM_UTF8)],
                         ids=["crlf", "crlf-bom", "lf-bom"])
def test_each_file_keeps_its_line_endings_and_bom(root: Path, tmp_path: Path, newline: str, bom: bytes) -> None:
    """Only the row and the new attempt change, in the file's own line ending (a CRLF plan was once rewritten whole)."""
    reference = tmp_path / "reference"  # the same update on the LF files without BOM
    for rel in FILES:
        (reference / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, reference / rel)
        (root / rel).write_bytes(bom + (root / rel).read_bytes().replace(b"\n", newline.encode()))
    before = ledger_bytes(root)
    record(reference)
    record(root)

    after, expected = ledger_bytes(root), ledger_bytes(reference)
    assert after == {rel: bom + data.replace(b"\n", newline.encode()) for rel, data in expected.items()}
    changed = [a for a, b in zip(before[PLAN_MD].split(b"\n"), after[PLAN_MD].split(b"\n")) if a != b]
    assert len(changed) == 1 and changed[0].startswith(b"| B3 |"), changed


def test_a_fix_plan_that_is_not_utf8_is_named(root: Path) -> None:
    (root / FIX_PLAN).write_bytes((root / FIX_PLAN).read_text().encode("utf-16"))
    before = ledger_bytes(root)
    with pytest.raises(LedgerError, match=f"^{FIX_PLAN}: not UTF-8 \\(byte 0\\); save it as UTF-8"):
        record(root)
    assert ledger_bytes(root) == before


def refuse_replace(monkeypatch: pytest.MonkeyPatch, error: BaseException, *targets: str, after: int = 0) -> None:
    """`os.replace` onto any of `targets` fails with `error` (as onto a `chattr +i` file) after `after` successes."""
    real, calls = os.replace, []

    def replace_(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name in targets:
            calls.append(dst)
            if len(calls) > after:
                raise error
        real(src, dst)

    monkeypatch.setattr("harness.fsio.os.replace", replace_)


@pytest.mark.parametrize(("failing", "error", "fix"), [
    (FIX_PLAN, OSError(errno.EPERM, "Operation not permitted"),
     "fix the permissions (or the immutable flag, `chattr -i`)"),
    (FIX_PLAN, OSError(errno.ENOSPC, "No space left on device"), "free some disk space"),
    (PLAN_MD, OSError(errno.EACCES, "Permission denied"), "fix the permissions"),
], ids=["fix-plan-immutable", "fix-plan-disk-full", "plan-unwritable"])
def test_the_two_files_change_together_or_not_at_all(root: Path, monkeypatch: pytest.MonkeyPatch, failing: str,
                                                     error: OSError, fix: str) -> None:
    (root / PLAN_MD).chmod(0o640)
    before = ledger_bytes(root)
    refuse_replace(monkeypatch, error, Path(failing).name)
    with pytest.raises(LedgerError) as raised:
        record(root)
    other = PLAN_MD if failing == FIX_PLAN else FIX_PLAN
    assert str(raised.value) == (f"cannot write {failing} ({os.strerror(error.errno)}); {other} left unchanged; {fix} "
                                 f"and rerun `python -m harness collate {HUB}`"), raised.value
    assert ledger_bytes(root) == before, "a failed ledger update must leave both files byte for byte"
    assert (root / PLAN_MD).stat().st_mode & 0o777 == 0o640, "the plan put back keeps its permissions"
    assert not list(root.rglob("*.tmp")), "no temporary file may be left behind"


def test_an_interrupt_between_the_two_writes_puts_the_plan_back(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = ledger_bytes(root)
    refuse_replace(monkeypatch, KeyboardInterrupt(), Path(FIX_PLAN).name)
    with pytest.raises(KeyboardInterrupt):
        record(root)
    assert ledger_bytes(root) == before


def test_a_plan_that_cannot_be_put_back_is_named(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_replace(monkeypatch, OSError(errno.EIO, "Input/output error"), Path(FIX_PLAN).name, Path(PLAN_MD).name,
                   after=1)  # the plan's write succeeds, the fix plan's and the plan's restore fail
    with pytest.raises(LedgerError, match=f"^cannot write {FIX_PLAN} \\(Input/output error\\) nor put {PLAN_MD} back "
                                          f"\\(Input/output error\\): {PLAN_MD} holds the new text; undo that by hand"):
        record(root)


def test_collate_says_what_happened_to_the_ledger(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collate line for a fix plan that cannot be written (was: B3 [x], no attempt, "nothing was changed")."""
    ctx = context(root)
    before = ledger_bytes(root)
    refuse_replace(monkeypatch, OSError(errno.EPERM, "Operation not permitted"), Path(FIX_PLAN).name)
    result = collate(ctx, open_hub(make_hub(ctx), ctx))
    hub_rel = result.collation.hub_rel
    assert result.ledger_note == (f"ledger NOT updated: cannot write {FIX_PLAN} (Operation not permitted); {PLAN_MD} "
                                  "left unchanged; fix the permissions (or the immutable flag, `chattr -i`) and rerun "
                                  f"`python -m harness collate {hub_rel}`"), result.ledger_note
    assert result.exit_code != 0 and ledger_bytes(root) == before
