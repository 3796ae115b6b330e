"""A teammate's hub made by hand, the seed's way: four `| tee` logs and a summary.md, nothing else.

The fixture writes such a hub into tmp_path with the log names of the real plan
(plans/active/ADR-003-BACKEND-API/evidence/phase_c4d_b3.toml) and what `pytest -vv` and the
CLI really print; each test changes one log (or the summary) to the case it checks. Harness
hubs to compare with come from the factory, judged by the same real plan.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
from factory import cli

from factory import REAL_PLAN, collated, context, make_project, make_real_project, recollate, with_record
from harness import comparereport as compare
from harness import validate as validate_cmd
from harness.hubread import read_hub
from harness.hubview import DERIVED, HubUnreadable, hash_tree
from harness.plan import EvidencePlan, load_plan
from harness.schema import HubFiles, Verdict, VerdictRecord

GRIDSIZE, BUNDLE, INTEGRATION, SMOKE = "gridsize_regression", "bundle_loader", "integration", "cli_smoke_gs2"
HANDMADE_LOGS = {GRIDSIZE: "pytest_gridsize_green.log", BUNDLE: "pytest_bundle_loader_green.log",
                 INTEGRATION: "pytest_integration_green.log", SMOKE: "manual_cli_smoke_gs2.log"}
NODEIDS = {
    GRIDSIZE: "tests/torch/test_workflows_components.py::TestWorkflowsComponentsTraining::"
              "test_lightning_training_respects_gridsize",
    BUNDLE: "tests/torch/test_integration_workflow_torch.py::test_bundle_loader_returns_modules",
    INTEGRATION: "tests/torch/test_integration_workflow_torch.py::test_run_pytorch_train_save_load_infer",
}
#: What the CLI smoke prints last; the harness hub compared with the hand-made one trained the same.
TRAIN = {"epochs": 1, "final_train_loss": 0.0421875, "gridsize": 2, "n_groups": 64, "batch_size": 4, "n_patterns": 64,
         "train_data_file": "tests/fixtures/pytorch_integration/minimal_dataset_v1.npz", "train_data_sha256": "97" * 32,
         "shapes": {"diffraction": [4, 4, 64, 64], "coords_relative": [4, 4, 1, 2], "predicted_object": [4, 4, 64, 64]}}

HEADER = """\
============================= test session starts ==============================
platform linux -- Python 3.11.7, pytest-8.4.2, pluggy-1.6.0 -- /home/teammate/ptycho/.venv/bin/python
cachedir: .pytest_cache
rootdir: /home/teammate/ptycho
configfile: pyproject.toml
plugins: anyio-4.11.0
"""


def banner(text: str) -> str:
    """A pytest section line: `===== 1 passed in 9.16s =====`, 80 columns wide."""
    return f"{' ' + text + ' ':=^80}"


def pytest_log(name: str, outcome: str = "PASSED", final: str | None = "1 passed in 9.16s", between: str = "") -> str:
    """What `CUDA_VISIBLE_DEVICES="" pytest <selector> -vv | tee <log>` keeps; `final=None`: cut short."""
    lines = [HEADER + "collecting ... collected 1 item", "", f"{NODEIDS[name]} {outcome} [100%]", ""]
    lines += [between] if between else []
    lines += [banner(final)] if final else []
    return "\n".join(lines) + "\n"


CLI_START = """\
/home/teammate/ptycho/ptycho_torch/train.py:318: DeprecationWarning: --device is deprecated; use --accelerator
Loading training data from tests/fixtures/pytorch_integration/minimal_dataset_v1.npz
GPU available: False, used: False
TPU available: False, using: 0 TPU cores
"""
CLI_GREEN = CLI_START + "`Trainer.fit` stopped: `max_epochs=1` reached.\nTRAIN_RECORD " + json.dumps(TRAIN) + "\n"
CLI_TRACEBACK = CLI_START + """\
Traceback (most recent call last):
  File "/home/teammate/ptycho/ptycho_torch/train.py", line 402, in <module>
    main()
