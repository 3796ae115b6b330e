"""Signed hubs: `<hub>/attestation.json`, a DSSE envelope (signed with ssh-keygen -Y over DSSE's PAE bytes) around
an in-toto Statement v1 whose subjects are every hub file and (`/` + project-relative path) the manifest's external
artifacts, predicate test-result/v0.1 plus collate's word. docs/reproduce.md, "Signed hubs"."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import UserError
from harness.fsio import atomic_write_json, sha256_file
from harness.schema import HubFiles, Manifest, SchemaError, Verdict

ATTESTATION = HubFiles.ATTESTATION
NAMESPACE = "evidence-hub"  # ssh-keygen -n: a signature made for another purpose (git commits, files) never fits
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
EXTERNAL = "/"  # prefix of the subjects outside the hub (project-relative)
TIMEOUT_S = 60  # a security key waiting for a touch; nothing else makes ssh-keygen slow
_ARMOR = ("-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----")
_FINGERPRINT = re.compile(r"key (SHA256:\S+)")
_CONFIGURE = ("pass --key ~/.ssh/id_ed25519, or configure a key once with "
              "`git config --global user.signingkey ~/.ssh/id_ed25519.pub` (and gpg.format ssh)")


class SigningError(UserError, RuntimeError):
    """A hub could not be signed; the message says what to do."""


@dataclass(frozen=True)
class SignatureCheck:
    """What a hub's signature says: `signer` is the allowed_signers identity, or the key fingerprint without one."""
    signed: bool
    signer: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed, so the type cannot be swapped under a signature."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(body), body)


def hub_digests(hub: Path) -> dict[str, str]:
    """sha256 of every hub file a Statement covers (all but the attestation and the in-progress marker)."""
    return {rel: sha256_file(p) for p in sorted(Path(hub).rglob("*")) if p.is_file()
            and (rel := p.relative_to(hub).as_posix()) not in (ATTESTATION, HubFiles.INCOMPLETE)}


def statement(hub: Path) -> dict[str, Any]:
    """The in-toto Statement about a collated hub whose files are as its manifest lists them."""
    hub = Path(hub)
    if (hub / HubFiles.INCOMPLETE).exists():
        raise SigningError(f"{hub}: not collated ({HubFiles.INCOMPLETE} is there); collate it before signing")
    try:
        m = Manifest.load(hub)
    except FileNotFoundError:
        raise SigningError(f"{hub / HubFiles.MANIFEST}: missing; only a collated hub can be signed") from None
    except SchemaError as exc:
        raise SigningError(f"{exc}; collate the hub again before signing") from exc
    files, listed = hub_digests(hub), {e.path: e.sha256 for e in m.files}
    changed = [rel for rel in sorted(set(files) | set(listed))
               if rel != HubFiles.MANIFEST and files.get(rel) != listed.get(rel)]
    if changed:
        raise SigningError(f"{hub / changed[0]}: not as manifest.json lists it; a hub is signed as collated "
                           f"(`python -m harness validate {hub}` says what changed)")
    passed = [t.name for t in m.targets if t.verdict == Verdict.GREEN]
    predicate = {  # test-result/v0.1's fields, then collate's word (consumers ignore unknown fields)
        "result": "PASSED" if m.overall_verdict == Verdict.GREEN else "FAILED",
        "configuration": [{"name": m.plan.path, "digest": {"sha256": m.plan.sha256}}],
        "passedTests": passed, "failedTests": [t.name for t in m.targets if t.name not in passed],
        "verdict": m.overall_verdict, "reason": m.overall_reason,
        "targets": [{"name": t.name, "verdict": t.verdict, "reason": t.reason} for t in m.targets],
        "plan": asdict(m.plan), "git": m.git, "hub": m.hub, "collated_utc": m.collated_utc,
    }
    subject = [{"name": rel, "digest": {"sha256": sha}} for rel, sha in files.items()]
    subject += [{"name": EXTERNAL + e.path.lstrip("/"), "digest": {"sha256": e.sha256}} for e in m.external if e.sha256]
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def _ssh_keygen(*args: str, stdin: Path | None = None) -> tuple[bool, str]:
    """(succeeded, what it said) of ssh-keygen with no terminal to prompt on: a passphrase fails at once."""
    try:
        with open(stdin or os.devnull, "rb") as data:
            done = subprocess.run(["ssh-keygen", *args], stdin=data, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  env={**os.environ, "SSH_ASKPASS_REQUIRE": "never"}, start_new_session=True)
    except FileNotFoundError:
        return False, "ssh-keygen not found: install OpenSSH 8.2 or later"
    except subprocess.TimeoutExpired:
        return False, f"ssh-keygen did not finish within {TIMEOUT_S} s (a security key waiting for a touch?)"
    said = (done.stdout + done.stderr).strip()
    return done.returncode == 0, said if done.returncode == 0 else "; ".join(said.splitlines())


