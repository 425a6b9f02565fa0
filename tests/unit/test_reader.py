"""The YAML reader: JSON-compatible data, a position for every node, bounded refusals."""

from __future__ import annotations

import pytest

from taskrunner.flowfile.reader import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    Document,
    ReadError,
    SourceMap,
    read_document,
)


def read(text: str | bytes) -> Document:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return read_document(raw)


def refused(text: str | bytes) -> ReadError:
    with pytest.raises(ReadError) as caught:
        read(text)
    return caught.value


def value_of(scalar: str) -> object:
    """The value the reader gives a scalar written as a mapping value."""
    return read(f"v: {scalar}\n").data["v"]


# --- positions -----------------------------------------------------------------------------


def test_positions_of_values_and_keys_are_one_based() -> None:
    document = read("name: demo\nstates:\n  first:\n    type: succeed\n")
    source = document.source_map
    assert source.locate("") == (1, 1)
    assert source.locate("/name") == (1, 7)
    assert source.locate("/name", at_key=True) == (1, 1)
    assert source.locate("/states/first", at_key=True) == (3, 3)
    assert source.locate("/states/first/type") == (4, 11)
    assert source.locate("/states/first/type", at_key=True) == (4, 5)


def test_positions_of_sequence_items() -> None:
    source = read("items:\n  - a\n  - [b, c]\n").source_map
    assert source.locate("/items/0") == (2, 5)
    assert source.locate("/items/1") == (3, 5)
    assert source.locate("/items/1/1") == (3, 9)


def test_columns_count_characters_after_non_ascii_text() -> None:
    line = "kéy: {ünï: [a, é, b], z: 1}"
    source = read(line + "\n").source_map
    assert source.locate("/kéy", at_key=True) == (1, 1)
    assert source.locate("/kéy/ünï", at_key=True) == (1, line.index("ünï") + 1)
    assert source.locate("/kéy/ünï/2") == (1, line.index("b]") + 1)
    assert source.locate("/kéy/z", at_key=True) == (1, line.index("z:") + 1)
    assert source.locate("/kéy/z") == (1, 26)


def test_columns_count_astral_characters_once() -> None:
    line = '{a: "😀😀", b: x}'
    source = read(line + "\n").source_map
    assert source.locate("/b", at_key=True) == (1, line.index("b:") + 1) == (1, 11)
    assert source.locate("/b") == (1, 14)


def test_locate_falls_back_to_the_nearest_written_ancestor() -> None:
    source = read("a:\n  b: [1, 2]\nc: 3\n").source_map
    assert source.locate("/a/b/7") == source.locate("/a/b") == (2, 6)
    assert source.locate("/a/missing/deeper") == source.locate("/a") == (2, 3)
    assert source.locate("/nowhere") == (1, 1)
    # A path without a key position (a sequence item) falls back to its value.
    assert source.locate("/a/b/1", at_key=True) == (2, 10)
    # A key that was never written falls back to the nearest value.
    assert source.locate("/a/zzz", at_key=True) == (2, 3)


def test_locate_on_an_empty_source_map_is_the_start() -> None:
    assert SourceMap().locate("/a/b") == (1, 1)
    assert SourceMap().locate("", at_key=True) == (1, 1)


def test_keys_with_slash_and_tilde_are_escaped_in_pointers() -> None:
    document = read("a/b: 1\nc~d: 2\n")
    assert document.data == {"a/b": 1, "c~d": 2}
    assert document.source_map.locate("/a~1b", at_key=True) == (1, 1)
    assert document.source_map.locate("/c~0d") == (2, 6)


def test_crlf_line_endings_give_the_same_positions() -> None:
    text = "name: demo\nstates:\n  first:\n    type: succeed\n    list: [1, 2]\n"
    lf = read(text)
    crlf = read(text.replace("\n", "\r\n"))
    assert crlf.data == lf.data
    assert crlf.source_map == lf.source_map
    assert crlf.source_map.locate("/states/first/list/1") == (5, 15)


def test_document_start_marker_shifts_positions() -> None:
    source = read("---\na: 1\n").source_map
    assert source.locate("/a", at_key=True) == (2, 1)
    assert source.locate("/a") == (2, 4)


# --- scalars: the YAML 1.2 core schema ----------------------------------------------------


@pytest.mark.parametrize(
    "word", ["on", "off", "yes", "no", "y", "n", "On", "OFF", "Yes", "NO", "Y", "N"]
)
def test_yaml_1_1_booleans_stay_strings_as_values_and_as_keys(word: str) -> None:
    document = read(f"{word}: {word}\nlist: [{word}]\n")
    assert document.data == {word: word, "list": [word]}


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("true", True),
        ("false", False),
        ("True", True),
        ("FALSE", False),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        ("0", 0),
        ("12", 12),
        ("-3", -3),
        ("+4", 4),
        ("012", 12),
        ("0x1f", 31),
        ("0xFF", 255),
        ("0o17", 15),
        ("1.5", 1.5),
        ("-2.25", -2.25),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
        (".5", 0.5),
        ("+.5", 0.5),
        ("1.", 1.0),
        ("2.0", 2.0),
    ],
)
def test_core_schema_scalars(written: str, expected: object) -> None:
    value = value_of(written)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    "written",
    [
        ".inf",
        "-.inf",
        "+.inf",
        ".Inf",
        ".INF",
        ".nan",
        ".NaN",
        ".NAN",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "12:30:00",
        "1_000",
        "0b101",
        "0X1F",
        "-0x1f",
        "0x",
        "0o",
        "0o8",
        "=",
        "<<",
        ".",
    ],
)
def test_non_core_scalars_stay_strings(written: str) -> None:
    assert value_of(written) == written


