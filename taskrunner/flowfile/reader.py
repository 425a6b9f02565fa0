"""Reading flow documents: YAML text to plain JSON-like data, with a position for every node.

The reader is deliberately narrower than YAML:

- the text must be UTF-8 and at most `MAX_BYTES` long;
- scalars follow the YAML 1.2 core schema: only `true`/`false` are booleans, so `on`,
  `off`, `yes` and `no` stay strings; `.inf`, `.nan` and timestamps stay strings too,
  because flows are JSON data;
- mapping keys are always strings, taken as written, and a key may appear only once;
- tags are refused; aliases are allowed, but counted as if expanded, so that an alias
  bomb stops at `MAX_NODES` instead of exhausting memory; nesting stops at `MAX_DEPTH`;
- a line indented with a space that is not the ASCII space (U+00A0 NO-BREAK SPACE, often
  pasted from a web page or a word processor, and the other Unicode spaces) is refused at
  that line, naming the character; so is a tab in the indentation of a line that YAML
  cannot read (libyaml would report it lines later, or cryptically).

It walks libyaml's event stream with an explicit stack (no recursion), so hostile input is
refused in time and memory bounded by the limits above.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import yaml
from pydantic import JsonValue

MAX_BYTES: Final = 1024 * 1024
MAX_NODES: Final = 100_000
MAX_DEPTH: Final = 64
MAX_INTEGER_BITS: Final = 14_000
"""Integers are limited to 14,000 bits (about 4,200 decimal digits): far beyond any real
use, and within what Python converts to text."""

_Loader: Final = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL: Final = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL: Final = {"true": True, "True": True, "TRUE": True}
_BOOL.update({"false": False, "False": False, "FALSE": False})
_INT: Final = re.compile(r"^[-+]?[0-9]+$")
_OCTAL: Final = re.compile(r"^0o[0-7]+$")
_HEX: Final = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT: Final = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")

Position = tuple[int, int]


class ReadError(Exception):
    """The text is not a flow document that can be read: a code, a message, a position."""

    def __init__(self, code: str, message: str, position: Position = (1, 1)) -> None:
        self.code = code
        self.message = message
        self.position = position
        super().__init__(message)


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of the document is written: (line, column)."""

    values: dict[str, Position] = field(default_factory=dict)
    keys: dict[str, Position] = field(default_factory=dict)

    def locate(self, path: str, *, at_key: bool = False) -> Position:
        """The position of the JSON pointer `path`, or of its nearest written ancestor."""
        if at_key and path in self.keys:
            return self.keys[path]
        while path not in self.values:
            if not path:
                return (1, 1)
            path = path[: path.rfind("/")]
        return self.values[path]


@dataclass(frozen=True)
class Document:
    data: dict[str, JsonValue]
    source_map: SourceMap


def read_document(raw: bytes) -> Document:
    """Parse `raw` as one YAML mapping. Raises `ReadError`."""
    if len(raw) > MAX_BYTES:
        raise ReadError(
            "yaml.too-large", f"the file is larger than the limit of {MAX_BYTES:,} bytes"
        )
    text = _decode(raw)
    misindented = next(_misindented(text, tabs=False), None)
    if misindented is not None:
        raise misindented
    builder = _Builder()
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        # The tab that broke the parse is the last one before where libyaml gave up; a tab
        # earlier may be the content of a block scalar, which is allowed.
        tabbed = [item for item in _misindented(text, tabs=True) if item.position <= position]
        if tabbed:
            raise tabbed[-1] from None
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        # libyaml's own limit on flow nesting ([[[...) may fire before ours does.
        code = "yaml.too-deep" if "maximum nesting depth" in problem else "yaml.syntax"
        raise ReadError(code, problem or "invalid YAML", position) from None
    except yaml.reader.ReaderError as exc:
        raise ReadError(
            "yaml.syntax",
            f"the character U+{exc.character:04X} is not allowed in YAML",
            _position_of(text, exc.position),
        ) from None
    except yaml.YAMLError as exc:
        raise ReadError("yaml.syntax", " ".join(str(exc).split())) from None
    return builder.finish()


