"""The name -> class registry: lookup errors list names, kwargs are checked."""

from __future__ import annotations

import pytest

from apl.errors import ConfigError
from apl.registry import Registry


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
