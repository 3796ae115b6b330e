"""summary.md answers a reviewer's questions from what the hub holds (nothing typed by hand)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from collatehub import FIXTURE, LOGS, SELECTORS, git, make_hub, make_project

from harness.collate import build_collation, collate
from harness.records import dataset_notes, fmt_duration
from harness.risks import derive_risks, scan_deprecations
from harness.summary import render_summary


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


def section(text: str, title: str) -> str:
    """The body of `## title` up to the next `## `."""
    body = text.split(f"## {title}", 1)[1]
    return body.split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]  # skip header + rule


def test_green_summary_answers_the_reviewer(project: Path) -> None:
    hub = make_hub(project)
    collate(hub, ledger=False)
    text = (hub / "summary.md").read_text()

    assert text.startswith("# Evidence summary: TEST/C4.D.B3 — 2026-11-29T101500Z")
    assert "**Overall verdict: GREEN**" in text
    sha = git(project, "rev-parse", "HEAD").strip()[:12]
    assert (f"- Code and environment: `{sha}` (clean tree, src/ unchanged), Python 3.11.7, torch 2.13.0+cpu, "
            "lightning 2.6.6, CPU only (GPU hidden in every target).") in text
    rows = table_rows(section(text, "Targets"))
    assert [r[0] for r in rows] == ["unit", "integration", "smoke"]
    unit = rows[0]
    assert unit[1] == f"`{SELECTORS['unit']}`" and unit[2] == "**GREEN**" and unit[3] == "1 / 0 / 0"
    assert unit[4] == "12.2 s" and unit[5] == f"[{LOGS['unit']}]({LOGS['unit']})"
    assert rows[2][1] == "`python -m ptycho_torch.train --output_dir artifacts/2026-11-29T101500Z/smoke --device cpu`"

    smoke = section(text, "CLI smoke: `smoke`")
    assert "| Final train loss    | 0.0421875" in smoke and "| Epochs              | 1" in smoke
    shapes = {r[0]: r[1] for r in table_rows("| Tensor" + smoke.split("| Tensor")[1])}
    assert shapes == {"`diffraction`": "`(4, 4, 64, 64)`", "`coords_relative`": "`(4, 4, 1, 2)`",
                      "`predicted_object`": "`(4, 4, 64, 64)`"}
    assert "[wts.h5.zip](../../../../../../artifacts/2026-11-29T101500Z/smoke/wts.h5.zip)" in smoke

    digest = hashlib.sha256((project / FIXTURE).read_bytes()).hexdigest()
    data = table_rows(section(text, "Dataset"))[0]
    assert data[1] == f"`{FIXTURE}`" and data[2] == f"`{digest}` (computed)" and data[3] == "yes"
    assert data[4:] == ["64", "64", "2"]

    env = dict(r[:2] for r in table_rows(section(text, "Environment")))
    assert env["torch"] == "2.13.0+cpu" and env["lightning"] == "2.6.6" and env["Python"] == "3.11.7"
    assert env["GPU hidden (CUDA_VISIBLE_DEVICES)"] == '""' and env["torch.cuda.is_available()"] == "False"
    assert env["Dirty tree (tracked files)"] == "no"
    assert env["src/ differs from HEAD"].startswith("no")

    risks = section(text, "Remaining risks")
    assert f"`{LOGS['smoke']}`: 2 DeprecationWarning line(s); first: `train.py:40: DeprecationWarning: --device" in risks
    assert "Blocker" not in risks
    assert "`make reproduce FROM=plans/active/ADR-003-BACKEND-API/reports/2026-11-29T101500Z/phase_c4d_at_parallel`" in text


def test_every_relative_link_resolves(project: Path) -> None:
    hub = make_hub(project, {"smoke": "RED"})
    collate(hub, ledger=False)
    text = (hub / "summary.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert len(links) >= 5
    for link in links:
        assert not Path(link).is_absolute(), link
        assert (hub / link).resolve().exists(), link


def test_red_summary_names_the_blocker(project: Path) -> None:
    hub = make_hub(project, {"integration": "RED"}, no_record=("smoke",))
    collate(hub, ledger=False)
    text = (hub / "summary.md").read_text()
    assert "**Overall verdict: RED** — 2/3 targets not GREEN (integration RED, smoke MISSING)" in text
    assert "[blocker.log](blocker.log)" in text
    rows = {r[0]: r for r in table_rows(section(text, "Targets"))}
    assert rows["integration"][3] == "0 / 1 / 0"
    assert rows["smoke"][2] == "**MISSING**" and rows["smoke"][3] == "—"
    risks = section(text, "Remaining risks")
    assert "- **Blocker:** `integration` is RED: 1 failed: AssertionError: boom" in risks
    assert "- **Blocker:** `smoke` is MISSING: no verdict record" in risks
    assert "No training record (no verdict record)" in section(text, "CLI smoke: `smoke`")


def test_slow_target_dirty_tree_and_gpu_are_risks(project: Path) -> None:
    hub = make_hub(project, edit={"integration": {"duration_s": 480.0},
                                  "unit": {"provenance": {"cuda_visible_devices": None, "cuda_available": True,
                                                          "dirty_files": ["README.md"], "git_dirty": True}}})
    c = build_collation(hub)
    texts = [r.text for r in derive_risks(c, dataset_notes(c))]
    assert any("`integration` took 8 min 00.0 s, 80% of its 10 min 00.0 s timeout" in t for t in texts), texts
    assert any("dirty" in t and "`README.md`" in t for t in texts)
    assert any("`unit`: GPU not hidden" in t for t in texts)


def test_dataset_sha_from_record_and_sidecar_mismatch(project: Path) -> None:
    hub = make_hub(project)
    rec_path = hub / "verdicts" / "smoke.json"
    rec = json.loads(rec_path.read_text())
    rec["record"]["train_data_sha256"] = "0" * 64
    rec_path.write_text(json.dumps(rec))
    c = build_collation(hub)
    (note,) = dataset_notes(c)
    assert note.sha256 == "0" * 64 and note.sha256_source == "record" and note.sidecar_matches is False
    assert any("does not match its sidecar" in r.text for r in derive_risks(c, [note]))


def test_pipes_in_commands_do_not_break_the_table(project: Path) -> None:
    hub = make_hub(project, edit={"smoke": {"argv": ["python", "-c", "print(1 | 2)"]}})
    c = build_collation(hub)
    text = render_summary(c, [], dataset_notes(c), blocker_written=False)
    smoke_row = next(line for line in text.splitlines() if line.startswith("| smoke"))
    assert "print(1 \\| 2)" in smoke_row
    assert len(re.findall(r"(?<!\\)\|", smoke_row)) == 8  # 7 columns


def test_scan_deprecations_counts_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("ok\nfoo DeprecationWarning: a\nbar\nDeprecationWarning: b\n")
    scan = scan_deprecations(log)
    assert scan is not None and scan.count == 2 and scan.first == "foo DeprecationWarning: a"
    log.write_text("clean\n")
    assert scan_deprecations(log) is None


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (0.04, "0.0 s"), (59.94, "59.9 s"), (125.0, "2 min 05.0 s")])
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text
