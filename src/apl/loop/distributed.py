"""The loop on several processes (`accelerate launch`): the main process drives, the others serve.

Rank 0 runs Algorithm 1 exactly as one process does: it alone reads and writes the run
directory (ledger, checkpoints, exports), builds the oracle, opens the judgement cache and
pays for labels. Every piece of model work goes through `Cluster.call(target, method, *args)`:
rank 0 broadcasts the call, then every rank runs the same method on its own copy of the stages
(sampling, reference and policy scoring, features, DPO training, loading a checkpoint), and the
work inside is spread by `apl.policy.sharding.Shards` (or DDP for training). The other ranks sit
in `serve` between calls; what they train on is what rank 0 sends them, so every rank trains on
the labelled set rank 0 holds.

Stopping: rank 0 broadcasts `stop` when the run ends, or when it fails between calls (a
budget stop, people still labelling, a bad run directory). The other ranks then exit with
status 0 whatever happened: rank 0 prints the one-line error and its exit status fails the
launch, and a rank that failed first would make `torchrun` SIGTERM rank 0 while it is still
printing. A failure inside a call, or a killed rank, leaves the collectives broken: the
surviving ranks fail on their next collective and `torchrun` (under `accelerate launch`) stops
them all. Nothing is lost: only rank 0 writes, one committed step at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apl.config import APLConfig
from apl.errors import APLError, ConfigError
from apl.memory import release_free_memory
from apl.policy.sharding import LOCAL, Shards

logger = logging.getLogger(__name__)

# How long a rank waits in one collective. The other ranks wait in `serve` while rank 0 labels,
# which can take hours with an API judge or people (`web`); torch's default (30 min for gloo,
# 10 for NCCL in some versions) would kill a healthy run. A crashed rank is noticed at once
# anyway: its sockets close, and torchrun stops the rest.
COLLECTIVE_TIMEOUT = timedelta(days=7)


def world_size() -> int:
    """The number of processes this one was launched with (`WORLD_SIZE`, 1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank as the launcher set it (`RANK`, 0 when unset), before any group."""
    return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0


@dataclass
class Cluster:
    """This process's place in the run, and the calls rank 0 makes every rank run."""

    shards: Shards = LOCAL
    target: Any = None  # what `call` dispatches on: the process's `Components`
    _in_call: bool = field(default=False, repr=False)

    @property
    def rank(self) -> int:
        """This process's rank (0: the main process)."""
        return self.shards.rank

    @property
    def world(self) -> int:
        """The number of processes."""
        return self.shards.world

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that talks to the oracle and writes the run dir."""
        return self.shards.rank == 0

    # --- rank 0 ------------------------------------------------------------------------------
    def call(self, target: str | None, method: str, *args: Any) -> Any:
        """Run `target.method(*args)` on every rank (`target` None: on the Components itself).

        Rank 0 only; returns rank 0's result. With one process it is a plain call.
        """
        assert self.is_main, "only rank 0 makes calls; the others serve"
        if self.world > 1:
            self._in_call = True
            self._send(("call", target, method, args))
        result = self._run(target, method, args)
        self._in_call = False
        return result

    def proxy(self, target: str, *methods: str) -> Any:
        """`target` whose `methods` run on every rank (through `call`); other attributes local."""
        return _Proxy(self, target, methods)

    def remote(self, target: str) -> Callable[..., Any]:
        """`remote(method, *args)` for one target: the hook `ModelPolicyView.remote` takes."""
        return lambda method, *args: self.call(target, method, *args)

    def stop(self, error: BaseException | None = None) -> None:
        """Tell the other ranks the run is over (with rank 0's exit status on an APLError).

        Skipped after a failure inside a call: the others are inside a collective that no
        longer matches, and rank 0's exit is what frees them.
        """
        if self.world == 1 or self._in_call:
            return
        code = error.exit_code if isinstance(error, APLError) else (0 if error is None else 1)
        self._send(("stop", code))

    # --- every rank --------------------------------------------------------------------------
    def serve(self) -> None:
        """Ranks > 0: run rank 0's calls until it stops (on an error too: rank 0 reports it)."""
        assert not self.is_main
        while True:
            message = self._receive()
            if message[0] == "stop":
                if message[1]:
                    logger.info("Rank 0 stopped the run (exit status %d)", message[1])
                return
            _, target, method, args = message
            self._run(target, method, args)
            release_free_memory()  # as rank 0 does between phases

    def share(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a collective; the others pass anything)."""
        if self.world == 1:
            return value
        return self._send(value) if self.is_main else self._receive()

    def _run(self, target: str | None, method: str, args: tuple) -> Any:
        obj = self.target if target is None else getattr(self.target, target)
        return getattr(obj, method)(*args)

    def _send(self, message: Any) -> Any:
        import torch.distributed as dist

        dist.broadcast_object_list([message], src=0, group=self.shards.group)
        return message

    def _receive(self) -> Any:
        import torch.distributed as dist

        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0, group=self.shards.group)
        return box[0]


class _Proxy:
    """Rank 0's handle on one stage: listed methods run everywhere, the rest is rank 0's own."""

    def __init__(self, cluster: Cluster, target: str, methods: tuple[str, ...]) -> None:
        self._cluster, self._target, self._methods = cluster, target, methods

    def __getattr__(self, name: str) -> Any:
        if name in self._methods:
            return lambda *args: self._cluster.call(self._target, name, *args)
        return getattr(getattr(self._cluster.target, self._target), name)


def start_cluster(config: APLConfig) -> Cluster:
    """Join the process group when launched with several processes; one process: a plain Cluster.

    Called before any model loads: `PartialState` pins each rank to its own accelerator, so
    `model.device: cuda` means rank k's GPU. Collectives run over a gloo group (the default
    group on CPU), with a timeout long enough to wait through labelling.
    """
    world = world_size()
    if world == 1:
        return Cluster()
    check_launch()
    import torch
    import torch.distributed as dist
    from accelerate import PartialState

    cpu = config.model.device == "cpu" or not torch.cuda.is_available()
    state = PartialState(cpu=cpu, timeout=COLLECTIVE_TIMEOUT)
    if not dist.is_initialized():  # WORLD_SIZE set, but accelerate started no group
        raise ConfigError(
            f"WORLD_SIZE is {world} but no process group started; on CPU launch with "
            "`accelerate launch --multi_gpu --num_processes N` (see docs/DISTRIBUTED.md)."
        )
    group = None
    if dist.get_backend() != "gloo":  # NCCL: send Python objects over CPU sockets instead
        group = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
    cluster = Cluster(Shards(state.process_index, state.num_processes, group))
    logger.info("Rank %d of %d (%s)", cluster.rank, cluster.world, dist.get_backend())
    if cluster.is_main:  # TRL's meaning: the global batch grows with the processes
        dpo = config.dpo
        logger.info(
            "DPO's global batch: %d per device x %d processes x %d accumulation = %d",
            dpo.per_device_train_batch_size,
            cluster.world,
            dpo.gradient_accumulation_steps,
            dpo.per_device_train_batch_size * cluster.world * dpo.gradient_accumulation_steps,
        )
    if not cluster.is_main:
        logging.getLogger("apl").setLevel(logging.WARNING)  # rank 0 tells the story once
    return cluster


def check_launch() -> None:
    """Refuse launch settings the loop cannot honour, before any process group starts."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        raise ConfigError(
            "`accelerate launch --use_fsdp` is not supported by `apl run`: every rank samples "
            "and scores its share with a whole copy of the policy, which FSDP shards away. "
            "Launch with --multi_gpu (DDP), and fit the model with model.lora and bf16; see "
            "docs/DISTRIBUTED.md (FSDP)."
        )
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        raise ConfigError(
            "`accelerate launch --use_deepspeed` is not supported by `apl run`; launch with "
            "--multi_gpu (DDP); see docs/DISTRIBUTED.md."
        )
