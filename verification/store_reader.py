"""The SQL store as a :class:`~verification.evidence.LedgerReader` (an adapter: SQLAlchemy).

Used by `cehub trace` and `cehub certify` inside one read transaction; `cehub verify-cert`
never imports it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from sqlalchemy import Connection

from ledger.state import Batch, CertificateRecord, KeyRecord, Participant, Shipment
from ledger.store import (
    SqlLedgerView,
    child_batch_ids,
    entries_of_types,
    envelopes_at,
    mass_balance_transformation_seqs,
)
from schemas.codec import decode_envelope, decode_event
from schemas.events import KeyRevoked, KeyRotated, ParticipantEnrolled
from verification.evidence import KEY_EVENT_TYPES


class SqlLedgerReader:
    """Projections through :class:`~ledger.store.SqlLedgerView`, entries through the
    certificate reads at the end of ``ledger/store.py``."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._view = SqlLedgerView(conn)

    def batch(self, batch_id: str) -> Batch | None:
        return self._view.batch(batch_id)

    def shipment(self, shipment_id: str) -> Shipment | None:
        return self._view.shipment(shipment_id)

    def participant(self, participant_id: str) -> Participant | None:
        return self._view.participant(participant_id)

    def key(self, key_id: str) -> KeyRecord | None:
        return self._view.key(key_id)

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        return self._view.certificate(certificate_id)

    def envelopes(self, seqs: Iterable[int]) -> Mapping[int, bytes]:
        return envelopes_at(self._conn, seqs)

    def key_event_seqs(self, participant_ids: Collection[str]) -> tuple[int, ...]:
        found = []
        for seq, envelope in entries_of_types(self._conn, KEY_EVENT_TYPES):
            event = decode_event(decode_envelope(envelope).payload)
            if isinstance(event, ParticipantEnrolled | KeyRotated | KeyRevoked) and (
                event.participant_id in participant_ids
            ):
                found.append(seq)
        return tuple(found)

    def mass_balance_seqs(self, site_id: str) -> tuple[int, ...]:
        return tuple(mass_balance_transformation_seqs(self._conn, site_id))

    def children(self, batch_id: str) -> tuple[str, ...]:
        return tuple(child_batch_ids(self._conn, batch_id))
