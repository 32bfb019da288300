"""Renderings of a provenance graph and a certificate: JSON, Graphviz DOT, one-page HTML.

Pure text in, text out (the CLI writes the files and draws the terminal tree with rich).
Masses are shown in kilograms exactly (``1 234.5 kg``); percentages are the claim's, rounded
down (``verification/claims.py``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from schemas.events import Composition
from verification.claims import Claim, percent_down
from verification.document import time_text
from verification.graph import CREATED, BatchNode, ProvenanceGraph

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"


def kg(grams: int) -> str:
    """Exact kilograms with a thin-space thousands separator: ``20 000 kg``, ``9.5 kg``."""
    value = Decimal(grams) / 1000
    whole, _, fraction = f"{value:f}".partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    groups: list[str] = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    fraction = fraction.rstrip("0")
    return f"{sign}{' '.join(groups) or '0'}{'.' + fraction if fraction else ''} kg"


def shares(comp: Composition, mass_g: int) -> tuple[Decimal, Decimal]:
    """(pre-consumer %, post-consumer %) of a composition, rounded down."""
    return percent_down(comp.pre_consumer_g, mass_g), percent_down(comp.post_consumer_g, mass_g)


def batch_ids(graph: ProvenanceGraph, root: str, direction: str) -> tuple[str, ...]:
    return graph.upstream(root) if direction == UPSTREAM else graph.downstream(root)


def how_made(graph: ProvenanceGraph, node: BatchNode) -> str:
    """``created``, ``received from X (shipment S)``, ``COMPOUNDING under CONTROLLED_BLENDING``."""
    shipment = graph.shipment_of(node)
    if shipment is not None:
        return f"received from {shipment.sender_id} ({kg(shipment.mass_g)} shipped)"
    t = graph.transformation_of(node)
    if t is not None:
        return f"{t.process.value} under {t.custody_model.value} ({t.transformation_id})"
    return "created (origin)"


# --- JSON ---------------------------------------------------------------------------------------


def trace_json(graph: ProvenanceGraph, root: str, direction: str) -> dict[str, Any]:
    """The trace for machines: every batch of the direction with its provenance facts."""
    ids = batch_ids(graph, root, direction)
    return {
        "format": "cehub.trace",
        "version": 1,
        "root": root,
        "direction": direction,
        "batches": [_batch_json(graph, graph.batches[b]) for b in ids],
        "participants": [
            {
                "participant_id": p.participant_id,
                "legal_name": p.legal_name,
                "country": p.country,
                "roles": [r.value for r in p.roles],
                "sites": [
                    {"site_id": s.site_id, "name": s.name, "country": s.country} for s in p.sites
                ],
            }
            for p in sorted(graph.participants.values(), key=lambda p: p.participant_id)
            if any(graph.batches[b].owner_id == p.participant_id for b in ids)
        ],
    }


def _batch_json(graph: ProvenanceGraph, node: BatchNode) -> dict[str, Any]:
    pre, post = shares(node.composition, node.mass_g)
    site_name, site_country = graph.site_of(node.owner_id, node.site_id)
    made: dict[str, Any] = {"kind": node.kind, "seq": node.seq}
    s = graph.shipment_of(node)
    if s is not None:
        made |= {
            "shipment_id": s.shipment_id,
            "sender_id": s.sender_id,
            "shipped_g": s.mass_g,
            "shipped_at": time_text(s.shipped_at),
            "shipped_seq": s.shipped_seq,
        }
    t = graph.transformation_of(node)
    if t is not None:
        made |= {"transformation_id": t.transformation_id, "process": t.process.value}
    return {
        "batch_id": node.batch_id,
        "material": node.material,
        "mass_g": node.mass_g,
        "virgin_g": node.composition.virgin_g,
        "pre_consumer_g": node.composition.pre_consumer_g,
        "post_consumer_g": node.composition.post_consumer_g,
        "pre_consumer_pct": f"{pre:.2f}",
        "post_consumer_pct": f"{post:.2f}",
        "custody_model": node.custody_model.value if node.custody_model else None,
        "owner_id": node.owner_id,
        "owner_name": graph.participant_name(node.owner_id),
        "site_id": node.site_id,
        "site_name": site_name,
        "country": site_country,
        "occurred_at": time_text(node.occurred_at),
        "made": made,
        "parents": [{"batch_id": p.batch_id, "mass_g": p.mass_g} for p in node.parents],
    }


# --- Graphviz DOT ---------------------------------------------------------------------------------


def trace_dot(graph: ProvenanceGraph, root: str, direction: str) -> str:
    """A Graphviz digraph, material flowing left to right, the root batch highlighted."""
    ids = batch_ids(graph, root, direction)
    lines = [
        "digraph provenance {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#f4f8f4", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for batch_id in ids:
        node = graph.batches[batch_id]
        pre, post = shares(node.composition, node.mass_g)
        site_name, country = graph.site_of(node.owner_id, node.site_id)
        label = "\n".join(
            (
                node.batch_id,
                f"{node.material}  {kg(node.mass_g)}",
                f"pre {pre} %  post {post} %",
                f"{graph.participant_name(node.owner_id)} ({country})",
                f"{site_name}, {node.occurred_at:%Y-%m-%d}",
            )
        )
        extra = ', fillcolor="#d9ead3", penwidth=2' if batch_id == root else ""
        lines.append(f"  {_dot_id(batch_id)} [label={_dot_id(label)}{extra}];")
    shown = set(ids)
    for batch_id in ids:
        node = graph.batches[batch_id]
        step = how_made(graph, node).split(" (")[0]
        for parent in node.parents:
            if parent.batch_id in shown:
                edge = f"{kg(parent.mass_g)}\n{step}"
                lines.append(
                    f"  {_dot_id(parent.batch_id)} -> {_dot_id(batch_id)} [label={_dot_id(edge)}];"
                )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    """A DOT double-quoted string (newlines as ``\\n`` line breaks)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# --- the one-page HTML rendering of a certificate -------------------------------------------


