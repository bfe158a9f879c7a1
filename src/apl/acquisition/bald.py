"""Epistemic uncertainty of an ensemble preference model, BALD-style (BAL-PM's first term).

Melo, Tigas, Abate and Gal, "Deep Bayesian Active Learning for Preference Modeling in Large
Language Models" (BAL-PM, NeurIPS 2024, arXiv 2406.10023) score a candidate (x, y1, y2) by the
mutual information between its label and the preference model's parameters, estimated with an
ensemble of adapters trained on frozen LLM features:
BALD = H[mean_k p_k] - mean_k H[p_k], p_k = P_k(y1 > y2 | x) under member k's Bradley-Terry model.

The ensemble here, and why. Training K DPO policies (or K LoRA adapters of the policy) would
cost K times the DPO training that already dominates a run on two CPU cores (reset mode
retrains on every label every round), and the last K rounds' checkpoints are fitted on nested
labelled sets, so their disagreement measures the data added, not posterior uncertainty.
BAL-PM's own construction is affordable: K linear Bradley-Terry reward heads on frozen features
of theta_0 (the reference model's mean last hidden state of each completion, one cached forward
pass per completion, `apl.policy.features`). Each head is an anchored ensemble member (Pearce
et al., "Uncertainty in Neural Networks: Approximately Bayesian Ensembling", AISTATS 2020): a
bootstrap resample of the paid labels, and an L2 pull towards its own random anchor drawn from
the N(0, 1/l2) prior, fitted by Newton steps. Without the anchors every head would put zero
weight on directions no label has explored and agree there; with them, unexplored directions
keep the prior's disagreement (what BAL-PM's randomly initialised adapters provide). Features
are projected on their top principal components first (`components`): milliseconds per fit. Until `min_labels` paid labels exist every score is 0 and
the choice is random (the loop then shares the random baseline's draw, `cold_start_random`).
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np

from apl.acquisition.base import (
    ACQUISITIONS,
    Acquisition,
    PolicyView,
    annotate_rewards,
    check_option,
)
from apl.types import Completion, Pair, Preference, Prompt

logger = logging.getLogger(__name__)


class FeatureView(PolicyView, Protocol):
    """A PolicyView that also offers the paid labels and frozen features (ModelPolicyView)."""

    labelled: list[Preference]

    def features(self, prompts: list[Prompt], completions: list[Completion]) -> np.ndarray:
        """[n, hidden] frozen features of each completion (its prompt as context)."""
        ...

    def prompt_features(self, prompts: list[Prompt]) -> np.ndarray:
        """[n, hidden] frozen features of each prompt."""
        ...


def require_features(policy: PolicyView, name: str) -> FeatureView:
    """`policy` if it offers labels and features, else a clear error naming the strategy."""
    if not all(hasattr(policy, a) for a in ("labelled", "features", "prompt_features")):
        raise TypeError(
            f"acquisition {name!r} needs a PolicyView with `labelled`, `features` and "
            f"`prompt_features` (apl.policy.view.ModelPolicyView); got {type(policy).__name__}"
        )
    return policy  # type: ignore[return-value]


def project(rows: np.ndarray, basis_rows: np.ndarray, components: int) -> np.ndarray:
    """`rows` centred and standardised by `basis_rows`, then on basis_rows' top components."""
    mean = basis_rows.mean(axis=0)
    scale = basis_rows.std(axis=0) + 1e-8
    basis = (basis_rows - mean) / scale
    k = min(components, *basis.shape)
    _, _, vt = np.linalg.svd(basis, full_matrices=False)
    return ((rows - mean) / scale) @ vt[:k].T


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float, anchor: np.ndarray | None = None, iters: int = 50
) -> np.ndarray:
    """MAP weights of a logistic regression without intercept, prior N(anchor, 1/l2).

    Newton's method with a backtracking line search: plain Newton steps overshoot on separable
    labels (a few dozen pairs in many dimensions usually are), the objective is convex.
    """
    anchor = np.zeros(x.shape[1]) if anchor is None else anchor
    sign = 2.0 * y - 1.0

    def objective(w: np.ndarray) -> float:
        return float(
            np.logaddexp(0.0, -sign * (x @ w)).sum() + 0.5 * l2 * ((w - anchor) ** 2).sum()
        )

    w = anchor.copy()
    value = objective(w)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (y - p) - l2 * (w - anchor)
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6:
            new = objective(w + t * step)
            if new <= value:
                break
            t *= 0.5
        w, converged = w + t * step, value - new < 1e-10
        value = new
        if converged:
            break
    return w


