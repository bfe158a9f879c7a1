"""Small name -> class registries, in the style of lm-evaluation-harness and baal."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from apl.errors import ConfigError

T = TypeVar("T")


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
        except KeyError:
            raise ConfigError(
                f"Unknown {self.kind} {name!r}. Available: {', '.join(self.names())}."
            ) from None

    def check_kwargs(
        self, name: str, kwargs: dict[str, Any], injected: tuple[str, ...] = ()
    ) -> None:
        """Raise ConfigError if `kwargs` holds an option the class does not accept."""
        cls = self.get(name)
        params = inspect.signature(cls.__init__).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        accepted = [p for p in params if p != "self" and p not in injected]
        for key in kwargs:
            if key not in accepted:
                raise ConfigError(
                    f"{self.kind} {name!r} has no option {key!r}; "
                    f"accepted: {', '.join(accepted) or '(none)'}."
                )

    def build(self, name: str, kwargs: dict[str, Any] | None = None, **injected: Any) -> T:
        """Instantiate `name` with user `kwargs` plus objects the caller passes in."""
        kwargs = dict(kwargs or {})
        self.check_kwargs(name, kwargs, tuple(injected))
        return self.get(name)(**kwargs, **injected)
