"""The one validation-error formatter: every problem names its field and what is wrong."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.errors import (
    all_problems,
    field_path,
    first_problem,
    problem,
    problem_list,
    problem_message,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tool(_Strict):
    name: str
    wear: Annotated[float, Field(ge=0, le=1)]


class Gamma(_Strict):
    distribution: Literal["gamma"]
    shape: Annotated[float, Field(gt=0)]


class Fixed(_Strict):
    distribution: Literal["fixed"]
    value_s: float


class Station(_Strict):
    id: str
    tools: list[Tool] = []
    duration: Annotated[Gamma | Fixed, Field(discriminator="distribution")] | None = None


class Line(_Strict):
    stations: list[Station]

    @model_validator(mode="after")
    def _unique(self) -> Line:
        ids = [station.id for station in self.stations]
        if len(set(ids)) != len(ids):
            raise ValueError(f"stations: ids repeat ({ids})")
        return self


def _caught(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Line.model_validate(data)
    return caught.value


def _pydantic_message(model: type[BaseModel], data: object) -> str:
    """pydantic's own message for the one problem of ``data``."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    (error,) = caught.value.errors()
    return str(error["msg"])


@pytest.mark.parametrize(
    ("location", "path"),
    [
        ((), ""),
        (("stations",), "stations"),
        (("stations", 2), "stations[2]"),
        (("stations", 2, "tools", 0, "wear"), "stations[2].tools[0].wear"),
        ((0, "id"), "[0].id"),
        (("matrix", 1, 3), "matrix[1][3]"),
    ],
)
def test_a_path_joins_names_with_dots_and_puts_indexes_in_brackets(
    location: tuple[int | str, ...], path: str
) -> None:
    assert field_path(location) == path


def test_a_nested_list_item_is_named_by_its_whole_path() -> None:
    exc = _caught({"stations": [{"id": "a"}, {"id": "b", "tools": [{"name": "saw", "wear": 2}]}]})
    expected = _pydantic_message(Tool, {"name": "saw", "wear": 2})
    assert first_problem(exc) == f"stations[1].tools[0].wear: {expected}"


def test_the_rejected_value_is_shown_only_when_asked() -> None:
    exc = _caught({"stations": [{"id": "a", "tools": [{"name": "saw", "wear": 2}]}]})
    (error,) = exc.errors()
    assert problem(error, show_input=True).endswith(f"{error['msg']} (got 2)")
    assert "(got" not in problem(error)


def test_a_missing_and_an_unknown_field_are_said_in_words() -> None:
    exc = _caught({"stations": [{"tools": []}, {"id": "b", "colour": "red"}]})
    assert all_problems(exc) == (
        "stations[0].id: required field is missing; "
        "stations[1].colour: unknown field (check the spelling)"
    )


def test_several_problems_one_line_names_the_first_and_counts_the_others() -> None:
    broken = [{"id": 1}, {"id": 2}, {"id": 3}]
    exc = _caught({"stations": broken})
    assert exc.error_count() == 3
    expected = _pydantic_message(Station, broken[0])
    assert first_problem(exc) == f"stations[0].id: {expected} (+2 more)"
    every = all_problems(exc).split("; ")
    assert every == [f"stations[{index}].id: {expected}" for index in range(3)]


def test_one_problem_has_no_count() -> None:
    exc = _caught({"stations": [{"id": 1}]})
    assert "more)" not in first_problem(exc)


def test_a_tag_of_a_union_is_left_out_of_the_path_and_an_unknown_tag_is_listed() -> None:
    exc = _caught({"stations": [{"id": "a", "duration": {"distribution": "gamma", "shape": 0}}]})
    expected = _pydantic_message(Gamma, {"distribution": "gamma", "shape": 0})
    assert (
        first_problem(exc, hidden={"gamma", "fixed"}) == f"stations[0].duration.shape: {expected}"
    )
    assert first_problem(exc).startswith("stations[0].duration.gamma.shape: ")

    unknown = _caught({"stations": [{"id": "a", "duration": {"distribution": "weibull"}}]})
    assert first_problem(unknown) == (
        "stations[0].duration: unknown distribution 'weibull'; use one of gamma, fixed"
    )
    untagged = _caught({"stations": [{"id": "a", "duration": {"shape": 1}}]})
    assert first_problem(untagged) == "stations[0].duration: no 'distribution' field"


def test_a_check_across_fields_is_named_as_asked() -> None:
    exc = _caught({"stations": [{"id": "a"}, {"id": "a"}]})
    # pydantic's "Value error, " is no word of the user's.
    assert first_problem(exc) == "(top level): stations: ids repeat (['a', 'a'])"
    assert first_problem(exc, top_level="(payload)").startswith("(payload): stations: ")
    assert first_problem(exc, top_level=None) == "stations: ids repeat (['a', 'a'])"


