"""What FSDP does on 2 CPU processes (gloo): through accelerate's config, and torch's own.

Each probe launches 2 processes that wrap a small two-layer model and take one optimiser step,
then print the distributed type accelerate chose and what the model became (DDP, FSDP, a plain
module) and whether its weights are sharded. Asked four ways through accelerate (`accelerate
launch --use_fsdp` with FSDP 1 and 2, with and without `Accelerator(cpu=True)`, and an explicit
`FullyShardedDataParallelPlugin` under `--multi_gpu`), and once with torch's `fully_shard`
under torchrun. docs/DISTRIBUTED.md (FSDP) quotes the output.

    python benchmarks/probe_fsdp_cpu.py
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

LAUNCH = [
    sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    "--num_cpu_threads_per_process", "1", "--main_process_port", "0",
]  # fmt: skip
PROBES = [
    ("--use_fsdp --fsdp_version 1, Accelerator(cpu=True)", ["--use_fsdp", "--fsdp_version", "1"], "cpu"),
    ("--use_fsdp --fsdp_version 2, Accelerator(cpu=True)", ["--use_fsdp", "--fsdp_version", "2"], "cpu"),
    ("--use_fsdp --fsdp_version 2, Accelerator()", ["--use_fsdp", "--fsdp_version", "2"], "default"),
    ("--multi_gpu, Accelerator(cpu=True, fsdp_plugin=v1)", ["--multi_gpu"], "plugin1"),
    ("--multi_gpu, Accelerator(cpu=True, fsdp_plugin=v2)", ["--multi_gpu"], "plugin2"),
]  # fmt: skip


def small_model():
    """Two linear layers: enough to see whether each weight is whole or split."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))


def accelerate_worker(mode: str) -> None:
    """One rank: an Accelerator as `mode` says, prepare, one step, one line of facts."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import FullyShardedDataParallelPlugin

    torch.set_num_threads(1)
    if mode == "cpu":
        acc = Accelerator(cpu=True)  # what apl's trainer asks for on CPU
    elif mode == "default":
        acc = Accelerator()
    else:
        plugin = FullyShardedDataParallelPlugin(fsdp_version=int(mode[-1]))
        acc = Accelerator(cpu=True, fsdp_plugin=plugin)
    model = small_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, opt = acc.prepare(model, opt)
    acc.backward(model(torch.randn(4, 64)).pow(2).mean())
    opt.step()
    weight = next(model.parameters())
    local = weight.to_local().shape if hasattr(weight, "to_local") else weight.shape
    print(
        f"rank {acc.process_index} of {acc.num_processes}: {acc.distributed_type}, "
        f"fsdp plugin in state: {getattr(acc.state, 'fsdp_plugin', None) is not None}, "
        f"model {type(model).__name__}, first weight {tuple(local)} of (64, 64)",
        flush=True,
    )


def torch_worker() -> None:
    """One rank: torch's FSDP2 `fully_shard` over gloo, no accelerate."""
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    model = small_model()
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 64)).pow(2).mean().backward()
    opt.step()
    weight = next(model.parameters())
    print(
        f"rank {dist.get_rank()} of {dist.get_world_size()}: model {type(model).__name__}, "
        f"first weight {type(weight).__name__} {tuple(weight.to_local().shape)} of (64, 64)",
        flush=True,
    )
    dist.destroy_process_group()


def run(cmd: list[str]) -> str:
    """The rank lines of a launch, or its last error line."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    # Two processes share stdout, so their lines can run together: split on the facts' shape.
    lines = sorted(re.findall(r"rank \d+ of \d+: .*?of \(64, 64\)", done.stdout))
    if lines:
        return "\n    ".join(lines)
    errors = [line for line in done.stderr.splitlines() if "Error:" in line]
    return f"failed (exit {done.returncode}): {errors[0] if errors else done.stderr[-300:]}"


def main() -> None:
    """Run every probe; print what each gave."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerate-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.accelerate_worker:
        return accelerate_worker(args.accelerate_worker)
    if args.torch_worker:
        return torch_worker()
    import accelerate
    import torch

    print(f"accelerate {accelerate.__version__}, torch {torch.__version__}, 2 processes, gloo")
    script = str(Path(__file__).resolve())
    for title, flags, mode in PROBES:
        out = run([*LAUNCH, *flags, script, "--accelerate-worker", mode])
        print(f"accelerate launch {title}:\n    {out}")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    out = run([*torchrun, "--nproc_per_node", "2", script, "--torch-worker"])
    print(f"torchrun, torch's fully_shard:\n    {out}")
    return None


if __name__ == "__main__":
    sys.exit(main())
