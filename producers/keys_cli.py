"""`cehub keys new|show|rotate|revoke` and `cehub enroll`: keys and the events about them.

A participant's private key is a PKCS#8 PEM file that never leaves its premises (DESIGN.md
section 4); the hub learns its public key from ParticipantEnrolled, signed by the hub
authority, and later from KeyRotated / KeyRevoked, signed by the current key or the authority.
``producers/cli.py`` exports these commands in ``COMMANDS``.
"""

# Adapters are imported inside the functions so that `cehub --help` stays fast (as in cli.py).

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.cli import reports_errors
from ledger.config import Settings
from producers.cli_support import (
    echo_key,
    load_signer,
    occurred_at_option,
    passphrase,
    passphrase_options,
    public_key_from_pem,
    raw_public_key,
    report,
    send_drafts,
    usage_exit,
)

if TYPE_CHECKING:
    from ledger.signing import Ed25519Signer
    from producers.records import Draft


@click.group()
def keys() -> None:
    """Create and manage Ed25519 signing keys (PKCS#8 PEM files)."""


@keys.command("new")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Key file."
)
@passphrase_options
@reports_errors
def keys_new(out: Path, passphrase_file: Path | None, passphrase_env: str | None) -> None:
    """Write a new private key to OUT (mode 0600, never overwritten); print its public key.

    Give the printed public_key to the hub operator for `cehub enroll`. With a passphrase the
    file is encrypted (PKCS#8, best available encryption); every command that signs then
    needs the same passphrase option.
    """
    from ledger.signing import Ed25519Signer

    signer = Ed25519Signer.generate()
    pem = signer.to_pem(passphrase(passphrase_file, passphrase_env))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        usage_exit(f"{out} exists; refusing to overwrite a key file")
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    click.echo(f"wrote {out}")
    echo_key(signer.public_key)


@keys.command("show")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--pem", is_flag=True, help="Print the public key as PEM instead.")
@passphrase_options
@reports_errors
def keys_show(
    file: Path, pem: bool, passphrase_file: Path | None, passphrase_env: str | None
) -> None:
    """Print the public key (base64 of the 32 raw bytes) and key id of a key file."""
    if b"PRIVATE KEY" in file.read_bytes():
        public_key = load_signer(file, passphrase(passphrase_file, passphrase_env)).public_key
    else:
        public_key = public_key_from_pem(file)
    if pem:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key = Ed25519PublicKey.from_public_bytes(public_key)
        click.echo(
            key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode("ascii"),
            nl=False,
        )
        return
    echo_key(public_key)


def _signing_choice(
    key: Path | None, authority_key: Path | None, participant_id: str
) -> tuple[Path, str]:
    """(key file, producer id): the participant's own key, or the hub authority's."""
    from schemas.events import HUB_PRODUCER_ID

    if (key is None) == (authority_key is None):
        raise click.UsageError("give exactly one of --key (the current key) and --authority-key")
    if key is not None:
        return key, participant_id
    assert authority_key is not None
    return authority_key, HUB_PRODUCER_ID


_KEY_OPTIONS = (
    click.option(
        "--key",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="The participant's current private key (it signs as the participant).",
    ),
    click.option(
        "--authority-key",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="The hub authority's private key (it signs as producer 'hub').",
    ),
    click.option("--participant-id", required=True, help="Participant whose key changes."),
    click.option("--occurred-at", help="ISO 8601 time with offset [now]."),
    click.option("--dry-run", is_flag=True, help="Build and sign, print, send nothing."),
)


def _key_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_KEY_OPTIONS):
        func = option(func)
    return passphrase_options(func)


@keys.command("rotate")
@_key_options
@click.option("--new-public-key", metavar="B64", help="The new public key, base64.")
@click.option(
    "--new-public-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The new key as PEM (public key, or the new unencrypted private key file).",
)
@click.option(
    "--previous-key-id", help="Key being replaced [the id of --key; required with --authority-key]."
)
@click.pass_obj
@reports_errors
def keys_rotate(
    settings: Settings,
    *,
    key: Path | None,
    authority_key: Path | None,
    participant_id: str,
    occurred_at: str | None,
    dry_run: bool,
    passphrase_file: Path | None,
    passphrase_env: str | None,
    new_public_key: str | None,
    new_public_key_file: Path | None,
    previous_key_id: str | None,
) -> None:
    """Emit KeyRotated: the participant's new key replaces PREVIOUS-KEY-ID.

    Signed by the participant's current key (--key) or by the hub authority (--authority-key,
    e.g. when the current key is lost).
    """
    from ledger.signing import key_id_for
    from producers.records import command_draft
    from schemas.events import KeyRotated

    key_file, producer_id = _signing_choice(key, authority_key, participant_id)
    signer = load_signer(key_file, passphrase(passphrase_file, passphrase_env))
    new_key = raw_public_key(new_public_key, new_public_key_file, "new-public-key")
    previous = previous_key_id or (signer.key_id if key is not None else None)
    if previous is None:
        raise click.UsageError("--previous-key-id is required with --authority-key")
    draft = command_draft(
        lambda header: KeyRotated(
            header=header,
            participant_id=participant_id,
            new_public_key=new_key,
            new_key_id=key_id_for(new_key),
            previous_key_id=previous,
        ),
        producer_id=producer_id,
        occurred_at=occurred_at_option(occurred_at),
    )
    _emit_one(settings, draft, signer, producer_id, source="cehub keys rotate", dry_run=dry_run)


