"""The inference CLI's user mistakes: damaged or forged bundles, output folders, a second run.

Each is one ``error:`` line naming the bundle and member (or the flag), exit 2, and no output
replaced. Run in process as ``run_cli(main, argv)`` (what ``python -m ptycho_torch.inference``
does) on a real N=8 bundle and a 16-point scan built in ``tmp_path`` (``conftest``).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from ptycho_torch import bundle as bundle_module
from ptycho_torch.cli.shared import run_cli
from ptycho_torch.inference import OUTPUTS, main

MEMBER = "autoencoder/state_dict.pt"


def _infer(capsys, bundle_dir: Path, data: Path, output_dir: Path, *flags: str) -> tuple[int, list[str]]:
    code = run_cli(main, ["--model_path", str(bundle_dir), "--test_data", str(data), "--output_dir", str(output_dir),
                          "--accelerator", "cpu", *flags])  # fmt: skip
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _refused(capsys, *args, **kwargs) -> str:
    code, lines = _infer(capsys, *args, **kwargs)
    assert code == 2, f"expected exit 2, got {code}; stderr {lines}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error:' line, got {lines}"
    return lines[0]


def _forge(bundle: Path, members: dict[str, bytes], fix_checksums: bool = True) -> None:
    """Rewrite the zip with ``members`` replaced; by default the manifest's sha256 entries are
    updated too, as a careful forger (or a hand edit followed by a repack) would."""
    with zipfile.ZipFile(bundle) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    content.update(members)
    if fix_checksums:
        manifest = json.loads(content["manifest.json"])
        manifest["sha256"] = {k: hashlib.sha256(v).hexdigest() for k, v in content.items() if k != "manifest.json"}
        content["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(bundle, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)


class _Payload:
    """Unpickling this runs ``Path.touch(marker)``: proof that nothing from the archive was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _torch_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def run(tmp_path, tiny_bundle, tiny_scan) -> tuple[Path, Path]:
    """(bundle zip, test data) of a tiny run."""
    return tiny_bundle(tmp_path / "train"), tiny_scan