def binary_entropy(p: np.ndarray) -> np.ndarray:
    """H(p) in nats, 0 at p = 0 or 1."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def ensemble_probs(
    labelled: np.ndarray,
    candidates: np.ndarray,
    rng: np.random.Generator,
    *,
    ensemble_size: int,
    l2: float,
) -> np.ndarray:
    """[K, n] P_k(a > b) for candidate feature differences, from K anchored bootstrap BT heads.

    `labelled` rows are phi(chosen) - phi(rejected); each head sees a bootstrap resample, both
    ways round (x labelled 1, -x labelled 0), so P(a > b) = 1 - P(b > a) exactly, and is pulled
    towards its own anchor drawn from the prior N(0, 1/l2).
    """
    n, d = labelled.shape
    probs = np.empty((ensemble_size, len(candidates)))
    for k in range(ensemble_size):
        rows = labelled[rng.integers(0, n, size=n)]
        x = np.concatenate([rows, -rows])
        y = np.concatenate([np.ones(n), np.zeros(n)])
        w = fit_logistic(x, y, l2, anchor=rng.normal(0.0, 1.0 / np.sqrt(l2), size=d))
        probs[k] = 1.0 / (1.0 + np.exp(-(candidates @ w)))
    return probs


@ACQUISITIONS.register("bald")
class BaldAcquisition(Acquisition):
    """One pair per prompt; rank by the ensemble's BALD score (epistemic uncertainty) first.

    Each pair's extras hold `bald` and `ensemble_prob` (the ensemble's mean P(a > b)), and the
    kept pairs also DPO's implicit rewards and `bt_prob` (as `random` attaches them).

    Args:
        ensemble_size: K bootstrap heads (BAL-PM: an ensemble of adapters).
        l2: prior precision of each head's weights on standardised features.
        components: principal components of the frozen features each head sees.
        min_labels: paid labels needed before the ensemble is fitted (random until then).
        reserve: spare pairs kept beyond `query_size`, as a fraction of it.
    """

    cold_start_random = True

    def __init__(
        self,
        ensemble_size: int = 8,
        l2: float = 1.0,
        components: int = 32,
        min_labels: int = 8,
        reserve: float = 0.25,
    ) -> None:
        super().__init__(reserve=reserve)
        check_option(
            ensemble_size >= 2, f"acquisition.ensemble_size ({ensemble_size}) must be >= 2."
        )
        check_option(l2 > 0, f"acquisition.l2 ({l2}) must be > 0; 1.0 is a unit Gaussian prior.")
        check_option(components >= 1, f"acquisition.components ({components}) must be >= 1.")
        check_option(min_labels >= 1, f"acquisition.min_labels ({min_labels}) must be >= 1.")
        self.ensemble_size = ensemble_size
        self.l2 = l2
        self.components = components
        self.min_labels = min_labels

    def bald_scores(
        self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator
    ) -> np.ndarray:
        """BALD of each pair (0 for all while fewer than `min_labels` paid labels exist)."""
        view = require_features(policy, self.registry_name)
        labels = list(view.labelled)
        if len(labels) < self.min_labels or not pairs:
            logger.info("%s: %d paid labels; choosing at random", self.registry_name, len(labels))
            for pair in pairs:
                pair.extras.update(bald=0.0, ensemble_prob=0.5)
            return np.zeros(len(pairs))
        prompts = [p.prompt for p in pairs] * 2 + [p.prompt for p in labels] * 2
        completions = [p.a for p in pairs] + [p.b for p in pairs]
        completions += [p.chosen for p in labels] + [p.rejected for p in labels]
        feats = view.features(prompts, completions)
        n, m = len(pairs), len(labels)
        cand = feats[:n] - feats[n : 2 * n]
        lab = feats[2 * n : 2 * n + m] - feats[2 * n + m :]
        both = np.concatenate([cand, -cand, lab, -lab])  # symmetric: the basis has mean 0
        cand, lab = project(cand, both, self.components), project(lab, both, self.components)
        probs = ensemble_probs(lab, cand, rng, ensemble_size=self.ensemble_size, l2=self.l2)
        mean = probs.mean(axis=0)
        bald = binary_entropy(mean) - binary_entropy(probs).mean(axis=0)
        for pair, b, p in zip(pairs, bald, mean, strict=True):
            pair.extras.update(bald=float(b), ensemble_prob=float(p))
        return bald

    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """BALD: highest epistemic uncertainty first."""
        return self.bald_scores(pairs, policy, rng)

    def finalize(self, chosen: list[Pair], policy: PolicyView) -> None:
        """DPO's implicit rewards on the kept pairs (Figure 3 and the calibration table)."""
        annotate_rewards(chosen, policy)