@pytest.mark.parametrize(
    "written",
    ['"true"', "'false'", '"null"', "'~'", '"1"', "'0x1f'", '"1.5"', '""', "''", '"on"'],
)
def test_quoted_scalars_are_strings(written: str) -> None:
    assert value_of(written) == written[1:-1]


def test_block_scalars_are_strings() -> None:
    assert read("a: |\n  12\nb: >\n  true\n").data == {"a": "12\n", "b": "true\n"}


def test_keys_are_always_strings_taken_as_written() -> None:
    document = read("1: a\nnull: b\ntrue: c\n~: d\n1.5: e\n0x1f: f\n'quoted': g\n")
    assert document.data == {
        "1": "a",
        "null": "b",
        "true": "c",
        "~": "d",
        "1.5": "e",
        "0x1f": "f",
        "quoted": "g",
    }
    assert all(isinstance(key, str) for key in document.data)


def test_a_missing_value_is_null() -> None:
    assert read("a:\nb: ~\n").data == {"a": None, "b": None}


# --- keys ----------------------------------------------------------------------------------


def test_duplicate_key_names_the_first_position() -> None:
    error = refused("x:\n  a: 1\n  b: 2\n  a: 3\n")
    assert error.code == "yaml.duplicate-key"
    assert error.position == (4, 3)
    assert "`a`" in error.message
    assert "line 2, column 3" in error.message


def test_duplicate_key_written_once_quoted_and_once_plain() -> None:
    error = refused('"1": a\n1: b\n')
    assert error.code == "yaml.duplicate-key"
    assert error.position == (2, 1)
    assert "line 1, column 1" in error.message


def test_same_key_in_different_mappings_is_fine() -> None:
    assert read("a: {k: 1}\nb: {k: 2}\n").data == {"a": {"k": 1}, "b": {"k": 2}}


@pytest.mark.parametrize(
    ("text", "position"),
    [("{[1]: 2}\n", (1, 2)), ("? [1]\n: 2\n", (1, 3)), ("? {a: 1}\n: 2\n", (1, 3))],
)
def test_collection_keys_are_refused(text: str, position: tuple[int, int]) -> None:
    error = refused(text)
    assert error.code == "yaml.key"
    assert error.position == position


def test_alias_as_key_is_refused() -> None:
    error = refused("a: &k x\n*k : 1\n")
    assert error.code == "yaml.key"
    assert error.position == (2, 1)


# --- tags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("x: !!python/object:os.system a\n", (1, 4)),
        ("x: !!python/object/apply:os.system ['true']\n", (1, 4)),
        ("x: !!str a\n", (1, 4)),
        ("x: !!int '1'\n", (1, 4)),
        ("x: !custom a\n", (1, 4)),
        ("x: !custom {a: 1}\n", (1, 4)),
        ("x: !!seq [1]\n", (1, 4)),
        ("!!map\nx: 1\n", (1, 1)),
        ("!!str k: 2\n", (1, 1)),
        ("x: ! a\n", (1, 4)),
    ],
)
def test_tags_are_refused(text: str, position: tuple[int, int]) -> None:
    error = refused(text)
    assert error.code == "yaml.tag"
    assert error.position == position


# --- aliases -------------------------------------------------------------------------------


def test_anchor_and_alias_reuse_a_value() -> None:
    document = read("x: &shared {a: [1, 2]}\ny: *shared\nz: &s hello\nw: *s\n")
    assert document.data == {
        "x": {"a": [1, 2]},
        "y": {"a": [1, 2]},
        "z": "hello",
        "w": "hello",
    }
    assert document.source_map.locate("/y") == (2, 4)
    assert document.source_map.locate("/y/a/0") == (2, 4)


def test_recursive_alias_is_refused() -> None:
    error = refused("x: &a [1, *a]\n")
    assert error.code == "yaml.alias"
    assert error.position == (1, 11)


def test_recursive_alias_in_a_mapping_is_refused() -> None:
    error = refused("x: &a\n  y: *a\n")
    assert error.code == "yaml.alias"


def test_undefined_alias_is_refused() -> None:
    error = refused("a: *nope\n")
    assert error.code == "yaml.alias"
    assert error.position == (1, 4)


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        items = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{items}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_as_an_alias_problem() -> None:
    text = alias_bomb()
    assert len(text) < 1000
    error = refused(text)
    assert error.code == "yaml.alias"
    assert f"{MAX_NODES:,}" in error.message


