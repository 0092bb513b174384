"""``tally keygen``: create an Ed25519 key pair and print how others refer to it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from clients.cli.output import JsonFlag, console, emit_json, fail
from provenance.errors import KeyFormatError, ProvenanceError
from provenance.keys import SigningKey, write_public_key, write_signing_key
from provenance.note import (
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    check_key_name,
    format_verifier_key,
)


def key_file_stem(name: str) -> str:
    """A file name stem for key ``name`` ('/' and other unsafe characters become '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def write_key_files(out: Path, name: str) -> tuple[SigningKey, dict[str, Path]]:
    """Create a key named ``name`` and write NAME.key (0600), NAME.pub and NAME.vkey to ``out``.

    Raises ``KeyFormatError`` (a ``ProvenanceError``) instead of overwriting any file.
    """
    check_key_name(name)
    stem = key_file_stem(name)
    paths = {suffix: out / f"{stem}.{suffix}" for suffix in ("key", "pub", "vkey")}
    existing = [str(path) for path in paths.values() if path.exists()]
    if existing:
        raise KeyFormatError(f"refusing to overwrite existing key files: {', '.join(existing)}")
    out.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    write_signing_key(key, paths["key"])
    write_public_key(key.public_key, paths["pub"])
    vkey = format_verifier_key(name, SIG_TYPE_ED25519, key.public_key.raw)
    paths["vkey"].write_text(vkey + "\n", "utf-8")
    return key, paths


def keygen(
    name: Annotated[str, typer.Option(help="Key name, e.g. a log origin like example.com/log.")],
    out: Annotated[Path, typer.Option(help="Directory to write the key files into.")],
    witness: Annotated[
        bool, typer.Option(help="Also print the key as a witness (cosignature) verifier key.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create an Ed25519 key: NAME.key (private, mode 0600), NAME.pub (PEM), NAME.vkey.

    Prints the C2SP verifier key string and the did:key. Existing files are never
    overwritten.

    Example: tally keygen --name example.com/log --out keys
    """
    try:
        check_key_name(name)
    except ProvenanceError as exc:
        fail(f"--name: {exc}")
    try:
        key, paths = write_key_files(out, name)
    except ProvenanceError as exc:
        fail(str(exc))
    public = key.public_key
    vkey = format_verifier_key(name, SIG_TYPE_ED25519, public.raw)
    result = {
        "name": name,
        "verifier_key": vkey,
        "did": public.did,
        "private_key": str(paths["key"]),
        "public_key": str(paths["pub"]),
    }
    if witness:
        result["witness_verifier_key"] = format_verifier_key(
            name, SIG_TYPE_COSIGNATURE_V1, public.raw
        )
    if as_json:
        emit_json(result)
        return
    console.print(f"private key  {paths['key']} (mode 0600)")
    console.print(f"public key   {paths['pub']}")
    console.print(f"verifier key {vkey}")
    if witness:
        console.print(f"witness key  {result['witness_verifier_key']}")
    console.print(f"did:key      {public.did}")
