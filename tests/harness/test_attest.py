"""Signed hubs: a real collated hub signed with a fresh ssh key, read back by an independent DSSE reader."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory import LOGS, TIMESTAMP, collated, git
from securesystemslib.dsse import Envelope

from harness import attest
from harness.attest import ATTESTATION, NAMESPACE, SigningError, check_signature, sign_hub
from harness.context import RunContext
from harness.schema import HubFiles, Manifest, Verdict
from harness.validate import validate

IDENTITY = "alice@example.com"
BUNDLE = f"artifacts/{TIMESTAMP}/smoke/wts.h5.zip"


def keypair(folder: Path, name: str, passphrase: str = "") -> Path:
    """A fresh ed25519 key (private at the returned path, public beside it with .pub)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(folder / name)],
                   check=True, stdin=subprocess.DEVNULL)
    return folder / name


@pytest.fixture(autouse=True)
def no_agent_no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the developer's ssh-agent nor their git config may sign or configure anything here."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return keypair(tmp_path / "keys", "alice")


@pytest.fixture
def trust(tmp_path: Path, key: Path) -> Path:
    """An allowed_signers file that trusts `key` as IDENTITY for our namespace."""
    path = tmp_path / "allowed_signers"
    path.write_text(f'{IDENTITY} namespaces="{NAMESPACE}" {key.with_suffix(".pub").read_text()}')
    return path


@pytest.fixture
def hub(ctx: RunContext) -> Path:
    hub = collated(ctx)
    assert Manifest.load(hub).overall_verdict == "GREEN", "the factory's default hub must collate GREEN"
    return hub


def test_signed_hub_checks_with_trust_and_names_the_identity(hub: Path, key: Path, trust: Path, root: Path) -> None:
    written = sign_hub(hub, key=key, git_dir=root)
    assert written == hub / ATTESTATION
    result = check_signature(hub, trust=trust, require=True)
    assert (result.signed, result.signer, result.problems, result.warnings) == (True, IDENTITY, [], [])
    assert validate(hub).ok, f"a signed hub must still validate: {validate(hub).problems}"


def test_envelope_and_statement_read_independently(hub: Path, key: Path, trust: Path, root: Path,
                                                   tmp_path: Path) -> None:
    sign_hub(hub, key=key, git_dir=root)
    envelope = Envelope.from_dict(json.loads((hub / ATTESTATION).read_text()))  # securesystemslib's reader
    assert envelope.payload_type == "application/vnd.in-toto+json" and len(envelope.signatures) == 1
    statement = json.loads(envelope.payload)
    assert (statement["_type"], statement["predicateType"]) == \
        ("https://in-toto.io/Statement/v1", "https://in-toto.io/attestation/test-result/v0.1")
    on_disk = {p.relative_to(hub).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in hub.rglob("*") if p.is_file() and p.name != ATTESTATION}
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert {n: d for n, d in subjects.items() if not n.startswith("/")} == on_disk
    bundle = root / BUNDLE
    assert subjects[f"/{BUNDLE}"] == hashlib.sha256(bundle.read_bytes()).hexdigest(), "external artifacts are subjects"
    predicate, manifest = statement["predicate"], Manifest.load(hub)
    assert (predicate["result"], predicate["verdict"], predicate["failedTests"]) == ("PASSED", "GREEN", [])
    assert predicate["passedTests"] == ["unit", "integration", "smoke"]
    assert predicate["configuration"][0]["digest"]["sha256"] == manifest.plan.sha256 == predicate["plan"]["sha256"]
    assert predicate["git"]["sha"] == git(root, "rev-parse", "HEAD").strip()
    # ssh-keygen itself accepts the signature over securesystemslib's PAE bytes: our encoding is DSSE's.
    (tmp_path / "pae").write_bytes(envelope.pae())
    sig = base64.b64encode(bytes.fromhex(next(iter(envelope.signatures.values())).signature)).decode()
    (tmp_path / "sig").write_text(f"-----BEGIN SSH SIGNATURE-----\n{sig}\n-----END SSH SIGNATURE-----\n")
    with open(tmp_path / "pae", "rb") as data:
        done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(trust), "-I", IDENTITY, "-n", NAMESPACE,
                               "-s", str(tmp_path / "sig")], stdin=data, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_red_hub_is_signed_as_failed(ctx: RunContext, key: Path, trust: Path, root: Path) -> None:
    hub = collated(ctx, {"integration": Verdict.RED})
    sign_hub(hub, key=key, git_dir=root)
    predicate = json.loads(Envelope.from_dict(json.loads((hub / ATTESTATION).read_text())).payload)["predicate"]
    assert (predicate["result"], predicate["verdict"]) == ("FAILED", "RED")
    assert (predicate["passedTests"], predicate["failedTests"]) == (["unit", "smoke"], ["integration"])
    assert check_signature(hub, trust=trust, require=True).problems == []


