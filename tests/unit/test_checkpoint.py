"""Checkpoints as C2SP signed notes: published Go vectors, a second verifier, tampering, forks.

``spec_verify_note`` below is a second, minimal verifier written from the text of
c2sp.org/signed-note and c2sp.org/tlog-checkpoint alone (it uses only hashlib, base64 and
cryptography, nothing of ledger.checkpoint), so a misreading of the spec shared by our signer
and our verifier would still be caught. The Go vectors (tests/vectors/signed-note/) pin both
to golang.org/x/mod/sumdb/note, the reference implementation.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    NoteVerifier,
    check_checkpoint_consistency,
    format_checkpoint_body,
    note_verifier_key,
    open_checkpoint,
    parse_checkpoint_body,
    parse_note_verifier_key,
    sign_note,
    verify_note,
)
from ledger.errors import ProofError, Reason, SignatureError
from ledger.merkle import MemoryNodeStore, consistency_proof, leaf_hash, root_hash

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "signed-note"
GO = json.loads((VECTORS / "go-sumdb-note.json").read_text())
GO_TEXT = GO["text"].encode()
GO_NOTE = GO["note"].encode()
GO_PETER_SIG = GO["note"].split("\n\n")[-1]  # "— PeterNeumann <base64>\n"
GO_ENOCH_SIG = GO["second_signature_line"]
ORIGIN = "cehub.example/ledger"


def go_private_key() -> Ed25519PrivateKey:
    # PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed); the base64 itself may contain '+'.
    encoded = GO["signer_key"].split("+", 4)[4]
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(encoded)[1:])


def raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"cehub test log key").digest())
VERIFIER = NoteVerifier(ORIGIN, raw(KEY.public_key()))


# --- a second verifier, from the spec text only -------------------------------------------------


def spec_verify_note(note: bytes, name: str, public_key: bytes) -> bytes:
    """c2sp.org/signed-note, read literally; returns the text or raises ValueError."""
    text_str = note.decode("utf-8")  # "Signed notes MUST be valid UTF-8 ..."
    if any(ord(c) < 0x20 and c != "\n" for c in text_str):
        raise ValueError("control character")
    # "the text is separated from the signatures by the last empty line in the note"
    cut = note.rindex(b"\n\n")
    text, block = note[: cut + 1], note[cut + 2 :].decode("utf-8")
    # "key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]"
    key_id = hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + public_key).digest()[:4]
    verified = False
    for line in block.split("\n")[:-1]:
        # "em dash (U+2014), space (U+0020), key name, space, base64-encoded signature"
        if not line.startswith("\u2014\u0020"):
            raise ValueError("not a signature line")
        line_name, encoded = line[2:].split(" ")
        blob = base64.b64decode(encoded, validate=True)
        if (line_name, blob[:4]) != (name, key_id):
            continue  # "Verifiers MUST ignore signatures from unknown keys"
        Ed25519PublicKey.from_public_bytes(public_key).verify(blob[4:], text)
        verified = True
    if not verified:
        raise ValueError("no signature from the known key")
    return text


def spec_checkpoint_fields(text: bytes) -> tuple[str, int, bytes, list[str]]:
    """c2sp.org/tlog-checkpoint "Note text": origin, size, base64 root, extension lines."""
    origin, size, root, *extensions = text.decode().removesuffix("\n").split("\n")
    return origin, int(size), base64.b64decode(root), extensions


# --- the published Go vectors -------------------------------------------------------------------


def test_sign_note_reproduces_the_go_reference_note_byte_for_byte() -> None:
    assert sign_note(GO_TEXT, GO["name"], go_private_key()) == GO_NOTE


def test_verifier_key_matches_the_go_reference() -> None:
    assert note_verifier_key(GO["name"], go_private_key().public_key()) == GO["verifier_key"]
    verifier = parse_note_verifier_key(GO["verifier_key"])
    assert verifier.name == GO["name"]
    assert verifier.key_id.hex() == GO["key_hash"]
    assert verifier.public_key == raw(go_private_key().public_key())


def test_verify_note_opens_the_go_reference_note() -> None:
    assert verify_note(GO_NOTE, [parse_note_verifier_key(GO["verifier_key"])]) == GO_TEXT


def test_ignores_signatures_by_unknown_keys_and_needs_one_known() -> None:
    peter = parse_note_verifier_key(GO["verifier_key"])
    enoch = parse_note_verifier_key(GO["second_signer_verifier_key"])
    both = GO_TEXT + b"\n" + (GO_PETER_SIG + GO_ENOCH_SIG).encode()
    assert verify_note(both, [peter]) == GO_TEXT
    assert verify_note(both, [enoch]) == GO_TEXT
    assert verify_note(both, [peter, enoch]) == GO_TEXT
    with pytest.raises(ProofError, match="no signature by a known key"):
        verify_note(both, [])
    with pytest.raises(ProofError, match="no signature by a known key"):
        verify_note(both, [VERIFIER])


def test_rejects_a_note_whose_known_signature_fails_even_if_another_verifies() -> None:
    peter = parse_note_verifier_key(GO["verifier_key"])
    enoch = parse_note_verifier_key(GO["second_signer_verifier_key"])
    broken_enoch = GO_ENOCH_SIG[:60] + "ABCD" + GO_ENOCH_SIG[60:]
    note = GO_TEXT + b"\n" + (GO_PETER_SIG + broken_enoch).encode()
    assert verify_note(note, [peter]) == GO_TEXT  # the broken one is by an unknown key
    with pytest.raises(ProofError, match="does not verify"):
        verify_note(note, [peter, enoch])


@pytest.mark.parametrize(
    "note",
    [
        GO["text"],  # no signatures
        GO["text"] + "\n",  # a blank line, then nothing
        GO["text"] + "\n" + GO_PETER_SIG[:-1],  # no final newline
        "\x01" + GO["text"] + "\n" + GO_PETER_SIG,  # control character
        GO["text"] + "\n" + "— Bad Name " + GO_PETER_SIG.split(" ")[-1],  # space in name
        GO["text"] + "\n" + GO_PETER_SIG + "Unexpected line.\n",
        GO["text"] + "\n" + GO_PETER_SIG.replace("—", "-"),  # hyphen for em dash
        GO["text"] + "\n" + GO_PETER_SIG.replace("PeterNeumann ", "PeterNeumann  "),
        GO["text"] + "\n" + GO_PETER_SIG.replace("x08go", "x08g!"),  # not base64
        GO["text"] + "\n" + "— PeterNeumann AAAA\n",  # shorter than key ID + 1 byte
        GO["text"] + "\n" + GO_PETER_SIG * 101,  # more than MAX_SIGNATURES
    ],
    ids=range(11),
)
def test_rejects_malformed_notes(note: str) -> None:
    """The malformed messages of sumdb/note TestOpen, and a few more."""
    with pytest.raises(ProofError) as caught:
        verify_note(note.encode(), [parse_note_verifier_key(GO["verifier_key"])])
    assert caught.value.reason is Reason.CHECKPOINT_INVALID


def test_rejects_note_that_is_not_utf8() -> None:
    with pytest.raises(ProofError, match="UTF-8"):
        verify_note(b"\xff" + GO_NOTE, [parse_note_verifier_key(GO["verifier_key"])])


def test_rejects_every_mangled_verifier_key() -> None:
    """sumdb/note TestNewVerifier: every proper substring and every byte + 1 is refused."""
    vkey = GO["verifier_key"]
    mangled = {vkey[i:j] for i in range(len(vkey)) for j in range(i + 1, len(vkey) + 1)}
    mangled |= {vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))}
    mangled.discard(vkey)
    mangled |= {
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    }
    for bad in mangled:
        with pytest.raises(SignatureError):
            parse_note_verifier_key(bad)


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0"])
def test_rejects_invalid_key_names(name: str) -> None:
    with pytest.raises(SignatureError):
        sign_note(b"text\n", name, KEY)
    with pytest.raises(SignatureError):
        note_verifier_key(name, KEY.public_key())


# --- our notes, read by the spec-only verifier --------------------------------------------------

ORIGINS = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1, max_size=40
)
KEY_NAMES = st.text(
    st.characters(min_codepoint=0x21, exclude_categories=["Cs", "Zs", "Zl", "Zp"]),
    min_size=1,
    max_size=30,
).filter(lambda s: "+" not in s and not any(c.isspace() for c in s))
CHECKPOINTS = st.builds(
    Checkpoint,
    origin=ORIGINS,
    size=st.integers(0, 2**64 - 1),
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(ORIGINS, max_size=3).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(checkpoint=CHECKPOINTS)
def test_checkpoint_body_round_trips(checkpoint: Checkpoint) -> None:
    body = format_checkpoint_body(checkpoint)
    assert parse_checkpoint_body(body) == checkpoint
    origin, size, root, extensions = spec_checkpoint_fields(body)
    assert (origin, size, root, tuple(extensions)) == (
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root_hash,
        checkpoint.extensions,
    )


@settings(max_examples=50, deadline=None)
@given(checkpoint=CHECKPOINTS, name=KEY_NAMES, seed=st.binary(min_size=32, max_size=32))
def test_spec_only_verifier_accepts_what_sign_note_produces(
    checkpoint: Checkpoint, name: str, seed: bytes
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    body = format_checkpoint_body(checkpoint)
    note = sign_note(body, name, key)
    assert spec_verify_note(note, name, raw(key.public_key())) == body
    verifier = parse_note_verifier_key(note_verifier_key(name, key.public_key()))
    assert verify_note(note, [verifier]) == body
    assert open_checkpoint(note, [verifier], origin=checkpoint.origin) == checkpoint


def test_spec_only_verifier_accepts_the_go_reference_note() -> None:
    public_key = raw(go_private_key().public_key())
    assert spec_verify_note(GO_NOTE, GO["name"], public_key) == GO_TEXT


# --- tampering ----------------------------------------------------------------------------------


def signed_checkpoint(size: int = 5) -> tuple[Checkpoint, bytes]:
    checkpoint = Checkpoint(ORIGIN, size, hashlib.sha256(b"root").digest())
    return checkpoint, sign_note(format_checkpoint_body(checkpoint), ORIGIN, KEY)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_rejects_any_tampered_byte_of_a_signed_checkpoint(data: st.DataObject) -> None:
    _, note = signed_checkpoint()
    position = data.draw(st.integers(0, len(note) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = note[:position] + bytes([note[position] ^ flip]) + note[position + 1 :]
    with pytest.raises(ProofError) as caught:
        open_checkpoint(tampered, [VERIFIER])
    assert caught.value.reason is Reason.CHECKPOINT_INVALID


def test_rejects_checkpoint_signed_by_an_unknown_key() -> None:
    _, note = signed_checkpoint()
    stranger = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"stranger").digest())
    same_name_other_key = NoteVerifier(ORIGIN, raw(stranger.public_key()))
    with pytest.raises(ProofError, match="no signature by a known key"):
        verify_note(note, [same_name_other_key])
    forged = sign_note(format_checkpoint_body(signed_checkpoint()[0]), ORIGIN, stranger)
    with pytest.raises(ProofError, match="no signature by a known key"):
        verify_note(forged, [VERIFIER])


def test_rejects_checkpoint_of_another_origin() -> None:
    _, note = signed_checkpoint()
    with pytest.raises(ProofError, match="origin"):
        open_checkpoint(note, [VERIFIER], origin="other.example/log")


def test_accepts_a_cosigned_checkpoint_with_either_signer_known() -> None:
    """A witness appends its own signature line; the log's verifiers still open the note."""
    checkpoint, note = signed_checkpoint()
    witness = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"witness").digest())
    body = format_checkpoint_body(checkpoint)
    witness_line = sign_note(body, "witness.example", witness).removeprefix(body + b"\n")
    cosigned = note + witness_line
    witness_verifier = NoteVerifier("witness.example", raw(witness.public_key()))
    assert open_checkpoint(cosigned, [VERIFIER]) == checkpoint
    assert open_checkpoint(cosigned, [witness_verifier]) == checkpoint


