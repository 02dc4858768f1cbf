"""Validation errors in words: one formatter for every place that reports one.

A pydantic ``ValidationError`` lists its problems as locations (``("stations",
1, "processing_time", "mean_s")``) and messages. Whoever shows one to a person
(a config file's loader, the command handler's refusal, the payload decoder, a
command-line flag) says it the same way: the field's path, list indexes in
brackets (``stations[1].processing_time.mean_s``), a colon, and what is wrong,
in words a user can act on (``required field is missing``, ``unknown field
(check the spelling)``, ``unknown distribution 'weibull'; use one of ...``).

Callers choose how many problems to show: the first with a count of the others
(``first_problem``, for a one-line answer), all on one line (``all_problems``),
or a list under the file they came from (``problem_list``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

# pydantic prefixes the message of a validator's ValueError or assertion with
# these; the user wrote neither, and the message already says what is wrong.
_PREFIXES = ("Value error, ", "Assertion failed, ")


def field_path(location: Iterable[int | str], hidden: Collection[str] = ()) -> str:
    """``stations[1].processing_time``: names joined with dots, list indexes in
    brackets; "" for the top level. ``hidden``: names left out wherever they
    stand, such as the tag pydantic adds for the member of a tagged union (the
    user wrote ``distribution: gamma``, not a field called ``gamma``)."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in hidden:
            path += f".{part}" if path else str(part)
    return path


def _unquoted(text: object) -> str:
    return str(text).replace("'", "")


def problem_message(error: Mapping[str, Any], show_input: bool = False) -> str:
    """What is wrong, without where. ``show_input``: add the rejected value when it
    is a single value (never for a setting, which may be a secret)."""
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling)"
    if kind == "union_tag_invalid":
        tag = context.get("tag", "?")
        name = _unquoted(context.get("discriminator", "kind"))
        return f"unknown {name} {tag!r}; use one of {_unquoted(context.get('expected_tags', '?'))}"
    if kind == "union_tag_not_found":
        return f"no {_unquoted(context.get('discriminator', 'kind'))!r} field"
    message = str(error["msg"])
    if kind == "json_invalid":
        return f"not valid JSON: {message}"
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    got = error.get("input")
    if not show_input or isinstance(got, dict | list) or got is None:
        return message
    return f"{message} (got {got!r})"


def problem(
    error: Mapping[str, Any],
    hidden: Collection[str] = (),
    top_level: str | None = "(top level)",
    show_input: bool = False,
) -> str:
    """One problem on one line: ``stations[1].processing_time: required field is
    missing``. A problem of the whole input is named ``top_level``, or, when that
    is None, given as its message alone (for checks across fields, whose message
    names the fields itself)."""
    message = problem_message(error, show_input)
    where = field_path(error["loc"], hidden) or top_level
    return f"{where}: {message}" if where else message


def first_problem(
    exc: ValidationError,
    hidden: Collection[str] = (),
    top_level: str | None = "(top level)",
    show_input: bool = False,
) -> str:
    """The first problem on one line, and how many more there are: ``seq: Input
    should be a valid integer (+2 more)``."""
    errors = exc.errors(include_url=False)
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(errors[0], hidden, top_level, show_input) + more


def all_problems(
    exc: ValidationError,
    hidden: Collection[str] = (),
    top_level: str | None = "(top level)",
    show_input: bool = False,
) -> str:
    """Every problem, on one line, separated by "; "."""
    return "; ".join(
        problem(error, hidden, top_level, show_input) for error in exc.errors(include_url=False)
    )


def problem_list(
    exc: ValidationError,
    source: str,
    what: str,
    hidden: Collection[str] = (),
    top_level: str | None = "(top level)",
) -> str:
    """The problems of a file: ``source: problem`` on one line for one problem (as
    every command-line error), else a line naming the file and one per problem.
    ``what``: "line config". Rejected values are shown: a file holds no secret."""
    errors = exc.errors(include_url=False)
    if len(errors) == 1:
        return f"{source}: {problem(errors[0], hidden, top_level, show_input=True)}"
    lines = "\n".join(
        f"  - {problem(error, hidden, top_level, show_input=True)}" for error in errors
    )
    return f"{source}: {len(errors)} problems in the {what}:\n{lines}"


__all__ = [
    "all_problems",
    "field_path",
    "first_problem",
    "problem",
    "problem_list",
    "problem_message",
]
