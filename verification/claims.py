"""Recycled-content claims over the provenance graph (DESIGN.md section 6).

A claim is about one batch: its mass, its pre- and post-consumer recycled grams (ISO 14021
section 7.8.1.1, kept apart: rework and regrind reclaimed within the same process and virgin
additives are neither) as percentages rounded DOWN to 0.01 (a claim must never overstate),
the chain-of-custody model (ISO 22095) and the period it covers.

- **Proportional** (SEGREGATION, CONTROLLED_BLENDING): the batch's composition as the graph
  derives it (``verification/graph.py``): mass-weighted along every step, losses proportional.
- **Mass balance** (ISO 22095 section 8, the ISCC PLUS credit method): an output's recycled
  grams are what its owner claimed. The ledger enforced the site's credit account when it
  accepted the transformation (``ledger/rules.py``); here :func:`replay_credit` recomputes the
  account (site, material group, calendar quarter, :func:`ledger.rules.period_of`) from the
  site's mass-balance transformations of the period that the evidence carries, and refuses a
  balance that goes negative or a claim above it.
- **Mixed chains**: the claim takes the least traceable model met along the chain, as UL 2809
  does (MASS_BALANCE < CONTROLLED_BLENDING < SEGREGATION), and says why in ``model_reason``.

The period: for a chain with mass balance, the credit periods (calendar quarters, UTC) of the
accounts drawn; otherwise from the first to the last event of the chain, ``period_end``
exclusive (the last event's time plus one microsecond).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ledger.errors import CertificateError, Reason
from ledger.rules import period_of
from schemas.events import CustodyModel, Process
from verification.composition import portion
from verification.graph import ProvenanceGraph

MaterialGroup = Callable[[str], str | None]
"""Group of a material code (``"PET_FLAKE" -> "plastics.PET"``), None when unknown."""

MODEL_RANK = {
    CustodyModel.MASS_BALANCE: 0,
    CustodyModel.CONTROLLED_BLENDING: 1,
    CustodyModel.SEGREGATION: 2,
}
"""Traceability of each model, lowest first (UL 2809 / ISO 22095)."""

MASS_BALANCE_STATEMENT = (
    "Mass balance: the recycled grams are those the owner claimed per output. The ledger "
    "enforced the site's credit balance (per site, material group and calendar quarter) when "
    "it accepted each transformation; the movements below are recomputed from the site's "
    "mass-balance events of the period carried as evidence."
)


class MassBalanceError(CertificateError):
    """A mass-balance account recomputed from the evidence goes negative (or is unknown)."""

    def __init__(self, reason: Reason, message: str, *, seq: int | None = None) -> None:
        super().__init__(reason, message)
        self.seq = seq


@dataclass(frozen=True, slots=True)
class Step:
    """A transformation along the chain of the claimed batch."""

    transformation_id: str
    seq: int
    owner_id: str
    site_id: str
    process: Process
    custody_model: CustodyModel


@dataclass(frozen=True, slots=True)
class AccountKey:
    site_id: str
    material_group: str
    period: str


@dataclass(frozen=True, slots=True)
class CreditMovement:
    """One mass-balance transformation's effect on an account (grams)."""

    seq: int
    transformation_id: str
    added_pre_g: int
    added_post_g: int
    drawn_pre_g: int
    drawn_post_g: int
    balance_pre_g: int
    balance_post_g: int


