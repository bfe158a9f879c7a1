"""Speed-up of the loop's split model work on 2 ranks against 1 process, on this machine.

Each repeat runs the same workload twice, back to back: once as one plain process and once
under `accelerate launch --multi_gpu --num_processes 2` (gloo on CPU), every process with one
thread. The workload is the shipped imdb-gpt2 policy through `ModelPolicyView` with `Shards`,
as the loop runs it on every rank:
  sample:     --prompts IMDB prompts x 2 completions, T=0.7, 16-24 new tokens (the paper's);
  reference:  log p_ref of those completions through a fresh `ReferenceModel` (no cache);
  paired:     policy and reference over the same chunks (`policy_and_reference_logps`,
              the implicit rewards of certainty), again on a fresh reference.
Each phase is timed on rank 0 from a barrier to the gathered result, so the 2-rank time
includes the gather. Both runs must return bit-identical results (checked). Prints the median
seconds of each phase, the ratio 1 process / 2 ranks, each rank's CPU seconds in each phase
against the 1-process run's (the share of the work it did, which the machine's load disturbs far
less than wall time), and the load average before and after.

    python benchmarks/bench_distributed.py [--prompts 256] [--batch-size 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("sample", "reference", "paired")


def worker(args: argparse.Namespace) -> None:
    """One rank (or the single process): time the phases, save timings and results."""
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_sampling import imdb_prompts, load_default_model

    from apl.config import GenerationConfig
    from apl.policy.reference import ReferenceModel
    from apl.policy.sharding import Shards
    from apl.policy.view import ModelPolicyView
    from apl.types import Prompt

    torch.set_num_threads(1)
    shards = Shards()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        state = PartialState(cpu=True)
        shards = Shards(state.process_index, state.num_processes)
    model, tokenizer, _ = load_default_model()
    ids = imdb_prompts(tokenizer, args.prompts)
    prompts = [Prompt(uid=f"p{i}", text=tokenizer.decode(p)) for i, p in enumerate(ids)]
    generation = GenerationConfig(
        temperature=0.7, min_new_tokens=16, max_new_tokens=24, batch_size=args.batch_size
    )

    def fresh_view() -> ModelPolicyView:
        reference = ReferenceModel.from_policy(model, tokenizer, batch_size=args.batch_size)
        view = ModelPolicyView(model, tokenizer, reference, generation, beta=0.1)
        reference.shards = view.shards = shards
        return view

    cpu: dict[str, float] = {}  # this rank's CPU seconds per phase: its share of the work

    def timed(fn, phase: str):
        if dist.is_initialized():
            dist.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        cpu[phase] = time.process_time() - start_cpu
        return out, time.perf_counter() - start

    view = fresh_view()
    view.sample(prompts[: args.batch_size // 2], 2, seed=1)  # warm-up: first-call costs
    samples, t_sample = timed(lambda: view.sample(prompts, 2, seed=0), "sample")
    rows = [(p, c) for p, row in zip(prompts, samples, strict=True) for c in row]
    view = fresh_view()
    ref, t_ref = timed(lambda: view.reference.logps(
        view.prompt_ids([p for p, _ in rows]), [c.token_ids for _, c in rows]
    ), "reference")  # fmt: skip
    view = fresh_view()
    paired, t_paired = timed(
        lambda: view.policy_and_reference_logps([p for p, _ in rows], [c for _, c in rows]),
        "paired",
    )
    cpus = [cpu]
    if dist.is_initialized():
        cpus = [None] * shards.world
        dist.all_gather_object(cpus, cpu)
    if shards.rank == 0:
        torch.save(
            {
                "seconds": dict(zip(PHASES, (t_sample, t_ref, t_paired), strict=True)),
                "cpu": cpus,
                "result": ([[c.token_ids for c in row] for row in samples], ref, paired),
            },
            Path(args.out) / f"world{shards.world}.pt",
        )
    if dist.is_initialized():
        dist.destroy_process_group()


def launch(world: int, args: argparse.Namespace, out: Path) -> dict:
    """Run the worker as 1 plain process or `world` accelerate ranks; its saved dict."""
    script = [str(Path(__file__).resolve()), "--worker", "--out", str(out)]
    script += ["--prompts", str(args.prompts), "--batch-size", str(args.batch_size)]
    if world == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
            "--num_processes", str(world), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
            "--main_process_port", "0", *script,
        ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    import torch

    return torch.load(out / f"world{world}.pt", weights_only=False)


def main(argv: list[str] | None = None) -> None:
    """Alternate 1-process and 2-rank runs; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64, help="completions per device batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    out = Path(tempfile.mkdtemp(prefix="apl-bench-dist-"))
    load_before = os.getloadavg()
    print(f"cpus={os.cpu_count()}, load avg (1/5/15 min) before: {load_before}")
    print(f"{args.prompts} prompts x 2 completions, batch {args.batch_size} per device, 1 thread")
    times: dict[int, dict[str, list[float]]] = {1: {}, args.ranks: {}}
    cpu: dict[int, dict[str, list[list[float]]]] = {1: {}, args.ranks: {}}  # per rank
    for repeat in range(args.repeats):
        results = {}
        for world in (1, args.ranks):
            saved = launch(world, args, out)
            results[world] = saved["result"]
            for phase, secs in saved["seconds"].items():
                times[world].setdefault(phase, []).append(secs)
                cpu[world].setdefault(phase, []).append([c[phase] for c in saved["cpu"]])
        same = results[1] == results[args.ranks]
        print(f"repeat {repeat + 1}: results identical on 1 and {args.ranks} ranks: {same}")
    for phase in PHASES:
        one = statistics.median(times[1][phase])
        many = statistics.median(times[args.ranks][phase])
        print(
            f"{phase:9s}: 1 process {one:6.2f} s, {args.ranks} ranks {many:6.2f} s, "
            f"speed-up {one / many:.2f}x"
        )
    print("CPU seconds of each rank, median (its share of the 1-process CPU seconds):")
    for phase in PHASES:
        one = statistics.median(c[0] for c in cpu[1][phase])
        ranks = [statistics.median(c[r] for c in cpu[args.ranks][phase]) for r in range(args.ranks)]
        shares = ", ".join(f"rank {r} {s:6.2f} s ({s / one:.0%})" for r, s in enumerate(ranks))
        print(f"{phase:9s}: 1 process {one:6.2f} s; {shares}")
    print(f"load avg (1/5/15 min) after: {os.getloadavg()}")
    return None


if __name__ == "__main__":
    sys.exit(main())
