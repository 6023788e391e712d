"""The configuration reference, generated from the pydantic models themselves.

``reference_rows(model)`` walks a model's fields (into nested sections and lists of sections)
and gives one ``ReferenceRow`` per key: its dotted name, type, default and description.
``render_table`` turns rows into a Markdown table. ``scripts/config_reference.py`` composes the
docs page from them, and a test fails when the committed page differs from what it renders,
so the page cannot drift from the code.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["ReferenceRow", "reference_rows", "render_table"]


@dataclass(frozen=True)
class ReferenceRow:
    """One key of a configuration file, as the reference page shows it."""

    key: str
    type: str
    default: str
    description: str
    environment: str = ""


def reference_rows(
    model: type[BaseModel], prefix: str = "", *, environment: Mapping[str, str] | None = None
) -> Iterator[ReferenceRow]:
    """Every key of ``model``, depth first, in declaration order.

    ``environment`` maps a dotted key to the variable it is read from when left out.
    """
    variables = environment or {}
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        section = _section_model(field.annotation)
        if section is not None:
            list_of = _is_list(field.annotation)
            yield ReferenceRow(
                key, _type_name(field.annotation), _default(field), _describe(field, section)
            )
            yield from reference_rows(
                section, f"{key}[]" if list_of else key, environment=variables
            )
            continue
        yield ReferenceRow(
            key,
            _type_name(field.annotation),
            _default(field),
            _describe(field, None),
            variables.get(key, ""),
        )


def render_table(rows: Sequence[ReferenceRow], *, with_environment: bool = False) -> str:
    """A Markdown table of ``rows``."""
    header = ["Key", "Type", "Default", *(["Variable"] if with_environment else []), "Meaning"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"`{row.key}`", row.type, row.default]
        if with_environment:
            cells.append(f"`{row.environment}`" if row.environment else "")
        cells.append(row.description)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _describe(field: FieldInfo, section: type[BaseModel] | None) -> str:
    if field.description:
        return field.description
    if section is not None and section.__doc__:
        return section.__doc__.strip().splitlines()[0]
    return ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(section)" if _section_model(field.annotation) else "(empty)"
    if field.default is PydanticUndefined:
        return "required"
    return _literal(field.default)


def _literal(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, Path | str):
        return f"`{value}`" if str(value) else '`""`'
    if isinstance(value, list | tuple | dict) and not value:
        return "`[]`" if not isinstance(value, dict) else "`{}`"
    return f"`{value}`"


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested section (``X``, ``X | None`` or ``list[X]``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        if argument is type(None):
            continue
        found = _section_model(argument)
        if found is not None and typing.get_origin(annotation) is not dict:
            return found
    return None


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) is list:
        return True
    return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(f"`{value}`" for value in arguments)
    if origin in (typing.Union, types.UnionType):
        named = [_type_name(a) for a in arguments if a is not type(None)]
        optional = len(named) < len(arguments)
        return " or ".join(named) + (" (optional)" if optional else "")
    if origin is list:
        return f"list of {_type_name(arguments[0])}"
    if origin is dict:
        return f"map of {_type_name(arguments[0])} to {_type_name(arguments[1])}"
    if annotation is SecretStr:
        return "secret"
    if annotation is Path:
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)
