"""`cehub trace`, `certify`, `revoke`, `verify-cert`, `trust export` (DESIGN.md section 6).

``ledger/cli.py`` registers :data:`COMMANDS`. The store, Kafka and the emitter are imported
inside the commands that need them, so `cehub verify-cert` runs with no broker and no database
and never loads kafka, faust or SQLAlchemy (``tests/unit/test_verify_cert_cli.py`` checks the
process's imports). Exit codes are those of ``ledger/cli.py``: 0 valid, 1 invalid (naming the
failed check and evidence item), 2 unusable input, 3 infrastructure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.cli import EXIT_INVALID, EXIT_USAGE, reports_errors
from ledger.config import Settings
from ledger.errors import CertificateError, InputError, Reason
from producers.cli_support import load_signer, passphrase, passphrase_options

if TYPE_CHECKING:
    from rich.tree import Tree

    from ledger.signing import Ed25519Signer
    from verification.certificate import Certificate, CertificateCheckFailed, VerificationReport
    from verification.claims import Claim
    from verification.graph import ProvenanceGraph
    from verification.store_reader import SqlLedgerReader
    from verification.trust import Trust


def _material_group(settings: Settings) -> Callable[[str], str | None]:
    from ledger.wiring import materials
    from schemas.materials import MATERIALS_FILE_ENV

    catalogue = materials(os.environ.get(MATERIALS_FILE_ENV))
    return lambda code: catalogue.group_of(code) if code in catalogue else None


# --- cehub trace --------------------------------------------------------------------------------


@click.command()
@click.argument("batch")
@click.option("--downstream", is_flag=True, help="Follow the material forward, not back.")
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
@click.option(
    "--dot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a Graphviz DOT file (and an SVG next to it when `dot` is installed).",
)
@click.pass_obj
@reports_errors
def trace(
    settings: Settings, batch: str, downstream: bool, as_json: bool, dot: Path | None
) -> None:
    """Show the provenance of BATCH: back to its origin batches, or --downstream to every
    batch it went into, with masses, participants, sites, countries, dates and models."""
    from verification.render import DOWNSTREAM, UPSTREAM, trace_dot, trace_json

    graph = _trace_graph(settings, batch, downstream)
    direction = DOWNSTREAM if downstream else UPSTREAM
    if as_json:
        click.echo(json.dumps(trace_json(graph, batch, direction), indent=2, ensure_ascii=False))
    else:
        _print_tree(graph, batch, downstream)
    if dot is not None:
        dot.write_text(trace_dot(graph, batch, direction), encoding="utf-8")
        click.echo(f"wrote {dot}", err=as_json)
        svg = _render_svg(dot)
        if svg is not None:
            click.echo(f"wrote {svg}", err=as_json)


def _trace_graph(settings: Settings, batch: str, downstream: bool) -> ProvenanceGraph:
    from ledger.wiring import open_store
    from verification.evidence import decode_entries, downstream_batches, select_evidence
    from verification.graph import ProvenanceGraph
    from verification.store_reader import SqlLedgerReader

    with open_store(settings).transaction() as conn:
        reader = SqlLedgerReader(conn)
        roots = downstream_batches(reader, batch) if downstream else (batch,)
        selection = select_evidence(
            reader, roots, material_group=_material_group(settings), credit_evidence=False
        )
        envelopes = reader.envelopes([*selection.evidence_seqs, *selection.key_event_seqs])
    return ProvenanceGraph.from_events(decode_entries(envelopes))


def _render_svg(dot: Path) -> Path | None:
    exe = shutil.which("dot")
    if exe is None:
        click.echo("(Graphviz `dot` is not installed: no SVG; the DOT file opens in any viewer)")
        return None
    svg = dot.with_suffix(".svg")
    subprocess.run([exe, "-Tsvg", "-o", str(svg), str(dot)], check=True, timeout=60)
    return svg


def _print_tree(graph: ProvenanceGraph, root: str, downstream: bool) -> None:
    from rich.console import Console

    width = None if sys.stdout.isatty() else 160  # pipes and files: no wrapping at 80 columns
    Console(highlight=False, width=width).print(_tree(graph, root, downstream))


def _tree(graph: ProvenanceGraph, root: str, downstream: bool) -> Tree:
    from rich.markup import escape
    from rich.tree import Tree

    from verification.render import how_made, kg, shares

    seen: set[str] = set()

    def label(batch_id: str, mass_g: int | None) -> str:
        node = graph.batches[batch_id]
        pre, post = shares(node.composition, node.mass_g)
        site, country = graph.site_of(node.owner_id, node.site_id)
        if mass_g is None:
            via = ""
        elif downstream:
            step = graph.transformation_of(node)
            via = f"{kg(mass_g)} used by {step.process.value if step else 'transfer'} -> "
        else:
            via = f"{kg(mass_g)} of "
        again = "  [dim](shown above)[/]" if batch_id in seen else ""
        return (
            f"{via}[bold]{escape(batch_id)}[/]  {escape(node.material)} {kg(node.mass_g)}  "
            f"[green]post {post} %[/] [cyan]pre {pre} %[/]\n"
            f"[dim]{escape(graph.participant_name(node.owner_id))} · {escape(site)}, {country} · "
            f"{node.occurred_at:%Y-%m-%d} · {escape(how_made(graph, node))}[/]{again}"
        )

    def grow(tree: Tree, batch_id: str) -> None:
        if batch_id in seen:
            return
        seen.add(batch_id)
        node = graph.batches[batch_id]
        if downstream:
            nexts = [
                (
                    child,
                    next(p.mass_g for p in graph.batches[child].parents if p.batch_id == batch_id),
                )
                for child in graph.children.get(batch_id, ())
            ]
        else:
            nexts = [(p.batch_id, p.mass_g) for p in node.parents]
        for following, mass in nexts:
            grow(tree.add(label(following, mass)), following)

    top = Tree(label(root, None))
    grow(top, root)
    return top


# --- cehub certify / revoke -----------------------------------------------------------------------


def _hub_trust(settings: Settings) -> Trust:
    """What `cehub trust export` writes, as a Trust (certify checks its own output with it)."""
    from verification.trust import parse_trust

    return parse_trust(_trust_content(settings))


def _trust_file(path: Path) -> Trust:
    from verification.trust import parse_trust

    try:
        return parse_trust(json.loads(path.read_text("utf-8")))
    except InputError as exc:
        raise click.BadParameter(f"{path}: {exc.message}", param_hint="--trust") from None
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--trust") from None


def _trust_content(settings: Settings) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.checkpoint import note_verifier_key
    from ledger.errors import SignatureError
    from ledger.wiring import authority_public_key, ledger_key, materials
    from schemas.materials import MATERIALS_FILE_ENV, default_materials
    from verification.trust import trust_json

    path = settings.effective_ledger_key
    if not path.exists():
        raise SignatureError(
            Reason.BAD_KEY_FILE,
            f"no ledger key at {path}: the hub creates it when it first runs (`cehub process`); "
            "away from the hub, give the hub's trust file (--trust)",
        )
    key: Ed25519PrivateKey = ledger_key(settings)
    defaults = default_materials()
    extra = {
        m.code: m.group
        for m in materials(os.environ.get(MATERIALS_FILE_ENV))
        if m.code not in defaults
    }
    vkey = note_verifier_key(settings.ledger_name, key.public_key())
    return trust_json([vkey], [authority_public_key(settings)], extra)


def _write_certificate(certificate: Certificate, out: Path) -> tuple[Path, Path]:
    from verification.render import certificate_html, file_stem

    out.mkdir(parents=True, exist_ok=True)
    stem = file_stem(str(certificate.document["certificate_id"]))
    json_path, html_path = out / f"{stem}.json", out / f"{stem}.html"
    json_path.write_text(
        json.dumps(certificate.document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    html_path.write_text(
        certificate_html(
            certificate.document,
            certificate.claim,
            certificate.graph,
            certificate.code,
            certificate.sha256,
        ),
        encoding="utf-8",
    )
    return json_path, html_path


@click.command()
@click.argument("batch", required=False)
@click.option("--shipment", help="Certify the batch a received shipment became (its id).")
@click.option(
    "--certifier-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The certifier's private key (PKCS#8 PEM).",
)
@passphrase_options
@click.option(
    "--certifier-id", help="The certifier's participant id [the owner of the key in the ledger]."
)
@click.option("--certificate-id", help="[<certifier-id>/cert-<UTC time>-<random>]")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for <id>.json and <id>.html [<data-dir>/certificates].",
)
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Trust file to check the new certificate with, as buyers will [from the hub's "
    "settings, as `cehub trust export` writes it].",
)
@click.pass_obj
@reports_errors
def certify(
    settings: Settings,
    *,
    batch: str | None,
    shipment: str | None,
    certifier_key: Path,
    passphrase_file: Path | None,
    passphrase_env: str | None,
    certifier_id: str | None,
    certificate_id: str | None,
    out: Path | None,
    trust_file: Path | None,
) -> None:
    """Certify the recycled content of BATCH (or --shipment ID) and record it on the ledger.

    Collects the evidence from the store, proves it against the oldest signed checkpoint that
    covers it, computes and signs the claim, checks the result as a buyer would, writes
    <id>.json and a one-page <id>.html, and emits CertificateIssued (signed by the certifier)
    to the hub. The hub records it the next time `cehub process` runs.
    """
    if (batch is None) == (shipment is None):
        raise click.UsageError("give BATCH or --shipment ID (one of them)")
    started = time.monotonic()
    signer = load_signer(certifier_key, passphrase(passphrase_file, passphrase_env))
    certifier_id = certifier_id or _key_owner(settings, signer.key_id)
    issued_at = datetime.now(UTC)
    certificate_id = certificate_id or (
        f"{certifier_id}/cert-{issued_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    )
    certificate = _build(
        settings,
        _Request(batch or str(shipment), shipment is not None, certificate_id, certifier_id),
        signer,
        issued_at,
    )
    trust = _hub_trust(settings) if trust_file is None else _trust_file(trust_file)
    report = _self_check(certificate, trust)
    json_path, html_path = _write_certificate(
        certificate, out or settings.data_dir / "certificates"
    )
    claim = certificate.claim
    click.echo(f"certificate {certificate_id}  (verification code {certificate.code})")
    _echo_claim(claim, report.graph)
    click.echo(
        f"evidence    {len(certificate.document['evidence'])} events, "
        f"{len(certificate.document['key_events'])} key events, proven against checkpoint "
        f"{report.checkpoint.origin} size {report.checkpoint.size}"
    )
    click.echo(f"wrote       {json_path}\n            {html_path}")
    _record_issued(settings, certificate, signer, certifier_id, issued_at)
    click.echo(f"done in {time.monotonic() - started:.1f}s")


@dataclass(frozen=True, slots=True)
class _Request:
    wanted: str
    is_shipment: bool
    certificate_id: str
    certifier_id: str


def _key_owner(settings: Settings, key_id: str) -> str:
    """The participant whose key ``key_id`` is, from the store."""
    from ledger.wiring import open_store

    with open_store(settings).reading() as view:
        key = view.key(key_id)
    if key is None:
        raise CertificateError(
            Reason.UNKNOWN_KEY, f"key {key_id} is not in the ledger: enrol the certifier first"
        )
    return key.participant_id


def _build(
    settings: Settings, request: _Request, signer: Ed25519Signer, issued_at: datetime
) -> Certificate:
    from ledger.store import checkpoint_at_least, latest_checkpoint, node_reader
    from ledger.wiring import open_store
    from verification.certificate import build_certificate
    from verification.evidence import select_evidence
    from verification.store_reader import SqlLedgerReader

    group = _material_group(settings)
    with open_store(settings).transaction() as conn:
        reader = SqlLedgerReader(conn)
        batch_id = _resolve(reader, request)
        if reader.certificate(request.certificate_id) is not None:
            raise CertificateError(
                Reason.CERTIFICATE_INVALID, f"certificate {request.certificate_id} already exists"
            )
        selection = select_evidence(
            reader,
            [batch_id],
            material_group=group,
            certifier=(request.certifier_id, signer.key_id),
        )
        stored = checkpoint_at_least(conn, selection.required_size)
        if stored is None:
            latest = latest_checkpoint(conn)
            raise CertificateError(
                Reason.CERTIFICATE_INVALID,
                f"no signed checkpoint covers the evidence yet: it needs {selection.required_size} "
                f"entries, the latest checkpoint has {latest.tree_size if latest else 0}. Let the "
                "hub sign one (`cehub process --until-idle` signs one when it stops) and retry",
            )
        seqs = {*selection.evidence_seqs, *selection.key_event_seqs}
        return build_certificate(
            certificate_id=request.certificate_id,
            batch_id=batch_id,
            selection=selection,
            envelopes=reader.envelopes(seqs),
            checkpoint_note=stored.note.encode("utf-8"),
            checkpoint_size=stored.tree_size,
            get_node=node_reader(conn),
            certifier_id=request.certifier_id,
            signer=signer,
            issued_at=issued_at,
            material_group=group,
        )


def _resolve(reader: SqlLedgerReader, request: _Request) -> str:
    wanted = request.wanted
    if not request.is_shipment:
        return wanted
    shipment = reader.shipment(wanted)
    if shipment is None:
        raise CertificateError(Reason.UNKNOWN_SHIPMENT, f"shipment {wanted!r} is not in the ledger")
    if shipment.received_seq is None:
        raise CertificateError(
            Reason.UNKNOWN_SHIPMENT,
            f"shipment {wanted!r} is not received yet: its receipt creates the batch to certify",
        )
    return str(shipment.shipment_id)


def _self_check(certificate: Certificate, trust: Trust) -> VerificationReport:
    """Verify the new certificate as a buyer will (a bug here must never reach a buyer)."""
    from verification.certificate import CertificateCheckFailed, verify_certificate

    try:
        return verify_certificate(json.loads(json.dumps(certificate.document)), trust)
    except CertificateCheckFailed as failure:
        raise CertificateError(
            failure.reason, f"the new certificate does not verify: {failure.diagnostics()}"
        ) from failure


def _echo_claim(claim: Claim, graph: ProvenanceGraph) -> None:
    from verification.render import kg

    click.echo(
        f"claim       {claim.batch_id}: {claim.material} {kg(claim.mass_g)} held by "
        f"{graph.participant_name(claim.holder_id)}"
    )
    click.echo(
        f"            post-consumer {claim.post_consumer_pct} %, pre-consumer "
        f"{claim.pre_consumer_pct} % ({claim.custody_model.value})"
    )


def _record_issued(
    settings: Settings,
    certificate: Certificate,
    signer: Ed25519Signer,
    certifier_id: str,
    at: datetime,
) -> None:
    from producers.cli_support import report, send_drafts
    from producers.records import command_draft
    from schemas.events import CertificateIssued

    claim = certificate.claim
    draft = command_draft(
        lambda header: CertificateIssued(
            header=header,
            certificate_id=str(certificate.document["certificate_id"]),
            batch_id=claim.batch_id,
            holder_id=claim.holder_id,
            mass_g=claim.mass_g,
            custody_model=claim.custody_model,
            pre_consumer_pct=claim.pre_consumer_pct,
            post_consumer_pct=claim.post_consumer_pct,
            period_start=claim.period_start,
            period_end=claim.period_end,
            certificate_sha256=certificate.sha256,
        ),
        producer_id=certifier_id,
        occurred_at=at,
    )
    result = send_drafts(settings, [draft], signer, certifier_id, "cehub certify")
    report(result, [draft])


@click.command()
@click.argument("certificate")
@click.option("--reason", required=True, help="Why, for auditors and buyers.")
@click.option(
    "--certifier-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The certifier's private key (PKCS#8 PEM).",
)
@passphrase_options
@click.option(
    "--certifier-id", help="The certifier's participant id [the owner of the key in the ledger]."
)
@click.pass_obj
@reports_errors
def revoke(
    settings: Settings,
    *,
    certificate: str,
    reason: str,
    certifier_key: Path,
    passphrase_file: Path | None,
    passphrase_env: str | None,
    certifier_id: str | None,
) -> None:
    """Withdraw CERTIFICATE (its id, or its JSON file): emit CertificateRevoked."""
    from ledger.wiring import open_store
    from producers.cli_support import report, send_drafts
    from producers.records import command_draft
    from schemas.events import CertificateRevoked

    certificate_id = _certificate_id(certificate)
    with open_store(settings).reading() as view:
        record = view.certificate(certificate_id)
    if record is None:
        raise CertificateError(
            Reason.UNKNOWN_CERTIFICATE,
            f"certificate {certificate_id} is not on the ledger (yet): run `cehub process` "
            "after `cehub certify`, then revoke",
        )
    signer = load_signer(certifier_key, passphrase(passphrase_file, passphrase_env))
    certifier_id = certifier_id or _key_owner(settings, signer.key_id)
    draft = command_draft(
        lambda header: CertificateRevoked(header, certificate_id, reason),
        producer_id=certifier_id,
        occurred_at=datetime.now(UTC),
    )
    result = send_drafts(settings, [draft], signer, certifier_id, "cehub revoke")
    click.echo(f"CertificateRevoked {certificate_id} signed by {signer.key_id}")
    report(result, [draft])


def _certificate_id(text: str) -> str:
    path = Path(text)
    if text.endswith(".json") and path.is_file():
        try:
            content = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="CERTIFICATE") from None
        if isinstance(content, dict) and isinstance(content.get("certificate_id"), str):
            return str(content["certificate_id"])
        raise click.BadParameter(f"{path} is not a certificate", param_hint="CERTIFICATE")
    return text


# --- cehub verify-cert ----------------------------------------------------------------------------


@click.command("verify-cert")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--trust",
    "trust_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Trust file: the ledger's verifier key and the hub authority key (`cehub trust export`).",
)
def verify_cert(file: Path, trust_file: Path) -> None:
    """Check a certificate offline: checkpoint and every signature against the trusted keys,
    every inclusion proof and key authorisation, and the claim recomputed from the evidence.

    Needs no broker and no database. Exit 0 valid, 1 invalid (naming the failed check and the
    evidence item), 2 unusable input.
    """
    from verification.certificate import (
        CertificateCheckFailed,
        document_problem,
        verify_certificate,
    )
    from verification.trust import parse_trust

    document = _read_json(file, "certificate")
    problem = document_problem(document)
    if problem is not None:
        _unusable(f"{file}: {problem}")
    try:
        trust = parse_trust(_read_json(trust_file, "trust file"))
    except InputError as exc:
        _unusable(f"{trust_file}: {exc.message}")
    try:
        report = verify_certificate(document, trust)
    except CertificateCheckFailed as failure:
        _print_failure(file, failure)
        sys.exit(EXIT_INVALID)
    _print_report(file, report)


def _read_json(path: Path, what: str) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("a member name is repeated")
        return dict(pairs)

    try:
        return json.loads(path.read_text("utf-8"), object_pairs_hook=unique)
    except OSError as exc:
        _unusable(f"cannot read the {what} {path}: {exc.strerror}")
    except (ValueError, UnicodeDecodeError) as exc:
        _unusable(f"the {what} {path} is not JSON: {exc}")


def _unusable(message: str) -> Any:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(EXIT_USAGE)


def _print_checks(passed: Any) -> None:
    for result in passed:
        click.echo(f"  {click.style('ok', fg='green')}    {result.check.value:<20} {result.detail}")


def _print_report(file: Path, report: VerificationReport) -> None:
    from verification.render import summary_lines

    claim = report.claim
    click.echo(f"certificate {report.certificate_id} ({file})")
    click.echo(f"issued      {report.issued_at} by {report.certifier_id}")
    _echo_claim(claim, report.graph)
    click.echo(
        f"period      {claim.period_start:%Y-%m-%d %H:%M} to {claim.period_end:%Y-%m-%d %H:%M} UTC"
    )
    for line in summary_lines(report.graph, claim):
        click.echo(f"  {line}")
    click.echo("checks")
    _print_checks(report.checks)
    click.secho(
        f"VALID: every check passed. Verification code {report.code}", fg="green", bold=True
    )


def _print_failure(file: Path, failure: CertificateCheckFailed) -> None:
    click.echo(f"certificate {file}")
    click.echo("checks")
    _print_checks(failure.passed)
    where = f" ({failure.item})" if failure.item else ""
    click.echo(
        f"  {click.style('FAIL', fg='red')}  {failure.check.value:<20} {failure.message}{where}"
    )
    click.secho(
        f"INVALID: check {failure.check.value} failed{where} [{failure.reason}]",
        fg="red",
        bold=True,
    )


# --- cehub trust export ---------------------------------------------------------------------------


@click.group("trust")
def trust_group() -> None:
    """Trust files: what a buyer needs to verify certificates offline."""


@trust_group.command("export")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write here instead of standard output.",
)
@click.pass_obj
@reports_errors
def trust_export(settings: Settings, out: Path | None) -> None:
    """Write the hub's trust file: the ledger's checkpoint verifier key, the hub authority's
    public key and any extra material codes (docs/certificates.md)."""
    text = json.dumps(_trust_content(settings), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")


COMMANDS = (trace, certify, revoke, verify_cert, trust_group)
"""The commands ``ledger/cli.py`` adds to the ``cehub`` group."""
