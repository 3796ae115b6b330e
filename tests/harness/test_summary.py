"""summary.md answers a reviewer's questions from what the hub holds (nothing typed by hand)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

import pytest
from factory import (DATA_SHA, FIXTURE, LOGS, SELECTORS, collated, context, git, make_hub, md_html, md_links, section,
                     table_rows, with_git, with_record, with_runtime)

from harness.collate import collate
from harness.collation import Collation, build_collation
from harness.context import RunContext
from harness.hub import open_hub
from harness.reporting import fmt_duration
from harness.summary import BLOCKER, WARNING, derive_risks, scan_deprecations
from harness.schema import HubFiles, Verdict
from harness.summary import dataset_notes, render_summary

HUB_REL = "plans/active/ADR-003-BACKEND-API/reports/2026-11-29T101500Z/phase_c4d_at_parallel"
CELL_LIMIT = 120


def summary(hub: Path) -> str:
    return (hub / HubFiles.SUMMARY).read_text()


def collation(ctx: RunContext, *args, **kwargs) -> Collation:
    """What collate decides about a fresh hub, without writing anything."""
    return build_collation(ctx, open_hub(make_hub(ctx, *args, **kwargs), ctx))


def targets_table(text: str) -> dict[str, list[str]]:
    """The targets table (the first table of summary.md), by target name."""
    return {row[0]: row for row in table_rows(text)}


# --------------------------------------------------------------------------- the first screen

def test_title_and_overall_verdict_open_the_summary(ctx: RunContext) -> None:
    lines = summary(collated(ctx)).splitlines()
    assert lines[0] == "# Evidence summary: TEST/C4.D.B3 — 2026-11-29T101500Z", lines[0]
    assert lines[2].startswith("**Overall verdict: GREEN** — all 3 targets GREEN, src unchanged"), \
        f"the overall verdict must be the first paragraph, got {lines[2]!r}"


def test_targets_table_follows_the_verdict(ctx: RunContext) -> None:
    text = summary(collated(ctx))
    first_table = next(i for i, line in enumerate(text.splitlines()) if line.startswith("|"))
    assert first_table == 4, \
        f"the targets table must come right after the overall verdict (line 5), found at line {first_table + 1}"
    rows = targets_table(text)
    assert list(rows) == ["unit", "integration", "smoke"], list(rows)


def test_targets_table_gives_verdict_counts_duration_log_and_reason(ctx: RunContext) -> None:
    rows = targets_table(summary(collated(ctx)))
    assert rows["unit"] == ["unit", "**GREEN**", "1 / 0 / 0", "12.2 s", f"[{LOGS['unit']}]({LOGS['unit']})",
                            "1 of 1 selected test(s) passed"], rows["unit"]
    assert rows["smoke"][2] == "n/a (command)" and rows["smoke"][3] == "21.8 s", rows["smoke"]


def test_red_summary_names_the_blocker(ctx: RunContext) -> None:
    hub = collated(ctx, {"integration": Verdict.RED}, no_record=("smoke",))
    text = summary(hub)
    assert "**Overall verdict: RED** — 2/3 targets not GREEN (integration RED, smoke NOT RUN)" in text
    assert f"[{HubFiles.BLOCKER}]({HubFiles.BLOCKER})" in text, "a blocked hub's summary must link blocker.log"
    rows = targets_table(text)
    assert rows["integration"][1:3] == ["**RED**", "0 / 1 / 0"], rows["integration"]
    assert rows["smoke"][1:3] == ["**NOT RUN**", "—"], rows["smoke"]
    risks = section(text, "Remaining risks")
    assert "- **Blocker:** `integration` is RED: 1 failed: AssertionError: boom" in risks, risks
    assert "- **Blocker:** `smoke` is NOT RUN: not run: integration was RED" in risks, risks
    assert "## CLI smoke" not in text, "a smoke target without a record has no CLI smoke table"


# --------------------------------------------------------------------------- short cells, full commands

LONG_FLAG = "--" + "x" * 300


def long_hub(ctx: RunContext) -> Path:
    return collated(ctx, change={"unit": lambda r: replace(r, reason="why " * 100),
                                 "smoke": lambda r: replace(r, argv=(*r.argv, LONG_FLAG))})


def test_no_targets_table_cell_is_longer_than_120_characters(ctx: RunContext) -> None:
    rows = table_rows(summary(long_hub(ctx)))
    long_cells = [cell for row in rows for cell in row if len(cell) > CELL_LIMIT]
    assert not long_cells, f"targets table cells must stay within {CELL_LIMIT} characters: {long_cells}"
    assert rows[0][-1].endswith("…"), "a clipped cell must end with an ellipsis"


def test_full_commands_are_under_commands_in_code_blocks(ctx: RunContext) -> None:
    commands = section(summary(long_hub(ctx)), "Commands")
    blocks = re.findall(r"```\n(.*?)\n```", commands, re.S)
    assert blocks[:2] == [SELECTORS["unit"], SELECTORS["integration"]], blocks
    assert blocks[2] == ("python -m ptycho_torch.train --output_dir artifacts/2026-11-29T101500Z/smoke "
                         f"--deterministic {LONG_FLAG}"), \
        "the smoke command must be shown whole, with the interpreter and project root shortened"


def test_pipes_in_reasons_do_not_break_the_table(ctx: RunContext) -> None:
    c = collation(ctx, change={"unit": lambda r: replace(r, reason="a | b")})
    row = next(line for line in render_summary(c, blocker_written=False).splitlines() if line.startswith("| unit"))
    assert "a \\| b" in row, row
    assert len(re.findall(r"(?<!\\)\|", row)) == 7, f"a six-column row has 7 unescaped pipes: {row}"


def test_pipes_in_commands_stay_verbatim_in_their_code_block(ctx: RunContext) -> None:
    c = collation(ctx, change={"smoke": lambda r: replace(r, argv=("python", "-c", "print(1 | 2)"))})
    assert "```\npython -c 'print(1 | 2)'\n```" in section(render_summary(c, blocker_written=False), "Commands")


def test_every_relative_link_resolves(ctx: RunContext) -> None:
    hub = collated(ctx, {"smoke": Verdict.RED})
    links = re.findall(r"\]\(([^)]+)\)", summary(hub))
    assert len(links) >= 5, links
    for link in links:
        assert not Path(link).is_absolute(), f"{link}: links must be relative to the hub"
        assert (hub / link).resolve().exists(), f"{link}: does not resolve inside the hub"


# --------------------------------------------------------------------------- the sections below

def test_cli_smoke_section_shows_the_training_record(ctx: RunContext) -> None:
    smoke = dict(table_rows(section(summary(collated(ctx)), "CLI smoke: `smoke`")))
    assert smoke["Final train loss"] == "0.0421875" and smoke["Epochs"] == "1" and smoke["Batch size"] == "4", smoke
    assert smoke["`diffraction` shape"] == "(4, 4, 64, 64)" and smoke["`coords_relative` shape"] == "(4, 4, 1, 2)"
    assert smoke["Bundle"] == "`artifacts/2026-11-29T101500Z/smoke/wts.h5.zip`", smoke


@pytest.mark.parametrize(("change", "sha", "matches"), [
    ({}, f"`{DATA_SHA}`", "**NO**"),  # the record's sha256, which is not the fixture's
    ({"train_data_sha256": None}, None, "yes"),  # hashed by collate, equal to the sidecar's
], ids=["from-record", "computed"])
def test_dataset_row_gives_file_sha_and_sidecar_check(ctx: RunContext, root: Path, change: dict, sha: str | None,
                                                      matches: str) -> None:
    digest = hashlib.sha256((root / FIXTURE).read_bytes()).hexdigest()
    hub = collated(ctx, change={"smoke": with_record(**change)})
    row = table_rows(section(summary(hub), "Dataset"))[0]
    assert row == ["smoke", f"`{FIXTURE}`", sha or f"`{digest}` (computed)", matches, "64", "64", "2"], row


def test_dataset_note_reads_record_and_sidecar(ctx: RunContext, root: Path) -> None:
    (note,) = dataset_notes(collation(ctx, change={"smoke": with_record(train_data_sha256="0" * 64)}))
    sidecar = hashlib.sha256((root / FIXTURE).read_bytes()).hexdigest()
    assert (note.sha256, note.computed, note.sidecar_sha256) == ("0" * 64, False, sidecar), note


def test_dataset_that_does_not_match_its_sidecar_is_a_risk(ctx: RunContext) -> None:
    c = collation(ctx, change={"smoke": with_record(train_data_sha256="0" * 64)})
    assert any("sidecar" in r.text for r in derive_risks(c)), [r.text for r in derive_risks(c)]


def test_environment_table_gives_commit_tree_and_versions(ctx: RunContext, root: Path) -> None:
    env = dict(r[:2] for r in table_rows(section(summary(collated(ctx)), "Environment")))
    assert env["Commit"] == f"`{git(root, 'rev-parse', 'HEAD').strip()}`", env
    assert env["Dirty tree (tracked files)"] == "no" and env["Production code (src) changed"] == "no", env
    assert (env["python"], env["torch"], env["lightning"], env["numpy"]) == ("3.11.7", "2.13.0+cpu", "2.6.6", "2.4.6"), env
    assert env["GPU hidden"] == 'CUDA_VISIBLE_DEVICES="", torch.cuda.is_available() = False', env


def test_green_summary_has_warnings_but_no_blocker_and_says_how_to_reproduce(ctx: RunContext) -> None:
    text = summary(collated(ctx))
    risks = section(text, "Remaining risks")
    assert (f"- Warning: `{LOGS['smoke']}`: 1 DeprecationWarning line(s); first: "
            "`train.py:40: DeprecationWarning: --device is deprecated") in risks, risks
    assert "Blocker" not in risks, risks
    assert f"`make reproduce FROM={HUB_REL}`" in section(text, "Reproduce")


# --------------------------------------------------------------------------- risks

@pytest.mark.parametrize(("change", "severity", "expected"), [
    ({"integration": lambda r: replace(r, duration_s=480.0)}, WARNING,
     "`integration` took 8 min 00.0 s, 80% of its 10 min 00.0 s timeout"),
    ({"unit": with_git(dirty=True, dirty_files=("README.md",))}, WARNING,
     "The working tree was dirty (tracked files differ from HEAD): `README.md`."),
    ({"unit": with_runtime(cuda_visible_devices=None, cuda_available=True)}, WARNING, "`unit`: GPU not hidden"),
    ({"unit": with_git(sha="f" * 40)}, WARNING, "Targets ran on different commits"),
    ({"unit": lambda r: replace(r, verdict=Verdict.SKIPPED, reason="skipped: no GPU")}, BLOCKER,
     "`unit` is SKIPPED: skipped: no GPU"),
], ids=["slow", "dirty", "gpu", "commits", "skipped"])
def test_risks_come_from_the_records(ctx: RunContext, change: dict, severity: str, expected: str) -> None:
    risks = derive_risks(collation(ctx, change=change))
    found = [r for r in risks if expected in r.text]
    assert len(found) == 1 and found[0].severity == severity, \
        f"expected one {severity} risk containing {expected!r}, got {[(r.severity, r.text) for r in risks]}"


def test_blockers_come_before_warnings(ctx: RunContext) -> None:
    severities = [r.severity for r in derive_risks(collation(ctx, {"unit": Verdict.RED}))]
    assert BLOCKER in severities and WARNING in severities, severities
    assert severities == sorted(severities, key=lambda s: s != BLOCKER), severities


def test_plan_changed_since_the_run_started_is_a_warning(ctx: RunContext, root: Path) -> None:
    hub = make_hub(ctx)
    ctx.plan.path.write_text(ctx.plan.path.read_text() + "\n# edited after the run started\n")
    now = context(root)
    texts = [r.text for r in derive_risks(build_collation(now, open_hub(hub, now))) if r.severity == WARNING]
    assert any("changed since the run started" in t for t in texts), texts


def test_scan_deprecations_counts_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("ok\nfoo DeprecationWarning: a\nbar\nDeprecationWarning: b\n")
    scan = scan_deprecations(log)
    assert scan is not None and (scan.count, scan.first) == (2, "foo DeprecationWarning: a"), scan


def test_scan_deprecations_of_a_clean_log_is_none(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("clean\n")
    assert scan_deprecations(log) is None


@pytest.mark.parametrize(("seconds", "text"), [(None, "—"), (0.04, "0.0 s"), (59.94, "59.9 s"), (125.0, "2 min 05.0 s")])
def test_fmt_duration(seconds: float | None, text: str) -> None:
    assert fmt_duration(seconds) == text


# --------------------------------------------------------------------------- Markdown that CommonMark reads as meant

def test_html_from_a_log_shows_as_text(ctx: RunContext) -> None:
    script = "<script>alert(1)</script> <img src=x onerror=alert(2)>"
    c = collation(ctx, change={"unit": lambda r: replace(r, verdict=Verdict.RED, reason=script)})
    html = md_html(render_summary(c, blocker_written=True))
    assert "<script" not in html and "<img src=x" not in html, html
    shown = "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;"
    assert html.count(shown) == 2, f"the reason must show as text in the targets table and the risks:\n{html}"


def test_picture_links_resolve_for_names_with_spaces_and_parentheses(ctx: RunContext) -> None:
    picture = "figures/smoke/loss curve (1).png"
    hub = make_hub(ctx, change={"smoke": lambda r: replace(r, figures=(picture,))})
    (hub / picture).parent.mkdir(parents=True)
    (hub / picture).write_bytes(b"\x89PNG")
    collate(ctx, open_hub(hub, ctx), ledger=False)
    links = md_links(summary(hub))
    assert ("smoke: loss curve (1)", picture) in links, links
    assert all((hub / target).is_file() for _, target in links), links
