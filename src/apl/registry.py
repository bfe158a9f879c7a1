"""Small name -> class registries, in the style of lm-evaluation-harness and baal."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from apl.errors import ConfigError

T = TypeVar("T")

# Options whose values are never shown in an error: a pasted secret must not reach a log.
_SECRET_OPTION = re.compile(r"key|secret|password|token_env", re.I)


class Registry(Generic[T]):
    """Maps snake_case names to classes of one family (acquisition, oracle, task)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: `@ACQUISITIONS.register("entropy")`."""

        def decorate(cls: type[T]) -> type[T]:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._classes[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return decorate

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        """The class registered under `name`; a failed lookup lists what exists."""
        try:
            return self._classes[name]
        except (KeyError, TypeError):  # TypeError: a YAML list or mapping given as the name
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Available: {', '.join(self.names())}."
            ) from None

    def check_kwargs(
        self, name: str, kwargs: dict[str, Any], injected: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """`kwargs` checked against the constructor: names, required options, annotated types.

        Returns the values as the constructor's annotations read them (`2.0` for an `int` is
        2, a list for a tuple is a tuple). Raises one-line ConfigErrors naming `kind.option`.
        """
        cls = self.get(name)
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return dict(kwargs)
        accepted = [p for p in params if p != "self" and p not in injected]
        for key in kwargs:
            if key not in accepted:
                raise ConfigError(
                    f"{self.kind} {name!r} has no option {key!r}; "
                    f"accepted: {', '.join(accepted) or '(none)'}."
                )
        for key in accepted:
            param = params[key]
            required = param.default is param.empty and param.kind is not param.VAR_POSITIONAL
            if required and key not in kwargs:
                raise ConfigError(
                    f"{self.kind} {name!r} needs option {key!r}; set {self.kind}.{key}=..."
                )
        return {key: self._check_type(cls, params[key], value) for key, value in kwargs.items()}

    def build(self, name: str, kwargs: dict[str, Any] | None = None, **injected: Any) -> T:
        """Instantiate `name` with user `kwargs` (checked, see `check_kwargs`) plus injected objects."""
        checked = self.check_kwargs(name, dict(kwargs or {}), tuple(injected))
        return self.get(name)(**checked, **injected)

    def _check_type(self, cls: type, param: inspect.Parameter, value: Any) -> Any:
        """`value` validated against `param`'s annotation (unchanged if it has none)."""
        from pydantic import ConfigDict, TypeAdapter, ValidationError

        annotation = _annotation(cls, param)
        if annotation is None:
            return value
        try:
            adapter = TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:  # an annotation pydantic cannot express: the constructor checks it
            return value
        try:
            # Strict for booleans: lax mode would read `true` as the integer 1.
            checked = adapter.validate_python(value, strict=isinstance(value, bool) or None)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            option = f"{self.kind}.{param.name}" + (f" (at {where})" if where else "")
            shown = "value hidden" if _SECRET_OPTION.search(param.name) else repr(value)
            reason = first["msg"].removeprefix("Value error, ")
            if first["type"] == "literal_error":  # "Input should be 'most' or 'least'"
                expected = reason.removeprefix("Input should be ")
            else:
                written = param.annotation if isinstance(param.annotation, str) else annotation
                expected = f"{written}: {reason[:1].lower()}{reason[1:]}"
            raise ConfigError(f"{option} ({shown}) must be {expected}; fix the value.") from None
        if isinstance(value, int) and isinstance(checked, float):
            return value  # an int is a fine float, and messages then show it as it was written
        return checked


def _annotation(cls: type, param: inspect.Parameter) -> Any:
    """The parameter's annotation as an object (string annotations resolved), or None."""
    annotation = param.annotation
    if annotation is param.empty:
        return None
    if not isinstance(annotation, str):
        return annotation
    module = sys.modules.get(getattr(cls.__init__, "__module__", ""), None)
    try:
        return eval(annotation, dict(vars(module)) if module else {})  # noqa: S307 - our own source
    except Exception:  # a name imported only for type checking: leave it to the constructor
        return None
