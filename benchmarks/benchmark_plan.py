"""The pre-registered benchmark protocol (docs/PROTOCOL.md) and its time plan from measured rates.

Everything the protocol fixes lives here as constants; the only thing planned at run time is
the number of seeds, from the rates measured on the machine and the wall-time budget:

1. Each run's seconds are estimated from per-thread rates (DPO pairs/s, reference-scored and
   feature rows/s, sampled completions/s, judged pairs/s), counting what the loop does
   (apl.loop.compute documents the same counters): start-up, baseline, and per round the
   acquisition's sampling and scoring, the oracle, DPO (reset: every label every epoch;
   online: one step on the newest batch) and evaluation at the waypoints.
2. The noise decomposition costs its re-evaluations and retrains (benchmarks/noise.py).
3. Seeds: the largest n <= MAX_SEEDS such that everything fits `hours` on the workers, with
   the expensive secondary strategies on min(n, SECONDARY_SEEDS) seeds, and fewer (down to
   MIN_SECONDARY_SEEDS, else left out and said so) only if the primaries would drop below
   MIN_SEEDS otherwise.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

STARTUP_S = 30.0  # measured: import, model load, 22k IMDB prompts tokenised, judge loaded
ROUND_OVERHEAD_S = 1.5  # ledger commits, the round's checkpoint (weights + AdamW state)
MAX_SEEDS, MIN_SEEDS = 20, 5
SECONDARY_SEEDS, MIN_SECONDARY_SEEDS = 5, 3
NOISE_RUNS, NOISE_EVALS, NOISE_RETRAINS = 5, 4, 3  # random runs; re-evaluations; retrains each
PRIOR_PAIRED_SD = 0.10  # sd of a paired win-rate difference before this benchmark measured it
TARGET_MDD = 0.03


@dataclass(frozen=True)
class Regime:
    """One regime of the protocol: DPO mode, sizes, strategies and evaluation waypoints."""

    name: str
    mode: str  # dpo.mode
    query_size: int  # M
    pool_size: int  # S
    rounds: int  # T
    primary: tuple[str, ...]
    secondary: tuple[str, ...]  # costly strategies, on fewer seeds
    eval_every: int = 1  # evaluate after every k-th round (and always the last)
    eval_prompts: int = 1024  # the paper's evaluation size
    epochs: int = 10  # dpo.num_train_epochs (reset mode; online takes one step per round)

    @property
    def waypoints(self) -> list[int] | None:
        """Labelled-set sizes to evaluate at (None: every round)."""
        if self.eval_every == 1:
            return None
        rounds = sorted({*range(self.eval_every, self.rounds + 1, self.eval_every), self.rounds})
        return [r * self.query_size for r in rounds]

    def overrides(self, model: str | None) -> dict:
        """The run config (besides strategy and seed): apl run's defaults plus these sizes."""
        base = {
            "loop": {
                "query_size": self.query_size,
                "pool_size": self.pool_size,
                "label_budget": self.query_size * self.rounds,
            },
            "dpo": {"mode": self.mode, "num_train_epochs": self.epochs},
            "evaluation": {"num_prompts": self.eval_prompts, "waypoints": self.waypoints},
        }
        if model:
            base["model"] = {"model_name_or_path": model}
        return base


# The paper's Table 2 regime: reset to theta_0 and retrain on every label each round, M=128 as in
# the paper, sizes 128-512; S/M = 4 keeps hybrid's J x S x N entropy samples affordable.
RESET = Regime(
    "reset",
    "reset",
    query_size=128,
    pool_size=512,
    rounds=4,
    primary=("random", "certainty", "bald", "balpm", "adpo"),
    secondary=("entropy", "hybrid"),
)
# The paper's Appendix D: one DPO step on each new batch of 64, no reset (40 batches here, 100
# there); evaluated every 8 batches.
ONLINE = Regime(
    "online",
    "online",
    query_size=64,
    pool_size=256,
    rounds=40,
    primary=("random", "certainty"),
    secondary=("hybrid",),
    eval_every=8,
)
REGIMES = (RESET, ONLINE)


