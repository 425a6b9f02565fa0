"""The built-in tools and the contract every tool follows."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from taskrunner.errors import ToolRegistryError, UnknownToolError
from taskrunner.tools import (
    INVALID_INPUT,
    INVALID_OUTPUT,
    ToolCallError,
    ToolError,
    ToolModel,
    ToolRegistry,
    tool,
)


def test_echo_returns_the_text_unchanged(registry: ToolRegistry) -> None:
    assert registry.get("echo").invoke({"text": "hello ☃"}) == {"text": "hello ☃"}


def test_add_of_two_integers_is_an_integer(registry: ToolRegistry) -> None:
    result = registry.get("add").invoke({"a": 2, "b": 3})
    assert result == {"sum": 5}
    assert type(result["sum"]) is int


def test_add_of_a_float_is_a_float(registry: ToolRegistry) -> None:
    result = registry.get("add").invoke({"a": 2.5, "b": 3})
    assert result == {"sum": 5.5}
    assert type(result["sum"]) is float


@pytest.mark.parametrize(
    "arguments",
    [
        {"a": "2", "b": 3},
        {"a": True, "b": 3},
        {"a": None, "b": 3},
        {"a": [2], "b": 3},
        {"a": 2},
        {"a": 2, "b": 3, "c": 4},
        {"a": float("nan"), "b": 1},
    ],
    ids=["string", "boolean", "null", "list", "missing", "extra", "nan"],
)
def test_add_refuses_what_is_not_two_numbers(
    registry: ToolRegistry, arguments: dict[str, object]
) -> None:
    with pytest.raises(ToolCallError) as caught:
        registry.get("add").invoke(arguments)  # type: ignore[arg-type]
    assert caught.value.kind == INVALID_INPUT


def test_add_overflow_is_a_named_error(registry: ToolRegistry) -> None:
    with pytest.raises(ToolCallError) as caught:
        registry.get("add").invoke({"a": 1e308, "b": 1e308})
    assert caught.value.kind == "NumberOverflow"


def test_divide_by_zero_is_a_named_error(registry: ToolRegistry) -> None:
    with pytest.raises(ToolCallError) as caught:
        registry.get("divide").invoke({"dividend": 1, "divisor": 0})
    assert (caught.value.kind, caught.value.message) == ("DivisionByZero", "cannot divide by zero")


def test_divide_returns_a_float(registry: ToolRegistry) -> None:
    assert registry.get("divide").invoke({"dividend": 6, "divisor": 4}) == {"quotient": 1.5}


class _In(ToolModel):
    n: int


class _Out(ToolModel):
    n: int


class _LaxOut(BaseModel):
    n: int


def test_an_exception_in_a_tool_is_a_failed_call_named_after_its_class() -> None:
    @tool("explodes")
    def explodes(args: _In) -> _Out:
        raise KeyError("boom")

    with pytest.raises(ToolCallError) as caught:
        explodes.invoke({"n": 1})
    assert caught.value.kind == "KeyError"
    assert "boom" in caught.value.message


def test_an_output_that_breaks_the_model_is_refused_strictly() -> None:
    @tool("lies")
    def lies(args: _In) -> _Out:
        return {"n": "7"}  # type: ignore[return-value]  # "7" is not an integer, strictly

    with pytest.raises(ToolCallError) as caught:
        lies.invoke({"n": 1})
    assert caught.value.kind == INVALID_OUTPUT


def test_an_output_of_a_lax_model_is_checked_again_strictly() -> None:
    @tool("lax")
    def lax(args: _In) -> _LaxOut:
        return _LaxOut.model_construct(n=True)  # skips validation, as a buggy tool might

    with pytest.raises(ToolCallError) as caught:
        lax.invoke({"n": 1})
    assert caught.value.kind == INVALID_OUTPUT


def test_a_tool_may_return_a_plain_mapping_which_is_then_validated() -> None:
    @tool("mapping")
    def mapping(args: _In) -> _Out:
        return {"n": args.n + 1}  # type: ignore[return-value]

    assert mapping.invoke({"n": 1}) == {"n": 2}


def test_the_description_comes_from_the_docstring() -> None:
    @tool("documented")
    def documented(args: _In) -> _Out:
        """Does a thing."""
        return _Out(n=args.n)

    assert documented.description == "Does a thing."
    assert documented.input_model is _In
    assert documented.output_model is _Out


def test_a_function_without_model_annotations_is_refused() -> None:
    with pytest.raises(ToolRegistryError, match="one Pydantic model"):

        @tool("untyped")
        def untyped(args: dict[str, int]) -> dict[str, int]:
            return args


@pytest.mark.parametrize("name", ["Echo", "with space", "", "9lives", "a..b", "a-b"])
def test_tool_names_have_one_form(name: str) -> None:
    with pytest.raises(ToolRegistryError, match="invalid tool name"):
        tool(name)(lambda args: args)  # type: ignore[arg-type, return-value]


def test_the_registry_looks_tools_up_by_name(registry: ToolRegistry) -> None:
    assert registry.names() == ["add", "divide", "echo", "greet", "join", "repeat", "sum"]
    assert "echo" in registry
    with pytest.raises(UnknownToolError) as caught:
        registry.get("ecoh")
    assert caught.value.known == ["add", "divide", "echo", "greet", "join", "repeat", "sum"]


def test_the_registry_refuses_two_tools_of_one_name(registry: ToolRegistry) -> None:
    with pytest.raises(ToolRegistryError, match="two tools are named 'echo'"):
        ToolRegistry([registry.get("echo"), registry.get("echo")])


def test_the_builtin_tools_declare_the_error_kinds_they_raise(registry: ToolRegistry) -> None:
    assert registry.get("echo").errors == ()
    assert registry.get("add").errors == ("NumberOverflow",)
    assert registry.get("divide").errors == ("DivisionByZero", "NumberOverflow")


@pytest.mark.parametrize("kind", ["", "division by zero", "*", "9Lives"])
def test_a_declared_error_kind_has_the_form_of_a_kind(kind: str) -> None:
    with pytest.raises(ToolRegistryError, match="invalid error kind"):

        @tool("declares", errors=(kind,))
        def declares(args: _In) -> _Out:
            return _Out(n=args.n)


def test_an_undeclared_kind_is_recorded_as_raised_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @tool("surprising", errors=("Declared",))
    def surprising(args: _In) -> _Out:
        raise ToolError("not what it said", kind="Undeclared" if args.n else "Declared")

    with caplog.at_level("WARNING", logger="taskrunner.tools"):
        with pytest.raises(ToolCallError) as declared:
            surprising.invoke({"n": 0})
        assert declared.value.kind == "Declared"
        assert not caplog.records
        with pytest.raises(ToolCallError) as undeclared:
            surprising.invoke({"n": 1})
    assert undeclared.value.kind == "Undeclared"
    [record] = caplog.records
    assert "'Undeclared'" in record.getMessage()
    assert "'surprising'" in record.getMessage()


def test_the_generic_kind_needs_no_declaration(caplog: pytest.LogCaptureFixture) -> None:
    @tool("plain")
    def plain(args: _In) -> _Out:
        raise ToolError("something went wrong")

    with (
        caplog.at_level("WARNING", logger="taskrunner.tools"),
        pytest.raises(ToolCallError) as caught,
    ):
        plain.invoke({"n": 1})
    assert caught.value.kind == "ToolError"
    assert not caplog.records
