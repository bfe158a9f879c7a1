"""Run a sweep: each grid point is a real `apl run` (or `apl resume`) subprocess, several at once.

Subprocesses isolate crashes and make the sweep resumable for free: a run whose ledger has
every round evaluated and whose final model is saved is skipped, an interrupted one is
continued with `apl resume`, and a new one is started with `apl run --config`. On CPU the
concurrent runs share the cores (each child gets `OMP_NUM_THREADS` = cores / parallel); on
CUDA each run gets one visible GPU through `CUDA_VISIBLE_DEVICES`. A sweep-wide judge limit
(`budget_usd` / `max_calls` in the spec) lives in `sweep_spend.sqlite` at the root; every run's
ledger is linked to it before anything starts, so each child (and a later `apl resume` of
it) reserves every call there too.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from apl.config import dump_config
from apl.errors import ConfigError
from apl.log import console, live_display
from apl.store.ledger import Ledger
from apl.store.run_dir import CONFIG_FILE, FINAL_MODEL_DIR, LEDGER_FILE, check_run_dir, open_run_dir
from apl.store.spend_journal import SWEEP_SPEND_FILE, CallJournal, link_run
from apl.sweep.spec import SweepRun, SweepSpec

logger = logging.getLogger(__name__)

RunState = Literal["new", "incomplete", "complete"]
CONFIGS_DIR = ".sweep"  # resolved configs handed to `apl run --config`
LOGS_DIR = "logs"  # one log per run, appended to on every attempt
_MEMORY_PER_RUN = 2 * 1024**3  # default-size CPU runs peaked at 1.3-1.9 GB RSS


def is_complete(run_dir: Path, num_rounds: int) -> bool:
    """True if every round 1..num_rounds is `evaluated` in the ledger and final_model exists."""
    if not (run_dir / FINAL_MODEL_DIR).is_dir() or not (run_dir / LEDGER_FILE).is_file():
        return False
    with Ledger(run_dir / LEDGER_FILE) as ledger:
        rounds = ledger.rounds()
    return all(rounds.get(r) == "evaluated" for r in range(1, num_rounds + 1))


def run_state(run: SweepRun) -> RunState:
    """`new`, `incomplete` or `complete`; a run dir holding another config is a RunStoreError."""
    if not (run.run_dir / CONFIG_FILE).is_file():
        return "new"
    check_run_dir(run.config)  # only compares: raises naming the first key that differs
    return "complete" if is_complete(run.run_dir, run.config.loop.num_rounds) else "incomplete"


@dataclass(frozen=True)
class PlannedRun:
    """A run, what state its directory is in, and the command that would finish it (None: skip)."""

    run: SweepRun
    state: RunState
    command: list[str] | None
    log_path: Path


def plan_sweep(spec: SweepSpec) -> list[PlannedRun]:
    """Inspect every run dir (nothing is started or written): skip, resume or run each.

    Registry names and options are checked first, so a typo fails before any run starts.
    """
    from apl.loop.checks import validate_config  # imports the stage registries; only needed here

    for run in spec.runs:
        try:
            validate_config(run.config)
        except ConfigError as err:
            raise ConfigError(f"{spec.source}, run {run.name}: {err}") from None
    planned = []
    for run in spec.runs:
        state = run_state(run)
        command: list[str] | None = None
        if state == "new":
            config_path = spec.root / CONFIGS_DIR / f"{run.name}.yaml"
            command = [sys.executable, "-m", "apl", "run", "--config", str(config_path)]
        elif state == "incomplete":
            command = [sys.executable, "-m", "apl", "resume", str(run.run_dir)]
        planned.append(PlannedRun(run, state, command, spec.root / LOGS_DIR / f"{run.name}.log"))
    return planned


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus(spec: SweepSpec) -> list[str]:
    """CUDA device ids the runs would use ([] when they run on CPU or MPS)."""
    if all(run.config.model.device in ("cpu", "mps") for run in spec.runs):
        return []
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def _memory_bytes() -> int | None:
    """Memory available to new processes (MemAvailable counts reclaimable page cache)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def worker_slots(
    spec: SweepSpec, parallel: int | None, threads: int | None, todo: int
) -> list[dict[str, str]]:
    """One environment patch per concurrent worker: its GPU, or its share of the CPU threads."""
    if parallel is not None and parallel < 1:
        raise ConfigError(f"--parallel ({parallel}) must be >= 1.")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads ({threads}) must be >= 1.")
    gpus = visible_gpus(spec)
    wanted = parallel or spec.parallel
    if gpus:
        count = max(1, min(wanted or len(gpus), todo))
        return [{"CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(count)]
    cores = available_cores()
    if wanted is None:  # one single-threaded run per core, as memory allows
        memory = _memory_bytes()
        wanted = min(cores, memory // _MEMORY_PER_RUN) if memory else cores
    count = max(1, min(wanted, todo))
    per_run = str(threads or max(1, cores // count))
    return [{"OMP_NUM_THREADS": per_run, "MKL_NUM_THREADS": per_run} for _ in range(count)]


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run of the sweep."""

    name: str
    run_dir: Path
    action: Literal["skip", "run", "resume"]
    ok: bool
    returncode: int | None
    seconds: float
    log_path: Path
    detail: str = ""  # the last log line of a failed run


@dataclass(frozen=True)
class SweepResult:
    """Every run's outcome, in grid order."""

    outcomes: list[RunOutcome]

    @property
    def failed(self) -> list[RunOutcome]:
        """Runs that exited non-zero or did not end complete."""
        return [o for o in self.outcomes if not o.ok]


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def _launch(item: PlannedRun, slots: queue.Queue[dict[str, str]]) -> RunOutcome:
    run, command = item.run, item.command
    assert command is not None
    action: Literal["run", "resume"] = "run" if item.state == "new" else "resume"
    if action == "run":
        config_path = Path(command[-1])
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(dump_config(run.config), encoding="utf-8")
    item.log_path.parent.mkdir(parents=True, exist_ok=True)
    slot = slots.get()
    start = time.perf_counter()
    try:
        env = dict(os.environ) | slot
        with item.log_path.open("a", encoding="utf-8") as log:
            log.write(
                f"# apl sweep {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)} {slot}\n"
            )
            log.flush()
            logger.info(
                "%s: %s (%s)", run.name, action, ", ".join(f"{k}={v}" for k, v in slot.items())
            )
            code = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                check=False,
            ).returncode
    finally:
        slots.put(slot)
    seconds = time.perf_counter() - start
    ok = code == 0 and is_complete(run.run_dir, run.config.loop.num_rounds)
    detail = "" if ok else _last_line(item.log_path)
    if not ok:
        logger.error(
            "%s failed (exit %s) after %.0f s: %s; see %s",
            run.name,
            code,
            seconds,
            detail,
            item.log_path,
        )
    return RunOutcome(run.name, run.run_dir, action, ok, code, seconds, item.log_path, detail)


def share_spend_limit(spec: SweepSpec) -> Path | None:
    """Write the sweep's limits to its spend file and link every run to it; None: no limit.

    A new run's directory is created here (with its config), so its first process already
    counts against the sweep. Each run's earlier spend is added once.
    """
    path = spec.root / SWEEP_SPEND_FILE
    if spec.budget_usd is None and spec.max_calls is None and not path.is_file():
        return None
    spec.root.mkdir(parents=True, exist_ok=True)
    with CallJournal.for_sweep(path) as journal:
        journal.set_limits(spec.budget_usd, spec.max_calls)
    for run in spec.runs:
        run_dir = open_run_dir(run.config)
        with run_dir.exclusive():  # not while a process of that run is buying labels
            link_run(run_dir.ledger_path, path, run.name)
    return path


def run_sweep(
    spec: SweepSpec, parallel: int | None = None, threads: int | None = None
) -> SweepResult:
    """Finish every run of `spec`: skip complete ones, resume incomplete ones, start new ones."""
    planned = plan_sweep(spec)
    if share_spend_limit(spec) is not None:
        logger.info(
            "Sweep limit: budget_usd %s, max_calls %s over all runs (%s)",
            spec.budget_usd,
            spec.max_calls,
            spec.root / SWEEP_SPEND_FILE,
        )
    todo = [p for p in planned if p.command is not None]
    outcomes: dict[str, RunOutcome] = {
        p.run.name: RunOutcome(p.run.name, p.run.run_dir, "skip", True, None, 0.0, p.log_path)
        for p in planned
        if p.command is None
    }
    logger.info(
        "Sweep %s: %d runs, %d complete (skipped), %d to run",
        spec.root,
        len(planned),
        len(outcomes),
        len(todo),
    )
    if todo:
        slot_envs = worker_slots(spec, parallel, threads, len(todo))
        slots: queue.Queue[dict[str, str]] = queue.Queue()
        for slot in slot_envs:
            slots.put(slot)
        # A bar on a terminal; elsewhere (CI, nohup, a log file) one log line per finished run.
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=not live_display(),
        )
        with progress, ThreadPoolExecutor(max_workers=len(slot_envs)) as pool:
            bar = progress.add_task(f"sweep ({len(slot_envs)} at a time)", total=len(todo))
            futures = {pool.submit(_launch, item, slots): item for item in todo}
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except OSError as err:  # could not write its config or log: report, go on
                    item = futures[future]
                    logger.error("%s could not start: %s", item.run.name, err)
                    outcome = RunOutcome(
                        item.run.name,
                        item.run.run_dir,
                        "run",
                        False,
                        None,
                        0.0,
                        item.log_path,
                        str(err),
                    )
                outcomes[outcome.name] = outcome
                progress.advance(bar)
                if progress.disable:
                    finished = len(outcomes) - (len(planned) - len(todo))
                    logger.info(
                        "Sweep: %d/%d runs finished (%s %s)",
                        finished,
                        len(todo),
                        outcome.name,
                        "ok" if outcome.ok else "FAILED",
                    )
    return SweepResult([outcomes[p.run.name] for p in planned])
