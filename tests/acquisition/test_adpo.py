"""adpo: the least confident pairs go to the oracle, the most confident get the policy's label."""

from __future__ import annotations

import numpy as np
import pytest

from apl.acquisition import ACQUISITIONS
from apl.acquisition.adpo import PSEUDO_LABEL
from apl.errors import ConfigError

from .scripted_view import Scripted, ScriptedView, prompts

# beta 1, reference log-probs 0: r_a - r_b = logp_a - logp_b = gap_i (sign alternates)
GAPS = [0.1, -0.3, 0.6, -1.0, 2.5, -3.0, 4.0, -0.05]
TABLE = {
    f"p{i}": {"a": Scripted(g, 1, 0.0), "b": Scripted(0.0, 1, 0.0)} for i, g in enumerate(GAPS)
}


def test_paid_pairs_are_least_confident_and_confident_ones_carry_the_policy_preference():
    acq = ACQUISITIONS.build("adpo", {"reserve": 0.0, "confidence": 0.9, "max_pseudo": 1.0})
    pairs = acq.acquire(prompts(8), ScriptedView(TABLE), 3, np.random.default_rng(0))
    paid = [p for p in pairs if PSEUDO_LABEL not in p.extras]
    pseudo = [p for p in pairs if PSEUDO_LABEL in p.extras]
    assert [p.prompt.uid for p in paid] == ["p7", "p0", "p1"]  # |gap| .05, .1, .3
    assert pairs[: len(paid)] == paid  # paid first: the loop labels in rank order
    # |gap| >= logit(0.9) = 2.2: p6 (4.0), p5 (-3.0), p4 (2.5), most confident first, at most M
    assert [p.prompt.uid for p in pseudo] == ["p6", "p5", "p4"]
    assert [p.extras[PSEUDO_LABEL] for p in pseudo] == [1.0, 0.0, 1.0]  # sign of r_a - r_b
    for pair in pseudo:
        assert (pair.extras["bt_prob"] > 0.5) == (pair.extras[PSEUDO_LABEL] == 1.0)


def test_pseudo_labels_are_capped_and_absent_at_cold_start():
    acq = ACQUISITIONS.build("adpo", {"reserve": 0.0, "confidence": 0.6, "max_pseudo": 0.5})
    pairs = acq.acquire(prompts(8), ScriptedView(TABLE), 4, np.random.default_rng(0))
    assert sum(PSEUDO_LABEL in p.extras for p in pairs) == 2  # floor(0.5 x 4)
    cold = ScriptedView(TABLE, is_reference=True)
    pairs = acq.acquire(prompts(8), cold, 4, np.random.default_rng(0))
    assert len(pairs) == 4 and not any(PSEUDO_LABEL in p.extras for p in pairs)
    assert cold.ref_calls == [] and acq.cold_start_random  # the loop shares random's draw


@pytest.mark.parametrize(
    ("options", "name"), [({"confidence": 0.5}, "confidence"), ({"max_pseudo": -1}, "max_pseudo")]
)
def test_bad_options_name_themselves(options, name):
    with pytest.raises(ConfigError, match=f"acquisition.{name}"):
        ACQUISITIONS.build("adpo", options)
