"""Streaming multipart parsing (python-multipart) with each part's headers collected: the one parser set-up
behind the STOW-RS receiver (``stow.StowReceiver``) and the model upload (``model_upload.ModelReceiver``).

A subclass implements three hooks: ``_headers_finished`` (``self._headers`` holds the part's headers,
names lower-cased), ``_part_data(data, start, end)`` and ``_part_end``; ``ended`` says whether the closing
delimiter arrived.  Parse errors come out as the caller's own "malformed body" error.
"""

from __future__ import annotations

from collections.abc import Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser


class PartStream:
    """Base of a push-style multipart reader: ``_write(chunk)`` as bytes arrive, then ``_finalize()``."""

    ended: bool

    def _init_parser(
        self, boundary: bytes, *, max_header_count: int, malformed: Callable[[str], Exception]
    ) -> None:
        self.ended = False
        self._malformed_error = malformed
        self._headers: dict[str, str] = {}
        self._field = self._value = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": lambda d, s, e: self._grow("_field", d[s:e]),
                "on_header_value": lambda d, s, e: self._grow("_value", d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
            max_header_count=max_header_count,
        )

    def _write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise self._malformed_error(f"malformed multipart body ({exc})") from exc

    def _finalize(self) -> None:
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise self._malformed_error(f"malformed multipart body ({exc})") from exc

    # -- parser callbacks ------------------------------------------------------------------------------
    def _grow(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + bytes(data))

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def _end(self) -> None:
        self.ended = True

    # -- the subclass's hooks ---------------------------------------------------------------------------
    def _headers_finished(self) -> None:
        raise NotImplementedError

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        raise NotImplementedError

    def _part_end(self) -> None:
        raise NotImplementedError
