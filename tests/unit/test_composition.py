"""Recycled-content arithmetic (verification/composition.py, DESIGN.md section 6).

Every division rounds the recycled grams DOWN and gives the remainder to virgin: a derived
composition may lose a fraction of a gram of recycled content, never gain one.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import Composition
from tests.strategies import compositions
from verification.composition import claimed, combine, portion

FAST = settings(max_examples=100, deadline=None)


@pytest.mark.parametrize(
    ("source", "part_g", "whole_g", "expected"),
    [
        (Composition(700, 0, 300), 400, 1_000, Composition(280, 0, 120)),
        (Composition(600, 100, 300), 333, 1_000, Composition(201, 33, 99)),  # 33.3, 99.9
        (Composition(0, 1, 2), 1, 3, Composition(1, 0, 0)),  # 1/3 and 2/3 of a gram: lost
        (Composition(0, 0, 3), 2, 3, Composition(0, 0, 2)),
        (Composition(5, 3, 2), 10, 10, Composition(5, 3, 2)),  # all of it: unchanged
        (Composition(5, 3, 2), 0, 10, Composition(0, 0, 0)),
    ],
)
def test_portion_allocates_proportionally_rounding_recycled_down(
    source: Composition, part_g: int, whole_g: int, expected: Composition
) -> None:
    assert portion(source, part_g, whole_g) == expected


@pytest.mark.parametrize(("part_g", "whole_g"), [(1, 0), (-1, 10), (11, 10), (0, -5)])
def test_portion_refuses_impossible_parts(part_g: int, whole_g: int) -> None:
    with pytest.raises(ValueError, match="cannot take"):
        portion(Composition(5, 3, 2), part_g, whole_g)


def test_combine_adds_each_origin() -> None:
    parts = [Composition(1, 2, 3), Composition(40, 50, 60), Composition(0, 0, 700)]
    assert combine(parts) == Composition(41, 52, 763)
    assert combine(iter(parts)) == Composition(41, 52, 763)  # any iterable, consumed once


def test_combine_of_nothing_is_empty() -> None:
    assert combine([]) == Composition(0, 0, 0)


def test_claimed_makes_the_unclaimed_rest_virgin() -> None:
    assert claimed(1_000, 100, 300) == Composition(600, 100, 300)
    assert claimed(1_000, 0, 0) == Composition(1_000, 0, 0)
    assert claimed(400, 0, 400) == Composition(0, 0, 400)


def test_proportional_blend_example_from_the_rules() -> None:
    # 800 g of a 100 % post-consumer batch + 1 000 g of a 30 % pre-consumer batch, then
    # 700 g of the 1 800 g blend: 116.6 g pre and 311.1 g post, rounded down
    blend = combine(
        [
            portion(Composition(0, 0, 1_000), 800, 1_000),
            portion(Composition(700, 300, 0), 1_000, 1_000),
        ]
    )
    assert blend == Composition(700, 300, 800)
    assert portion(blend, 700, 1_800) == Composition(273, 116, 311)


@st.composite
def sources_and_parts(draw: st.DrawFn) -> tuple[Composition, int]:
    source = draw(compositions(draw(st.integers(1, 10**12))))
    return source, draw(st.integers(0, source.total_g))


@FAST
@given(sources_and_parts())
def test_portion_never_overstates_and_loses_less_than_a_gram(
    case: tuple[Composition, int],
) -> None:
    source, part_g = case
    whole_g = source.total_g
    taken = portion(source, part_g, whole_g)
    assert taken.total_g == part_g
    assert min(taken.virgin_g, taken.pre_consumer_g, taken.post_consumer_g) >= 0
    for got, had in (
        (taken.pre_consumer_g, source.pre_consumer_g),
        (taken.post_consumer_g, source.post_consumer_g),
    ):
        assert got * whole_g <= had * part_g < (got + 1) * whole_g  # floor of the exact share


@FAST
@given(sources_and_parts())
def test_portions_of_a_split_never_hold_more_than_the_whole(
    case: tuple[Composition, int],
) -> None:
    source, part_g = case
    whole_g = source.total_g
    both = combine([portion(source, part_g, whole_g), portion(source, whole_g - part_g, whole_g)])
    assert both.total_g == whole_g
    assert both.pre_consumer_g <= source.pre_consumer_g
    assert both.post_consumer_g <= source.post_consumer_g


@FAST
@given(st.lists(compositions(), max_size=6))
def test_combine_is_exact_and_order_free(parts: list[Composition]) -> None:
    blend = combine(parts)
    assert blend.total_g == sum(p.total_g for p in parts)
    assert blend.virgin_g == sum(p.virgin_g for p in parts)
    assert blend.pre_consumer_g == sum(p.pre_consumer_g for p in parts)
    assert blend.post_consumer_g == sum(p.post_consumer_g for p in parts)
    assert combine(reversed(parts)) == blend


@FAST
@given(compositions())
def test_claimed_of_a_composition_is_that_composition(composition: Composition) -> None:
    pre, post = composition.pre_consumer_g, composition.post_consumer_g
    assert claimed(composition.total_g, pre, post) == composition
