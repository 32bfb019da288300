"""The material code list and its extension (schemas/materials.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import InputError, Reason
from schemas.materials import (
    MATERIALS_FILE_ENV,
    Material,
    default_materials,
    parse_materials,
)

MATERIALS_JSON = Path(__file__).parents[2] / "schemas" / "materials.json"


def _extension(*materials: dict[str, str]) -> dict[str, Any]:
    return {"format": "cehub.materials", "version": 1, "materials": list(materials)}


LIMESTONE = {
    "code": "LIMESTONE",
    "group": "construction.raw_meal",
    "name": "Limestone",
    "description": "Quarried limestone for kiln feed.",
}


@pytest.mark.parametrize(
    "code",
    [
        "PET", "HDPE", "PVC", "LDPE", "PP", "PS", "OTHER_PLASTIC", "PET_FLAKE", "PET_PELLET",
        "PAPER_OCC", "PAPER_MIXED", "GLASS_CULLET_CLEAR", "ALUMINIUM_UBC", "STEEL_SCRAP",
        "COPPER_SCRAP", "CLINKER", "CEMENT", "FLY_ASH", "GGBS", "GYPSUM",
        "RECYCLED_AGGREGATE", "RDF", "SRF",
    ],
)  # fmt: skip
def test_shipped_list_has_the_pilot_sector_materials(code: str) -> None:
    material = default_materials().get(code)
    assert material.code == code
    assert material.name
    assert material.description


def test_pet_forms_share_one_credit_group() -> None:
    materials = default_materials()
    groups = {materials.group_of(code) for code in ("PET", "PET_BALE", "PET_FLAKE", "PET_PELLET")}
    assert groups == {"plastics.PET"}


def test_supplementary_cementitious_materials_book_into_cement() -> None:
    materials = default_materials()
    assert {materials.group_of(c) for c in ("CLINKER", "CEMENT", "FLY_ASH", "GGBS")} == {
        "construction.cement"
    }


def test_rejects_unknown_material() -> None:
    with pytest.raises(InputError) as info:
        default_materials().get("UNOBTAINIUM")
    assert info.value.reason is Reason.UNKNOWN_MATERIAL
    assert info.value.field == "material"


def test_list_is_iterable_and_sized() -> None:
    materials = default_materials()
    assert len(materials) == len(list(materials)) >= 30
    assert "PET" in materials
    assert "pet" not in materials


def test_shipped_file_parses_strictly() -> None:
    content = json.loads(MATERIALS_JSON.read_text())
    assert len(parse_materials(content)) == len(default_materials())


def test_extension_adds_codes() -> None:
    extended = default_materials().extended(_extension(LIMESTONE), source="extra.json")
    assert extended.get("LIMESTONE") == Material(**LIMESTONE)
    assert "LIMESTONE" not in default_materials()  # the default list is not changed
    assert len(extended) == len(default_materials()) + 1


def test_extension_may_repeat_a_shipped_entry_unchanged() -> None:
    pet = default_materials().get("PET")
    same = {"code": pet.code, "group": pet.group, "name": pet.name, "description": pet.description}
    assert default_materials().extended(_extension(same)).get("PET") == pet


def test_extension_may_not_move_a_code_to_another_credit_group() -> None:
    pet = default_materials().get("PET")
    moved = {"code": "PET", "group": "plastics.other", "name": pet.name, "description": "x"}
    with pytest.raises(InputError) as info:
        default_materials().extended(_extension(moved), source="extra.json")
    assert info.value.reason is Reason.INVALID_FIELD
    assert "extra.json" in info.value.message
    assert "redefine" in info.value.message


def _broken(path: str, value: Any) -> dict[str, Any]:
    content = _extension(copy.deepcopy(LIMESTONE))
    if path.startswith("entry."):
        content["materials"][0][path.removeprefix("entry.")] = value
    else:
        content[path] = value
    return content


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ([], "not a material file"),
        ({"materials": []}, "not a material file"),
        (_broken("format", "other"), "not a material file"),
        (_broken("version", 2), "unsupported version"),
        (_broken("materials", {"a": 1}), "must be a list"),
        (_extension("PET"), "must be an object"),  # type: ignore[arg-type]
        (_broken("entry.code", "pet"), "upper case"),
        (_broken("entry.code", "PET FLAKE"), "upper case"),
        (_broken("entry.code", ""), "non-empty"),
        (_broken("entry.group", "plastics"), "family.name"),
        (_broken("entry.group", "Plastics.PET"), "family.name"),
        (_broken("entry.name", 5), "non-empty string"),
        (_broken("entry.description", "  "), "non-empty string"),
        (_extension(LIMESTONE, LIMESTONE), "listed twice"),
    ],
)
def test_rejects_malformed_material_file(content: Any, why: str) -> None:
    with pytest.raises(InputError) as info:
        default_materials().extended(content, source="extra.json")
    assert info.value.reason is Reason.INVALID_FIELD
    assert why in info.value.message
    assert info.value.message.startswith("extra.json: ")


def test_environment_variable_name_is_stable() -> None:
    # Adapters read the extension's path from this variable; the core never reads it.
    assert MATERIALS_FILE_ENV == "CEHUB_MATERIALS_FILE"