ValueError: n_groups=64 exceeds the 32 groups available at gridsize=2
"""
CLI_NO_END = CLI_START + "Epoch 0:  50%|█████     | 8/16 [00:02<00:02,  3.71it/s, v_num=0]\n"

SUMMARY = """\
# Phase C4.D.B3 — gridsize=2 parity evidence (2025-10-20T111500Z)

All four GREEN: gridsize regression, bundle loader, integration, CLI smoke.

- `pytest_gridsize_green.log`: 1 passed in 9.16s
- `pytest_bundle_loader_green.log`: 1 passed in 6.40s
- `pytest_integration_green.log`: 1 passed in 16.55s
- `manual_cli_smoke_gs2.log`: 1 epoch, final loss 0.0421875, diffraction (4, 4, 64, 64)

Runtime about 45 s on CPU (CUDA_VISIBLE_DEVICES=""). Remaining risks: none observed in this loop.
"""

#: A FAILURES (or -rA PASSES) entry's captured stdout: a result line for the word given, a final line of its own.
CAPTURED = f"\n{' Captured stdout call ':-^80}\n{NODEIDS[BUNDLE]} {{}} [100%]\n{banner('3 passed in 0.01s')}"
SKIPPED_LINE = f"{NODEIDS[BUNDLE]} SKIPPED (CUDA not available) [100%]"
ERROR_TITLE = f"{' ERROR at setup of test_bundle_loader_returns_modules ':_^80}"
SETUP_ERROR = f"""\
{banner('ERRORS')}
{ERROR_TITLE}

    @pytest.fixture
    def bundle_dir(tmp_path):
>       raise FileNotFoundError("tests/fixtures/pytorch_integration/minimal_dataset_v1.npz")
E       FileNotFoundError: tests/fixtures/pytorch_integration/minimal_dataset_v1.npz

tests/torch/test_integration_workflow_torch.py:41: FileNotFoundError
=========================== short test summary info ============================
ERROR {NODEIDS[BUNDLE]} - FileNotFoundError: tests/fixtures/pytorch_integration/minimal_dataset_v1.npz"""


@pytest.fixture
def plan() -> EvidencePlan:
    """The real plan, whose log names a hand-made hub follows."""
    return load_plan(REAL_PLAN)


@pytest.fixture
def handmade(tmp_path: Path) -> Callable[..., Path]:
    """`handmade(logs={target: text}, summary=text)`: a hand-made hub, all four GREEN unless changed."""

    def make(logs: dict[str, str | None] | None = None, summary: str | None = SUMMARY, folder: str = "by_hand") -> Path:
        hub = tmp_path / folder
        hub.mkdir()
        texts = {**{n: pytest_log(n) for n in NODEIDS}, SMOKE: CLI_GREEN, **(logs or {})}
        for name, text in texts.items():
            if text is not None:
                (hub / HANDMADE_LOGS[name]).write_text(text)
        if summary is not None:
            (hub / "summary.md").write_text(summary)
        return hub

    return make


@pytest.fixture
def harness_hub(tmp_path: Path) -> Path:
    """A GREEN hub the harness made with the real plan's four targets, its smoke trained as TRAIN says."""
    ctx = context(make_real_project(tmp_path / "project"))
    return collated(ctx, change={SMOKE: with_record(**TRAIN)})


def run_compare(*argv: str | Path) -> int:
    return cli("compare", *argv)


def compared(capsys, *argv: str | Path) -> tuple[int, dict]:
    """compare's exit status and its JSON output."""
    code = run_compare(*argv, "--format", "json")
    return code, json.loads(capsys.readouterr().out)


def finding(payload: dict, status: str, target: str, check: str) -> dict:
    found = [f for f in payload[status] if (f["target"], f["check"]) == (target, check)]
    assert found, f"expected {status} {target} / {check}, got {[(f['target'], f['check']) for f in payload[status]]}"
    return found[0]


# --------------------------------------------------------------------------- all GREEN

