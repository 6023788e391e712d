"""The base of every config model (unknown keys are errors, models are immutable), and ``blank``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

__all__ = ["StrictModel", "blank"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        """An empty string for an optional key (``${env.NAME:=}``) is the same as leaving it out.

        Without this an empty path would silently become the current directory.
        """
        if not isinstance(data, dict):
            return data
        optional = {name for name, field in cls.model_fields.items() if field.default is None}
        return {k: None if k in optional and v == "" else v for k, v in data.items()}


def blank(value: object) -> bool:
    """Unset, or set to an empty string (e.g. ``${env.NAME:=}``)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or value == ""
