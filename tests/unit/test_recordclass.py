"""bodywork_bootstrap.recordclass: the record classes every layer uses in place of
dataclasses. Each behaviour the code relies on is checked, and where dataclasses defines
it, checked against a dataclass of the same shape."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Generic, TypeVar

import pytest

from bodywork_bootstrap.recordclass import (
    MISSING,
    FrozenInstanceError,
    asdict,
    field,
    fields,
    record,
    replace,
)

T = TypeVar("T")


@record(frozen=True, slots=True)
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    KIND: ClassVar[str] = "point"  # not a field


@record
class Bag:
    name: str
    items: list[int] = field(default_factory=list)
    secret: str = field(default="", repr=False)


@record(frozen=True)
class Child(Point):
    z: int = 0


@dataclasses.dataclass(frozen=True)
class DataPoint:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


def test_fields_come_in_order_with_their_defaults() -> None:
    assert [(f.name, f.default) for f in fields(Point)] == [("x", MISSING), ("y", 0), ("tags", ())]
    assert [f.name for f in fields(Child(1))] == ["x", "y", "tags", "z"]  # the base's first
    assert Point.KIND == "point" and "KIND" not in [f.name for f in fields(Point)]
    with pytest.raises(TypeError, match="not a record"):
        fields(DataPoint)


def test_arguments_bind_by_position_and_name_as_in_a_dataclass() -> None:
    for make in (Point, DataPoint):
        one, two = make(1, 2), make(y=2, x=1)
        assert (one.x, one.y, one.tags) == (two.x, two.y, two.tags) == (1, 2, ())
    for bad, message in [
        (lambda: Point(), "missing argument"),
        (lambda: Point(1, 2, (), 4), "takes 3 argument"),
        (lambda: Point(1, x=2), "multiple values for argument 'x'"),
        (lambda: Point(1, w=2), "unexpected keyword argument 'w'"),
    ]:
        with pytest.raises(TypeError, match=message):
            bad()


def test_each_instance_gets_its_own_factory_default() -> None:
    first, second = Bag("a"), Bag("b")
    first.items.append(1)
    assert second.items == [] and first.items == [1]


def test_a_frozen_record_refuses_changes_and_hashes_by_value() -> None:
    point = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        point.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):  # FrozenInstanceError is one, as dataclasses' is
        del point.y  # type: ignore[misc]
    assert {Point(1, 2): "a"}[Point(1, 2)] == "a"
    assert hash(Child(1, z=2)) == hash(Child(1, z=2))
    assert point.x == 1


def test_a_mutable_record_changes_and_is_unhashable() -> None:
    bag = Bag("a")
    bag.name = "b"
    assert bag.name == "b"
    with pytest.raises(TypeError, match="unhashable"):
        hash(bag)


def test_equality_is_by_class_and_value() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Child(1, 2) != Point(1, 2)  # a subclass is another class, as with dataclasses
    assert Point(1, 2) != DataPoint(1, 2)
    assert Point(1, 2) != (1, 2, ())  # not a tuple underneath


def test_repr_reads_like_a_dataclass_and_leaves_out_a_secret() -> None:
    assert repr(Point(1, 2)) == repr(DataPoint(1, 2)).replace("DataPoint", "Point")
    shown = repr(Bag("a", [1], secret="hunter2"))
    assert shown == "Bag(name='a', items=[1])"
    assert "hunter2" not in shown


def test_slots_leave_no_instance_dict() -> None:
    point = Point(1)
    assert not hasattr(point, "__dict__")
    assert Point.__slots__ == ("x", "y", "tags")
    assert not hasattr(Bag("a"), "__slots__")


def test_replace_copies_with_changes_and_checks_the_names() -> None:
    point = Point(1, 2)
    moved = replace(point, y=5)
    assert (moved, point) == (Point(1, 5), Point(1, 2))
    assert type(replace(Child(1), z=3)) is Child
    with pytest.raises(TypeError, match="no field"):
        replace(point, w=1)


def test_asdict_converts_nested_records_as_dataclasses_does() -> None:
    @record
    class Outer:
        point: Point
        points: list[Point]
        by_name: dict[str, Point]
        pair: tuple[Point, int]

    @dataclasses.dataclass
    class DataOuter:
        point: DataPoint
        points: list[DataPoint]
        by_name: dict[str, DataPoint]
        pair: tuple[DataPoint, int]

    ours = asdict(Outer(Point(1), [Point(2)], {"a": Point(3)}, (Point(4), 5)))
    theirs = dataclasses.asdict(
        DataOuter(DataPoint(1), [DataPoint(2)], {"a": DataPoint(3)}, (DataPoint(4), 5))
    )
    assert ours == theirs
    with pytest.raises(TypeError):
        asdict(Point)


def test_a_generic_slotted_record_still_subscripts() -> None:
    @record(frozen=True, slots=True)
    class Box(Generic[T]):
        value: T

    assert Box[int](3).value == 3
    assert Box.__qualname__.endswith("<locals>.Box")  # the class made anew keeps its name
    assert Box.__parameters__ == (T,)  # type: ignore[attr-defined]


def test_a_method_the_class_defines_is_kept_and_post_init_runs() -> None:
    @record
    class Named:
        first: str
        full: str = ""

        def __post_init__(self) -> None:
            self.full = self.full or self.first.title()

        def __repr__(self) -> str:
            return f"<{self.full}>"

    assert repr(Named("ada")) == "<Ada>"
    assert Named("ada", "Ada L.").full == "Ada L."


def test_definition_mistakes_are_refused() -> None:
    with pytest.raises(ValueError, match="default_factory"):

        @record
        class Shared:
            items: list[int] = []  # noqa: RUF012 (the mistake under test)

    with pytest.raises(TypeError, match="without a default follows"):

        @record
        class Unordered:
            a: int = 0
            b: int  # type: ignore[misc]

    with pytest.raises(ValueError, match="not both"):
        field(default=1, default_factory=int)