_INDENT: Final = re.compile(r"^(?:[^\S\r\n]|[\u200b\u2060\ufeff])*")
"""The leading blank of a line: white space (Python's `\\s` knows the Unicode spaces) and
the zero-width characters that look like nothing."""
_ODD_SPACE: Final = re.compile(r"[^ \t]")


def _misindented(text: str, *, tabs: bool) -> Iterator[ReadError]:
    """Each line indented with a space other than the ASCII space (or, with `tabs`, with a
    tab), as the error to raise."""
    for number, line in enumerate(text.split("\n"), start=1):
        indent = _INDENT.match(line)
        lead = indent.group() if indent else ""
        odd = _ODD_SPACE.search(lead)
        index = odd.start() if odd else (lead.find("\t") if tabs else -1)
        if index < 0:
            continue
        char = lead[index]
        name = "CHARACTER TABULATION" if char == "\t" else unicodedata.name(char, "")
        yield ReadError(
            "yaml.indentation",
            f"line {number} is indented with U+{ord(char):04X} {name}; use ASCII spaces",
            (number, index + 1),
        )


def _position_of(text: str, index: int) -> Position:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise ReadError(
            "yaml.encoding",
            f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded",
            (line, column),
        ) from None


@dataclass
class _Open:
    """A collection being built."""

    container: dict[str, JsonValue] | list[JsonValue]
    path: str
    anchor: str | None
    serial: int = 0
    size: int = 1
    key: str | None = None
    key_positions: dict[str, Position] = field(default_factory=dict)