@pytest.mark.parametrize(
    "payload",
    [lambda m: _torch_pickle({"weight": _Payload(m)}), lambda m: pickle.dumps(_Payload(m)),
     lambda m: _torch_pickle({"weight": 1.5})],
    ids=["torch.save of an object", "plain pickle", "numbers, not tensors"],
)
def test_pickle_member_is_refused_and_never_run(payload, run, tmp_path, capsys):
    bundle, data = run
    marker = tmp_path / "executed"
    _forge(bundle, {MEMBER: payload(marker)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _refused(capsys, bundle.parent, data, tmp_path / "out")
    assert not [str(w.message) for w in caught if "pickle" in str(w.message)], "torch's pickle warnings are extra stderr lines"
    assert line.startswith(f"error: {bundle}: member '{MEMBER}' is not a tensor-only state dict; refused"), line
    assert "weights_only" not in line, "never advise weights_only=False"
    assert not marker.exists(), "the archive's pickle was executed"


@pytest.mark.parametrize("cut", ["middle", "end"])
def test_truncated_bundle_names_the_file(cut, run, tmp_path, capsys):
    bundle, data = run
    raw = bundle.read_bytes()
    bundle.write_bytes(raw[: len(raw) // 2] if cut == "middle" else raw[:-10])
    line = _refused(capsys, bundle.parent, data, tmp_path / "out")
    assert line.startswith(f"error: {bundle} is not a readable zip archive (File is not a zip file): it is truncated"), line


def test_crc_corrupt_member_is_named(run, tmp_path, capsys):
    bundle, data = run
    with zipfile.ZipFile(bundle) as archive:
        info = archive.getinfo(MEMBER)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # stored data follow the header
    raw = bytearray(bundle.read_bytes())
    raw[start + info.compress_size // 2] ^= 0xFF
    bundle.write_bytes(bytes(raw))
    line = _refused(capsys, bundle.parent, data, tmp_path / "out")
    assert line.startswith(f"error: {bundle}: member '{MEMBER}' is corrupt (Bad CRC-32"), line


def _params(bundle: Path) -> dict:
    with zipfile.ZipFile(bundle) as archive:
        return json.loads(archive.read("params.json"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"gridsize": 2}, "does not fit the network that params.json describes (N=8, gridsize=2): "
                          "diffraction_to_obj.encoder.0.weight is (64, 1, 3, 3) in the archive but (64, 4, 3, 3)"),
        ({"N": 16}, "does not fit the network that params.json describes (N=16, gridsize=1): probe is (8, 8)"),
        ({"gridsize": "1"}, "member 'params.json': ModelConfig.gridsize='1' is invalid"),
        ({"N": None}, "member 'params.json' lacks ['N']"),
    ],
    ids=["gridsize", "N", "type", "missing N"],
)
def test_params_disagreeing_with_the_weights_is_named(change, expected, run, tmp_path, capsys):
    bundle, data = run
    params = {k: v for k, v in {**_params(bundle), **change}.items() if v is not None}
    _forge(bundle, {"params.json": json.dumps(params).encode()})
    line = _refused(capsys, bundle.parent, data, tmp_path / "out")
    assert line.startswith(f"error: {bundle}: member ") and expected in line, line


def test_params_not_json_names_bundle_member_and_problem(run, tmp_path, capsys):
    bundle, data = run
    _forge(bundle, {"params.json": b"{'N': 8}"})
    line = _refused(capsys, bundle.parent, data, tmp_path / "out")
    assert line.startswith(f"error: {bundle}: member 'params.json' is not valid JSON (Expecting property name"), line


def test_hand_edited_params_fail_the_checksum(run, tmp_path, capsys):
    bundle, data = run
    _forge(bundle, {"params.json": b"{'N': 8}"}, fix_checksums=False)
    line = _refused(capsys, bundle.parent, data, tmp_path / "out")
    assert line == (f"error: {bundle}: member 'params.json' fails its sha256 check: the archive is corrupt or was edited; "
                    "copy the original again or retrain")


def _must_not_load(*args, **kwargs):
    raise AssertionError("the bundle was loaded before the output folder was checked")


def test_inference_into_a_file_is_refused_before_any_compute(run, tmp_path, capsys, monkeypatch):
    bundle, data = run
    target = tmp_path / "picture.png"
    target.write_bytes(b"keep me")
    monkeypatch.setattr(bundle_module, "load_bundle", _must_not_load)
    line = _refused(capsys, bundle.parent, data, target)
    assert line.startswith(f"error: --output_dir {target} is an existing file, not a folder")
    assert target.read_bytes() == b"keep me"


def test_inference_under_a_file_is_refused_before_any_compute(run, tmp_path, capsys, monkeypatch):
    bundle, data = run
    (tmp_path / "notes").write_text("x")
    monkeypatch.setattr(bundle_module, "load_bundle", _must_not_load)
    line = _refused(capsys, bundle.parent, data, tmp_path / "notes" / "out")
    assert f"{tmp_path / 'notes'} is a file, so no folder can be created under it" in line


def test_second_inference_into_one_folder_needs_overwrite(run, tmp_path, capsys):
    bundle, data = run
    out = tmp_path / "out"
    assert _infer(capsys, bundle.parent, data, out)[0] == 0
    first = {name: (out / name).stat().st_ino for name in OUTPUTS}
    line = _refused(capsys, bundle.parent, data, out)
    assert line == (f"error: --output_dir {out} already holds {', '.join(OUTPUTS)} from an earlier inference; "
                    f"choose a new folder or pass --overwrite to replace them")
    assert {name: (out / name).stat().st_ino for name in OUTPUTS} == first, "refusing must not touch the outputs"
    assert _infer(capsys, bundle.parent, data, out, "--overwrite")[0] == 0
    replaced = {name: (out / name).stat().st_ino != first[name] for name in OUTPUTS}
    assert replaced == dict.fromkeys(OUTPUTS, True), "--overwrite writes new files"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS), "no staging folder is left behind"


def test_overwrite_with_a_bad_bundle_keeps_the_earlier_outputs(run, tmp_path, capsys):
    bundle, data = run
    out = tmp_path / "out"
    out.mkdir()
    for name in OUTPUTS:
        (out / name).write_bytes(b"earlier " + name.encode())
    bundle.write_bytes(bundle.read_bytes()[:100])
    assert "not a readable zip archive" in _refused(capsys, bundle.parent, data, out, "--overwrite")
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == {name: b"earlier " + name.encode() for name in OUTPUTS}
