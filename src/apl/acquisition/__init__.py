"""Acquisition functions: importing this package registers every strategy.

The paper's random, entropy, certainty and hybrid; and from the work since: bald (ensemble
epistemic uncertainty), balpm (bald plus prompt diversity) and adpo (active queries with
pseudo-labels for confident pairs).
"""

from apl.acquisition import (  # noqa: F401  (register)
    adpo,
    bald,
    balpm,
    certainty,
    entropy,
    hybrid,
    random,
)
from apl.acquisition.base import ACQUISITIONS, Acquisition, PolicyView

__all__ = ["ACQUISITIONS", "Acquisition", "PolicyView"]