class _Builder:
    def __init__(self) -> None:
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[JsonValue, int]] = {}
        self.open_anchors: dict[str, int] = {}  # anchor -> serial of its open definition
        self.definitions = 0
        self.source_map = SourceMap()
        self.nodes = 0
        self.documents = 0
        self.root: JsonValue = None
        self.root_position: Position | None = None

    def feed(self, event: yaml.Event) -> None:
        mark = event.start_mark
        position = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise ReadError(
                    "yaml.documents", "the file holds more than one YAML document", position
                )
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event, position)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event, position)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            self._start(event, position)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            self._end()

    def finish(self) -> Document:
        if self.documents == 0 or (self.root is None and self.root_position is None):
            raise ReadError("yaml.empty", "the file holds no document")
        if not isinstance(self.root, dict):
            raise ReadError(
                "yaml.not-mapping",
                f"the document is {_kind(self.root)}; a flow is a mapping of keys to values",
                self.root_position or (1, 1),
            )
        return Document(self.root, self.source_map)

    def _scalar(self, event: yaml.ScalarEvent, position: Position) -> None:
        parent = self.stack[-1] if self.stack else None
        if isinstance(parent, _Open) and isinstance(parent.container, dict) and parent.key is None:
            self._refuse_tag(event.tag, position)
            if event.anchor:
                raise ReadError("yaml.key", "a mapping key cannot carry an anchor", position)
            self._key(parent, event.value, position)
            return
        self._refuse_tag(event.tag, position)
        if not self.stack and event.value == "" and event.implicit[0]:
            return  # a document with nothing in it (`---` alone)
        value = _resolve(event.value, position) if event.implicit[0] else event.value
        self._place(value, 1, position, event.anchor)

    def _alias(self, event: yaml.AliasEvent, position: Position) -> None:
        name = event.anchor or ""
        parent = self.stack[-1] if self.stack else None
        if isinstance(parent, _Open) and isinstance(parent.container, dict) and parent.key is None:
            raise ReadError("yaml.key", "an alias cannot be a mapping key", position)
        if name in self.open_anchors:
            raise ReadError("yaml.alias", f"the alias *{name} refers to itself", position)
        if name not in self.anchors:
            raise ReadError("yaml.alias", f"the alias *{name} has no anchor &{name}", position)
        value, size = self.anchors[name]
        self._place(value, size, position, None)

    def _start(self, event: yaml.CollectionStartEvent, position: Position) -> None:
        parent = self.stack[-1] if self.stack else None
        if isinstance(parent, _Open) and isinstance(parent.container, dict) and parent.key is None:
            raise ReadError("yaml.key", "a mapping key must be a plain string", position)
        self._refuse_tag(event.tag, position)
        if len(self.stack) >= MAX_DEPTH:
            raise ReadError(
                "yaml.too-deep", f"the document nests deeper than {MAX_DEPTH} levels", position
            )
        path = self._child_path(parent)
        self._record(path, position)
        self._count(1, position)
        container: dict[str, JsonValue] | list[JsonValue] = (
            {} if isinstance(event, yaml.MappingStartEvent) else []
        )
        opened = _Open(container, path, event.anchor)
        if event.anchor:
            self.definitions += 1
            opened.serial = self.open_anchors[event.anchor] = self.definitions
        self.stack.append(opened)

    def _end(self) -> None:
        done = self.stack.pop()
        # An anchor defined again inside its own collection is the one that counts.
        if done.anchor and self.open_anchors.get(done.anchor) == done.serial:
            del self.open_anchors[done.anchor]
            self.anchors[done.anchor] = (done.container, done.size)
        if self.stack:
            self._attach(self.stack[-1], done.container, done.size)
        else:
            self.root = done.container

    def _place(self, value: JsonValue, size: int, position: Position, anchor: str | None) -> None:
        if anchor:
            self.definitions += 1
            self.open_anchors.pop(anchor, None)
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self._count(size, position)
            self.root = value
            self.root_position = position
            return
        parent = self.stack[-1]
        self._record(self._child_path(parent), position)
        self._count(size, position)
        self._attach(parent, value, size)

    def _attach(self, parent: _Open, value: JsonValue, size: int) -> None:
        parent.size += size
        if isinstance(parent.container, list):
            parent.container.append(value)
        else:
            parent.container[parent.key or ""] = value
            parent.key = None

    def _key(self, parent: _Open, key: str, position: Position) -> None:
        if key in parent.key_positions:
            line, column = parent.key_positions[key]
            raise ReadError(
                "yaml.duplicate-key",
                f"duplicate key `{key}` (first written at line {line}, column {column})",
                position,
            )
        parent.key_positions[key] = position
        parent.key = key
        self.source_map.keys[parent.path + _escape(key)] = position

    def _child_path(self, parent: _Open | None) -> str:
        if parent is None:
            return ""
        if isinstance(parent.container, list):
            return f"{parent.path}/{len(parent.container)}"
        return parent.path + _escape(parent.key or "")

    def _record(self, path: str, position: Position) -> None:
        if path == "":
            self.root_position = position
        self.source_map.values.setdefault(path, position)

    def _count(self, size: int, position: Position) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise ReadError(
                "yaml.alias" if size > 1 else "yaml.too-large",
                f"the document expands to more than {MAX_NODES:,} nodes",
                position,
            )

    @staticmethod
    def _refuse_tag(tag: str | None, position: Position) -> None:
        if tag is not None:
            shown = tag.replace("tag:yaml.org,2002:", "!!", 1)
            raise ReadError(
                "yaml.tag", f"the tag {shown} is not allowed: flows are plain data", position
            )


def _resolve(text: str, position: Position) -> JsonValue:
    """A plain scalar's value under the YAML 1.2 core schema (minus .inf and .nan)."""
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    number: int | None = None
    try:
        if _INT.match(text):
            number = int(text)
        elif _OCTAL.match(text):
            number = int(text[2:], 8)
        elif _HEX.match(text):
            number = int(text[2:], 16)
    except ValueError:  # more digits than Python converts safely
        number = 1 << MAX_INTEGER_BITS
    if number is not None:
        if number.bit_length() > MAX_INTEGER_BITS:
            raise ReadError("yaml.syntax", "the number has too many digits", position)
        return number
    if _FLOAT.match(text):
        real = float(text)
        if not math.isfinite(real):
            raise ReadError("yaml.syntax", f"the number {text} is out of range", position)
        return real
    return text


def _escape(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _kind(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a sequence"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