def test_every_log_green_reads_as_green_derived_from_the_logs(handmade, plan):
    view = read_hub(handmade(), plan)
    assert view.handmade and view.overall == "GREEN", view.overall_reason
    assert {n: r.verdict for n, r in view.verdicts.items()} == dict.fromkeys(HANDMADE_LOGS, Verdict.GREEN)
    assert {r.derived_from for r in view.verdicts.values()} == {DERIVED}
    assert view.notes == (), f"an honest summary.md is not an over-claim: {view.notes}"


def test_the_cli_log_completion_record_is_read(handmade, plan):
    smoke = read_hub(handmade(), plan).verdicts[SMOKE]
    assert smoke.record == TRAIN, "the TRAIN_RECORD line is the record compare needs"
    assert smoke.reason.startswith("completed: line 6: `TRAIN_RECORD {")


def test_the_python_version_comes_from_pytest_header(handmade, plan):
    view = read_hub(handmade(), plan)
    assert view.verdicts[GRIDSIZE].provenance.runtime.python == "3.11.7"


def test_all_green_hand_made_hub_agrees_with_a_harness_hub(handmade, harness_hub, capsys):
    code, payload = compared(capsys, handmade(), harness_hub)
    disagreements = [(f["target"], f["check"], f["detail"]) for f in payload["disagreements"]]
    assert code == 0, f"expected agreement, got {disagreements}"
    verdicts = [f for f in payload["agreements"] if f["check"] == "verdict"]
    assert [f["target"] for f in verdicts] == list(HANDMADE_LOGS)
    for f in verdicts:
        assert f["detail"].startswith("A derived from a hand-made log"), f"{f['target']}: {f['detail']!r}"


def test_compare_maps_hand_made_logs_with_the_plan_given(tmp_path, capsys):
    """--plan names the logs: a hand-made hub of the factory plan (unit, integration, smoke) reads with it."""
    ctx = context(make_project(tmp_path / "project"))
    hub = collated(ctx, change={"smoke": with_record(**TRAIN)})
    by_hand = tmp_path / "by_hand"
    by_hand.mkdir()
    for target in ctx.plan.targets:
        (by_hand / target.log).write_text(f"{target.selector} PASSED [100%]\n{banner('1 passed in 11.00s')}\n"
                                          if target.kind == "pytest" else CLI_GREEN)
    code, payload = compared(capsys, "--plan", ctx.plan.path, by_hand, hub)
    verdicts = [f for f in payload["agreements"] + payload["disagreements"] if f["check"] == "verdict"]
    assert [(f["target"], f["a"]) for f in verdicts] == [(n, "GREEN") for n in ("unit", "integration", "smoke")], \
        f"every log of {ctx.plan.path} should map to its target: {verdicts}"
    assert code == 0, payload["disagreements"]


# --------------------------------------------------------------------------- logs that are not GREEN

def test_a_green_named_log_that_shows_a_skip_is_not_green(handmade, plan):
    view = read_hub(handmade({BUNDLE: pytest_log(BUNDLE, "SKIPPED (CUDA not available)", "1 skipped in 0.52s")}), plan)
    bundle = view.verdicts[BUNDLE]
    assert bundle.verdict == Verdict.SKIPPED
    assert f"line 9: `{SKIPPED_LINE}`" in bundle.reason, bundle.reason
    assert view.overall == "RED" and "bundle_loader SKIPPED" in view.overall_reason


def test_a_skip_makes_compare_disagree_quoting_the_line(handmade, harness_hub, capsys):
    hub = handmade({BUNDLE: pytest_log(BUNDLE, "SKIPPED (CUDA not available)", "1 skipped in 0.52s")})
    code, payload = compared(capsys, hub, harness_hub)
    assert code == 1
    verdict = finding(payload, "disagreements", BUNDLE, "verdict")
    assert (verdict["a"], verdict["b"]) == ("SKIPPED", "GREEN")
    assert verdict["detail"].startswith("A derived from a hand-made log")
    assert f"line 9: `{SKIPPED_LINE}`" in verdict["detail"], verdict["detail"]