# --- strict body parsing ------------------------------------------------------------------------

ROOT_B64 = base64.b64encode(hashlib.sha256(b"root").digest()).decode()


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (f"{ORIGIN}\n5\n{ROOT_B64}", "newline"),
        (f"{ORIGIN}\n5\n", "at least 3 lines"),
        (f"\n5\n{ROOT_B64}\n", "origin"),
        (f"{ORIGIN}\n05\n{ROOT_B64}\n", "leading zeros"),
        (f"{ORIGIN}\n+5\n{ROOT_B64}\n", "decimal"),
        (f"{ORIGIN}\n 5\n{ROOT_B64}\n", "decimal"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "decimal"),
        (f"{ORIGIN}\n\u0665\n{ROOT_B64}\n", "decimal"),  # ARABIC-INDIC DIGIT FIVE
        (f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n", "uint64"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n", "base64"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-2]}1=\n", "canonical"),
        (f"{ORIGIN}\n5\n{base64.b64encode(bytes(31)).decode()}\n", "31 bytes"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\n\n", "extension"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\nok\n\nlater\n", "extension"),
        (f"{ORIGIN}\r\n5\n{ROOT_B64}\n", "control character"),
    ],
)
def test_rejects_malformed_checkpoint_bodies(body: str, complaint: str) -> None:
    with pytest.raises(ProofError, match=complaint) as caught:
        parse_checkpoint_body(body.encode())
    assert caught.value.reason is Reason.CHECKPOINT_INVALID


