"""Record classes: what `dataclasses` gave this code base, without its start-up cost.

`dataclasses` writes each class's `__init__`, `__repr__`, `__eq__` (and, when frozen,
`__setattr__`, `__delattr__`, `__hash__`) as source text and compiles it when the class is
defined, and it imports `inspect`: a quarter of a `bodywork validate`'s instructions and
more of a `bodywork render`'s (callgrind, as bench/bench_cli.py --instructions counts).
Here those methods are shared functions over the class's field names, so defining a class
compiles nothing; an instance with many fields is built as fast as a frozen dataclass's,
one with two or three in about a microsecond more (some 3% of a 10,000-stage validate).

The spelling is dataclasses', for the part of it this code uses: fields in annotation
order (a record base's first), plain defaults and `field(default_factory=...)`, `frozen`,
`slots`, `__post_init__`, value equality and (frozen) hashing, and `replace`, `asdict`,
`fields`. A method the class body defines itself is kept. Pure stdlib, so `core` and the
bootstrapper share it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:  # typing has it from 3.11; type checkers read it from their own stubs
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[T], T]:
        return lambda decorated: decorated


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """A field of a frozen record was assigned or deleted."""


class Field:
    """One field of a record class: its name and its default (or the factory that makes
    one for each instance); `MISSING` when it has none."""

    __slots__ = ("name", "default", "default_factory", "repr")

    def __init__(
        self, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.repr = repr  # False: left out of the instance's repr (a secret)

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r})"


@overload
def field(*, default: T, repr: bool = True) -> T: ...
@overload
def field(*, default_factory: Callable[[], T], repr: bool = True) -> T: ...
@overload
def field(*, repr: bool = True) -> Any: ...
def field(*, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True) -> Any:
    """A field's default, or the factory each instance gets its own default from; with
    `repr=False`, a field the instance's repr leaves out."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("give a field a default or a default_factory, not both")
    return Field(default, default_factory, repr)


@overload
@dataclass_transform(field_specifiers=(field,))
def record(cls: type[R], /) -> type[R]: ...
@overload
def record(*, frozen: bool = False, slots: bool = False) -> Callable[[type[R]], type[R]]: ...
def record(
    cls: type[R] | None = None, /, *, frozen: bool = False, slots: bool = False
) -> type[R] | Callable[[type[R]], type[R]]:
    """Make `cls` a record class (as `@dataclass`, `@dataclass(frozen=True, slots=True)`)."""

    def wrap(cls: type[R]) -> type[R]:
        return _make(cls, frozen, slots)

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    try:
        found: tuple[Field, ...] = obj.__record_fields__
    except AttributeError:
        raise TypeError(f"{obj!r} is not a record class or instance") from None
    return found


