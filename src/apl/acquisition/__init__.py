"""Acquisition functions: importing this package registers random, entropy, certainty, hybrid."""

from apl.acquisition import certainty, entropy, hybrid, random  # noqa: F401  (register)
from apl.acquisition.base import ACQUISITIONS, Acquisition, PolicyView

__all__ = ["ACQUISITIONS", "Acquisition", "PolicyView"]
