"""A PolicyView that returns hand-chosen log-probs, for hand-computed acquisition cases.

A real model cannot produce chosen log-probs, so the unit tests script them here; the real
`ModelPolicyView` on a tiny model is tested in tests/policy/test_view.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from apl.types import Completion, Prompt


@dataclass
class Scripted:
    """One scripted completion: policy log-prob, token count, reference log-prob."""

    logp: float
    num_tokens: int = 1
    ref: float = 0.0


@dataclass
class ScriptedView:
    """PolicyView over a table uid -> {"samples": [...], "a": Scripted, "b": Scripted}.

    `sample(num_samples=2, temperature=None)` returns the pair (a, b); any other call returns
    the entropy samples. `policy_and_reference_logps` returns (logp, ref) of the scripted
    completions. Every call is recorded so tests can count generations and scoring passes.
    """

    table: dict[str, dict]
    beta: float = 1.0
    is_reference: bool = False
    sample_calls: list[tuple[list[str], int, float | None]] = field(default_factory=list)
    ref_calls: list[int] = field(default_factory=list)  # completions per scoring call

    def _completion(self, uid: str, tag: str, s: Scripted) -> Completion:
        return Completion(text=f"{uid}|{tag}", token_ids=(7,) * s.num_tokens, logp=s.logp)

    def sample(
        self, prompts: list[Prompt], num_samples: int, temperature: float | None = None
    ) -> list[list[Completion]]:
        self.sample_calls.append(([p.uid for p in prompts], num_samples, temperature))
        out = []
        for p in prompts:
            row = self.table[p.uid]
            if num_samples == 2 and temperature is None:
                out.append([self._completion(p.uid, t, row[t]) for t in ("a", "b")])
            else:
                assert len(row["samples"]) == num_samples
                out.append(
                    [self._completion(p.uid, f"s{k}", s) for k, s in enumerate(row["samples"])]
                )
        return out

    def policy_and_reference_logps(
        self, prompts: list[Prompt], completions: list[Completion]
    ) -> tuple[list[float], list[float]]:
        self.ref_calls.append(len(completions))
        policy, reference = [], []
        for p, c in zip(prompts, completions, strict=True):
            uid, tag = c.text.split("|")
            assert uid == p.uid, "completion scored against another prompt"
            scripted = self.table[uid][tag]
            policy.append(scripted.logp)
            reference.append(scripted.ref)
        return policy, reference


def prompts(n: int) -> list[Prompt]:
    """n prompts with uids p0..p{n-1}."""
    return [Prompt(uid=f"p{i}", text=f"prompt {i}") for i in range(n)]