def replace(obj: R, /, **changes: Any) -> R:
    """A copy of the record `obj` with the named fields changed."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field(s) {', '.join(sorted(unknown))}")
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: Any) -> dict[str, Any]:
    """The record `obj` as a dict, records, lists, tuples and dicts inside it too."""
    if not hasattr(type(obj), "__record_fields__"):
        raise TypeError(f"{obj!r} is not a record instance")
    converted: dict[str, Any] = _plain(obj)
    return converted


def _plain(value: Any) -> Any:
    if hasattr(type(value), "__record_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in value.__record_fields__}
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, dict):
        return type(value)((_plain(k), _plain(v)) for k, v in value.items())
    return value


# ---------------------------------------------------------------------------- building
_MUTABLE_DEFAULTS = (list, dict, set)


def _is_class_var(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _collect(cls: type) -> tuple[Field, ...]:
    """The fields of `cls`: those of its record bases, then its own annotations."""
    by_name: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for inherited in base.__dict__.get("__record_fields__", ()):
            by_name[inherited.name] = inherited
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_class_var(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        own = value if isinstance(value, Field) else Field(value)
        own.name = name
        if isinstance(own.default, _MUTABLE_DEFAULTS):
            raise ValueError(
                f"{cls.__qualname__}.{name}: a mutable default is shared by every instance: "
                "use field(default_factory=...)"
            )
        by_name[name] = own
    found = tuple(by_name.values())
    seen_default = False
    for f in found:
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if seen_default and not has_default:
            raise TypeError(
                f"{cls.__qualname__}: field '{f.name}' without a default follows one with"
            )
        seen_default = seen_default or has_default
    return found


def _make(cls: type[R], frozen: bool, slots: bool) -> type[R]:
    found = _collect(cls)
    names = tuple(f.name for f in found)
    own = {f.name for f in found if f.name in cls.__dict__.get("__annotations__", {})}
    if slots:
        body = {k: v for k, v in cls.__dict__.items() if k not in own}
        body.pop("__dict__", None)
        body.pop("__weakref__", None)
        body["__slots__"] = tuple(n for n in names if n in own)
        metaclass: Any = type(cls)  # a new class: slots cannot be added to one that exists
        qualname = cls.__qualname__
        cls = metaclass(cls.__name__, cls.__bases__, body)
        cls.__qualname__ = qualname
    else:
        for f in found:  # a default stays readable on the class, as with dataclasses
            if f.name in own:
                if f.default is MISSING:
                    if f.name in cls.__dict__:
                        delattr(cls, f.name)
                else:
                    setattr(cls, f.name, f.default)
    read_fields = _getter(names)
    methods: dict[str, Any] = {
        "__init__": _init(cls, found, _in_slots(cls, names)),
        "__repr__": _repr(tuple(f.name for f in found if f.repr)),
        "__eq__": _eq(read_fields),
        # equal by value: hashable by value when frozen, unhashable when it may change
        "__hash__": _hash(read_fields) if frozen else None,
    }
    if frozen:
        methods["__setattr__"] = _refuse_assignment
        methods["__delattr__"] = _refuse_deletion
    for name, method in methods.items():
        if name not in cls.__dict__:
            setattr(cls, name, method)
    type.__setattr__(cls, "__record_fields__", found)
    type.__setattr__(cls, "__match_args__", names)
    return cls


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """The field values of an instance, as a tuple, read in C."""
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return lambda obj: (one(obj),)
    if not names:
        return lambda obj: ()
    getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
    return getter


def _in_slots(cls: type, names: tuple[str, ...]) -> bool:
    """Whether a field lives in a slot (of this class or a base), not the instance dict."""
    slotted: set[str] = set()
    for klass in cls.__mro__:
        declared = klass.__dict__.get("__slots__", ())
        slotted.update((declared,) if isinstance(declared, str) else declared)
    return not slotted.isdisjoint(names)


def _init(cls: type, found: tuple[Field, ...], slots: bool) -> Callable[..., None]:
    names = tuple(f.name for f in found)
    name_set = frozenset(names)
    defaults = {f.name: f.default for f in found if f.default is not MISSING}
    factories = tuple(
        (f.name, f.default_factory) for f in found if f.default_factory is not MISSING
    )
    post_init = getattr(cls, "__post_init__", None) is not None
    count = len(names)
    title = cls.__qualname__
    assign = object.__setattr__

    # Set operations and dict merges, not a loop per argument: a 10,000-stage project
    # builds some 120,000 records.
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > count:
            raise TypeError(f"{title}() takes {count} argument(s) but {len(args)} were given")
        if kwargs:
            if not kwargs.keys() <= name_set:
                unknown = min(kwargs.keys() - name_set)
                raise TypeError(f"{title}() got an unexpected keyword argument '{unknown}'")
            if args:
                given = dict(zip(names, args, strict=False))  # the rest come by name
                if not given.keys().isdisjoint(kwargs):
                    twice = min(given.keys() & kwargs.keys())
                    raise TypeError(f"{title}() got multiple values for argument '{twice}'")
                values = {**defaults, **given, **kwargs}
            else:
                values = {**defaults, **kwargs}
        elif len(args) == count:
            values = dict(zip(names, args, strict=True))
        else:
            values = {**defaults, **dict(zip(names, args, strict=False))}
        if len(values) != count:
            for key, factory in factories:
                if key not in values:
                    values[key] = factory()
            if len(values) != count:
                missing = [n for n in names if n not in values]
                raise TypeError(f"{title}() missing argument(s): {', '.join(missing)}")
        if slots:  # no __dict__ to fill; object's setattr passes a frozen class's refusal
            for key, value in values.items():
                assign(self, key, value)
        else:
            self.__dict__.update(values)
        if post_init:
            self.__post_init__()

    return __init__


def _repr(names: tuple[str, ...]) -> Any:
    shown = _getter(names)

    def __repr__(self: Any) -> str:
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(names, shown(self), strict=True))
        return f"{type(self).__qualname__}({fields})"

    return __repr__


def _eq(read_fields: Callable[[Any], tuple[Any, ...]]) -> Any:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return read_fields(self) == read_fields(other)

    return __eq__


def _hash(read_fields: Callable[[Any], tuple[Any, ...]]) -> Any:
    def __hash__(self: Any) -> int:
        return hash(read_fields(self))

    return __hash__


def _refuse_assignment(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(
        f"cannot assign to field '{name}' of a frozen {type(self).__qualname__}"
    )


def _refuse_deletion(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field '{name}' of a frozen {type(self).__qualname__}")
