"""One rank of the split model work, launched by tests/policy/test_sharding.py.

Under `accelerate launch --multi_gpu --num_processes N` (gloo on CPU) every rank runs the same
calls with `Shards` of the process group; with plain `python` it is the 1-process peer. Each
rank saves what it got back, and how many forward passes its own models ran, to
`<out>/rank<k>.pt`. Besides the view's own calls it runs the two callers that sample most:
entropy's acquisition (4 Monte-Carlo samples per prompt, then a pair for the kept prompts) and
the loop's evaluation sampling (`apl.loop.evaluating.eval_completions`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import SimpleNamespace


def main() -> None:
    """Sample, score (reference and policy), take features, acquire, evaluate; save every result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--prompts", required=True, help="one prompt text per line")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from apl.acquisition.entropy import EntropyAcquisition
    from apl.config import GenerationConfig
    from apl.loop.evaluating import eval_completions
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
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    reference = ReferenceModel.from_policy(model, tokenizer, batch_size=4)
    torch.manual_seed(1)
    with torch.no_grad():  # a policy away from its reference, the same on every rank
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    forwards = {"policy": 0, "reference": 0}
    model.register_forward_pre_hook(
        lambda *_: forwards.__setitem__("policy", forwards["policy"] + 1)
    )
    reference.model.register_forward_pre_hook(
        lambda *_: forwards.__setitem__("reference", forwards["reference"] + 1)
    )
    texts = Path(args.prompts).read_text().splitlines()
    prompts = [Prompt(uid=f"u{i}", text=t) for i, t in enumerate(texts)]
    generation = GenerationConfig(min_new_tokens=3, max_new_tokens=9, batch_size=6)
    # The same generator on every rank, as rank 0's own would be: entropy's calls draw their
    # stream seeds from it (in the loop only rank 0 draws and sends the seeds).
    generator = torch.Generator().manual_seed(7)
    view = ModelPolicyView(model, tokenizer, reference, generation, beta=0.1, generator=generator)
    reference.shards = view.shards = shards

    samples = view.sample(prompts, 3, 1.0, seed=11)  # 2 prompts a batch: 8 batches
    after_sampling = dict(forwards)
    flat = [(p, c) for p, row in zip(prompts, samples, strict=True) for c in row]
    policy_lp, ref_lp = view.policy_and_reference_logps([p for p, _ in flat], [c for _, c in flat])
    features = view.features([p for p, _ in flat[:10]], [c for _, c in flat[:10]])
    prompt_features = view.prompt_features(prompts)
    before = dict(forwards)
    acquired = EntropyAcquisition(num_samples=4, annotate=False).acquire(
        prompts, view, 4, np.random.default_rng(0), pool_size=len(prompts)
    )
    after_entropy = dict(forwards)
    evaluation = SimpleNamespace(evaluation=SimpleNamespace(temperature=0.7))
    evaluated = eval_completions(SimpleNamespace(config=evaluation, view=view), prompts, 5)
    after_eval = dict(forwards)
    result = {
        "rank": shards.rank,
        "world": shards.world,
        "samples": [[(c.text, c.token_ids, c.logp) for c in row] for row in samples],
        "policy_logps": policy_lp,
        "reference_logps": ref_lp,
        "features": np.concatenate([features, prompt_features]),
        "sequences_scored": reference.sequences_scored,
        "forwards_sampling": after_sampling,
        "forwards": before,
        "acquired": [
            (p.prompt.uid, p.a.token_ids, p.b.token_ids, p.extras["entropy"]) for p in acquired
        ],
        "forwards_entropy": after_entropy["policy"] - before["policy"],
        "evaluated": [(c.token_ids, c.logp) for c in evaluated],
        "forwards_eval": after_eval["policy"] - after_entropy["policy"],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(result, out / f"rank{shards.rank}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