@dataclass(frozen=True, slots=True)
class CreditHistory:
    account: AccountKey
    up_to_seq: int
    movements: tuple[CreditMovement, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    batch_id: str
    holder_id: str
    material: str
    mass_g: int
    pre_consumer_g: int
    post_consumer_g: int
    pre_consumer_pct: Decimal
    post_consumer_pct: Decimal
    custody_model: CustodyModel
    chain: tuple[Step, ...]
    model_reason: str
    period_start: datetime
    period_end: datetime
    mass_balance: tuple[CreditHistory, ...]


def percent_down(part_g: int, whole_g: int) -> Decimal:
    """``100 * part / whole`` rounded DOWN to 0.01, exactly (integer arithmetic)."""
    if whole_g <= 0 or not 0 <= part_g <= whole_g:
        raise ValueError(f"cannot express {part_g} g of {whole_g} g as a percentage")
    return Decimal(part_g * 10_000 // whole_g).scaleb(-2)


def least_traceable(models: Iterable[CustodyModel]) -> CustodyModel | None:
    """The least traceable of ``models`` (UL 2809), None for none."""
    return min(models, key=MODEL_RANK.__getitem__, default=None)


def compute_claim(graph: ProvenanceGraph, batch_id: str, material_group: MaterialGroup) -> Claim:
    """The recycled-content claim of ``batch_id`` from the graph alone.

    Raises:
        ProvenanceError: the batch is not in the graph.
        MassBalanceError: a mass-balance account of the chain cannot be recomputed or goes
            negative.
    """
    node = graph.batch(batch_id)
    upstream = graph.upstream(batch_id)
    chain = _chain(graph, upstream)
    model = least_traceable(step.custody_model for step in chain) or CustodyModel.SEGREGATION
    histories = tuple(
        replay_credit(graph, account, up_to, material_group)
        for account, up_to in _accounts(graph, chain, set(upstream), material_group).items()
    )
    start, end = _period(graph, upstream, histories)
    comp = node.composition
    return Claim(
        batch_id=batch_id,
        holder_id=node.owner_id,
        material=node.material,
        mass_g=node.mass_g,
        pre_consumer_g=comp.pre_consumer_g,
        post_consumer_g=comp.post_consumer_g,
        pre_consumer_pct=percent_down(comp.pre_consumer_g, node.mass_g),
        post_consumer_pct=percent_down(comp.post_consumer_g, node.mass_g),
        custody_model=model,
        chain=chain,
        model_reason=_model_reason(chain, model),
        period_start=start,
        period_end=end,
        mass_balance=histories,
    )


def accounts_drawn(
    graph: ProvenanceGraph, batch_id: str, material_group: MaterialGroup
) -> dict[AccountKey, int]:
    """The credit accounts the mass-balance steps of ``batch_id``'s chain drew on, each with
    the seq of the last such step (what the evidence must cover to recompute them).

    Raises:
        ProvenanceError: the batch is not in the graph.
        MassBalanceError: a material of the chain has no known group.
    """
    upstream = graph.upstream(batch_id)
    return _accounts(graph, _chain(graph, upstream), set(upstream), material_group)


def _chain(graph: ProvenanceGraph, upstream: Iterable[str]) -> tuple[Step, ...]:
    steps = {}
    for batch_id in upstream:
        t = graph.transformation_of(graph.batches[batch_id])
        if t is not None:
            steps[t.seq] = Step(
                t.transformation_id, t.seq, t.owner_id, t.site_id, t.process, t.custody_model
            )
    return tuple(sorted(steps.values(), key=lambda s: s.seq))


def _model_reason(chain: tuple[Step, ...], model: CustodyModel) -> str:
    if not chain:
        return (
            "No transformation is recorded along the chain: the claim is the composition "
            "declared when the origin batches were created, carried through transfers in "
            "proportion (identity preserved: SEGREGATION)."
        )
    counts = ", ".join(
        f"{m.value} x{sum(1 for s in chain if s.custody_model is m)}"
        for m in sorted({s.custody_model for s in chain}, key=MODEL_RANK.__getitem__)
    )
    first = next(s for s in chain if s.custody_model is model)
    reason = (
        "The claim follows the least traceable chain-of-custody model met along the chain, "
        "as UL 2809 does (MASS_BALANCE < CONTROLLED_BLENDING < SEGREGATION): "
        f"{model.value}, first at {first.transformation_id} (steps: {counts})."
    )
    if model is CustodyModel.MASS_BALANCE:
        reason += (
            " Under mass balance the recycled grams are the owner's claim, backed by the site's "
            "credit account (see mass_balance)."
        )
    return reason


def _group(material_group: MaterialGroup, material: str, seq: int) -> str:
    group = material_group(material)
    if group is None:
        raise MassBalanceError(
            Reason.UNKNOWN_MATERIAL,
            f"material {material!r} has no known group (add it to the trust file's materials)",
            seq=seq,
        )
    return group


def _accounts(
    graph: ProvenanceGraph,
    chain: tuple[Step, ...],
    upstream: set[str],
    material_group: MaterialGroup,
) -> dict[AccountKey, int]:
    """Each credit account a mass-balance step of the chain drew on, with the last such seq."""
    accounts: dict[AccountKey, int] = {}
    for step in chain:
        if step.custody_model is not CustodyModel.MASS_BALANCE:
            continue
        t = graph.transformations[step.seq]
        for out in t.outputs:
            if out.batch_id in upstream:
                group = _group(material_group, out.material, t.seq)
                key = AccountKey(t.site_id, group, period_of(t.occurred_at))
                accounts[key] = max(accounts.get(key, t.seq), t.seq)
    return dict(sorted(accounts.items(), key=lambda item: item[1]))


def replay_credit(
    graph: ProvenanceGraph, account: AccountKey, up_to_seq: int, material_group: MaterialGroup
) -> CreditHistory:
    """Recompute ``account`` from the graph's mass-balance transformations at its site and in
    its period, up to entry ``up_to_seq``, exactly as ``ledger/rules.py`` books them: every
    input of the account's group adds its recycled grams, every output of the group draws its
    claim; neither balance may go negative.

    Raises:
        MassBalanceError: CREDIT_EXCEEDED at the transformation that overdraws, naming its seq.
    """
    pre = post = 0
    movements = []
    for t in sorted(graph.transformations.values(), key=lambda t: t.seq):
        if (
            t.custody_model is not CustodyModel.MASS_BALANCE
            or t.site_id != account.site_id
            or t.seq > up_to_seq
            or period_of(t.occurred_at) != account.period
        ):
            continue
        add_pre = add_post = draw_pre = draw_post = 0
        touched = False
        for parent in t.inputs:
            batch = graph.batches[parent.batch_id]
            if _group(material_group, batch.material, t.seq) == account.material_group:
                part = portion(batch.composition, parent.mass_g, batch.mass_g)
                add_pre, add_post = add_pre + part.pre_consumer_g, add_post + part.post_consumer_g
                touched = True
        for out in t.outputs:
            if _group(material_group, out.material, t.seq) == account.material_group:
                draw_pre += out.claimed_pre_consumer_g
                draw_post += out.claimed_post_consumer_g
                touched = True
        if not touched:
            continue
        pre, post = pre + add_pre - draw_pre, post + add_post - draw_post
        if pre < 0 or post < 0:
            raise MassBalanceError(
                Reason.CREDIT_EXCEEDED,
                f"{t.transformation_id} claims {draw_pre} g pre- and {draw_post} g post-consumer "
                f"but {account.site_id}'s {account.material_group} credit in {account.period} "
                f"is {pre + draw_pre} g and {post + draw_post} g",
                seq=t.seq,
            )
        movements.append(
            CreditMovement(
                t.seq, t.transformation_id, add_pre, add_post, draw_pre, draw_post, pre, post
            )
        )
    return CreditHistory(account, up_to_seq, tuple(movements))


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """The UTC start (inclusive) and end (exclusive) of a quarter such as ``"2026Q2"``."""
    year, quarter = int(period[:4]), int(period[5:])
    start = datetime(year, 3 * quarter - 2, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if quarter == 4
        else start.replace(month=start.month + 3)
    )
    return start, end


def _period(
    graph: ProvenanceGraph, upstream: tuple[str, ...], histories: tuple[CreditHistory, ...]
) -> tuple[datetime, datetime]:
    if histories:
        bounds = [period_bounds(h.account.period) for h in histories]
        return min(b[0] for b in bounds), max(b[1] for b in bounds)
    times = []
    for batch_id in upstream:
        node = graph.batches[batch_id]
        times.append(node.occurred_at)
        shipment = graph.shipment_of(node)
        if shipment is not None:
            times.append(shipment.shipped_at)
    return min(times), max(times) + timedelta(microseconds=1)