@dataclass(frozen=True)
class Rates:
    """Per-worker speeds at one thread (each sweep worker gets one core)."""

    train_pairs_s: float  # DPO pairs/s: forward + backward of chosen and rejected
    score_seqs_s: float  # reference (and feature) rows/s, forward only
    sample_seqs_s: float  # completions/s from the KV-cache sampler
    judge_pairs_s: float  # offline judge pairs/s


def acquisition_counts(strategy: str, regime: Regime, round: int) -> dict[str, float]:
    """Sampled completions, reference rows and feature rows of one round's acquisition."""
    M, S = regime.query_size, regime.pool_size
    keep = M + math.ceil(0.25 * M)
    cold_random = round == 1 and strategy in ("random", "certainty", "bald", "adpo")
    if cold_random:  # the shared random draw: a pair per kept prompt, no scoring at cold start
        return {"samples": 2 * keep, "scored": 0.0, "features": 0.0}
    labels = (round - 1) * M
    if strategy == "random":
        return {"samples": 2 * keep, "scored": 2 * keep, "features": 0.0}
    if strategy == "entropy":
        return {"samples": 8 * S + 2 * keep, "scored": 2 * keep, "features": 0.0}
    if strategy == "hybrid":  # J=8 x S prompts x N=8 samples, then a pair for the top S
        return {"samples": 64 * S + 2 * S, "scored": 2 * S * (round > 1), "features": 0.0}
    features = 2 * S + 2 * M  # new candidates, and last round's labels (earlier ones cached)
    if strategy == "balpm":
        features += S + M  # prompt features
    scored = {"certainty": 2 * S, "adpo": 2 * S}.get(strategy, 2 * keep)
    return {"samples": 2 * S, "scored": scored, "features": features * (labels > 0)}


