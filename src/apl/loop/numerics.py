"""What decides a run's numbers, recorded in the ledger; a resume elsewhere recomputes, never mixes.

Reference log-probs are stored with each candidate and reused by every later training round.
Computed on other hardware or at another precision (bf16 autocast on one machine, fp32 on the
next) they differ by up to ~0.1 nats per sequence, so a resumed run that mixed them would train
against a reference that is not one model. The ledger's `meta` holds the identity below for the
values it stores; a process whose identity differs recomputes every stored reference log-prob
before it does anything else and swaps them in, with the new identity, in one transaction.
"""

from __future__ import annotations

import functools
import json
import logging
import platform
from pathlib import Path

import torch

from apl.policy.batching import model_device
from apl.policy.reference import ReferenceModel
from apl.store.ledger import Ledger

logger = logging.getLogger(__name__)

META_KEY = "numerics"


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def numerics_identity(model: torch.nn.Module, autocast_dtype: torch.dtype | None) -> dict[str, str]:
    """Device kind and model, weight dtype, autocast dtype and torch version of `model`."""
    device = model_device(model)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    return {
        "device": f"{device.type}: {name}",
        "weights": str(next(model.parameters()).dtype).removeprefix("torch."),
        "autocast": str(autocast_dtype).removeprefix("torch.") if autocast_dtype else "none",
        "torch": torch.__version__,
    }


def reconcile_numerics(ledger: Ledger, reference: ReferenceModel, identity: dict[str, str]) -> int:
    """Record `identity`; if stored reference log-probs came from another, recompute them all.

    Returns how many candidates were recomputed (0 when the identity matches, or nothing is
    stored yet). A ledger without a recorded identity (made before it was recorded) counts as
    different when it holds reference log-probs.
    """
    stored_text = ledger.meta(META_KEY)
    stored = json.loads(stored_text) if stored_text else None
    if stored == identity:
        return 0
    candidates = [c for r in ledger.rounds() for c in ledger.candidates(r)]
    todo = [c for c in candidates if c.pair.ref_logp_a is not None or c.pair.ref_logp_b is not None]
    if not todo:
        ledger.set_meta(META_KEY, json.dumps(identity, sort_keys=True))
        return 0
    logger.warning(
        "This run's %d stored reference log-prob pairs were computed with %s; this process "
        "computes with %s. Recomputing them all now so two precisions never mix.",
        len(todo),
        _describe(stored),
        _describe(identity),
    )
    prompts = reference.prompt_ids([c.pair.prompt.text for c in todo])
    values = reference.logps(
        prompts + prompts,
        [c.pair.a.token_ids for c in todo] + [c.pair.b.token_ids for c in todo],
    )
    n = len(todo)
    ledger.replace_ref_logps(
        {c.id: (values[i], values[n + i]) for i, c in enumerate(todo)},
        {META_KEY: json.dumps(identity, sort_keys=True)},
    )
    return n


def _describe(identity: dict[str, str] | None) -> str:
    if identity is None:
        return "an unrecorded precision (a ledger from an older apl)"
    return ", ".join(f"{k} {v}" for k, v in sorted(identity.items()))
