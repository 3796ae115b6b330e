"""Ctrl-C (SIGINT) and SIGTERM: one ``interrupted:`` line, exit 130/143, no traceback, nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ptycho_torch import bundle as bundle_module
from ptycho_torch import inference
from ptycho_torch.cli.interrupts import Interrupted, deferred_interrupts, interrupts_raise
from ptycho_torch.cli.shared import run_cli


@pytest.fixture(autouse=True)
def _sigint_answered():
    """In-process tests send SIGINT to pytest itself, which may have inherited it as ignored."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _as_from_a_terminal() -> None:
    """Signal dispositions of a command typed in a terminal (pytest may itself run with SIGINT ignored)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "code", "words"), [(signal.SIGINT, 130, "SIGINT (Ctrl-C)"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_during_training_is_one_line_and_leaves_no_bundle(signum, code, words, tiny_scan, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    argv = [sys.executable, "-m", "ptycho_torch.train", "--train_data_file", str(tiny_scan), "--output_dir", str(out),
            "--max_epochs", "100000", "--batch_size", "4", "--accelerator", "cpu", "--logger", "csv"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               preexec_fn=_as_from_a_terminal)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("lightning_logs/version_*/metrics.csv")):  # first flush: Trainer.fit is running
            assert process.poll() is None, f"training ended early: {process.communicate()}"
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == code, f"exit {process.returncode}, expected {code}; stderr {lines[-5:]}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "Received SIGTERM" not in stderr, stderr
    ours = [line for line in lines if line.startswith("interrupted:")]
    assert ours == [f"interrupted: {words} received; training stopped and wrote no bundle "
                    "(wts.h5.zip appears only when a run finishes); rerun the command"], lines[-3:]
    assert lines[-1] == ours[0], "the interruption is the last word"
    assert not (out / "wts.h5.zip").exists() and not list(out.glob(".wts.h5.zip.*")), "no bundle, whole or partial"


def _signal_after(function, signum=signal.SIGINT):
    """``function``, then a real signal to this process (its handler runs right after)."""

    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        os.kill(os.getpid(), signum)
        return result

    return wrapped


def test_signal_during_inference_keeps_the_earlier_outputs(tiny_bundle, tiny_scan, tmp_path, capsys, monkeypatch):
    bundle = tiny_bundle(tmp_path / "train")
    out = tmp_path / "out"
    out.mkdir()
    for name in inference.OUTPUTS:
        (out / name).write_bytes(b"earlier")
    monkeypatch.setattr(inference, "save_images", _signal_after(inference.save_images))  # outputs half staged
    argv = ["--model_path", str(bundle), "--test_data", str(tiny_scan), "--output_dir", str(out), "--overwrite"]
    assert run_cli(inference.main, argv, on_interrupt=inference.ON_INTERRUPT) == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted: SIGINT (Ctrl-C) received; inference stopped before replacing any output in --output_dir; rerun it"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == dict.fromkeys(inference.OUTPUTS, b"earlier"), (
        "earlier outputs replaced, or the staging folder left behind"
    )


def test_renames_that_belong_together_finish_before_the_signal_lands(tmp_path, monkeypatch):
    staging, out = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    out.mkdir()
    for name in inference.OUTPUTS:
        (staging / name).write_text("new")
    monkeypatch.setattr(os, "replace", _signal_after(os.replace))  # a signal after the first rename
    with pytest.raises(Interrupted), interrupts_raise():
        inference.commit_outputs(staging, out, inference.OUTPUTS)
    assert sorted(p.name for p in out.iterdir()) == sorted(inference.OUTPUTS), "all outputs or none"


def test_interrupted_bundle_write_keeps_the_earlier_bundle(tmp_path, monkeypatch):
    models = {"autoencoder": torch.nn.Linear(2, 2), "diffraction_to_obj": torch.nn.Linear(2, 2)}
    params = {"N": 8, "gridsize": 1}
    target = bundle_module.save_bundle(tmp_path, models, params)
    earlier = target.read_bytes()
    real_writestr = bundle_module.zipfile.ZipFile.writestr
    calls = []

    def writestr_then_interrupt(self, name, data, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise Interrupted(signal.SIGTERM)
        return real_writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(bundle_module.zipfile.ZipFile, "writestr", writestr_then_interrupt)
    with pytest.raises(Interrupted):
        bundle_module.save_bundle(tmp_path, models, params)
    assert target.read_bytes() == earlier, "a half-written bundle replaced the finished one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wts.h5.zip"], "the temporary file must be removed"


def test_exit_code_is_128_plus_the_signal(capsys):
    def main(argv):
        raise Interrupted(signal.SIGTERM)

    assert run_cli(main, [], on_interrupt="nothing was written") == 143
    assert capsys.readouterr().err == "interrupted: SIGTERM received; nothing was written\n"


def test_handlers_are_restored_and_a_forked_worker_gets_keyboardinterrupt(monkeypatch):
    before = signal.getsignal(signal.SIGINT)
    with interrupts_raise():
        monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a forked DataLoader worker
        with pytest.raises(KeyboardInterrupt):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is before


def test_an_inherited_ignore_is_respected(monkeypatch):
    """``cmd &`` in a shell script ignores SIGINT on purpose; the CLI must not start answering it."""
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.SIG_IGN if signum == signal.SIGINT else signal.SIG_DFL)
    installed = {}
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.setdefault(signum, handler))
    with interrupts_raise():
        pass
    assert signal.SIGINT not in installed and signal.SIGTERM in installed


def test_deferred_interrupts_delivers_after_the_block():
    delivered = []
    with interrupts_raise(), pytest.raises(Interrupted):
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
            delivered.append("block finished")
    assert delivered == ["block finished"]