def run_seconds(strategy: str, regime: Regime, rates: Rates) -> float:
    """Estimated wall seconds of one run on one worker."""
    M, N, E = regime.query_size, regime.eval_prompts, regime.epochs
    pseudo = M if strategy == "adpo" else 0  # at most max_pseudo (1.0) x M per round
    evaluated = {w // M for w in regime.waypoints} if regime.waypoints else None
    seconds = STARTUP_S + N / rates.sample_seqs_s
    for t in range(1, regime.rounds + 1):
        c = acquisition_counts(strategy, regime, t)
        seconds += c["samples"] / rates.sample_seqs_s
        seconds += (c["scored"] + c["features"]) / rates.score_seqs_s
        seconds += 1.25 * M / rates.judge_pairs_s + ROUND_OVERHEAD_S
        trained = (t * M + (t - 1) * pseudo) * E if regime.mode == "reset" else M + pseudo * (t > 1)
        seconds += trained / rates.train_pairs_s + 2 * M / rates.score_seqs_s
        if evaluated is None or t in evaluated:
            seconds += N / rates.sample_seqs_s + N / rates.judge_pairs_s
    return seconds


def noise_seconds(rates: Rates) -> float:
    """The noise decomposition: re-evaluations and retrains of the reset regime's random runs."""
    R = RESET
    labels = R.query_size * R.rounds
    evaluate = R.eval_prompts / rates.sample_seqs_s + R.eval_prompts / rates.judge_pairs_s
    retrain = labels * R.epochs / rates.train_pairs_s + evaluate
    return STARTUP_S + NOISE_RUNS * (NOISE_EVALS * evaluate + NOISE_RETRAINS * retrain)


@dataclass
class Plan:
    """Seeds per regime and strategy, the estimated seconds, and how they were reached."""

    rates: Rates
    hours: float
    workers: int
    seeds: dict[str, dict[str, int]]  # regime -> strategy -> seeds
    run_s: dict[str, dict[str, float]]  # regime -> strategy -> estimated s per run
    noise_s: float
    notes: list[str] = field(default_factory=list)
    made: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M"))

    @property
    def total_s(self) -> float:
        """Estimated wall seconds on `workers` (each worker one core, perfect packing)."""
        work = (
            sum(self.run_s[r][s] * n for r, by in self.seeds.items() for s, n in by.items())
            + self.noise_s
        )
        return work / self.workers

    def predicted_mdd(self, paired_sd: float = PRIOR_PAIRED_SD) -> dict[str, float]:
        """{regime: 2 SE of a paired difference at its primary seed count} for `paired_sd`."""
        return {
            r: 2 * paired_sd / math.sqrt(max(by.values())) for r, by in self.seeds.items() if by
        }

    def to_json(self) -> dict:
        """A JSON-able dict (saved beside the runs, so a resumed benchmark keeps its plan)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        """The inverse of to_json."""
        return cls(**{**data, "rates": Rates(**data["rates"])})


def _seeds(n: int, k: int, dropped: set[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out = {}
    for regime in REGIMES:
        by = {s: n for s in regime.primary}
        by.update({s: k for s in regime.secondary if (regime.name, s) not in dropped})
        out[regime.name] = by
    return out


def make_plan(rates: Rates, hours: float, workers: int, seeds: int | None = None) -> Plan:
    """The most primary seeds that fit `hours` (or exactly `seeds`), per the module's rules.

    Secondary strategies get min(n, SECONDARY_SEEDS) seeds, cut towards MIN_SECONDARY_SEEDS
    while the primaries would otherwise get fewer than MIN_SEEDS; if that is not enough, the
    most expensive secondary (regime, strategy) is left out, and so on.
    """
    run_s = {
        r.name: {s: run_seconds(s, r, rates) for s in (*r.primary, *r.secondary)} for r in REGIMES
    }
    noise = noise_seconds(rates)

    def plan(n: int, k: int, dropped: set[tuple[str, str]]) -> Plan:
        return Plan(rates, hours, workers, _seeds(n, min(n, k), dropped), run_s, noise)

    if seeds is not None:
        return plan(seeds, SECONDARY_SEEDS, set())
    budget = hours * 3600
    by_cost = sorted(
        ((r.name, s) for r in REGIMES for s in r.secondary), key=lambda rs: -run_s[rs[0]][rs[1]]
    )
    dropped: set[tuple[str, str]] = set()
    while True:
        for k in range(SECONDARY_SEEDS, MIN_SECONDARY_SEEDS - 1, -1):
            fits = [
                n for n in range(MIN_SEEDS, MAX_SEEDS + 1) if plan(n, k, dropped).total_s <= budget
            ]
            if fits:
                chosen = plan(max(fits), k, dropped)
                if k < SECONDARY_SEEDS and max(fits) > k:
                    chosen.notes.append(f"secondary strategies cut to {k} seeds to fit")
                for regime, strategy in sorted(dropped):
                    chosen.notes.append(
                        f"{strategy} ({regime}) left out: {run_s[regime][strategy] / 60:.0f} min "
                        f"per run does not fit with {MIN_SEEDS} seeds of the primaries"
                    )
                return chosen
        if len(dropped) == len(by_cost):
            chosen = plan(MIN_SEEDS, 0, dropped)
            chosen.notes += [f"{s} ({r}) left out: no time for it" for r, s in by_cost]
            chosen.notes.append(
                f"{MIN_SEEDS} seeds of the primaries alone take {chosen.total_s / 3600:.1f} h: "
                f"over the {hours:g} h budget"
            )
            return chosen
        dropped.add(by_cost[len(dropped)])


def plan_markdown(plan: Plan) -> str:
    """The plan as a table: regime, strategy, seeds, s/run, worker-minutes."""
    lines = [
        "| regime | strategy | seeds | est. s/run | worker-min |",
        "|---|---|---:|---:|---:|",
    ]
    for regime, by in plan.seeds.items():
        for strategy, n in by.items():
            s = plan.run_s[regime][strategy]
            lines.append(f"| {regime} | {strategy} | {n} | {s:.0f} | {n * s / 60:.0f} |")
    lines.append(
        f"| noise | random (re-evaluate, retrain) | {NOISE_RUNS} | - | {plan.noise_s / 60:.0f} |"
    )
    r = plan.rates
    lines += [
        "",
        f"Rates at one thread: DPO {r.train_pairs_s:.1f} pairs/s, scoring {r.score_seqs_s:.0f} "
        f"rows/s, sampling {r.sample_seqs_s:.0f} completions/s, judge {r.judge_pairs_s:.0f} "
        f"pairs/s. Estimated wall time on {plan.workers} workers: {plan.total_s / 3600:.2f} h "
        f"(budget {plan.hours:g} h).",
    ]
    lines += [f"Note: {n}." for n in plan.notes]
    return "\n".join(lines) + "\n"