@keys.command("revoke")
@_key_options
@click.option("--key-id", help="Key to revoke [the id of --key].")
@click.option("--reason", required=True, help="Why (for auditors): compromise, loss, ...")
@click.pass_obj
@reports_errors
def keys_revoke(
    settings: Settings,
    *,
    key: Path | None,
    authority_key: Path | None,
    participant_id: str,
    occurred_at: str | None,
    dry_run: bool,
    passphrase_file: Path | None,
    passphrase_env: str | None,
    key_id: str | None,
    reason: str,
) -> None:
    """Emit KeyRevoked for a participant's key.

    Signed by the participant's key (--key; by default it revokes itself) or by the hub
    authority (--authority-key, --key-id required).
    """
    from producers.records import command_draft
    from schemas.events import KeyRevoked

    key_file, producer_id = _signing_choice(key, authority_key, participant_id)
    signer = load_signer(key_file, passphrase(passphrase_file, passphrase_env))
    revoked = key_id or (signer.key_id if key is not None else None)
    if revoked is None:
        raise click.UsageError("--key-id is required with --authority-key")
    draft = command_draft(
        lambda header: KeyRevoked(
            header=header, participant_id=participant_id, key_id=revoked, reason=reason
        ),
        producer_id=producer_id,
        occurred_at=occurred_at_option(occurred_at),
    )
    _emit_one(settings, draft, signer, producer_id, source="cehub keys revoke", dry_run=dry_run)


def _emit_one(
    settings: Settings,
    draft: Draft,
    signer: Ed25519Signer,
    producer_id: str,
    *,
    source: str,
    dry_run: bool,
) -> None:
    event = draft.event
    name = type(event).__name__
    if dry_run:
        from ledger.envelope import seal

        seal(draft.sequenced(0), signer)  # proves it encodes and signs
        click.echo(f"dry run: would send {name} {draft.event_id} as {producer_id!r}")
        click.echo(f"  {event}")
        return
    result = send_drafts(settings, [draft], signer, producer_id, source)
    click.echo(f"{name} signed by {signer.key_id} as {producer_id!r}")
    report(result, [draft])


# --- cehub enroll --------------------------------------------------------------------------------


def _site(text: str) -> tuple[str, str, str]:
    site_id, sep, rest = text.partition(":")
    name, sep2, country = rest.rpartition(":")
    if not (sep and sep2 and site_id and name and country):
        raise click.BadParameter(f"{text!r}: expected ID:NAME:COUNTRY", param_hint="--site")
    return site_id, name, _country(country, "--site")


def _country(text: str, hint: str) -> str:
    if len(text) != 2 or not text.isascii() or not text.isalpha():
        raise click.BadParameter(
            f"{text!r}: expected an ISO 3166-1 alpha-2 code such as TH", param_hint=hint
        )
    return text.upper()


@click.command()
@click.option(
    "--authority-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The hub authority's private key [env CEHUB_AUTHORITY_KEY; "
    "<data-dir>/keys/authority.pem].",
)
@passphrase_options
@click.option("--participant-id", required=True, help="Id of the new participant.")
@click.option("--legal-name", required=True, help="Registered legal name.")
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. TH.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(
        ["collector", "recycler", "converter", "manufacturer", "brand", "certifier"],
        case_sensitive=False,
    ),
    help="A role the participant acts in (repeat for several).",
)
@click.option(
    "--site", "sites", multiple=True, metavar="ID:NAME:COUNTRY", help="A site (repeatable)."
)
@click.option("--public-key", metavar="B64", help="The participant's public key, base64.")
@click.option(
    "--public-key-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The participant's public key as PEM (`cehub keys show --pem`).",
)
@click.option("--occurred-at", help="ISO 8601 time with offset [now].")
@click.option("--dry-run", is_flag=True, help="Build and sign, print, send nothing.")
@click.pass_obj
@reports_errors
def enroll(
    settings: Settings,
    *,
    authority_key: Path | None,
    passphrase_file: Path | None,
    passphrase_env: str | None,
    participant_id: str,
    legal_name: str,
    country: str,
    roles: tuple[str, ...],
    sites: tuple[str, ...],
    public_key: str | None,
    public_key_file: Path | None,
    occurred_at: str | None,
    dry_run: bool,
) -> None:
    """Admit a participant with its first key (run by the hub operator).

    Builds ParticipantEnrolled, signs it with the hub authority key as producer 'hub' (with
    the hub's own state file) and emits it.
    """
    from ledger.signing import key_id_for
    from producers.records import command_draft
    from schemas.events import HUB_PRODUCER_ID, ParticipantEnrolled, Role, Site

    key_file = authority_key or settings.effective_authority_key
    signer = load_signer(key_file, passphrase(passphrase_file, passphrase_env))
    raw_key = raw_public_key(public_key, public_key_file, "public-key")
    site_records = tuple(Site(*_site(text)) for text in sites)
    draft = command_draft(
        lambda header: ParticipantEnrolled(
            header=header,
            participant_id=participant_id,
            legal_name=legal_name,
            country=_country(country, "--country"),
            roles=tuple(dict.fromkeys(Role(role.upper()) for role in roles)),
            sites=site_records,
            public_key=raw_key,
            key_id=key_id_for(raw_key),
        ),
        producer_id=HUB_PRODUCER_ID,
        occurred_at=occurred_at_option(occurred_at),
    )
    _emit_one(settings, draft, signer, HUB_PRODUCER_ID, source="cehub enroll", dry_run=dry_run)
