"""What people and CI read: pictures compared pixel by pixel, the Markdown comparison, JSON from every command."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from factory import cli
from factory import collated, context, edit, make_project, md_html, md_links, recollate, with_runtime
from PIL import Image

from harness import collate as collate_cmd
from harness import comparereport, pipeline, runner, validate
from harness.compare import compare_hubs
from harness.hubread import read_hub
from harness.plan import CompareSpec
from harness.reporting import md_block, md_code, md_link, md_table
from harness.schema import EnvironmentRecord, HubFiles, Runtime, Verdict, VerdictRecord

ROOT = Path(__file__).resolve().parents[2]


def paint(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (shade, 10, 20)).save(path, pnginfo=None)


def add_picture(ctx, hub: Path, shade: int) -> None:
    """Give the smoke target of a collated hub a picture (as the runner copies one in) and collate again."""
    paint(hub / HubFiles.FIGURES / "smoke" / "loss_curve.png", shade)
    path = hub / HubFiles.verdict("smoke")
    replace(VerdictRecord.load(path), figures=("figures/smoke/loss_curve.png",)).write(path)
    recollate(ctx, hub)


@pytest.fixture
def two(tmp_path):
    ctx = context(make_project(tmp_path / "p"))
    return ctx, collated(ctx, timestamp="2026-11-29T100000Z"), collated(ctx, timestamp="2026-11-29T110000Z")


def findings(a: Path, b: Path) -> dict[str, tuple[str, str]]:
    result = compare_hubs(read_hub(a), read_hub(b), CompareSpec())
    return {f"{f.target}/{f.check}": (f.status, f.detail) for f in result.findings}


def test_identical_pictures_agree_even_when_the_png_bytes_differ(two):
    ctx, a, b = two
    add_picture(ctx, a, 100)
    add_picture(ctx, b, 100)
    Image.open(b / "figures/smoke/loss_curve.png").save(b / "figures/smoke/loss_curve.png", compress_level=1)
    recollate(ctx, b)
    assert findings(a, b)["smoke/picture loss_curve.png"] == ("agree", "pixels identical")


def test_different_pixels_disagree_on_deterministic_runs_of_the_same_versions(two):
    ctx, a, b = two
    add_picture(ctx, a, 100)
    add_picture(ctx, b, 101)
    status, detail = findings(a, b)["smoke/picture loss_curve.png"]
    assert status == "DISAGREE" and "100.00% of the pixels differ" in detail


def test_different_pixels_only_warn_when_the_versions_differ(two):
    ctx, a, b = two
    add_picture(ctx, a, 100)
    add_picture(ctx, b, 101)
    edit(ctx, b, "smoke", with_runtime(torch="2.12.0+cpu"))
    status, detail = findings(a, b)["smoke/picture loss_curve.png"]
    assert status == "warning" and "not enforced: torch differs" in detail


def test_a_picture_missing_from_one_hub_disagrees(two):
    ctx, a, b = two
    add_picture(ctx, a, 100)
    assert findings(a, b)["smoke/picture loss_curve.png"] == ("DISAGREE", "missing in hub B")


def test_validate_catches_a_changed_byte_in_a_picture(two):
    ctx, a, _ = two
    add_picture(ctx, a, 100)
    picture = a / "figures/smoke/loss_curve.png"
    data = bytearray(picture.read_bytes())
    data[-20] ^= 1
    picture.write_bytes(bytes(data))
    assert any("figures/smoke/loss_curve.png: content changed" in p for p in validate.validate(a).problems)


def test_markdown_report_puts_disagreements_first_then_pictures_side_by_side(two, tmp_path, capsys):
    ctx, a, b = two
    add_picture(ctx, a, 100)
    add_picture(ctx, b, 100)
    out = tmp_path / "reports" / "cmp.md"
    assert run_compare(a, b, "--format", "md", "--output", out) == 0
    text = out.read_text()
    assert text.index("## DISAGREEMENTS") < text.index("## Pictures") < text.index("## AGREEMENTS")
    row = next(line for line in text.splitlines() if line.startswith("| smoke | loss_curve.png"))
    links = [part.split(")")[0] for part in row.split("](")[1:]]
    assert [(out.parent / link).resolve() for link in links] == [a / "figures/smoke/loss_curve.png",
                                                                 b / "figures/smoke/loss_curve.png"]
    assert "pixels identical" in row and "wrote" in capsys.readouterr().out


def test_a_report_is_never_written_into_a_hub(two, capsys):
    _, a, b = two
    before = sorted(p.name for p in a.iterdir())
    assert run_compare(a, b, "--format", "md", "--output", a / "cmp.md") == 2
    assert "is inside a hub" in capsys.readouterr().err and sorted(p.name for p in a.iterdir()) == before


def test_environment_drift_names_the_packages_that_changed(two):
    ctx, a, b = two
    for hub, torch in ((a, "2.13.0+cpu"), (b, "2.12.1+cpu")):
        EnvironmentRecord(Runtime(python="3.11.7"), {"torch": torch, "numpy": "2.4.6", "only-a": "1"} if hub == a
                          else {"torch": torch, "numpy": "2.4.6"}).write(hub)
        recollate(ctx, hub)
    status, detail = findings(a, b)["(environment)/packages"]
    assert status == "warning" and "torch 2.13.0+cpu -> 2.12.1+cpu" in detail and "only-a only in A" in detail


def run_compare(*argv) -> int:
    return cli("compare", *argv)


def test_every_command_speaks_the_same_json(two, tmp_path, project, write_plan, targets, monkeypatch, capsys):
    """pipeline, run-target, collate, validate, compare: one object each, same envelope; reproduce has its own test."""
    ctx, a, b = two

    def call(command, *argv) -> dict:
        cli(command, *argv)
        out = capsys.readouterr().out
        payload = json.loads(out)
        assert payload["schema"] == "evidence-cli/1" and isinstance(payload["exit_code"], int), payload
        return payload

    assert call("validate", a, "--format", "json")["valid"] is True
    assert call("compare", a, b, "--format", "json")["result"] == "AGREE"
    assert call("collate", a, "--no-ledger", "--format", "json")["verdict"] == "GREEN"
    monkeypatch.setenv("EVIDENCE_PYTHON", sys.executable)
    plan = write_plan([targets.pytest("ok", "tests/test_synthetic.py::test_pass")])
    piped = call("pipeline", "--plan", plan, "--project", project, "--format", "json")
    assert [t["name"] for t in piped["targets"]] == ["ok"] and piped["hub"].startswith("reports/")


def test_collate_appends_the_summary_for_github(two, tmp_path, monkeypatch, capsys):
    _, a, _ = two
    page = tmp_path / "step_summary.md"
    page.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(page))
    cli("collate", a, "--no-ledger")
    text = page.read_text()
    assert text.startswith("earlier step\n") and "**Overall verdict: GREEN**" in text


def test_threads_split_between_parallel_targets_are_compared_target_by_target(two):
    """A pipeline gives targets that run side by side fewer threads each: that is no drift."""
    ctx, a, b = two
    for hub in (a, b):
        path = hub / HubFiles.verdict("integration")
        record = VerdictRecord.load(path)
        replace(record, provenance=replace(record.provenance, threads=1)).write(path)
        recollate(ctx, hub)
    assert findings(a, b)["(environment)/threads"][0] == "agree"
    path = b / HubFiles.verdict("unit")
    record = VerdictRecord.load(path)
    replace(record, provenance=replace(record.provenance, threads=1)).write(path)
    recollate(ctx, b)
    assert findings(a, b)["(environment)/threads"][0] == "warning"


# --------------------------------------------------------------------------- Markdown that CommonMark reads as meant

SCRIPT = "<script>alert(1)</script> <img src=x onerror=alert(2)> R&D"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt; R&amp;D"


@pytest.mark.parametrize("target", ["logs/a.log", "my hub/a.log", "run (2)/loss.png", "a)b(c", "<x>.png", "\\\\srv\\a",
                                    "[1]/b.png", "tab\there.png", "line\nbreak.png", "über ü.png", ""])
@pytest.mark.parametrize("image", [False, True], ids=["link", "picture"])
def test_md_link_reads_back_as_the_same_target(target: str, image: bool) -> None:
    label = "a [b] `c` <d> \\e"
    links = md_links(f"see {md_link(label, target, image=image)} here")
    assert links == [(label, target)], links


@pytest.mark.parametrize("text", ["plain", "a`b", "``x", "x`", " padded "])
def test_md_code_holds_any_text(text: str) -> None:
    assert md_html(md_code(text)) == f"<p><code>{text}</code></p>\n"


def test_md_block_holds_any_lines() -> None:
    text = "python -c 'print(1)\n```\n<script>alert(1)</script>'"
    assert md_html(md_block(text)) == f"<pre><code>{text.replace('<', '&lt;').replace('>', '&gt;')}\n</code></pre>\n"


def test_table_cells_show_html_as_text() -> None:
    html = md_html(md_table([[SCRIPT, "x | y"]], ["reason", "other"]))
    assert "<script" not in html and "<img" not in html, html
    assert f"<td>{ESCAPED}</td>" in html and "<td>x | y</td>" in html, html


@pytest.fixture
def spaced(tmp_path):
    """Two collated hubs whose paths hold a space and parentheses (where Markdown links used to break)."""
    ctx = context(make_project(tmp_path / "my proj (1)"))
    return ctx, collated(ctx, timestamp="2026-11-29T100000Z"), collated(ctx, timestamp="2026-11-29T110000Z")


def test_markdown_report_pictures_link_from_any_path(spaced, tmp_path):
    ctx, a, b = spaced
    add_picture(ctx, a, 100)
    add_picture(ctx, b, 100)
    out = tmp_path / "a report (draft)" / "cmp.md"
    assert run_compare(a, b, "--format", "md", "--output", out) == 0
    pictures = [((out.parent / target).resolve(), text) for text, target in md_links(out.read_text())]
    assert pictures == [(a / "figures/smoke/loss_curve.png", "A"), (b / "figures/smoke/loss_curve.png", "B")], pictures


def test_markdown_report_shows_html_from_a_log_as_text(spaced, tmp_path):
    ctx, a, b = spaced
    edit(ctx, b, "unit", lambda r: replace(r, verdict=Verdict.RED, reason=SCRIPT))
    html = md_html(comparereport.render_md(compare_hubs(read_hub(a), read_hub(b), CompareSpec()), tmp_path / "c.md"))
    assert "<script" not in html and "<img" not in html, html
    assert f"B: {ESCAPED}" in html, html


def test_terminal_tables_show_a_log_line_as_it_is(spaced):
    ctx, a, b = spaced
    edit(ctx, b, "unit", lambda r: replace(r, verdict=Verdict.RED, reason=SCRIPT))
    text = comparereport.render_table(compare_hubs(read_hub(a), read_hub(b), CompareSpec()))
    assert f"B: {SCRIPT}" in text and "&lt;" not in text, text