@pytest.mark.parametrize(
    ("text", "verdict", "quoted"),
    [
        (pytest_log(BUNDLE, "ERROR", "1 error in 0.31s", between=SETUP_ERROR), Verdict.RED,
         f"line 9: `{NODEIDS[BUNDLE]} ERROR [100%]`"),
        (pytest_log(BUNDLE, "FAILED", "1 failed in 3.02s"), Verdict.RED, f"line 9: `{NODEIDS[BUNDLE]} FAILED [100%]`"),
        (pytest_log(BUNDLE, "XPASS (loader used to be broken)", "1 xpassed in 4.10s"), Verdict.RED,
         f"1 XPASS ({NODEIDS[BUNDLE]})"),
        (HEADER + "collecting ... collected 0 items\n\n" + banner("no tests ran in 0.01s") + "\n", Verdict.RED,
         "no tests ran"),
        (pytest_log(BUNDLE, final=None), Verdict.UNKNOWN, "ends without pytest's final summary line"),
        # Trust I.1-2: text a test printed never decides, pytest's final line does, in any of its styles
        (pytest_log(BUNDLE, "FAILED", "1 failed in 3.02s", between=banner("FAILURES") + CAPTURED.format("PASSED")),
         Verdict.RED, "1 failed"),
        (pytest_log(BUNDLE, between=banner("PASSES") + CAPTURED.format("FAILED") + "\n"
                    + f"{banner('short test summary info')}\nPASSED {NODEIDS[BUNDLE]}"), Verdict.GREEN, "1 of 1"),
        (re.sub(r"(PASSED|=+)", "\x1b[32m\\1\x1b[0m", pytest_log(BUNDLE)), Verdict.GREEN, "line 11: `====="),
        (f"{'.':<73}[100%]\n1 passed in 0.12s\n", Verdict.GREEN, "pytest's final line alone decides"),
        (pytest_log(BUNDLE, between=f"{' KeyboardInterrupt ':!^80}"), Verdict.RED, "pytest stopped early: line 11"),
        (pytest_log(BUNDLE) + "1 passed (my note)\n", Verdict.UNKNOWN, "text follows pytest's final line"),
    ],
    ids=["error-at-setup", "failed", "xpass", "no-tests-ran", "cut-short", "captured-pass-of-a-failure",
         "rA-captured-failure-of-a-pass", "colour", "q", "interrupted", "text-after-the-final-line"],
)
def test_pytest_log_cases(handmade, plan, text, verdict, quoted):
    record = read_hub(handmade({BUNDLE: text}), plan).verdicts[BUNDLE]
    assert record.verdict == verdict, f"expected {verdict}: {record.reason}"
    assert quoted in record.reason, f"the reason should say {quoted!r}: {record.reason}"


def test_a_cut_short_log_names_its_last_result_line(handmade, plan):
    record = read_hub(handmade({BUNDLE: pytest_log(BUNDLE, final=None)}), plan).verdicts[BUNDLE]
    assert f"last result line 9: `{NODEIDS[BUNDLE]} PASSED [100%]`" in record.reason, record.reason


@pytest.mark.parametrize(
    ("text", "verdict", "quoted"),
    [
        (CLI_TRACEBACK, Verdict.RED, "the command failed: ValueError: n_groups=64 exceeds the 32 groups available at "
                                     "gridsize=2; line 5: `Traceback (most recent call last):`"),
        (CLI_NO_END, Verdict.UNKNOWN, "no completion record"),
        (CLI_START + "`Trainer.fit` stopped: `max_epochs=1` reached.\n", Verdict.GREEN,
         "completed: line 5: ``Trainer.fit` stopped"),
    ],
    ids=["traceback", "no-completion-record", "lightning-stopped"],
)
def test_cli_log_cases(handmade, plan, text, verdict, quoted):
    record = read_hub(handmade({SMOKE: text}), plan).verdicts[SMOKE]
    assert record.verdict == verdict, f"expected {verdict}: {record.reason}"
    assert quoted in record.reason, f"the reason should say {quoted!r}: {record.reason}"


