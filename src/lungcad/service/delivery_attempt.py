"""How one delivery attempt ended (shared by the C-STORE and STOW-RS senders and the delivery log)."""

from __future__ import annotations

from dataclasses import dataclass

ERROR_CHARS = 500  # longer error texts are cut (the log keeps the start, where the cause is)


@dataclass(frozen=True)
class Attempt:
    """``ok``: the destination stored the object.  Otherwise ``transient`` says whether another attempt may
    succeed (the destination was down, busy or slow) or not (it refused the object for good).

    Attributes:
        status: the DICOM status (C-STORE) or the HTTP status code (STOW-RS) of the answer, if any.
        error: what went wrong (or the warning of a success), for the delivery log; never patient data.
    """

    ok: bool
    transient: bool = False
    status: int | None = None
    error: str | None = None

    @property
    def error_text(self) -> str | None:
        return self.error[:ERROR_CHARS] if self.error else None
