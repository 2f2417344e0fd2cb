"""Hand side, kept free of torch so tracking and message code can use it cheaply."""

from __future__ import annotations

import enum


class HandSide(str, enum.Enum):
    """Anatomical side of a hand (ARCHITECTURE.md, Conventions)."""

    LEFT = "left"
    RIGHT = "right"

    @classmethod
    def parse(cls, value: HandSide | str) -> HandSide:
        """Accept a HandSide or a case-insensitive 'left'/'right' with a clear error otherwise."""
        if isinstance(value, HandSide):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"hand side must be 'left' or 'right', got {value!r}") from None
