"""``tally verify …``: offline checks of checkpoints, tlog-proofs and DSSE envelopes.

Each command exits 0 and says so when the input verifies; otherwise it exits non-zero
with one line that says what failed. Nothing here needs a database or the network.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer

from clients.cli.output import JsonFlag, console, emit_json, fail
from provenance.dsse import Envelope, verify_envelope
from provenance.encoding import b64decode_any_alphabet
from provenance.errors import ProvenanceError
from provenance.keys import load_public_key
from provenance.merkle import leaf_hash
from provenance.note import CosignatureVerifier, Ed25519NoteVerifier, parse_verifier_key
from provenance.statement import PAYLOAD_TYPE, Statement
from provenance.tlog.checkpoint import open_checkpoint
from provenance.tlog.proof import TlogProof

app = typer.Typer(no_args_is_help=True, help="Verify signed records offline.")

#: Files read by these commands are capped at this size.
MAX_INPUT_BYTES = 8 * 1024 * 1024


def read_input(path: Path, what: str) -> bytes:
    """Read a file given on the command line, never more than ``MAX_INPUT_BYTES``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror}")
    if len(data) > MAX_INPUT_BYTES:
        fail(f"{what} {path} is over the {MAX_INPUT_BYTES}-byte limit")
    return data


def vkey_argument(value: str) -> str:
    """A verifier key given inline, or the path of a file holding one."""
    path = Path(value)
    if "+" not in value and path.is_file():
        return read_input(path, "verifier key file").decode("utf-8", errors="replace").strip()
    return value


def log_verifier(value: str) -> Ed25519NoteVerifier:
    """Parse ``--key`` as an Ed25519 (type 0x01) verifier key."""
    try:
        verifier = parse_verifier_key(vkey_argument(value))
    except ProvenanceError as exc:
        fail(f"--key: {exc}")
    if not isinstance(verifier, Ed25519NoteVerifier):
        fail("--key: a log key must be an Ed25519 (type 0x01) verifier key")
    return verifier


def witness_verifiers(values: list[str]) -> list[CosignatureVerifier]:
    """Parse each ``--witness`` as a cosignature (type 0x04) verifier key."""
    verifiers = []
    for value in values:
        try:
            verifier = parse_verifier_key(vkey_argument(value))
        except ProvenanceError as exc:
            fail(f"--witness: {exc}")
        if not isinstance(verifier, CosignatureVerifier):
            fail(f"--witness {verifier.name}: a witness key must be a cosignature (0x04) key")
        verifiers.append(verifier)
    return verifiers


def parse_leaf_hash(text: str) -> bytes:
    """A leaf hash given as 64 hex digits or as base64 (padded or not, either alphabet)."""
    value = text.strip()
    try:
        decoded = (
            bytes.fromhex(value)
            if len(value) == 64
            else b64decode_any_alphabet(value, what="--leaf-hash", error=ProvenanceError)
        )
    except (ValueError, ProvenanceError):
        fail("--leaf-hash must be 64 hex digits or base64 of 32 bytes")
    if len(decoded) != 32:
        fail(f"--leaf-hash decodes to {len(decoded)} bytes, expected 32")
    return decoded