def test_a_missing_log_is_a_target_not_run(handmade, plan, harness_hub, capsys):
    hub = handmade({SMOKE: None})
    view = read_hub(hub, plan)
    assert view.overall == "RED" and f"no log for {SMOKE}" in view.overall_reason
    code, payload = compared(capsys, hub, harness_hub)
    assert code == 1 and finding(payload, "disagreements", SMOKE, "target")["detail"] == "target not run in hub A"


def test_a_folder_without_the_plan_logs_is_unreadable(tmp_path, plan):
    (tmp_path / "notes.txt").write_text("ran everything, all fine\n")
    with pytest.raises(HubUnreadable, match="nor a hand-made one in the seed's format") as caught:
        read_hub(tmp_path, plan)
    assert "pytest_gridsize_green.log" in str(caught.value), "the message should name the logs it looked for"


# --------------------------------------------------------------------------- the summary, and what reading touches

def test_a_summary_claiming_all_green_over_a_skip_is_a_disagreement(handmade, harness_hub, capsys):
    hub = handmade({BUNDLE: pytest_log(BUNDLE, "SKIPPED (CUDA not available)", "1 skipped in 0.52s")})
    code, payload = compared(capsys, hub, harness_hub)
    assert code == 1
    claims = [f["detail"] for f in payload["disagreements"] if f["check"] == "hand-made summary"]
    expected = ("summary.md line 3 claims `All four GREEN: gridsize regression, bundle loader, integration, "
                "CLI smoke.`, but pytest_bundle_loader_green.log shows SKIPPED")
    assert expected in claims, f"expected {expected!r} among {claims}"


def test_reading_and_comparing_never_write_into_the_folder(handmade, plan, harness_hub, capsys):
    hub = handmade({BUNDLE: pytest_log(BUNDLE, "SKIPPED (CUDA not available)", "1 skipped in 0.52s")})
    before = hash_tree(hub)
    read_hub(hub, plan)
    run_compare(hub, harness_hub, "--format", "json")
    assert hash_tree(hub) == before, "a hand-made hub is only read"


def test_validate_reads_a_hand_made_hub_whose_green_log_holds_a_pass_and_a_skip(handmade, capsys):
    two = (HEADER + "collecting ... collected 2 items\n\n" + f"{NODEIDS[BUNDLE]} PASSED [ 50%]\n"
           + f"{NODEIDS[BUNDLE]}_again SKIPPED (CUDA not available) [100%]\n\n" + banner("1 passed, 1 skipped in 0.9s") + "\n")
    hub = handmade({BUNDLE: two})
    assert cli("validate", hub, "--hub-only") == 1
    out = capsys.readouterr().out
    assert "hand-made hub (no manifest" in out and "bundle_loader: RED - 1 passed but 1 skipped" in out, out
    assert "problem: summary.md line 3 claims" in out, "the summary's 'All four GREEN' is an over-claim"


def test_comparing_a_hub_with_itself_says_so(harness_hub, capsys):
    assert run_compare(harness_hub, harness_hub) == 0
    assert "note: A and B are the same folder" in capsys.readouterr().out


def test_a_picture_the_hand_made_hub_cannot_hold_is_only_a_warning(handmade, tmp_path, capsys):
    """The seed's hand-made format keeps logs only; the harness hub's pictures are no disagreement."""
    ctx = context(make_real_project(tmp_path / "pictured"))
    hub = collated(ctx, change={SMOKE: with_record(**TRAIN)})
    picture = hub / HubFiles.FIGURES / SMOKE / "loss_curve.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(b"\x89PNG not really")
    path = hub / HubFiles.verdict(SMOKE)
    replace(VerdictRecord.load(path), figures=(f"figures/{SMOKE}/loss_curve.png",)).write(path)
    recollate(ctx, hub)
    code, payload = compared(capsys, handmade(), hub)
    assert code == 0, payload["disagreements"]
    warning = finding(payload, "warnings", SMOKE, "picture loss_curve.png")
    assert "hand-made: it keeps no pictures" in warning["detail"]