def test_alias_expansion_just_under_the_limit_is_read() -> None:
    # 9 + 81 + 729 + 6561 scalars, plus the sequences: far below the node limit.
    document = read(alias_bomb(levels=4))
    level3 = document.data["l3"]
    assert isinstance(level3, list)
    assert len(level3) == 9


# --- limits --------------------------------------------------------------------------------


def nested_sequences(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_at_the_depth_limit_is_read() -> None:
    document = read("a: " + nested_sequences(MAX_DEPTH - 1) + "\n")
    assert isinstance(document.data["a"], list)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    error = refused("a: " + nested_sequences(MAX_DEPTH) + "\n")
    assert error.code == "yaml.too-deep"
    assert error.position == (1, 4 + MAX_DEPTH - 1)


def test_deep_block_nesting_is_refused() -> None:
    text = "".join("  " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 5))
    error = refused(text)
    assert error.code == "yaml.too-deep"
    assert error.position[0] == MAX_DEPTH + 1


def test_a_file_of_exactly_the_size_limit_is_read() -> None:
    head = b"a: 1\n#"
    raw = head + b"x" * (MAX_BYTES - len(head))
    assert len(raw) == MAX_BYTES
    assert read_document(raw).data == {"a": 1}


def test_a_file_over_the_size_limit_is_refused() -> None:
    head = b"a: 1\n#"
    error = refused(head + b"x" * (MAX_BYTES + 1 - len(head)))
    assert error.code == "yaml.too-large"


def test_too_many_plain_nodes_are_refused() -> None:
    text = "a: [" + ",".join(["1"] * (MAX_NODES + 1)) + "]\n"
    assert len(text) < MAX_BYTES
    error = refused(text)
    assert error.code == "yaml.too-large"


# --- encoding ------------------------------------------------------------------------------


def test_invalid_utf8_is_located_at_the_bad_byte() -> None:
    error = refused(b"a: 1\nb: ok\n\xff: 2\n")
    assert error.code == "yaml.encoding"
    assert error.position == (3, 1)
    assert "0xff" in error.message


def test_invalid_utf8_column_counts_characters_before_it() -> None:
    error = refused("name: é😀".encode() + b"\xc0\x80\n")
    assert error.code == "yaml.encoding"
    assert error.position == (1, 9)


@pytest.mark.parametrize(
    "raw", [b"\xff\xfea\x00:\x00 \x001\x00", b"a: \xed\xa0\x80\n", b"a: caf\xe9\n"]
)
def test_other_encodings_and_surrogates_are_refused(raw: bytes) -> None:
    assert refused(raw).code == "yaml.encoding"


def test_utf8_bom_is_accepted() -> None:
    document = read(b"\xef\xbb\xbfa: 1\nb: x\n")
    assert document.data == {"a": 1, "b": "x"}
    assert document.source_map.locate("/b") == (2, 4)


# --- documents -----------------------------------------------------------------------------


def test_more_than_one_document_is_refused() -> None:
    error = refused("a: 1\n---\nb: 2\n")
    assert error.code == "yaml.documents"
    assert error.position == (2, 1)


def test_one_explicit_document_is_read() -> None:
    assert read("---\na: 1\n...\n").data == {"a": 1}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n# c\n", "---\n"])
def test_empty_files_are_refused(text: str) -> None:
    assert refused(text).code == "yaml.empty"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("- 1\n- 2\n", "a sequence"),
        ("[a, b]\n", "a sequence"),
        ("hello\n", "a string"),
        ("42\n", "a int"),
        ("1.5\n", "a float"),
        ("true\n", "a bool"),
    ],
)
def test_non_mapping_roots_are_refused(text: str, kind: str) -> None:
    error = refused(text)
    assert error.code == "yaml.not-mapping"
    assert kind in error.message
    assert error.position == (1, 1)


# --- hostile numbers and syntax -------------------------------------------------------------


def test_a_number_with_too_many_digits_is_a_syntax_error() -> None:
    error = refused("a: " + "1" * 5000 + "\n")
    assert error.code == "yaml.syntax"
    assert error.position == (1, 4)


@pytest.mark.parametrize("written", ["1e999", "-1e999", "1" * 400 + ".0"])
def test_a_float_out_of_range_is_a_syntax_error(written: str) -> None:
    error = refused(f"a: {written}\n")
    assert error.code == "yaml.syntax"
    assert error.position == (1, 4)


def test_a_long_but_convertible_integer_is_read() -> None:
    assert value_of("9" * 4000) == int("9" * 4000)


@pytest.mark.parametrize(
    ("text", "position"),
    [("a: [1, 2\n", (2, 1)), ("a: 1\n b: 2\n", (2, 3)), ("a: 'open\n", (2, 1))],
)
def test_malformed_yaml_is_a_located_syntax_error(text: str, position: tuple[int, int]) -> None:
    error = refused(text)
    assert error.code == "yaml.syntax"
    assert error.position == position


@pytest.mark.parametrize("raw", [b"a: \x00\n", b"\x00\x01\x02", b"a: x\x1b\n"])
def test_control_characters_are_a_syntax_error(raw: bytes) -> None:
    assert refused(raw).code == "yaml.syntax"