def _signing_key(key: Path | None, git_dir: Path, tmp: Path) -> tuple[Path, str]:
    """(key file for ssh-keygen -f, where it came from): --key, else git's user.signingkey (a file or a literal)."""
    source = "--key"
    if key is None:
        found = subprocess.run(["git", "-C", str(git_dir), "config", "--get", "user.signingkey"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if found.returncode != 0 or not (value := found.stdout.strip()):
            raise SigningError(f"no signing key: {_CONFIGURE}")
        source = f"git config user.signingkey ({git_dir})"
        if value.startswith(("key::", "ssh-", "ecdsa-", "sk-")):  # a public key literal; the agent signs
            literal = tmp / "signingkey.pub"
            literal.write_text(value.removeprefix("key::") + "\n", encoding="utf-8")
            return literal, source
        key = Path(git_dir) / Path(value).expanduser()  # an absolute path stays as it is
    if not Path(key).is_file():
        raise SigningError(f"{source}: {key} is not a key file (hubs are signed with SSH keys); {_CONFIGURE}")
    return Path(key), source


def sign_hub(hub: Path, *, key: Path | None, git_dir: Path) -> Path:
    """Write `<hub>/attestation.json`, signed with `key` or git's user.signingkey; never over a first signer's."""
    target = Path(hub) / ATTESTATION
    if target.exists():
        raise SigningError(f"{target}: the hub is already signed; delete that file to sign it again")
    body = json.dumps(statement(Path(hub)), sort_keys=True, separators=(",", ":")).encode()
    with tempfile.TemporaryDirectory(prefix="attest-") as tmp:
        keyfile, source = _signing_key(key, Path(git_dir), Path(tmp))
        data = Path(tmp) / "pae"
        data.write_bytes(pae(PAYLOAD_TYPE, body))
        ok, said = _ssh_keygen("-Y", "sign", "-n", NAMESPACE, "-f", str(keyfile), str(data))
        if not ok:
            if "passphrase" in said.lower():
                raise SigningError(f"{source}: {keyfile} needs a passphrase and no ssh-agent holds it; add it with "
                                   "ssh-add or pass --key with a key that has none")
            if "no private key" in said.lower():
                raise SigningError(f"{source}: {keyfile} is a public key and no ssh-agent holds its private key; "
                                   "add that with ssh-add, or pass the private key file")
            raise SigningError(f"{source}: ssh-keygen could not sign with {keyfile}: {said}")
        sigfile = data.with_name("pae.sig")  # where ssh-keygen -Y sign puts it
        lines = sigfile.read_text(encoding="ascii").splitlines()
        sig = base64.b64decode("".join(line for line in lines if line and line not in _ARMOR))
        ok, said = _ssh_keygen("-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sigfile), stdin=data)
    found = _FINGERPRINT.search(said)
    if not ok or not found:
        raise SigningError(f"ssh-keygen made a signature that does not verify ({said}); nothing was written")
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
                "signatures": [{"keyid": found.group(1), "sig": base64.b64encode(sig).decode()}]}
    return atomic_write_json(target, envelope)


def read_envelope(path: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """(Statement, payload, signature) of a DSSE envelope with one signature over our Statement; ValueError why not."""
    try:
        envelope = json.loads(Path(path).read_text(encoding="utf-8"))
        signatures = envelope["signatures"]
        body, sig = (base64.b64decode(text, validate=True) for text in (envelope["payload"], signatures[0]["sig"]))
        st = json.loads(body)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"damaged envelope ({type(exc).__name__}: {exc})") from None
    if envelope.get("payloadType") != PAYLOAD_TYPE or len(signatures) != 1:
        raise ValueError(f"not a DSSE envelope of {PAYLOAD_TYPE} with one signature")
    subject = st.get("subject") if isinstance(st, dict) else None
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE \
            or not isinstance(subject, list) or not all(isinstance(s, dict) and isinstance(s.get("name"), str)
                                                        and isinstance(s.get("digest"), dict) for s in subject):
        raise ValueError(f"the payload is not an in-toto Statement v1 of {PREDICATE_TYPE} with named subjects")
    return st, body, sig


def _verify(body: bytes, sig: bytes, trust: Path | None, tmp: Path, problems: list[str]) -> str | None:
    """The signer of `sig` over the PAE of `body`: its identity in `trust`, else its fingerprint; None if none."""
    data, sigfile = tmp / "pae", tmp / "pae.sig"
    data.write_bytes(pae(PAYLOAD_TYPE, body))
    text = base64.b64encode(sig).decode()
    sigfile.write_text("\n".join([_ARMOR[0], *(text[i:i + 70] for i in range(0, len(text), 70)), _ARMOR[1], ""]),
                       encoding="ascii")
    ok, said = _ssh_keygen("-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sigfile), stdin=data)
    found = _FINGERPRINT.search(said) if ok else None
    if not found:
        problems.append(f"{ATTESTATION}: the signature does not verify over its Statement ({said})")
        return None
    if trust is None:
        return found.group(1)
    if not Path(trust).is_file():
        problems.append(f"{trust}: trust file not found (an allowed_signers file: one `identity key` per line)")
        return None
    ok, said = _ssh_keygen("-Y", "find-principals", "-s", str(sigfile), "-f", str(trust))
    if not ok:
        problems.append(f"{ATTESTATION}: signed by an unknown key ({found.group(1)} is not in {trust})")
        return None
    identity = said.split("\n", 1)[0].split(",")[0]  # the first principal of the first matching line
    ok, said = _ssh_keygen("-Y", "verify", "-f", str(trust), "-I", identity, "-n", NAMESPACE, "-s", str(sigfile),
                           stdin=data)
    if not ok:
        problems.append(f"{ATTESTATION}: {trust} does not accept this key for {identity} ({said})")
        return None
    return identity


def check_signature(hub: Path, *, trust: Path | None, require: bool) -> SignatureCheck:
    """Check `<hub>/attestation.json`: a valid signature (by a key of `trust` when given) over every hub file."""
    hub = Path(hub)
    if not (hub / ATTESTATION).is_file():
        note = f"unsigned: {hub} has no {ATTESTATION}"
        return SignatureCheck(False, problems=[note] if require else [], warnings=[] if require else [note])
    try:
        st, body, sig = read_envelope(hub / ATTESTATION)
    except ValueError as exc:
        return SignatureCheck(True, problems=[f"{ATTESTATION}: {exc}"])
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="attest-") as tmp:
        signer = _verify(body, sig, trust, Path(tmp), problems)
    signed = {s["name"]: s["digest"].get("sha256") for s in st["subject"] if not s["name"].startswith(EXTERNAL)}
    present = hub_digests(hub)
    for rel in sorted(set(signed) | set(present)):
        if rel not in signed:
            problems.append(f"{rel}: in the hub but not among the signed subjects (added after signing?)")
        elif rel not in present:
            problems.append(f"{rel}: signed but missing from the hub")
        elif signed[rel] != present[rel]:
            problems.append(f"{rel}: content differs from its signed sha256 (changed after signing)")
    return SignatureCheck(True, signer, problems)