def test_changed_log_with_a_recomputed_manifest_is_named(hub: Path, key: Path, trust: Path, root: Path) -> None:
    sign_hub(hub, key=key, git_dir=root)
    log = hub / LOGS["unit"]
    log.write_bytes(log.read_bytes().replace(b"PASSED", b"PASSES", 1))
    record = hub / HubFiles.verdict("unit")  # a careful forger reseals the log in its record too
    rec = json.loads(record.read_text())
    rec.update(log_sha256=hashlib.sha256(log.read_bytes()).hexdigest(), log_bytes=log.stat().st_size)
    record.write_text(json.dumps(rec))
    data = json.loads((hub / HubFiles.MANIFEST).read_text())
    for path in (log, record):
        entry = next(e for e in data["files"] if e["path"] == path.relative_to(hub).as_posix())
        entry.update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), bytes=path.stat().st_size)
    (hub / HubFiles.MANIFEST).write_text(json.dumps(data))
    assert validate(hub).ok, "the forger's manifest agrees with the log: only the signature can tell"
    problems = check_signature(hub, trust=trust, require=True).problems
    assert any(p.startswith(f"{LOGS['unit']}: content differs") for p in problems), problems
    assert any(p.startswith(f"{HubFiles.MANIFEST}: content differs") for p in problems), problems


@pytest.mark.parametrize("change, expected", [
    (lambda hub: (hub / "notes.txt").write_text("added\n"), "notes.txt: in the hub but not among the signed"),
    (lambda hub: (hub / HubFiles.SUMMARY).unlink(), f"{HubFiles.SUMMARY}: signed but missing"),
])
def test_files_added_or_removed_after_signing_are_named(hub: Path, key: Path, trust: Path, root: Path,
                                                        change, expected: str) -> None:
    sign_hub(hub, key=key, git_dir=root)
    change(hub)
    problems = check_signature(hub, trust=trust, require=False).problems
    assert any(p.startswith(expected) for p in problems), problems


def test_key_not_in_trust_file_is_an_unknown_key(hub: Path, trust: Path, root: Path, tmp_path: Path) -> None:
    sign_hub(hub, key=keypair(tmp_path / "keys", "mallory"), git_dir=root)
    result = check_signature(hub, trust=trust, require=True)
    assert result.signer is None and result.signed
    assert [p for p in result.problems if "signed by an unknown key" in p], result.problems


def test_without_trust_the_signer_is_the_fingerprint(hub: Path, key: Path, root: Path) -> None:
    sign_hub(hub, key=key, git_dir=root)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", str(key.with_suffix(".pub"))], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    result = check_signature(hub, trust=None, require=True)
    assert (result.signer, result.problems) == (fingerprint, [])


@pytest.mark.parametrize("require", [True, False])
def test_unsigned_hub_is_a_warning_or_a_problem_when_required(hub: Path, require: bool) -> None:
    result = check_signature(hub, trust=None, require=require)
    assert not result.signed
    said = result.problems if require else result.warnings
    assert len(said) == 1 and said[0].startswith("unsigned"), result
    assert (result.warnings if require else result.problems) == []


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],
    lambda text: text.replace('"payload": "', '"payload": "!!'),
    lambda text: json.dumps({**json.loads(text), "signatures": []}),
    lambda text: json.dumps({**json.loads(text), "payload": base64.b64encode(b'{"_type": "other"}').decode()}),
])
def test_damaged_envelope_is_a_problem_not_a_traceback(hub: Path, key: Path, trust: Path, root: Path, damage) -> None:
    sign_hub(hub, key=key, git_dir=root)
    path = hub / ATTESTATION
    path.write_text(damage(path.read_text()))
    result = check_signature(hub, trust=trust, require=True)
    assert result.signed and result.signer is None and result.problems[0].startswith(f"{ATTESTATION}: "), result


def test_swapped_payload_does_not_verify(hub: Path, key: Path, trust: Path, root: Path) -> None:
    """A well-formed Statement put under someone's signature is caught by ssh-keygen, not by our parser."""
    sign_hub(hub, key=key, git_dir=root)
    data = json.loads((hub / ATTESTATION).read_text())
    statement = json.loads(base64.b64decode(data["payload"]))
    statement["predicate"]["result"] = "FAILED"
    data["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (hub / ATTESTATION).write_text(json.dumps(data))
    problems = check_signature(hub, trust=trust, require=True).problems
    assert any("does not verify" in p for p in problems), problems


def test_passphrase_key_without_agent_fails_at_once_without_prompting(hub: Path, root: Path, tmp_path: Path) -> None:
    """Signed from a process whose controlling terminal is a pty: a prompt there would hang until killed."""
    locked = keypair(tmp_path / "keys", "locked", passphrase="correct horse")
    code = ("import sys; from pathlib import Path; from harness.attest import SigningError, sign_hub\n"
            "try: sign_hub(Path(sys.argv[1]), key=Path(sys.argv[2]), git_dir=Path(sys.argv[3]))\n"
            "except SigningError as exc: print('SigningError:', exc)")
    env = {**os.environ, "PYTHONPATH": str(Path(attest.__file__).parents[1])}
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-c", code, str(hub), str(locked), str(root)], env)
    output, deadline, finished = b"", time.monotonic() + 5, False
    while not finished and time.monotonic() < deadline:
        finished = os.waitpid(pid, os.WNOHANG)[0] == pid
        while select.select([fd], [], [], 0.05)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    if not finished:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)
    assert finished, f"signing did not finish within 5 s on a terminal (waiting for a passphrase?): {output!r}"
    assert b"needs a passphrase and no ssh-agent holds it; add it with ssh-add" in output, output
    assert b"Enter passphrase" not in output and not (hub / ATTESTATION).exists()


