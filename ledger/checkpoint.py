"""Checkpoints: the ledger's signed tree heads, as C2SP tlog-checkpoint signed notes.

A checkpoint (https://c2sp.org/tlog-checkpoint) is the text::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, base64>\\n
    [<extension line>\\n ...]

wrapped in a signed note (https://c2sp.org/signed-note): the text, a blank line, then one
``— <key name> base64(key ID || Ed25519 signature)`` line per signature. Because the format is
the one of the Go checksum database, Trillian/Tessera logs and their witnesses, any of their
tools (``golang.org/x/mod/sumdb/note``, ``transparency-dev/formats/log``) reads our
checkpoints, and a witness can cosign them.

The bytes signed are the checkpoint text itself (DESIGN.md: sign bytes once):
:func:`format_checkpoint_body` is the one function that produces them, and
:func:`verify_note` hands back the exact bytes whose signature it checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.errors import ProofError, Reason, SignatureError
from ledger.merkle import HASH_SIZE, GetNode, consistency_proof, root_hash, verify_consistency

ED25519_SIGNATURE_TYPE = b"\x01"
"""signed-note "Signature types": 0x01 is Ed25519."""

MAX_SIGNATURES = 100
"""signed-note: verifiers SHOULD bound the signature count and MUST accept 16 (Go uses 100)."""

_MAX_TREE_SIZE = 2**64 - 1  # tree sizes are uint64 in RFC 9162 and every Go implementation
_SIGNATURE_PREFIX = "— "  # em dash U+2014, space U+0020
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_KEY_HASH_HEX = re.compile(r"[0-9a-f]{8}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's ``origin``, its ``size`` and the RFC 9162 root at that size.

    Raises:
        ProofError: (``CHECKPOINT_INVALID``) on construction, if a field breaks the format.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            _invalid("the origin line must be non-empty and a single line")
        if not 0 <= self.size <= _MAX_TREE_SIZE:
            _invalid(f"tree size {self.size} is not a uint64")
        if len(self.root_hash) != HASH_SIZE:
            _invalid(f"the root hash is {len(self.root_hash)} bytes long, not {HASH_SIZE}")
        if any(not line or "\n" in line for line in self.extensions):
            _invalid("extension lines must be non-empty single lines")


class NoteSigner(Protocol):
    """What :func:`sign_note` needs of a key; ``Ed25519PrivateKey`` is one."""

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 (RFC 8032) signature of ``data``."""
        ...

    def public_key(self) -> Ed25519PublicKey:
        """The public half, for the key ID."""
        ...


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A trusted key: the key name a note's signature lines carry, and the Ed25519 key.

    Raises:
        SignatureError: (``BAD_KEY_FILE``) on construction, if the name or key is malformed.
    """

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not _is_valid_key_name(self.name):
            _bad_key(f"key name {self.name!r} is empty or has a space or a '+'")
        if len(self.public_key) != 32:
            _bad_key(f"an Ed25519 public key is 32 bytes, not {len(self.public_key)}")

    @property
    def key_id(self) -> bytes:
        """signed-note "Ed25519 signatures": SHA-256(name || 0x0A || 0x01 || key)[:4]."""
        return _key_id(self.name, self.public_key)


# --- checkpoint body (c2sp.org/tlog-checkpoint "Note text") -------------------------------------


def format_checkpoint_body(checkpoint: Checkpoint) -> bytes:
    """The checkpoint text: origin, size, base64 root, then any extension lines."""
    lines = (
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    )
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def parse_checkpoint_body(body: bytes) -> Checkpoint:
    """Parse a checkpoint text strictly: what :func:`format_checkpoint_body` writes, nothing else.

    Raises:
        ProofError: (``CHECKPOINT_INVALID``) naming the line that breaks the format.
    """
    text = _decode_note_text(body)
    if not text.endswith("\n"):
        _invalid("the checkpoint text does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        _invalid(f"a checkpoint has at least 3 lines, this one has {len(lines)}")
    origin, size_line, root_line, *extensions = lines
    if not _DECIMAL.fullmatch(size_line):
        _invalid(f"tree size line {size_line!r} is not a decimal without leading zeros")
    return Checkpoint(origin, int(size_line), _decode_root(root_line), tuple(extensions))


def _decode_root(line: str) -> bytes:
    try:
        root = base64.b64decode(line, validate=True)
    except binascii.Error:
        _invalid(f"root hash line {line!r} is not base64")
    if base64.b64encode(root).decode("ascii") != line:
        _invalid(f"root hash line {line!r} is not canonical base64")
    return root


# --- signed notes (c2sp.org/signed-note) --------------------------------------------------------


def sign_note(body: bytes, name: str, private_key: NoteSigner) -> bytes:
    """The signed note: ``body``, a blank line, and one Ed25519 signature line by ``name``.

    Raises:
        ProofError: (``CHECKPOINT_INVALID``) the body is not a valid note text.
        SignatureError: (``BAD_KEY_FILE``) the key name is not a valid note key name.
    """
    _decode_note_text(body)
    if not body.endswith(b"\n"):
        _invalid("a note text must end with a newline")
    verifier = NoteVerifier(name, _raw_public_key(private_key.public_key()))
    signature = base64.b64encode(verifier.key_id + private_key.sign(body)).decode("ascii")
    return body + b"\n" + f"{_SIGNATURE_PREFIX}{name} {signature}\n".encode()


def verify_note(note: bytes, verifiers: Iterable[NoteVerifier]) -> bytes:
    """The note's text, once a signature by one of ``verifiers`` has been checked on it.

    Signatures by unknown keys are ignored (signed-note "Signatures": that is how keys rotate
    and witnesses cosign); one from a known key that fails rejects the whole note, as
    ``golang.org/x/mod/sumdb/note`` does.

    Raises:
        ProofError: (``CHECKPOINT_INVALID``) malformed note, a known key's signature that does
            not verify, or no signature by a known key.
    """
    known = _index_verifiers(verifiers)
    text, signature_lines = _split_note(note)
    verified = 0
    for line in signature_lines:
        name, key_id, signature = _parse_signature_line(line)
        verifier = known.get((name, key_id))
        if verifier is None:
            continue
        if not _ed25519_verifies(verifier.public_key, signature, text):
            _invalid(f"the signature by {name}+{key_id.hex()} does not verify")
        verified += 1
    if not verified:
        _invalid("no signature by a known key")
    return text


def open_checkpoint(
    note: bytes, verifiers: Iterable[NoteVerifier], origin: str | None = None
) -> Checkpoint:
    """:func:`verify_note` then :func:`parse_checkpoint_body`; ``origin`` pins the log.

    A witness passes the origin it follows, so that a checkpoint of another log signed by the
    same key is not taken for one of this log (tlog-checkpoint "Note text").

    Raises:
        ProofError: (``CHECKPOINT_INVALID``) as the two functions, or a different origin.
    """
    checkpoint = parse_checkpoint_body(verify_note(note, verifiers))
    if origin is not None and checkpoint.origin != origin:
        _invalid(f"checkpoint is for origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def _split_note(note: bytes) -> tuple[bytes, list[str]]:
    """signed-note "Format": text up to the last blank line, then signature lines."""
    _decode_note_text(note)
    split = note.rfind(b"\n\n")
    if split < 0:
        _invalid("the note has no blank line before its signatures")
    text, signatures = note[: split + 1], note[split + 2 :].decode("utf-8")
    if not signatures.endswith("\n"):
        _invalid("the note's signature block is empty or lacks its final newline")
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        _invalid(f"the note has more than {MAX_SIGNATURES} signatures")
    return text, lines


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """``— <key name> base64(key ID || signature)`` as (name, key ID, signature)."""
    if not line.startswith(_SIGNATURE_PREFIX):
        _invalid(f"signature line {line!r} does not start with an em dash and a space")
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        blob = b""
    if not _is_valid_key_name(name) or len(blob) < 5:
        _invalid(f"signature line {line!r} is malformed")
    return name, blob[:4], blob[4:]


def _decode_note_text(data: bytes) -> str:
    """signed-note "Format": valid UTF-8, no ASCII control character except newline."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _invalid("the note is not valid UTF-8")
    if any(ch < " " and ch != "\n" for ch in text):
        _invalid("the note contains an ASCII control character other than newline")
    return text