def test_parses_checkpoint_with_extension_lines_and_empty_tree() -> None:
    empty = hashlib.sha256(b"").digest()
    body = f"{ORIGIN}\n0\n{base64.b64encode(empty).decode()}\next one\next two\n".encode()
    assert parse_checkpoint_body(body) == Checkpoint(ORIGIN, 0, empty, ("ext one", "ext two"))


def test_format_matches_the_tlog_checkpoint_example_layout() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    body = format_checkpoint_body(Checkpoint("example.com/behind-the-sofa", 20852163, root))
    assert body == (
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


# --- witnessing: rollback and fork --------------------------------------------------------------


def log_of(leaves: list[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for data in leaves:
        store.append(leaf_hash(data))
    return store


HONEST = log_of([f"event {i}".encode() for i in range(20)])
FORKED = log_of([f"event {i}".encode() if i != 12 else b"rewritten" for i in range(20)])


def head(store: MemoryNodeStore, size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, root_hash(size, store.get_node))


def test_witness_accepts_a_log_that_only_grew() -> None:
    for old, new in [(0, 7), (10, 15), (15, 15), (1, 20), (16, 20)]:
        proof = consistency_proof(old, new, HONEST.get_node)
        check_checkpoint_consistency(head(HONEST, old), head(HONEST, new), proof)


def test_witness_detects_rollback() -> None:
    with pytest.raises(ProofError) as caught:
        check_checkpoint_consistency(head(HONEST, 15), head(HONEST, 10), ())
    assert caught.value.reason is Reason.CHECKPOINT_ROLLBACK


def test_witness_detects_fork_at_the_same_size() -> None:
    with pytest.raises(ProofError) as caught:
        check_checkpoint_consistency(head(HONEST, 15), head(FORKED, 15), ())
    assert caught.value.reason is Reason.CHECKPOINT_FORK


def test_witness_detects_fork_that_rewrote_history() -> None:
    # The forked log shares the first 12 entries and can prove consistency with its own past,
    # but not with the checkpoint of size 13 the honest log signed earlier.
    for proof_source in (FORKED, HONEST):
        proof = consistency_proof(13, 18, proof_source.get_node)
        with pytest.raises(ProofError) as caught:
            check_checkpoint_consistency(head(HONEST, 13), head(FORKED, 18), proof)
        assert caught.value.reason is Reason.CHECKPOINT_FORK
    shared = consistency_proof(12, 18, FORKED.get_node)
    check_checkpoint_consistency(head(HONEST, 12), head(FORKED, 18), shared)


def test_witness_rejects_a_tampered_consistency_proof_as_fork() -> None:
    proof = list(consistency_proof(10, 15, HONEST.get_node))
    proof[0] = bytes(32)
    with pytest.raises(ProofError) as caught:
        check_checkpoint_consistency(head(HONEST, 10), head(HONEST, 15), proof)
    assert caught.value.reason is Reason.CHECKPOINT_FORK


def test_witness_rejects_checkpoints_of_another_log() -> None:
    other = Checkpoint("other.example/log", 15, head(HONEST, 15).root_hash)
    with pytest.raises(ProofError) as caught:
        check_checkpoint_consistency(head(HONEST, 10), other, ())
    assert caught.value.reason is Reason.CHECKPOINT_INVALID


def test_checkpoint_rejects_invalid_fields() -> None:
    root = hashlib.sha256(b"root").digest()
    for origin, size, root_hash_, extensions in [
        ("", 1, root, ()),
        ("two\nlines", 1, root, ()),
        (ORIGIN, -1, root, ()),
        (ORIGIN, 2**64, root, ()),
        (ORIGIN, 1, root[:31], ()),
        (ORIGIN, 1, root, ("",)),
    ]:
        with pytest.raises(ProofError):
            Checkpoint(origin, size, root_hash_, extensions)
