"""The Saraburi pilot demo: every step through the real `cehub` commands (issue 6, item 5).

`cehub demo` (and `make demo`) calls :func:`run_demo`. It runs, as separate processes and
exactly as a user would type them, the commands of the scenario in
``docs/examples/saraburi/`` (``pilot.json`` names the participants, their sites and roles,
and one JSON Lines file of events per participant):

1. ``cehub keys new`` for the hub authority and each participant;
2. ``cehub enroll`` each participant (signed by the hub authority);
3. ``cehub emit`` each participant's events through Kafka;
4. ``cehub process --until-idle``: the hub verifies, sequences and signs a checkpoint;
5. ``cehub trace`` the certified batch (tree, JSON, DOT) and the first bale downstream;
6. ``cehub certify`` the recycled compound, ``cehub trust export``;
7. ``cehub verify-cert`` with no broker or database settings at all;
8. ``cehub process --until-idle`` again: the ledger records the CertificateIssued.

Every run gets a fresh folder ``<data-dir>/demo/<UTC time>/`` (its own SQLite store, keys,
producer state and outputs) and a fresh topic prefix, so it works again on the same machine.
The folder keeps ``commands.sh`` (every command, to replay by hand) and ``demo.log`` (their
output). This module only starts processes and reads and writes files; it imports no adapter.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verification.render import kg

SCENARIO = Path(__file__).resolve().parent.parent / "docs" / "examples" / "saraburi"
"""The scenario files (in the repository, so that a new user can copy them)."""

_SETTINGS_VARS = (
    "CEHUB_DATABASE_URL",
    "CEHUB_AUTHORITY_KEY",
    "CEHUB_AUTHORITY_PUBLIC_KEY",
    "CEHUB_LEDGER_KEY",
    "CEHUB_LEDGER_NAME",
)
"""Settings the demo must not inherit: it uses the embedded defaults inside its own folder."""


class DemoFailed(Exception):
    """A step's command failed; ``code`` is its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def cehub_command() -> list[str]:
    """How to start `cehub`: the console script next to this Python, else through Python."""
    script = Path(sys.executable).with_name("cehub")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from ledger.cli import main; sys.exit(main())"]


