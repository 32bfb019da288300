"""The material code list: what a batch is made of, and which credit account it books into.

Events name materials by code (``BatchCreated.material``, ``TransformOutput.material``). Each
code belongs to a *group*, ``family.name`` such as ``plastics.PET``: the mass-balance model of
ISO 22095 keeps one credit account per site and per group, so recycled content booked by one
material of a group may be claimed by another of the same group (PET flake in, PET pellet out).

The list ships as ``schemas/materials.json``. A deployment extends it with a JSON file of the
same format; the *adapter* finds the file (a path it is given, or the environment variable
:data:`MATERIALS_FILE_ENV`) and reads it, and the core only takes the parsed content::

    materials = default_materials().extended(json.loads(path.read_text()), source=str(path))

An extension adds codes; it may repeat a shipped entry unchanged but never redefine one,
because a changed group would silently move credit between accounts.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ledger.errors import InputError, Reason

MATERIALS_FILE_ENV = "CEHUB_MATERIALS_FILE"
"""Environment variable the adapters read for the path of an extra material file."""
FORMAT = "cehub.materials"
"""Value of the ``format`` member of a material file."""
FORMAT_VERSION = 1

_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}", re.ASCII)
_GROUP = re.compile(r"[a-z][a-z0-9_]*(\.[A-Za-z0-9_]+)+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Material:
    """One material code."""

    code: str
    """Upper-case code used in events, e.g. ``PET_FLAKE``."""
    group: str
    """Mass-balance credit group, ``family.name``, e.g. ``plastics.PET``."""
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class MaterialList:
    """An immutable set of materials, by code."""

    by_code: Mapping[str, Material]

    def get(self, code: str) -> Material:
        """The material with this code.

        Raises:
            InputError(UNKNOWN_MATERIAL): no such code.
        """
        try:
            return self.by_code[code]
        except KeyError:
            raise InputError(
                Reason.UNKNOWN_MATERIAL, f"unknown material code {code!r}", field="material"
            ) from None

    def group_of(self, code: str) -> str:
        """The credit group of a code (raises like :meth:`get`)."""
        return self.get(code).group

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def __iter__(self) -> Iterator[Material]:
        return iter(self.by_code.values())

    def __len__(self) -> int:
        return len(self.by_code)

    def extended(self, content: object, *, source: str = "extension") -> MaterialList:
        """This list plus the materials of a parsed material file.

        Raises:
            InputError(INVALID_FIELD): the content is not a valid material file, or redefines
                a code of this list. The message names ``source`` and the entry.
        """
        merged = dict(self.by_code)
        for material in parse_materials(content, source=source):
            known = merged.get(material.code)
            if known is not None and known != material:
                raise InputError(
                    Reason.INVALID_FIELD,
                    f"{source}: material {material.code!r} is already defined differently "
                    f"(group {known.group!r}); an extension may add codes, not redefine them",
                    field="materials",
                )
            merged[material.code] = material
        return MaterialList(MappingProxyType(merged))


def parse_materials(content: object, *, source: str = "materials") -> tuple[Material, ...]:
    """The materials of a parsed material file (``{"format": "cehub.materials", "version": 1,
    "materials": [{"code", "group", "name", "description"}, ...]}``).

    Raises:
        InputError(INVALID_FIELD): wrong format or version, a malformed entry, or a code
            listed twice.
    """
    if not isinstance(content, Mapping) or content.get("format") != FORMAT:
        raise _bad(source, f'not a material file (expected "format": "{FORMAT}")', "format")
    if content.get("version") != FORMAT_VERSION:
        raise _bad(source, f"unsupported version {content.get('version')!r}", "version")
    entries = content.get("materials")
    if not isinstance(entries, list):
        raise _bad(source, '"materials" must be a list', "materials")
    materials = tuple(_parse_entry(entry, source, i) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for material in materials:
        if material.code in seen:
            raise _bad(source, f"material {material.code!r} is listed twice", "materials")
        seen.add(material.code)
    return materials


@functools.cache
def default_materials() -> MaterialList:
    """The material list shipped in ``schemas/materials.json``."""
    text = importlib.resources.files("schemas").joinpath("materials.json").read_text("utf-8")
    materials = parse_materials(json.loads(text), source="schemas/materials.json")
    return MaterialList(MappingProxyType({m.code: m for m in materials}))


def _parse_entry(entry: Any, source: str, index: int) -> Material:
    where = f"materials[{index}]"
    if not isinstance(entry, Mapping):
        raise _bad(source, f"{where} must be an object", where)
    values: dict[str, str] = {}
    for key in ("code", "group", "name", "description"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise _bad(source, f"{where}.{key} must be a non-empty string", f"{where}.{key}")
        values[key] = value
    if not _CODE.fullmatch(values["code"]):
        raise _bad(
            source,
            f"{where}.code {values['code']!r} must be upper case letters, digits and '_'",
            f"{where}.code",
        )
    if not _GROUP.fullmatch(values["group"]):
        raise _bad(
            source,
            f"{where}.group {values['group']!r} must look like 'family.name', e.g. 'plastics.PET'",
            f"{where}.group",
        )
    return Material(**values)


def _bad(source: str, message: str, field: str) -> InputError:
    return InputError(Reason.INVALID_FIELD, f"{source}: {message}", field=field)
