"""Exact recycled-content arithmetic on compositions (ISO 14021, ISO 22095).

Every division rounds the recycled parts DOWN and gives the remainder to virgin, so a derived
composition can never claim more recycled material than its source held (DESIGN.md section 6:
a claim must never overstate).
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.events import Composition


def portion(source: Composition, part_g: int, whole_g: int) -> Composition:
    """The composition of ``part_g`` grams taken from ``whole_g`` grams of ``source``.

    Proportional (mass-weighted) allocation, recycled parts rounded down.
    """
    if whole_g <= 0 or not 0 <= part_g <= whole_g:
        raise ValueError(f"cannot take {part_g} g of {whole_g} g")
    pre = source.pre_consumer_g * part_g // whole_g
    post = source.post_consumer_g * part_g // whole_g
    return Composition(virgin_g=part_g - pre - post, pre_consumer_g=pre, post_consumer_g=post)


def combine(parts: Iterable[Composition]) -> Composition:
    """The composition of several parts blended together (exact sum)."""
    virgin = pre = post = 0
    for part in parts:
        virgin += part.virgin_g
        pre += part.pre_consumer_g
        post += part.post_consumer_g
    return Composition(virgin_g=virgin, pre_consumer_g=pre, post_consumer_g=post)


def claimed(mass_g: int, pre_consumer_g: int, post_consumer_g: int) -> Composition:
    """The composition of a mass-balance output: the claimed recycled grams, the rest virgin."""
    return Composition(
        virgin_g=mass_g - pre_consumer_g - post_consumer_g,
        pre_consumer_g=pre_consumer_g,
        post_consumer_g=post_consumer_g,
    )