def _index_verifiers(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        other = known.setdefault((verifier.name, verifier.key_id), verifier)
        if other.public_key != verifier.public_key:
            _bad_key(f"two trusted keys share the name and key ID {verifier.name}")
    return known


def _ed25519_verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _is_valid_key_name(name: str) -> bool:
    """signed-note "Format": non-empty, no Unicode space, no plus (U+002B)."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _key_id(name: str, public_key: bytes) -> bytes:
    material = name.encode("utf-8") + b"\n" + ED25519_SIGNATURE_TYPE + public_key
    return hashlib.sha256(material).digest()[:4]


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- verifier keys (the vkey strings of golang.org/x/mod/sumdb/note) ----------------------------


def note_verifier_key(name: str, public_key: bytes | Ed25519PublicKey) -> str:
    """The verifier key ``<name>+<8 hex key ID>+base64(0x01 || public key)`` other tools read.

    Raises:
        SignatureError: (``BAD_KEY_FILE``) the name or key is malformed.
    """
    if isinstance(public_key, Ed25519PublicKey):
        public_key = _raw_public_key(public_key)
    verifier = NoteVerifier(name, public_key)
    encoded = base64.b64encode(ED25519_SIGNATURE_TYPE + public_key).decode("ascii")
    return f"{name}+{verifier.key_id.hex()}+{encoded}"


def parse_note_verifier_key(vkey: str) -> NoteVerifier:
    """Parse a verifier key; the key ID in it must be the one its name and key produce.

    Raises:
        SignatureError: (``BAD_KEY_FILE``) malformed, not Ed25519, or a key ID that does not
            match.
    """
    name, _, rest = vkey.partition("+")
    key_hash, _, encoded = rest.partition("+")
    try:
        material = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        material = b""
    if not _KEY_HASH_HEX.fullmatch(key_hash) or base64.b64encode(material).decode() != encoded:
        _bad_key(f"verifier key {vkey!r} is not <name>+<8 hex>+<base64>")
    if material[:1] != ED25519_SIGNATURE_TYPE:
        _bad_key(f"verifier key {vkey!r} is not an Ed25519 (type 0x01) key")
    verifier = NoteVerifier(name, material[1:])
    if verifier.key_id.hex() != key_hash:
        _bad_key(f"verifier key {vkey!r} has key ID {key_hash}, expected {verifier.key_id.hex()}")
    return verifier


# --- witnessing ---------------------------------------------------------------------------------


def check_checkpoint_consistency(
    previous: Checkpoint, new: Checkpoint, proof: Sequence[bytes]
) -> None:
    """A witness's check: ``new`` extends ``previous`` (tlog-checkpoint "Signatures": a log
    never signs two checkpoints without a consistency proof between them).

    Raises:
        ProofError: ``CHECKPOINT_ROLLBACK`` if the tree shrank; ``CHECKPOINT_FORK`` if the same
            size has another root or the RFC 9162 2.1.4.2 consistency proof fails;
            ``CHECKPOINT_INVALID`` if the two checkpoints are of different logs.
    """
    if new.origin != previous.origin:
        _invalid(f"checkpoints of two logs: {previous.origin!r} and {new.origin!r}")
    if new.size < previous.size:
        raise ProofError(
            Reason.CHECKPOINT_ROLLBACK,
            f"tree size went back from {previous.size} to {new.size}",
        )
    if new.size == previous.size:
        if new.root_hash != previous.root_hash:
            raise ProofError(Reason.CHECKPOINT_FORK, f"two different roots for size {new.size}")
        # The same tree head again: the only valid proof is the empty one.
        verify_consistency(previous.size, new.size, previous.root_hash, new.root_hash, proof)
        return
    try:
        verify_consistency(previous.size, new.size, previous.root_hash, new.root_hash, proof)
    except ProofError as error:
        raise ProofError(
            Reason.CHECKPOINT_FORK,
            f"size {new.size} is not an extension of size {previous.size}: {error.message}",
        ) from error


def _invalid(message: str) -> NoReturn:
    raise ProofError(Reason.CHECKPOINT_INVALID, message)


def _bad_key(message: str) -> NoReturn:
    raise SignatureError(Reason.BAD_KEY_FILE, message)


# --- the ledger's own checkpoints ---------------------------------------------------------------


def next_checkpoint(
    *,
    origin: str,
    size: int,
    get_node: GetNode,
    previous: Checkpoint | None,
    key: NoteSigner,
) -> tuple[Checkpoint, bytes]:
    """Sign the checkpoint of the stored tree at ``size``, after proving to ourselves that it
    is consistent with ``previous`` (the last one signed): the ledger never signs two
    checkpoints that contradict each other, even if its storage was tampered with.

    Raises:
        ProofError: (``CHECKPOINT_ROLLBACK`` / ``CHECKPOINT_FORK``) the stored tree no longer
            extends the last signed checkpoint.
    """
    checkpoint = Checkpoint(origin, size, root_hash(size, get_node))
    if previous is not None:
        proof = consistency_proof(previous.size, size, get_node) if previous.size <= size else ()
        check_checkpoint_consistency(previous, checkpoint, proof)
    return checkpoint, sign_note(format_checkpoint_body(checkpoint), origin, key)
