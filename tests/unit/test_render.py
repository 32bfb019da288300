"""Renderings (verification/render.py): exact kilograms, trace JSON and DOT, the HTML page."""

from __future__ import annotations

import html.parser

import pytest

from tests.certificates import certify, supply_chain
from verification.render import (
    DOWNSTREAM,
    UPSTREAM,
    certificate_html,
    file_stem,
    kg,
    trace_dot,
    trace_json,
)


@pytest.mark.parametrize(
    ("grams", "text"),
    [(0, "0 kg"), (500, "0.5 kg"), (12_800_000, "12 800 kg"), (1_234_567, "1 234.567 kg")],
)
def test_masses_are_exact_kilograms(grams: int, text: str) -> None:
    assert kg(grams) == text


def test_trace_json_and_dot_follow_the_material_both_ways() -> None:
    chain = supply_chain()
    cert = certify(chain.ledger, "m/p2", chain.certifier)
    up = trace_json(cert.graph, "m/p2", UPSTREAM)
    assert [b["batch_id"] for b in up["batches"]][:2] == ["m/p2", "r/ship-1"]
    assert up["batches"][0]["post_consumer_pct"] == "50.00"
    assert up["batches"][1]["made"]["sender_id"] == "recycler"
    down = trace_json(cert.graph, "c/bale-1", DOWNSTREAM)
    assert {"m/p1", "m/p2"} <= {b["batch_id"] for b in down["batches"]}
    dot = trace_dot(cert.graph, "m/p2", UPSTREAM)
    assert dot.startswith("digraph provenance {")
    assert '"r/ship-1" -> "m/p2"' in dot


class _Checker(html.parser.HTMLParser):
    VOID = frozenset({"meta", "br"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag


def test_html_page_shows_claim_code_and_how_to_verify() -> None:
    chain = supply_chain()
    cert = certify(chain.ledger, "m/p2", chain.certifier, certificate_id="certifier/<cert>&1")
    page = certificate_html(cert.document, cert.claim, cert.graph, cert.code, cert.sha256)
    checker = _Checker()
    checker.feed(page)
    assert checker.stack == []
    assert cert.code in page
    assert "<b>50.00 %</b>" in page
    assert "certifier/&lt;cert&gt;&amp;1" in page  # escaped
    assert f"cehub verify-cert {file_stem('certifier/<cert>&1')}.json" in page
    assert "Mass-balance credit" in page
    assert file_stem("a/b c") == "a_b_c"