@pytest.mark.parametrize("value", [lambda key, root: str(key), lambda key, root: os.path.relpath(key, root)])
def test_git_signingkey_is_used_without_key(hub: Path, key: Path, trust: Path, root: Path, value) -> None:
    """An absolute path, or one relative to the checkout whose git config names it."""
    git(root, "config", "user.signingkey", value(key, root))
    sign_hub(hub, key=None, git_dir=root)
    assert check_signature(hub, trust=trust, require=True).signer == IDENTITY


def test_git_signingkey_literal_signs_through_the_agent(hub: Path, key: Path, trust: Path, root: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`key::ssh-ed25519 ...` names a public key; the agent that holds its private half signs."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(key)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        git(root, "config", "user.signingkey", "key::" + key.with_suffix(".pub").read_text().strip())
        sign_hub(hub, key=None, git_dir=root)
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    assert check_signature(hub, trust=trust, require=True).signer == IDENTITY


def an_openpgp_key_id(root: Path, key: Path) -> None:
    git(root, "config", "user.signingkey", "0xDEADBEEF")


def only_the_public_half(root: Path, key: Path) -> Path:
    key.unlink()
    return key.with_suffix(".pub")


@pytest.mark.parametrize("setup, expected", [
    (lambda root, key: None, "no signing key: pass --key"),
    (an_openpgp_key_id, "0xDEADBEEF is not a key file"),
    (only_the_public_half, "is a public key and no ssh-agent holds its private"),
])
def test_missing_or_unusable_key_says_how_to_configure_one(hub: Path, key: Path, root: Path, setup,
                                                           expected: str) -> None:
    """`setup` configures the project (or not) and returns the --key to pass."""
    given = setup(root, key)
    with pytest.raises(SigningError, match=expected):
        sign_hub(hub, key=given, git_dir=root)
    assert not (hub / ATTESTATION).exists()


def test_only_a_collated_unchanged_hub_is_signed(hub: Path, key: Path, root: Path) -> None:
    (hub / LOGS["unit"]).write_text("edited\n")
    with pytest.raises(SigningError, match=f"{LOGS['unit']}: not as manifest.json lists it"):
        sign_hub(hub, key=key, git_dir=root)
    (hub / HubFiles.INCOMPLETE).write_text("running\n")
    with pytest.raises(SigningError, match="not collated"):
        sign_hub(hub, key=key, git_dir=root)


def test_a_signed_hub_is_not_signed_again(hub: Path, key: Path, root: Path) -> None:
    first = sign_hub(hub, key=key, git_dir=root).read_bytes()
    with pytest.raises(SigningError, match="already signed"):
        sign_hub(hub, key=key, git_dir=root)
    assert (hub / ATTESTATION).read_bytes() == first


def test_pae_matches_securesystemslib() -> None:
    envelope = Envelope(payload=b'{"a": 1}', payload_type=attest.PAYLOAD_TYPE, signatures={})
    assert attest.pae(attest.PAYLOAD_TYPE, b'{"a": 1}') == envelope.pae()


def test_the_commands_sign_check_and_show_the_signer(hub: Path, key: Path, trust: Path, root: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The acceptance path through the command line: collate --sign, validate --trust, compare shows signers."""
    from factory import cli

    assert cli("validate", hub, "--require-signature") == 1, "an unsigned hub is INVALID when a signature is required"
    assert "unsigned" in capsys.readouterr().out
    assert cli("collate", hub, "--no-ledger", "--sign", "--key", key) == 0
    assert cli("validate", hub, "--trust", trust, "--require-signature") == 0
    assert capsys.readouterr().out.rstrip().endswith("overall GREEN; signed by alice@example.com)")
    stranger = keypair(tmp_path, "stranger")
    other = tmp_path / "other_signers"
    other.write_text(f"bob@example.com {' '.join(stranger.with_suffix('.pub').read_text().split()[:2])}\n")
    assert cli("validate", hub, "--trust", other, "--require-signature") == 1
    assert "signed by an unknown key" in capsys.readouterr().out
    assert cli("compare", hub, hub) == 0
    assert "(signed by SHA256:" in capsys.readouterr().out, "compare names each hub's signer"
    assert cli("collate", hub, "--no-ledger", "--sign", "--key", tmp_path / "absent") == 2
    assert capsys.readouterr().err.startswith("error: collate: "), "a bad key is one error line"
