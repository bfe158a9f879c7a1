"""Algorithm 1 of the paper, resumable: acquire, label, fine-tune, evaluate, round after round.

Each round's steps are recorded in the ledger as they finish (`candidates`, `labelled`,
`trained`, `evaluated`), with a model checkpoint after training. A resumed run reads back what
the ledger holds, reloads the newest checkpoint, and redoes only unfinished work: candidates
and paid verdicts are never regenerated or re-bought. Every random choice comes from a stream
seeded by (seed, purpose, round), so a resumed run makes the same choices as an unbroken one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from apl.config import APLConfig, dump_config
from apl.errors import ConfigError, RunStoreError
from apl.export import export_run
from apl.loop.checks import check_new_run, resume_config
from apl.loop.cold_start import acquisition_for_round
from apl.loop.components import (
    Components,
    build_components,
    derive_seed,
    round_rng,
    torch_generator,
)
from apl.loop.compute import ComputeMeter, CountingView, counter
from apl.loop.evaluating import (
    check_baseline,
    evaluate_round,
    is_waypoint,
    prepare_evaluation,
)
from apl.loop.labelling import LabelStats, label_round
from apl.loop.numerics import numerics_identity, reconcile_numerics
from apl.loop.offering import PromptOffer
from apl.loop.progress import RunProgress
from apl.loop.pseudo_labels import paid_candidates, record_pseudo_labels
from apl.loop.spending import track_spend
from apl.loop.timing import PhaseTimer, TimedView
from apl.loop.top_up import EXTRAS_KEY as TOP_UP_KEY
from apl.loop.top_up import top_up_round
from apl.loop.tracking import LoopTracking
from apl.loop.web_labelling import web_labelling
from apl.memory import release_free_memory
from apl.store.baseline_cache import BaselineCache
from apl.store.fs import replace_dir_atomic, write_text_atomic
from apl.store.ledger import Ledger
from apl.store.ledger_schema import PHASES
from apl.store.run_dir import CONFIG_FILE, RunDir, open_run_dir

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.pt"


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[int, dict[str, float | None]]
    timings: dict[str, float] = field(default_factory=dict)


def scoring_rows(reference) -> float:
    """Rows the reference model's scoring has run: its own and the policy's (implicit rewards)."""
    return counter(reference, "sequences_scored") + counter(reference, "policy_sequences_scored")


def _done(phase: str | None, wanted: str) -> bool:
    return phase is not None and PHASES.index(phase) >= PHASES.index(wanted)


class ActiveLoop:
    """One run of active preference learning over an opened run directory."""

    def __init__(self, run_dir: RunDir, components: Components, ledger: Ledger) -> None:
        self.run_dir, self.c, self.ledger = run_dir, components, ledger
        self.config: APLConfig = components.config
        self.timer = PhaseTimer()
        self.offer = PromptOffer(components.train_prompts, f"{self.config.task.name}/train")

    # --- resume ------------------------------------------------------------------------------
    def _restore(self) -> int:
        """Load the newest checkpoint of a round marked `trained`; return its round (0: theta_0)."""
        trained = [
            r
            for r, path in self.run_dir.checkpoints().items()
            if _done(self.ledger.phase(r), "trained")
        ]
        if not trained:
            return 0
        round = max(trained)
        path = self.run_dir.checkpoint_path(round)
        state = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=False)
        self.c.trainer.load_state_dict(state)
        self.c.view.is_reference = False
        logger.info("Resumed from the checkpoint after round %d", round)
        return round

    def _checkpoint(self, round: int) -> None:
        """Save the trainer's state for `round` atomically (older ones go once it is marked)."""
        state = self.c.trainer.state_dict()
        replace_dir_atomic(
            self.run_dir.checkpoint_path(round),
            lambda tmp: torch.save(state, tmp / TRAINER_STATE),
            "save a checkpoint to",
        )

    def _storage(self) -> tuple[Path, ...]:
        """Where paid verdicts are written: the run dir and the judgement cache."""
        return (self.run_dir.path, self.c.judgement_cache.path)

    # --- one round ---------------------------------------------------------------------------
    def _acquire(self, round: int) -> None:
        config, c = self.config, self.c
        rng = round_rng(config.seed, round, "acquire")
        c.view.generator = torch_generator(
            c.loaded.device, derive_seed(config.seed, "sample", round)
        )
        c.view.labelled = self.ledger.preferences(source="oracle")  # for feature-space rules
        acquisition = acquisition_for_round(c.acquisition, c.view.is_reference)
        prompts = self.offer(
            acquisition, config.loop.pool_size, rng, self.ledger.acquired_prompt_uids()
        )
        meter, started = ComputeMeter(), time.perf_counter()
        scored, featured = scoring_rows(c.reference), c.view.feature_sequences
        view = TimedView(CountingView(c.view, meter), self.timer)
        pairs = acquisition.acquire(
            prompts, view, config.loop.query_size, rng, pool_size=config.loop.pool_size
        )
        seconds = time.perf_counter() - started
        meter.add("scored_sequences", scoring_rows(c.reference) - scored)
        meter.add("feature_sequences", float(c.view.feature_sequences - featured))
        self.ledger.save_candidates(round, pairs)
        self.ledger.log_metrics(round, {**meter.metrics(), "time/round_acquire": seconds})
        release_free_memory()

    def _train(self, round: int) -> dict[str, float]:
        preferences = self.ledger.preferences(up_to_round=round)
        newest = [
            lp.preference for lp in self.ledger.labelled(up_to_round=round) if lp.round == round
        ]
        if not preferences:
            logger.warning("Round %d: no usable labels yet; the policy is unchanged.", round)
            return {}
        started = time.perf_counter()
        history = self.c.trainer.train(preferences, newest=newest)
        online = self.config.dpo.mode == "online"
        trained = len(newest) if online else len(preferences) * len(history)
        self.c.view.is_reference = False
        self.ledger.log_history(round, history)
        last = dict(history[-1]) if history else {}
        last["compute/trained_pairs"] = float(trained)
        last["time/round_train"] = time.perf_counter() - started
        return {k: v for k, v in last.items() if v is not None}

    def _label(self, round: int, progress: RunProgress) -> LabelStats:
        """Label the round's candidates; top it up while ties/INVALID leave it short of M."""
        config, ledger, c = self.config, self.ledger, self.c
        c.oracle.begin(round, "label")
        while True:
            with self.timer.time("label"):
                stats = label_round(
                    ledger,
                    c.oracle,
                    paid_candidates(ledger.candidates(round)),
                    config.loop.query_size,
                    on_progress=progress.labels,
                    storage=self._storage(),
                )
            if not stats.exhausted or not top_up_round(
                ledger,
                round,
                stats,
                acquisition=acquisition_for_round(c.acquisition, c.view.is_reference),
                offer=self.offer,
                view=TimedView(c.view, self.timer),
                query_size=config.loop.query_size,
                pool_size=config.loop.pool_size,
                seed=config.seed,
            ):
                break
            release_free_memory()
        record_pseudo_labels(ledger, ledger.candidates(round))
        return stats

    def run_round(self, round: int, progress: RunProgress) -> None:
        """Finish whatever is left of `round`."""
        config, ledger = self.config, self.ledger
        M = config.loop.query_size
        if ledger.phase(round) is None:
            progress.phase(round, "acquiring")
            self._acquire(round)
        if not _done(ledger.phase(round), "labelled"):
            progress.phase(round, "labelling")
            stats = self._label(round, progress)
            top_ups = max(
                (c.pair.extras.get(TOP_UP_KEY, 0) for c in ledger.candidates(round)), default=0
            )
            paid, pseudo = ledger.label_counts()
            ledger.log_metrics(
                round,
                {
                    "label/usable": stats.usable,
                    "label/asked": stats.asked,
                    "label/dropped": stats.dropped,
                    "label/top_ups": top_ups,
                    "label/total": paid,  # paid labels only: the labelled-set size
                    "label/pseudo": pseudo,
                },
            )
            ledger.set_phase(round, "labelled")
        if not _done(ledger.phase(round), "trained"):
            progress.phase(round, "training")
            with self.timer.time("train"):
                metrics = self._train(round)
            self._checkpoint(round)
            ledger.log_metrics(round, metrics)
            ledger.set_phase(round, "trained")
            # Only now: until `round` is marked trained, a crash must find round - 1's.
            self.run_dir.prune_checkpoints(before=round)
        if not _done(ledger.phase(round), "evaluated"):
            if is_waypoint(config, round * M, round):
                progress.phase(round, "evaluating")
                self.c.oracle.begin(round, "eval")
                with self.timer.time("evaluate"):
                    result = evaluate_round(self.c, ledger, round, storage=self._storage())
                ledger.log_metrics(round, result.as_metrics())
                logger.info(
                    "Round %d/%d: %d labels, win-rate %.3f ± %.3f (n=%d, %d invalid)",
                    round,
                    config.loop.num_rounds,
                    ledger.label_counts()[0],
                    result.win_rate,
                    result.stderr,
                    result.n,
                    result.invalid,
                )
            ledger.set_phase(round, "evaluated")
        ledger.log_metrics(round, {f"time/{k}": v for k, v in self.timer.totals.items()})

    def run(self) -> RunResult:
        """Run (or finish) every round, then export the labels and the final model."""
        config = self.config
        loaded = self.c.loaded
        reconcile_numerics(
            self.ledger, self.c.reference, numerics_identity(loaded.model, loaded.autocast_dtype)
        )
        rounds = self.ledger.rounds()
        trained_to = self._restore()
        if trained_to == 0 and any(_done(p, "trained") for p in rounds.values()):
            raise RunStoreError(
                f"Run directory {self.run_dir.path} has trained rounds but no checkpoint in "
                f"{self.run_dir.checkpoints_dir}; restore it, or start over in a new output_dir "
                "(paid verdicts stay in the judgement cache)."
            )
        with (
            RunProgress(config.loop.num_rounds, config.loop.query_size) as progress,
            LoopTracking(self.run_dir, self.ledger) as tracking,
        ):
            tracking.send_finished()  # rounds an earlier process finished but did not send
            if not self.ledger.baseline():
                progress.phase(1, "baseline")
                with self.timer.time("evaluate"):
                    prepare_evaluation(
                        self.c, self.ledger, BaselineCache(self.run_dir.baselines_dir)
                    )
            for round in range(1, config.loop.num_rounds + 1):
                if round <= trained_to and _done(self.ledger.phase(round), "evaluated"):
                    progress.advance(round)
                    continue
                self.run_round(round, progress)
                tracking.send_finished()
                trained_to = max(trained_to, round)
                progress.advance(round)
        self.run_dir.save_final_model(
            self.c.trainer.accelerator.unwrap_model(self.c.trainer.model), self.c.loaded.tokenizer
        )
        export_run(self.run_dir.path)  # the labels, and both cards (final_model's README too)
        return RunResult(self.run_dir.path, self.ledger.metrics(), dict(self.timer.totals))


