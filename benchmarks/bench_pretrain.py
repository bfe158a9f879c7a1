"""Pretraining throughput: bf16 autocast against fp32, same model, same batches, same run.

Prints tokens/s for each and their ratio (the figure that matters: `apl pretrain` turns bf16
autocast on by default where the CPU has native bf16). Rounds alternate fp32 / bf16 so a
shared machine's load hits both alike.

    python benchmarks/bench_pretrain.py [--steps 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from apl.policy.model import bf16_supported
from apl.pretrain.config import PretrainConfig
from apl.pretrain.train import autocast_for


def _model(config: PretrainConfig) -> GPT2LMHeadModel:
    gpt = GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    return GPT2LMHeadModel(gpt).train()


def _steps_per_s(model, batches, bf16: bool) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    for batch in batches:
        with autocast_for(bf16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(batches) / (time.perf_counter() - start)


def main() -> None:
    """Run alternating fp32 / bf16 rounds of training steps and print the throughput ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = PretrainConfig()
    gen = torch.Generator().manual_seed(0)
    shape = (config.batch_size, config.n_positions)
    batches = [torch.randint(0, config.vocab_size, shape, generator=gen) for _ in range(args.steps)]
    model = _model(config)
    _steps_per_s(model, batches[:2], bf16=False)  # warm-up: allocator, oneDNN primitives
    _steps_per_s(model, batches[:2], bf16=True)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for bf16 in (False, True):
            rates[bf16].append(_steps_per_s(model, batches, bf16))
    tokens = config.batch_size * config.n_positions
    fp32, bf16 = (statistics.median(rates[k]) * tokens for k in (False, True))
    native = bf16_supported(torch.device("cpu"))
    print(f"cpu native bf16: {native}; threads {torch.get_num_threads()}")
    print(f"model {config.n_layer}x{config.n_embd}, vocab {config.vocab_size}, batch {shape}")
    print(f"fp32          {fp32:8,.0f} tokens/s (median of {args.rounds} x {args.steps} steps)")
    print(f"bf16 autocast {bf16:8,.0f} tokens/s")
    print(f"ratio bf16/fp32: {bf16 / fp32:.2f}x")


if __name__ == "__main__":
    main()
