"""Other languages' words for the keys of a flow document, for `did you mean` hints.

People come to taskrunner from Step Functions, Argo, SQL and Python: they write `equals`
for `eq` and `ErrorEquals` for `errors`. No spelling distance finds those, so the shape
pass looks them up here first.
"""

from __future__ import annotations

from typing import Final

KEY_ALIASES: Final = {
    # choice operators as other languages spell them (Step Functions, SQL, Python, JS)
    **dict.fromkeys(("equals", "equal", "equal_to", "is", "==", "===", "="), "eq"),
    **dict.fromkeys(("not_equals", "not_equal", "neq", "is_not", "!=", "!==", "<>"), "ne"),
    **dict.fromkeys(("greater_than", "greater", "more_than", ">"), "gt"),
    **dict.fromkeys(("greater_than_or_equal", "greater_or_equal", "gte", ">="), "ge"),
    **dict.fromkeys(("less_than", "less", "lower_than", "<"), "lt"),
    **dict.fromkeys(("less_than_or_equal", "less_or_equal", "lte", "<="), "le"),
    **dict.fromkeys(("and", "every"), "all"),
    **dict.fromkeys(("or", "some"), "any"),
    **dict.fromkeys(("variable", "left", "field"), "value"),
    # Step Functions and Argo names of the same keys
    **dict.fromkeys(("stringequals", "numericequals", "booleanequals"), "eq"),
    **dict.fromkeys(("numericgreaterthan", "stringgreaterthan"), "gt"),
    **dict.fromkeys(("numericgreaterthanequals", "stringgreaterthanequals"), "ge"),
    **dict.fromkeys(("numericlessthan", "stringlessthan"), "lt"),
    **dict.fromkeys(("numericlessthanequals", "stringlessthanequals"), "le"),
    **dict.fromkeys(("choices", "branches", "conditions", "cases"), "rules"),
    **dict.fromkeys(("condition", "if", "test"), "when"),
    **dict.fromkeys(("goto", "then", "to", "next_state", "transition"), "next"),
    **dict.fromkeys(("otherwise", "else"), "default"),
    **dict.fromkeys(("arguments", "parameters", "params", "inputs"), "args"),
    **dict.fromkeys(("resource", "function", "action"), "tool"),
    **dict.fromkeys(("startat", "start_at", "entry", "initial"), "start"),
    **dict.fromkeys(("retries", "retrier", "retry_policy"), "retry"),
    **dict.fromkeys(("catcher", "catches", "on_error", "handlers"), "catch"),
    **dict.fromkeys(("errorequals", "error", "kinds"), "errors"),
    **dict.fromkeys(("maxattempts", "attempts", "max_retries", "retries_max"), "max_attempts"),
    **dict.fromkeys(("intervalseconds", "interval", "delay", "delay_seconds"), "interval_seconds"),
    **dict.fromkeys(("backoffrate", "backoff", "backoff_factor"), "backoff_rate"),
    **dict.fromkeys(("timeoutseconds", "timeout", "timeout_secs"), "timeout_seconds"),
    **dict.fromkeys(("result", "outputs", "return"), "output"),
    **dict.fromkeys(("cause", "reason", "msg"), "message"),
    **dict.fromkeys(("kind", "state_type"), "type"),
    # fan-outs: Step Functions' Map and Parallel, Argo's withItems and parallelism
    **dict.fromkeys(("itemspath", "items_path", "withitems", "with_items", "foreach"), "items"),
    **dict.fromkeys(("itemprocessor", "item_processor", "iterator", "for_each_item"), "each"),
    **dict.fromkeys(("itemselector", "item_selector"), "input"),
    **dict.fromkeys(("maxconcurrency", "concurrency", "parallelism"), "max_concurrency"),
    **dict.fromkeys(
        ("toleratedfailurecount", "tolerated_failure_count", "max_failures"), "tolerated_failures"
    ),
    **dict.fromkeys(
        ("toleratedfailurepercentage", "tolerated_failure_percentage"), "tolerated_percentage"
    ),
}
"""Keys that mean a key of ours, written as another language writes it (lower-cased): the
hint names ours when it is allowed where the unknown key is."""
