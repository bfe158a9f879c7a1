"""The name -> class registry: lookup errors list names, kwargs are checked."""

from __future__ import annotations

import inspect
from typing import Literal

import pytest

from apl.errors import ConfigError
from apl.registry import Registry, _annotation


def test_register_build_and_errors():
    reg: Registry[object] = Registry("widget")

    @reg.register("spinner")
    class Spinner:
        def __init__(self, speed: int = 1, *, clock=None) -> None:
            self.speed, self.clock = speed, clock

    @reg.register("button")
    class Button:
        pass

    built = reg.build("spinner", {"speed": 3}, clock="c")
    assert (built.speed, built.clock) == (3, "c")
    assert reg.names() == ["button", "spinner"]
    with pytest.raises(ConfigError, match=r"Unknown widget 'x'\. Available: button, spinner\."):
        reg.get("x")
    with pytest.raises(ConfigError, match="widget 'spinner' has no option 'sped'; accepted: speed"):
        reg.build("spinner", {"sped": 3}, clock="c")


def test_option_values_are_checked_against_the_constructor_annotations():
    reg: Registry[object] = Registry("widget")

    @reg.register("dial")
    class Dial:
        def __init__(
            self,
            size: int = 1,
            budget: float | None = None,
            mode: Literal["fast", "slow"] = "fast",
            prices: dict[str, tuple[float, float]] | None = None,
            api_key_env: str = "KEY",
        ) -> None:
            self.size, self.budget, self.prices = size, budget, prices

    built = reg.build("dial", {"size": 2.0, "budget": 3, "prices": {"m": [1, 2]}})
    # 2.0 read as the int 2, a list as a tuple; an int is a float already and stays as written
    assert (built.size, built.budget, built.prices) == (2, 3, {"m": (1.0, 2.0)})
    cases = [
        ({"budget": "abc"}, "widget.budget ('abc') must be float | None: input should be a valid"),
        ({"size": "two"}, "widget.size ('two') must be int"),
        ({"size": True}, "widget.size (True) must be int"),  # YAML `true` is not the number 1
        ({"size": 2.5}, "fractional part"),
        ({"mode": "medium"}, "widget.mode ('medium') must be 'fast' or 'slow'; fix the value."),
        ({"prices": {"m": [1]}}, "widget.prices (at m.1)"),
        ({"api_key_env": ["sk-secret"]}, "widget.api_key_env (value hidden) must be str"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(ConfigError) as info:
            reg.build("dial", kwargs)
        assert fragment in str(info.value) and "\n" not in str(info.value)
    assert "sk-secret" not in str(info.value)


def test_a_required_option_is_named():
    reg: Registry[object] = Registry("task")

    @reg.register("custom")
    class Custom:
        def __init__(self, path: str, column: str = "prompt") -> None:
            self.path = path

    with pytest.raises(ConfigError, match=r"task 'custom' needs option 'path'; set task.path="):
        reg.check_kwargs("custom", {"column": "text"})
    assert reg.build("custom", {"path": "p.jsonl"}).path == "p.jsonl"


def test_every_shipped_component_option_has_a_checkable_type():
    """The real registries: every annotated option of every class builds a validator."""
    from apl.acquisition import ACQUISITIONS
    from apl.data import TASKS
    from apl.oracles import ORACLES

    for registry in (ACQUISITIONS, ORACLES, TASKS):
        for name in registry.names():
            cls = registry.get(name)
            for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
                if param.annotation is param.empty or param.default is param.empty:
                    continue
                assert _annotation(cls, param) is not None, f"{name}.{param.name} unchecked"
                # Its own default always passes its own check.
                registry._check_type(cls, param, param.default)