@app.command("checkpoint")
def verify_checkpoint(
    file: Annotated[Path, typer.Argument(help="The signed checkpoint note.")],
    key: Annotated[str, typer.Option(help="The log's verifier key (or a file holding it).")],
    origin: Annotated[
        str | None, typer.Option(help="Expected origin (default: the key's name).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Verify that FILE is a checkpoint signed by the log key.

    Example: tally verify checkpoint --key "$(cat keys/example.com_log.vkey)" checkpoint.txt
    """
    verifier = log_verifier(key)
    try:
        verified = open_checkpoint(read_input(file, "checkpoint"), verifier, origin=origin)
    except ProvenanceError as exc:
        fail(f"checkpoint verification failed: {exc}")
    checkpoint = verified.checkpoint
    if as_json:
        emit_json(
            {
                "ok": True,
                "origin": checkpoint.origin,
                "size": checkpoint.size,
                "root_hash": checkpoint.root_hash.hex(),
                "signed_by": list(verified.note.verified_by),
            }
        )
        return
    console.print(
        f"[green]OK[/] checkpoint signed by {verifier.name}: origin {checkpoint.origin}, "
        f"size {checkpoint.size}, root {base64.b64encode(checkpoint.root_hash).decode()}"
    )


@app.command("tlog-proof")
def verify_tlog_proof(
    file: Annotated[Path, typer.Argument(help="The tlog-proof file.")],
    key: Annotated[str, typer.Option(help="The log's verifier key (or a file holding it).")],
    origin: Annotated[
        str | None, typer.Option(help="Expected log origin (default: the key's name).")
    ] = None,
    leaf_hash_text: Annotated[
        str | None, typer.Option("--leaf-hash", help="Leaf hash, hex or base64.")
    ] = None,
    leaf_file: Annotated[
        Path | None, typer.Option(help="File whose bytes are the raw leaf.")
    ] = None,
    leaf: Annotated[str | None, typer.Option(help="The raw leaf as a string (UTF-8).")] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(help="A witness's cosignature verifier key (repeatable)."),
    ] = None,
    min_witnesses: Annotated[
        int, typer.Option(min=0, help="How many of the --witness keys must have cosigned.")
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Verify that a leaf is included in the log, per a C2SP tlog-proof.

    Exactly one of --leaf-hash, --leaf-file, --leaf names the entry; a raw leaf is hashed
    as SHA-256(0x00 || data).

    Example: tally verify tlog-proof --key "$(cat log.vkey)" --leaf-file entry.json entry.tlog-proof
    """
    given = [value for value in (leaf_hash_text, leaf_file, leaf) if value is not None]
    if len(given) != 1:
        fail("give exactly one of --leaf-hash, --leaf-file, --leaf")
    if leaf_hash_text is not None:
        target = parse_leaf_hash(leaf_hash_text)
    elif leaf_file is not None:
        target = leaf_hash(read_input(leaf_file, "leaf file"))
    else:
        target = leaf_hash((leaf or "").encode("utf-8"))
    verifier = log_verifier(key)
    witnesses = witness_verifiers(witness or [])
    if min_witnesses > len(witnesses):
        fail(f"--min-witnesses {min_witnesses} is more than the {len(witnesses)} --witness keys")
    try:
        proof = TlogProof.parse(read_input(file, "tlog-proof"))
        verified = proof.verify(
            target, verifier, origin=origin, witnesses=witnesses, min_witnesses=min_witnesses
        )
    except ProvenanceError as exc:
        fail(f"tlog-proof verification failed: {exc}")
    checkpoint = verified.checkpoint
    cosigners = [name for name in verified.note.verified_by if name != verifier.name]
    if as_json:
        emit_json(
            {
                "ok": True,
                "origin": checkpoint.origin,
                "index": proof.index,
                "size": checkpoint.size,
                "leaf_hash": target.hex(),
                "witnesses": cosigners,
            }
        )
        return
    witnessed = f", cosigned by {', '.join(cosigners)}" if cosigners else ""
    console.print(
        f"[green]OK[/] entry {proof.index} is in {checkpoint.origin} at size "
        f"{checkpoint.size}{witnessed}"
    )


@app.command("envelope")
def verify_envelope_command(
    file: Annotated[Path, typer.Argument(help="The DSSE envelope (JSON).")],
    key: Annotated[
        list[Path], typer.Option(help="A trusted public key file: PEM or did:key (repeatable).")
    ],
    threshold: Annotated[int, typer.Option(min=1, help="Signatures required.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Verify a DSSE envelope and print its payload type (and in-toto predicate type).

    Example: tally verify envelope --key creator.pub manifest.dsse.json
    """
    try:
        keys = [load_public_key(path) for path in key]
    except ProvenanceError as exc:
        fail(f"--key: {exc}")
    try:
        envelope = Envelope.from_json(read_input(file, "envelope"))
        verified = verify_envelope(envelope, keys, threshold=threshold)
        predicate = None
        if verified.payload_type == PAYLOAD_TYPE:
            predicate = Statement.from_payload(verified.payload).predicate_type
    except ProvenanceError as exc:
        fail(f"envelope verification failed: {exc}")
    signers = [signer.did for signer in verified.signers]
    if as_json:
        emit_json(
            {
                "ok": True,
                "payload_type": verified.payload_type,
                "predicate_type": predicate,
                "signers": signers,
            }
        )
        return
    console.print(f"[green]OK[/] payloadType {verified.payload_type}")
    if predicate:
        console.print(f"predicateType {predicate}")
    console.print(f"signed by {', '.join(signers)}")
