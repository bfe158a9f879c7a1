"""BAL-PM: epistemic uncertainty plus the entropy of the acquired prompts in feature space.

Melo, Tigas, Abate and Gal, "Deep Bayesian Active Learning for Preference Modeling in Large
Language Models" (BAL-PM, NeurIPS 2024, arXiv 2406.10023): uncertainty alone buys redundant
points, so BAL-PM adds a task-agnostic term, the entropy of the acquired prompt distribution in
the base LLM's feature space, estimated with a k-nearest-neighbour (Kozachenko-Leonenko)
estimator, and picks the batch greedily, one point at a time. Under that estimator, adding
prompt x to N acquired prompts in d dimensions raises the entropy by about
(d / (N + 1)) * log rho_k(x), rho_k the distance to its k-th nearest acquired prompt (the
neighbours' own terms are left out, as in a greedy farthest-point rule). The score of a
candidate is BALD(x, y1, y2) + diversity_weight * that gain, recomputed after every pick.

Here the feature space is theta_0's mean hidden state of the prompt (`apl.policy.features`),
standardised and projected on its top `components` principal components; "acquired" is every
paid-label prompt of earlier rounds plus this round's picks. At cold start BALD is 0 and the
rule is pure diversity, so round 1 is not a random draw (`cold_start_random` is False).
"""

from __future__ import annotations

import numpy as np

from apl.acquisition.bald import BaldAcquisition, project, require_features
from apl.acquisition.base import ACQUISITIONS, PolicyView, check_option
from apl.types import Pair


def greedy_order(
    base: np.ndarray,
    candidates: np.ndarray,
    acquired: np.ndarray,
    *,
    weight: float,
    k: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, value at pick, diversity gain at pick): greedy max of base + weight * gain.

    gain(x) = (d / (N + 1)) * log rho_k(x) over the N points acquired so far (0 while none);
    ties are broken at random.
    """
    n, d = candidates.shape
    points = list(acquired)
    nearest = np.full((n, k), np.inf)  # the k smallest distances to acquired points, sorted
    if len(points):
        dist = np.linalg.norm(candidates[:, None, :] - np.asarray(points)[None], axis=-1)
        top = np.sort(dist, axis=1)[:, :k]
        nearest[:, : top.shape[1]] = top
    jitter = rng.random(n) * 1e-12  # random tie-break, far below any real difference
    left = np.ones(n, dtype=bool)
    order, values, gains = [], [], []
    for _ in range(n):
        count = len(points)
        if count:
            rho = nearest[:, min(k, count) - 1]
            gain = d / (count + 1) * np.log(np.maximum(rho, 1e-12))
        else:
            gain = np.zeros(n)
        value = np.where(left, base + weight * gain + jitter, -np.inf)
        pick = int(np.argmax(value))
        order.append(pick)
        values.append(float(base[pick] + weight * gain[pick]))
        gains.append(float(gain[pick]))
        left[pick] = False
        points.append(candidates[pick])
        new = np.linalg.norm(candidates - candidates[pick], axis=1)
        nearest = np.sort(np.concatenate([nearest, new[:, None]], axis=1), axis=1)[:, :k]
    return np.array(order), np.array(values), np.array(gains)


@ACQUISITIONS.register("balpm")
class BalpmAcquisition(BaldAcquisition):
    """BALD plus prompt-diversity gain, picked greedily; ranks every pair in pick order.

    Each pair's extras hold `bald`, `ensemble_prob`, `diversity` (its entropy gain when picked)
    and `balpm_value`; `score` is the pick order (higher is picked earlier).

    Args:
        diversity_weight: beta, the weight of the entropy gain against BALD (nats).
        k: the estimator's nearest neighbour.
        ensemble_size, l2, components, min_labels, reserve: as for `bald`.
    """

    cold_start_random = False

    def __init__(
        self,
        diversity_weight: float = 1.0,
        k: int = 3,
        ensemble_size: int = 8,
        l2: float = 1.0,
        components: int = 32,
        min_labels: int = 8,
        reserve: float = 0.25,
    ) -> None:
        super().__init__(
            ensemble_size=ensemble_size,
            l2=l2,
            components=components,
            min_labels=min_labels,
            reserve=reserve,
        )
        check_option(
            diversity_weight >= 0,
            f"acquisition.diversity_weight ({diversity_weight}) must be >= 0; 0 is plain BALD.",
        )
        check_option(k >= 1, f"acquisition.k ({k}) must be >= 1.")
        self.diversity_weight = diversity_weight
        self.k = k

    def score(self, pairs: list[Pair], policy: PolicyView, rng: np.random.Generator) -> np.ndarray:
        """The greedy pick order of BALD + diversity_weight * entropy gain, as descending scores."""
        view = require_features(policy, self.registry_name)
        bald = self.bald_scores(pairs, policy, rng)
        seen = list(dict.fromkeys(p.prompt.text for p in view.labelled))
        prompts = [p.prompt for p in pairs]
        done = [next(p.prompt for p in view.labelled if p.prompt.text == t) for t in seen]
        feats = view.prompt_features(prompts + done)
        cand = project(feats[: len(pairs)], feats, self.components)
        acquired = project(feats[len(pairs) :], feats, self.components)
        order, values, gains = greedy_order(
            bald, cand, acquired, weight=self.diversity_weight, k=self.k, rng=rng
        )
        scores = np.empty(len(pairs))
        scores[order] = np.arange(len(pairs), 0, -1, dtype=np.float64)
        for i, value, gain in zip(order, values, gains, strict=True):
            pairs[i].extras.update(balpm_value=float(value), diversity=float(gain))
        return scores