def test_not_json_says_so() -> None:
    with pytest.raises(ValidationError) as caught:
        Line.model_validate_json(b"{not json")
    assert first_problem(caught.value, top_level=None).startswith("not valid JSON: ")


def test_a_file_with_one_problem_gives_one_line_and_with_several_a_list() -> None:
    one = _caught({"stations": [{"id": "a", "tools": [{"name": "saw", "wear": -1}]}]})
    message = problem_list(one, "line.yaml", "line config")
    assert "\n" not in message
    assert message.startswith("line.yaml: stations[0].tools[0].wear: ")
    assert message.endswith("(got -1)")

    several = _caught({"stations": [{"id": 1}, {}]})
    lines = problem_list(several, "line.yaml", "line config").splitlines()
    assert lines == [
        "line.yaml: 2 problems in the line config:",
        f"  - stations[0].id: {_pydantic_message(Station, {'id': 1})} (got 1)",
        "  - stations[1].id: required field is missing",
    ]


def test_every_form_names_a_problem_of_the_whole_input_top_level_by_default() -> None:
    exc = _caught({"stations": [{"id": "a"}, {"id": "a"}]})
    (error,) = exc.errors()
    said = "(top level): stations: ids repeat (['a', 'a'])"
    assert problem(error) == said
    assert all_problems(exc) == said
    assert problem_list(exc, "line.yaml", "line config") == f"line.yaml: {said}"


def test_every_form_passes_on_the_hidden_names_the_top_level_and_the_value() -> None:
    tagged = {"id": "a", "duration": {"distribution": "gamma", "shape": 0}}
    exc = _caught({"stations": [tagged, {"id": 2}]})
    hidden = {"gamma", "fixed"}
    shape = "stations[0].duration.shape: "

    every = all_problems(exc, hidden=hidden, show_input=True).split("; ")
    assert every[0].startswith(shape)
    assert every[0].endswith("(got 0)")
    assert every[1].startswith("stations[1].id: ")
    assert every[1].endswith("(got 2)")
    assert first_problem(exc, hidden=hidden, show_input=True).startswith(shape)
    assert first_problem(exc, hidden=hidden, show_input=True).endswith("(got 0) (+1 more)")

    lines = problem_list(exc, "line.yaml", "line config", hidden=hidden).splitlines()
    assert lines[1].startswith(f"  - {shape}")
    one = _caught({"stations": [tagged]})
    assert problem_list(one, "line.yaml", "line config", hidden=hidden).startswith(
        f"line.yaml: {shape}"
    )

    across = _caught({"stations": [{"id": "a"}, {"id": "a"}]})
    ids_repeat = "stations: ids repeat (['a', 'a'])"
    assert all_problems(across, top_level="(payload)") == f"(payload): {ids_repeat}"
    assert all_problems(across, top_level=None) == ids_repeat
    assert problem_list(across, "f.yaml", "line config", top_level="(payload)") == (
        f"f.yaml: (payload): {ids_repeat}"
    )
    assert problem_list(across, "f.yaml", "line config", top_level=None) == f"f.yaml: {ids_repeat}"

    # Two problems of the whole input (a loader's own checks can raise them together).
    whole = ValidationError.from_exception_data(
        "Line", [{"type": "missing", "loc": ()}, {"type": "missing", "loc": ("id",)}]
    )
    assert problem_list(whole, "f.yaml", "line config", top_level="(file)").splitlines()[1:] == [
        "  - (file): required field is missing",
        "  - id: required field is missing",
    ]


def test_the_message_alone_hides_the_value_unless_asked_and_never_shows_none() -> None:
    exc = _caught({"stations": [{"id": "a", "tools": [{"name": "saw", "wear": 2}]}]})
    (error,) = exc.errors()
    assert problem_message(error) == str(error["msg"])
    assert problem_message(error, show_input=True) == f"{error['msg']} (got 2)"

    empty = _caught({"stations": [{"id": "a", "tools": [{"name": "saw", "wear": None}]}]})
    (nothing,) = empty.errors()
    assert nothing["input"] is None
    assert problem_message(nothing, show_input=True) == str(nothing["msg"])


def test_a_union_error_without_its_context_still_reads_as_words() -> None:
    # pydantic always gives the context; a caller that builds the error itself may not.
    bare_tag = {"type": "union_tag_invalid", "loc": ("duration",), "msg": "bad tag"}
    assert problem_message(bare_tag) == "unknown kind '?'; use one of ?"
    bare_field = {"type": "union_tag_not_found", "loc": ("duration",), "msg": "no tag"}
    assert problem_message(bare_field) == "no 'kind' field"
