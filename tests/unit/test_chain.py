"""The hash chain of ledger entries (ledger/chain.py, DESIGN.md section 5).

Any alteration of a stored entry (a flipped bit of its envelope digest or entry hash, a seq out
of order, a missing entry) must make :func:`verify_chain` raise a ChainError that names the
seq of the first entry that no longer links.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain import DOMAIN, GENESIS_HASH, ChainLink, entry_hash, verify_chain
from ledger.errors import ChainError, Reason

FAST = settings(max_examples=100, deadline=None)
digests = st.binary(min_size=32, max_size=32)


def build_chain(envelope_digests: list[bytes]) -> list[ChainLink]:
    links, prev = [], GENESIS_HASH
    for seq, digest in enumerate(envelope_digests):
        prev = entry_hash(seq, prev, digest)
        links.append(ChainLink(seq, digest, prev))
    return links


def named_seq(error: ChainError) -> int:
    """The seq a ChainError message names first ("entry <seq>...")."""
    match = re.match(r"entry (-?\d+)\b", error.message)
    assert match is not None, error.message
    return int(match.group(1))


def flip_bit(data: bytes, bit: int) -> bytes:
    index = bit % (len(data) * 8)
    flipped = bytearray(data)
    flipped[index // 8] ^= 1 << (index % 8)
    return bytes(flipped)


chains = st.lists(digests, min_size=1, max_size=12).map(build_chain)


def test_entry_hash_is_sha256_of_domain_seq_prev_and_envelope_digest() -> None:
    prev, digest = bytes(range(32)), hashlib.sha256(b"envelope").digest()
    expected = hashlib.sha256(DOMAIN + (5).to_bytes(8, "big") + prev + digest).digest()
    assert entry_hash(5, prev, digest) == expected


def test_chain_links_verify_and_return_the_head() -> None:
    links = build_chain([hashlib.sha256(bytes([n])).digest() for n in range(5)])
    assert verify_chain(links) == links[-1].entry_hash


def test_empty_chain_verifies_to_its_start() -> None:
    assert verify_chain([]) == GENESIS_HASH


def test_chain_verifies_from_a_middle_entry_given_its_predecessor() -> None:
    links = build_chain([hashlib.sha256(bytes([n])).digest() for n in range(6)])
    assert verify_chain(links[3:], start_prev=links[2].entry_hash) == links[-1].entry_hash
    with pytest.raises(ChainError) as info:
        verify_chain(links[3:])  # from genesis, entry 3 does not link
    assert named_seq(info.value) == 3


@FAST
@given(chains)
def test_every_valid_chain_verifies(links: list[ChainLink]) -> None:
    assert verify_chain(links) == links[-1].entry_hash


@FAST
@given(chains, st.data())
def test_flipped_envelope_digest_bit_names_its_entry(
    links: list[ChainLink], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(links) - 1))
    bit = data.draw(st.integers(0, 255))
    link = links[index]
    links[index] = ChainLink(link.seq, flip_bit(link.envelope_sha256, bit), link.entry_hash)
    with pytest.raises(ChainError) as info:
        verify_chain(links)
    assert info.value.reason is Reason.CHAIN_BROKEN
    assert named_seq(info.value) == link.seq


@FAST
@given(chains, st.data())
def test_flipped_entry_hash_bit_names_its_entry(
    links: list[ChainLink], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(links) - 1))
    bit = data.draw(st.integers(0, 255))
    link = links[index]
    links[index] = ChainLink(link.seq, link.envelope_sha256, flip_bit(link.entry_hash, bit))
    with pytest.raises(ChainError) as info:
        verify_chain(links)
    assert named_seq(info.value) == link.seq


@FAST
@given(st.lists(digests, min_size=2, max_size=12).map(build_chain), st.data())
def test_swapped_entries_name_the_first_misplaced_seq(
    links: list[ChainLink], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(links) - 2))
    links[index], links[index + 1] = links[index + 1], links[index]
    with pytest.raises(ChainError) as info:
        verify_chain(links)
    assert named_seq(info.value) == index + 1  # the entry now sitting at position ``index``


@FAST
@given(chains, st.data())
def test_changed_seq_names_that_entry(links: list[ChainLink], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(links) - 1))
    link = links[index]
    seq = data.draw(st.integers(0, 2**40).filter(lambda s: s != link.seq))
    links[index] = ChainLink(seq, link.envelope_sha256, link.entry_hash)
    with pytest.raises(ChainError) as info:
        verify_chain(links)
    assert named_seq(info.value) == seq


@FAST
@given(st.lists(digests, min_size=2, max_size=12).map(build_chain), st.data())
def test_missing_entry_names_its_successor(links: list[ChainLink], data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(links) - 2))
    del links[index]
    with pytest.raises(ChainError) as info:
        verify_chain(links)
    assert named_seq(info.value) == index + 1


@pytest.mark.parametrize(
    "link",
    [
        ChainLink(0, bytes(31), bytes(32)),
        ChainLink(0, bytes(32), bytes(33)),
        ChainLink(-1, bytes(32), bytes(32)),
        ChainLink(2**64, bytes(32), bytes(32)),
    ],
    ids=["short-digest", "long-entry-hash", "negative-seq", "seq-beyond-8-bytes"],
)
def test_malformed_stored_entry_is_a_chain_error_not_a_crash(link: ChainLink) -> None:
    # a corrupted store row must be reported (audit), never crash with a ValueError
    with pytest.raises(ChainError) as info:
        verify_chain([link])
    assert named_seq(info.value) == link.seq


@FAST
@given(
    st.tuples(st.integers(0, 2**63 - 1), digests, digests),
    st.tuples(st.integers(0, 2**63 - 1), digests, digests),
)
def test_entry_hashes_differ_for_different_seq_prev_or_envelope(
    a: tuple[int, bytes, bytes], b: tuple[int, bytes, bytes]
) -> None:
    if a != b:
        assert entry_hash(*a) != entry_hash(*b)


@FAST
@given(st.integers(0, 2**63 - 1), digests, digests, st.integers(0, 255))
def test_entry_hash_changes_with_each_input(seq: int, prev: bytes, digest: bytes, bit: int) -> None:
    reference = entry_hash(seq, prev, digest)
    assert entry_hash(seq ^ 1, prev, digest) != reference
    assert entry_hash(seq, flip_bit(prev, bit), digest) != reference
    assert entry_hash(seq, prev, flip_bit(digest, bit)) != reference
