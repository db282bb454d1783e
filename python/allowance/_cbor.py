"""The restricted, canonical CBOR of spec/format.md §3: a strict checker-decoder and an encoder.

The decoder follows the checking algorithm of §3.3 step by step and raises the first violation met
in a depth-first, left-to-right walk. Decoded values: ``int`` (major 0), ``bytes`` (2), ``str`` (3),
``list`` (4) and ``dict`` (5, keys ``int`` or ``str`` in their encoded order).
"""

from __future__ import annotations

from typing import Union

from .errors import ERR_MALFORMED, ERR_NON_CANONICAL, AllowanceError

CborValue = Union[int, bytes, str, list, dict]

MAX_SAFE_INTEGER = 2**53 - 1
MAX_NESTING = 8
_MINIMUM = {24: 24, 25: 1 << 8, 26: 1 << 16, 27: 1 << 32}
_SIZE = {24: 1, 25: 2, 26: 4, 27: 8}


class _Decoder:
    __slots__ = ("data", "pos", "link_index")

    def __init__(self, data: bytes, link_index: int | None) -> None:
        self.data = data
        self.pos = 0
        self.link_index = link_index

    def fail(self, code: str, message: str) -> AllowanceError:
        return AllowanceError(code, message, link_index=self.link_index)

    def head(self) -> tuple[int, int]:
        """§3.3 step 2: the major type and the argument of the head at ``pos``."""
        data = self.data
        if self.pos >= len(data):
            raise self.fail(ERR_MALFORMED, "CBOR input ends early")
        ib = data[self.pos]
        mt, ai = ib >> 5, ib & 0x1F
        if mt == 7:
            if ai in (25, 26, 27):
                raise self.fail(ERR_NON_CANONICAL, "floats are not allowed")
            raise self.fail(ERR_MALFORMED, "simple values and break are not allowed")
        if mt == 6:
            raise self.fail(ERR_MALFORMED, "tags are not allowed")
        # Before the argument is read: every negative integer is malformed, whatever its head.
        if mt == 1:
            raise self.fail(ERR_MALFORMED, "negative integers are not allowed")
        if ai < 24:
            self.pos += 1
            return mt, ai
        if ai == 31:
            if mt == 0:
                raise self.fail(ERR_MALFORMED, "additional information 31 on an integer")
            raise self.fail(ERR_NON_CANONICAL, "indefinite lengths are not allowed")
        if ai > 27:
            raise self.fail(ERR_MALFORMED, "reserved additional information")
        size = _SIZE[ai]
        start = self.pos + 1
        if start + size > len(data):
            raise self.fail(ERR_MALFORMED, "CBOR head runs past the end")
        argument = int.from_bytes(data[start : start + size], "big")
        if argument > MAX_SAFE_INTEGER:
            raise self.fail(ERR_MALFORMED, "integer or length above 2^53 - 1")
        if argument < _MINIMUM[ai]:
            raise self.fail(ERR_NON_CANONICAL, "integer or length not in its shortest form")
        self.pos = start + size
        return mt, argument

    def item(self, nesting: int) -> CborValue:
        """§3.3 ``check(item at pos, nesting)``, returning the decoded value."""
        if nesting > MAX_NESTING:
            raise self.fail(ERR_MALFORMED, "CBOR nested more than 8 deep")
        mt, argument = self.head()
        if mt == 0:
            return argument
        if mt in (2, 3):
            end = self.pos + argument
            if end > len(self.data):
                raise self.fail(ERR_MALFORMED, "string runs past the end")
            content = bytes(self.data[self.pos : end])
            self.pos = end
            if mt == 2:
                return content
            try:
                # "utf-8", never "utf-8-sig": a leading BOM is an ordinary character (§3.1).
                return content.decode("utf-8", "strict")
            except UnicodeDecodeError:
                raise self.fail(ERR_MALFORMED, "text string is not well-formed UTF-8") from None
        # §3.3 step 3: more elements (or pairs) than bytes left cannot be complete. This is
        # decided before any element is read, even one that holds another violation.
        if argument > len(self.data) - self.pos:
            raise self.fail(ERR_MALFORMED, "array or map counts more items than bytes left")
        if mt == 4:
            return [self.item(nesting + 1) for _ in range(argument)]
        # mt == 5
        result: dict = {}
        previous: bytes | None = None
        for _ in range(argument):
            if self.pos >= len(self.data):
                raise self.fail(ERR_MALFORMED, "CBOR input ends early")
            # Before the key's head is read, so that a float key is malformed, not non-canonical.
            if self.data[self.pos] >> 5 not in (0, 3):
                raise self.fail(ERR_MALFORMED, "map keys must be unsigned integers or text")
            start = self.pos
            key = self.item(nesting + 1)
            encoded = self.data[start : self.pos]
            if previous is not None and not encoded > previous:
                raise self.fail(ERR_NON_CANONICAL, "map keys out of order or repeated")
            previous = encoded
            result[key] = self.item(nesting + 1)
        return result


def decode(data: bytes, link_index: int | None = None) -> CborValue:
    """Decodes exactly one canonical item (§3), or raises the first violation (§3.3)."""
    decoder = _Decoder(bytes(data), link_index)
    value = decoder.item(0)
    if decoder.pos != len(decoder.data):
        raise decoder.fail(ERR_MALFORMED, "trailing bytes after the CBOR item")
    return value


def _head(major: int, argument: int) -> bytes:
    if argument < 24:
        return bytes([major << 5 | argument])
    if argument < 1 << 8:
        return bytes([major << 5 | 24, argument])
    if argument < 1 << 16:
        return bytes([major << 5 | 25]) + argument.to_bytes(2, "big")
    if argument < 1 << 32:
        return bytes([major << 5 | 26]) + argument.to_bytes(4, "big")
    return bytes([major << 5 | 27]) + argument.to_bytes(8, "big")


def _write(value: CborValue, out: bytearray, nesting: int) -> None:
    if nesting > MAX_NESTING:
        raise ValueError("CBOR value nested more than 8 deep")
    if isinstance(value, bool):
        raise TypeError("booleans have no place in this CBOR")
    if isinstance(value, int):
        if not 0 <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"CBOR integers are 0 to 2^53 - 1, got {value}")
        out += _head(0, value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out += _head(2, len(raw))
        out += raw
    elif isinstance(value, str):
        # A lone surrogate has no UTF-8 form: refuse it rather than write a replacement.
        raw = value.encode("utf-8", "strict")
        out += _head(3, len(raw))
        out += raw
    elif isinstance(value, (list, tuple)):
        out += _head(4, len(value))
        for element in value:
            _write(element, out, nesting + 1)
    elif isinstance(value, dict):
        entries = []
        for key, element in value.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise TypeError(f"CBOR map keys are unsigned integers or text, got {key!r}")
            encoded = bytearray()
            _write(key, encoded, nesting + 1)
            entries.append((bytes(encoded), element))
        entries.sort(key=lambda entry: entry[0])  # §3.2 rule 3: bytewise order of the encodings
        out += _head(5, len(entries))
        for encoded, element in entries:
            out += encoded
            _write(element, out, nesting + 1)
    else:
        raise TypeError(f"no CBOR encoding for {type(value).__name__}")


def encode(value: CborValue) -> bytes:
    """The canonical encoding of ``value``: shortest heads, definite lengths, sorted map keys."""
    out = bytearray()
    _write(value, out, 0)
    return bytes(out)


def text_order_key(text: str) -> tuple[int, bytes]:
    """Canonical text order (§4.4): UTF-8 length, then bytewise, as their CBOR encodings sort."""
    raw = text.encode("utf-8")
    return (len(raw), raw)