@dataclass
class _Run:
    folder: Path
    env: dict[str, str]
    cehub: list[str]
    echo: Callable[[str], None]
    commands: list[str] = field(default_factory=list)

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run one `cehub` command; its output goes to demo.log; fail on a non-zero exit."""
        shown = "cehub " + " ".join(_quote(a) for a in args)
        self.commands.append(shown)
        proc = subprocess.run(
            [*self.cehub, *args],
            env=dict(env if env is not None else self.env),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        with (self.folder / "demo.log").open("a", encoding="utf-8") as log:
            log.write(f"$ {shown}\n{proc.stdout}{proc.stderr}\n")
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
            raise DemoFailed(f"`{shown}` exited with {proc.returncode}:\n{tail}", proc.returncode)
        return proc.stdout


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def new_run_folder(data_dir: Path, now: datetime) -> Path:
    """``<data_dir>/demo/<UTC time>`` (with a suffix if that exists already), created."""
    base = data_dir / "demo"
    base.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for n in range(100):
        folder = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder.resolve()
    raise DemoFailed(f"cannot create a fresh folder under {base}", 2)  # pragma: no cover


def run_demo(
    *,
    data_dir: Path,
    bootstrap: str,
    cehub: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
    scenario: Path = SCENARIO,
) -> int:
    """Run the whole demo; print what happens and a summary; return the exit code."""
    started = time.monotonic()
    folder = new_run_folder(data_dir, datetime.now(UTC))
    prefix = f"demo-{folder.name.lower()}-{secrets.token_hex(2)}"
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARS}
    env |= {"CEHUB_BOOTSTRAP": bootstrap, "CEHUB_TOPIC_PREFIX": prefix}
    env["CEHUB_DATA_DIR"] = str(folder)
    run = _Run(folder, env, list(cehub or cehub_command()), echo)
    pilot = json.loads((scenario / "pilot.json").read_text("utf-8"))
    echo(f"== CE Hub Ledger demo: {pilot['title']} ==")
    echo(f"folder {folder}\nKafka {bootstrap}, topics {prefix}.*, SQLite {folder / 'cehub.sqlite'}")
    try:
        outcome = _steps(run, pilot, scenario)
    except DemoFailed as failed:
        echo(f"\nFAILED: {failed}\n(full output in {folder / 'demo.log'})")
        return failed.code
    finally:
        (folder / "commands.sh").write_text(
            "#!/bin/sh\n# The commands `cehub demo` ran, in order (from this folder, with\n"
            f"# CEHUB_DATA_DIR={folder} CEHUB_TOPIC_PREFIX={prefix}).\nset -e\n"
            + "".join(f"{c}\n" for c in run.commands),
            encoding="utf-8",
        )
    _summary(echo, pilot, folder, outcome, time.monotonic() - started)
    return 0


def _steps(run: _Run, pilot: Mapping[str, Any], scenario: Path) -> dict[str, Any]:
    echo, folder = run.echo, run.folder
    copy = folder / "scenario"
    shutil.copytree(scenario, copy)
    echo("\n1. keys: the hub authority and one Ed25519 key per participant (keys/)")
    run("keys", "new", "--out", "keys/authority.pem")
    public = {}
    for p in pilot["participants"]:
        out = run("keys", "new", "--out", f"keys/{p['participant_id']}.pem")
        public[p["participant_id"]] = _after(out, "public_key:")
    echo("2. enroll: the hub operator admits each participant (ParticipantEnrolled)")
    for p in pilot["participants"]:
        args = ["enroll", "--participant-id", p["participant_id"], "--legal-name", p["legal_name"]]
        args += ["--country", p["country"], "--public-key", public[p["participant_id"]]]
        for role in p["roles"]:
            args += ["--role", role]
        for site in p["sites"]:
            args += ["--site", site]
        run(*args)
        echo(f"   {p['participant_id']:<15} {p['legal_name']} ({', '.join(p['roles'])})")
    echo("3. emit: each participant signs its own events and sends them to Kafka")
    for p in pilot["participants"]:
        if p["events"]:
            pid = p["participant_id"]
            out = run(
                "emit", f"scenario/{p['events']}", "--key", f"keys/{pid}.pem", "--producer-id", pid
            )
            echo(f"   {pid:<15} {out.splitlines()[1].strip()}")
    echo("4. process: the hub verifies, sequences, stores and signs a checkpoint")
    processed = run("process", "--until-idle").strip().splitlines()[-1]
    echo(f"   {processed}")
    batch, certifier = pilot["certify"]["batch_id"], pilot["certify"]["certifier_id"]
    echo(f"5. trace {batch}: where its material came from")
    tree = run("trace", batch, "--dot", "trace.dot")
    for line in tree.splitlines():
        echo(f"   {line}")
    (folder / "trace.json").write_text(run("trace", batch, "--json"), encoding="utf-8")
    downstream = pilot.get("trace_downstream")
    if downstream:
        (folder / "trace-downstream.txt").write_text(run("trace", downstream, "--downstream"))
    echo(f"6. certify {batch} as {certifier}")
    certified = run(
        "certify",
        batch,
        "--certifier-key",
        f"keys/{certifier}.pem",
        "--certifier-id",
        certifier,
        "--out",
        "certificates",
    )
    for line in certified.splitlines()[:3]:
        echo(f"   {line}")
    run("trust", "export", "--out", "trust.json")
    cert_file = folder / _after(certified, "wrote")
    echo("7. verify-cert, offline: no broker, no database, only the certificate and trust.json")
    offline = {k: v for k, v in run.env.items() if not k.startswith("CEHUB_")}
    verified = run("verify-cert", str(cert_file), "--trust", "trust.json", env=offline)
    echo(f"   {verified.strip().splitlines()[-1]}")
    echo("8. process again: the ledger records the certifier's CertificateIssued")
    recorded = run("process", "--until-idle").strip().splitlines()[-1]
    echo(f"   {recorded}")
    document = json.loads(cert_file.read_text("utf-8"))
    return {"certificate": cert_file, "document": document, "verified": verified}


def _after(output: str, label: str) -> str:
    """What follows ``label`` on the first output line that starts with it."""
    for line in output.splitlines():
        if line.startswith(label):
            return line[len(label) :].strip()
    raise DemoFailed(f"no {label!r} in the command's output:\n{output}", 1)


def _summary(
    echo: Callable[[str], None],
    pilot: Mapping[str, Any],
    folder: Path,
    outcome: Mapping[str, Any],
    seconds: float,
) -> None:
    claim = outcome["document"]["claim"]
    cert: Path = outcome["certificate"]
    code = re.search(r"Verification code (\S+)", outcome["verified"])
    echo("\n== What happened ==")
    for n, line in enumerate(pilot["story"], start=1):
        echo(f" {n}. {line}")
    echo("\n== The certificate ==")
    echo(f" {outcome['document']['certificate_id']} for {claim['batch_id']}")
    echo(
        f" {kg(int(claim['mass_g']))} {claim['material']}: post-consumer "
        f"{claim['post_consumer_pct']} %, pre-consumer {claim['pre_consumer_pct']} % "
        f"({claim['custody_model']}, rounded down)"
    )
    echo(f" verified offline: VALID, verification code {code.group(1) if code else '?'}")
    echo("\n== Files ==")
    rel = {
        "certificate": cert,
        "rendering": cert.with_suffix(".html"),
        "trust file": folder / "trust.json",
        "trace": folder / "trace.json",
        "trace (DOT)": folder / "trace.dot",
        "downstream": folder / "trace-downstream.txt",
        "commands": folder / "commands.sh",
        "log": folder / "demo.log",
        "ledger": folder / "cehub.sqlite",
    }
    for label, path in rel.items():
        echo(f" {label:<12} {path}")
    echo(
        f"\nCheck it again yourself:  cehub verify-cert {cert} --trust {folder / 'trust.json'}"
        f"\nDone in {seconds:.0f} s."
    )