def certificate_html(
    document: Mapping[str, Any], claim: Claim, graph: ProvenanceGraph, code: str, sha256: bytes
) -> str:
    """A self-contained page: the claim, the provenance summary, the verification code."""
    e = html.escape
    holder = graph.participants.get(claim.holder_id)
    holder_text = (
        f"{holder.legal_name} ({claim.holder_id}, {holder.country})" if holder else claim.holder_id
    )
    cert_id = str(document.get("certificate_id", ""))
    checkpoint_lines = str(document.get("checkpoint", {}).get("note", "")).split("\n")
    rows = [
        ("Batch", f"<code>{e(claim.batch_id)}</code>, {e(claim.material)}, {kg(claim.mass_g)}"),
        ("Holder", e(holder_text)),
        (
            "Post-consumer recycled",
            f"<b>{claim.post_consumer_pct} %</b> ({kg(claim.post_consumer_g)})",
        ),
        (
            "Pre-consumer recycled",
            f"<b>{claim.pre_consumer_pct} %</b> ({kg(claim.pre_consumer_g)})",
        ),
        ("Chain-of-custody model", f"<b>{e(claim.custody_model.value)}</b>"),
        ("Why this model", e(claim.model_reason)),
        (
            "Period",
            f"{e(time_text(claim.period_start))} to {e(time_text(claim.period_end))} "
            "(end exclusive)",
        ),
        (
            "Certifier",
            e(f"{graph.participant_name(_certifier(document))} ({_certifier(document)})"),
        ),
        ("Issued", e(str(document.get("issued_at", "")))),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Recycled-content certificate {e(cert_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Recycled-content certificate</h1>",
        f'<p class="id">{e(cert_id)}</p>',
        f'<p class="code">Verification code <span>{e(code)}</span></p>',
        '<table class="claim">',
        *(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows),
        "</table>",
        "<h2>Where the material came from</h2>",
        _origins_table(graph, claim),
        "<h2>What happened to it</h2>",
        _steps_table(graph, claim),
    ]
    if claim.mass_balance:
        parts += ["<h2>Mass-balance credit</h2>", _credit_table(claim)]
    parts += [
        "<h2>How to check this certificate</h2>",
        f"<p>The JSON file <code>{e(file_stem(cert_id))}.json</code> carries "
        f"{len(document.get('evidence', []))} signed ledger events, "
        f"{len(document.get('key_events', []))} key events and an inclusion proof for each, "
        f"against the ledger checkpoint <code>{e(checkpoint_lines[0])}</code> of "
        f"{e(checkpoint_lines[1] if len(checkpoint_lines) > 1 else '?')} entries. Anyone can "
        "check it offline, without trusting the hub:</p>",
        f"<pre>cehub verify-cert {e(file_stem(cert_id))}.json --trust trust.json</pre>",
        f'<p class="small">SHA-256 of the canonical certificate: <code>{sha256.hex()}</code>. '
        "The verification code is its first 8 bytes; the ledger's CertificateIssued event "
        "records the full digest.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _certifier(document: Mapping[str, Any]) -> str:
    return str(document.get("certifier", {}).get("participant_id", ""))


def file_stem(certificate_id: str) -> str:
    """A certificate id as a file name: ``/`` and other unsafe characters become ``_``."""
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in certificate_id)


def _upstream_nodes(graph: ProvenanceGraph, claim: Claim) -> list[BatchNode]:
    return sorted((graph.batches[b] for b in graph.upstream(claim.batch_id)), key=lambda n: n.seq)


def _origins_table(graph: ProvenanceGraph, claim: Claim) -> str:
    e = html.escape
    rows = []
    for node in _upstream_nodes(graph, claim):
        if node.kind != CREATED:
            continue
        pre, post = shares(node.composition, node.mass_g)
        site, country = graph.site_of(node.owner_id, node.site_id)
        rows.append(
            f"<tr><td><code>{e(node.batch_id)}</code></td><td>{e(graph.participant_name(node.owner_id))}"
            f"</td><td>{e(site)}, {e(country)}</td><td>{e(node.material)}</td><td>{kg(node.mass_g)}"
            f"</td><td>{pre} %</td><td>{post} %</td><td>{node.occurred_at:%Y-%m-%d}</td></tr>"
        )
    head = (
        "<tr><th>origin batch</th><th>by</th><th>site</th><th>material</th><th>mass</th>"
        "<th>pre-consumer</th><th>post-consumer</th><th>date</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _steps_table(graph: ProvenanceGraph, claim: Claim) -> str:
    e = html.escape
    rows = []
    for node in _upstream_nodes(graph, claim):
        if node.kind == CREATED:
            continue
        pre, post = shares(node.composition, node.mass_g)
        site, country = graph.site_of(node.owner_id, node.site_id)
        inputs = ", ".join(f"{kg(p.mass_g)} of <code>{e(p.batch_id)}</code>" for p in node.parents)
        rows.append(
            f"<tr><td>{node.occurred_at:%Y-%m-%d}</td><td>{e(how_made(graph, node))}</td>"
            f"<td>{e(graph.participant_name(node.owner_id))}, {e(site)}, {e(country)}</td>"
            f"<td>{inputs}</td><td><code>{e(node.batch_id)}</code> {kg(node.mass_g)}</td>"
            f"<td>{pre} % / {post} %</td></tr>"
        )
    head = (
        "<tr><th>date</th><th>step</th><th>where</th><th>consumed</th><th>made</th>"
        "<th>pre / post</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _credit_table(claim: Claim) -> str:
    rows = []
    for history in claim.mass_balance:
        account = history.account
        for m in history.movements:
            rows.append(
                f"<tr><td>{html.escape(account.site_id)} {html.escape(account.material_group)} "
                f"{account.period}</td><td>{html.escape(m.transformation_id)}</td>"
                f"<td>+{kg(m.added_pre_g)} / +{kg(m.added_post_g)}</td>"
                f"<td>-{kg(m.drawn_pre_g)} / -{kg(m.drawn_post_g)}</td>"
                f"<td>{kg(m.balance_pre_g)} / {kg(m.balance_post_g)}</td></tr>"
            )
    head = (
        "<tr><th>account</th><th>transformation</th><th>credit in (pre / post)</th>"
        "<th>claimed</th><th>balance</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def summary_lines(graph: ProvenanceGraph, claim: Claim) -> Sequence[str]:
    """A few lines a person can follow: origins, steps, the claim (for terminals)."""
    nodes = _upstream_nodes(graph, claim)
    origins = [n for n in nodes if n.kind == CREATED]
    lines = [
        f"{len(origins)} origin batch(es) from "
        + ", ".join(sorted({graph.participant_name(n.owner_id) for n in origins})),
    ]
    for node in nodes:
        if node.kind != CREATED:
            site, country = graph.site_of(node.owner_id, node.site_id)
            lines.append(
                f"{node.occurred_at:%Y-%m-%d}  {graph.participant_name(node.owner_id)} "
                f"({site}, {country}): {how_made(graph, node)} -> {node.batch_id} "
                f"{kg(node.mass_g)}"
            )
    return lines


_CSS = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 60rem; margin: 2rem auto;
       color: #1d2a1d; font-size: 11pt; }
h1 { margin-bottom: 0; } h2 { font-size: 13pt; margin-top: 1.4rem; border-bottom: 1px solid #9b9; }
.id { color: #555; margin-top: .2rem; }
.code { font-size: 14pt; } .code span { font-family: monospace; font-size: 20pt;
        letter-spacing: .1em; background: #e8f3e8; padding: .1em .4em; border-radius: .2em; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left;
        padding: .25em .5em; border-bottom: 1px solid #ddd; vertical-align: top; }
table.claim th { width: 14rem; } code, pre { font-family: monospace; } .small { font-size: 9pt; }
pre { background: #f4f4f4; padding: .6em; }
@media print { body { margin: 0; font-size: 9pt; } }
"""