def run_active_learning(run_dir: RunDir | APLConfig, cache_dir: Path | None = None) -> RunResult:
    """Build the stages, then run every round left in `run_dir`.

    Given a config for a new run, the directory is created only once every stage has been
    built, so a bad option never leaves behind a run directory that blocks the fixed rerun.
    """
    config = run_dir.config if isinstance(run_dir, RunDir) else run_dir
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            f"apl run is one process (WORLD_SIZE is {os.environ['WORLD_SIZE']}): under "
            "`accelerate launch` every rank would sample, pay the judge and write the ledger. "
            "Start it with plain `apl run`; see docs/DISTRIBUTED.md for multi-device DPO."
        )
    components = build_components(config, cache_dir=cache_dir)
    try:
        check_baseline(components)  # before a new run's directory exists
        if not isinstance(run_dir, RunDir):
            run_dir = open_run_dir(config)
        with (
            run_dir.exclusive(),
            run_dir.open_ledger() as ledger,
            track_spend(components.oracle, run_dir),  # limits hold across processes
            web_labelling(run_dir, components.oracle),
        ):
            return ActiveLoop(run_dir, components, ledger).run()
    finally:
        components.close()


def run(config: APLConfig, cache_dir: Path | None = None) -> RunResult:
    """`apl run`: a new run in `config.output_dir`, or the rest of one with this same config."""
    check_new_run(config)  # every input error before anything is read from or written to disk
    if (Path(config.output_dir) / CONFIG_FILE).exists():
        return run_active_learning(open_run_dir(config), cache_dir=cache_dir)  # checks it first
    return run_active_learning(config, cache_dir=cache_dir)


def resume_run(
    path: str | Path, overrides: list[str], allowed: tuple[str, ...], cache_dir: Path | None = None
) -> RunResult:
    """`apl resume`: reopen a run dir with its stored config (only spending limits may change)."""
    run_dir, config = resume_config(path, overrides, allowed)
    if overrides:
        run_dir.config = config
        write_text_atomic(run_dir.path / CONFIG_FILE, dump_config(run_dir.config))
        logger.info("Resume overrides applied: %s", ", ".join(overrides))
    return run_active_learning(run_dir, cache_dir=cache_dir)
