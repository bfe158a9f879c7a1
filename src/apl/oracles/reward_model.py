"""A local reward model as the judge: any Hugging Face sequence-classification model.

Each completion is scored on its own, as the chat (user: prompt, assistant: completion) when
the tokenizer has a chat template, else as the text prompt + completion. The higher score wins;
a difference of at most `margin` is a TIE. Scoring runs in batches, longest first, on the best
device (cuda, then mps, then cpu), in bf16 where the device supports it. The judge id holds the
weights' fingerprint (content hash of a local directory, or hub name @ commit), the margin, the
template handling and the label read, so a changed model never reuses cached verdicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from apl.errors import ConfigError, OracleError
from apl.oracles.base import ORACLES, JudgementCache, JudgeRequest, Oracle
from apl.policy.fingerprint import model_fingerprint
from apl.types import Judgement, Verdict

logger = logging.getLogger(__name__)

_DTYPES = ("float32", "bfloat16", "float16")  # torch is imported when the judge is built


@ORACLES.register("reward_model")
class RewardModelJudge(Oracle):
    """A sequence-classification reward model scoring each completion; higher score wins."""

    temperature_option = ""  # deterministic: nothing to vary

    def __init__(
        self,
        model_name_or_path: str | None = None,  # hub name or local directory (required)
        margin: float = 0.0,  # |score A - score B| <= margin is a TIE
        batch_size: int = 16,  # sequences per forward pass; also pairs per judge call
        max_length: int | None = None,  # tokens; None: the model's context. Cut from the left
        chat_template: bool | None = None,  # None: use the tokenizer's if it has one
        label: int | str | None = None,  # models with several outputs: log p(label) is the score
        device: str = "auto",  # cuda > mps > cpu
        dtype: str = "auto",  # auto: bfloat16 where the device supports it, else float32
        trust_remote_code: bool = False,
        template: str = "sentiment",  # injected by the task; a reward model has its own rubric
        cache: JudgementCache | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(cache=cache, seed=seed)
        if not model_name_or_path:
            raise ConfigError(
                "oracle.model_name_or_path is required for reward_model; give a hub name or "
                "a local directory of a sequence-classification model."
            )
        if margin < 0 or batch_size < 1 or (max_length is not None and max_length < 2):
            raise ConfigError(
                f"oracle.margin ({margin}) must be >= 0, batch_size ({batch_size}) >= 1 and "
                f"max_length ({max_length}) >= 2 or null; fix the oracle options."
            )
        if dtype not in ("auto", *_DTYPES):
            raise ConfigError(
                f"oracle.dtype ({dtype!r}) is unknown; use auto or {', '.join(_DTYPES)}."
            )
        self.margin, self.batch_size = margin, batch_size
        self.concurrency = batch_size  # the loop asks for this many pairs per call
        from apl.policy.model import bf16_supported, resolve_device  # torch: only when used

        try:
            self.device = resolve_device(device)
        except ConfigError:
            raise ConfigError(
                f"oracle.device ({device!r}) is not available here; use auto, cpu, cuda or mps."
            ) from None
        if dtype == "auto":
            dtype = "bfloat16" if bf16_supported(self.device) else "float32"
        self.tokenizer, self.model = self._load(model_name_or_path, dtype, trust_remote_code)
        self.max_length = max_length or self._context_length()
        self.use_chat = self._choose_chat(chat_template)
        self.label_index = self._label_index(label)
        fingerprint = model_fingerprint(model_name_or_path)
        self.judge_id = (
            f"reward_model:{fingerprint}|margin={margin:g}|tpl={'chat' if self.use_chat else 'text'}"
            f"|max_length={self.max_length}|label={self.label_index}|dtype={dtype}"
        )

    def _load(self, name: str, dtype: str, trust_remote_code: bool):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = str(Path(name).expanduser()) if name.startswith("~") else name
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, KeyError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise OracleError(
                f"oracle.model_name_or_path ({name!r}) could not be loaded as a sequence-"
                f"classification model: {reason}. Give a local directory or a cached hub name."
            ) from None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            if tokenizer.pad_token is None:
                raise ConfigError(
                    f"oracle.model_name_or_path ({name!r}): its tokenizer has no pad, EOS or "
                    "unknown token to pad batches with; add a pad_token to tokenizer_config.json."
                )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = "left"  # a long prompt loses its start, never the completion
        return tokenizer, model.to(self.device).eval()

    def _context_length(self) -> int:
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx"):
            if isinstance(getattr(config, name, None), int):
                return getattr(config, name)
        return min(self.tokenizer.model_max_length, 4096)

    def _choose_chat(self, wanted: bool | None) -> bool:
        has = bool(getattr(self.tokenizer, "chat_template", None))
        if wanted and not has:
            raise ConfigError(
                "oracle.chat_template is true but the reward model's tokenizer has no chat "
                "template; set it to false (or null) to score prompt + completion as text."
            )
        return has if wanted is None else wanted

    def _label_index(self, label: int | str | None) -> int | None:
        num_labels = self.model.config.num_labels
        if label is None:
            if num_labels != 1:
                names = ", ".join(str(v) for v in self.model.config.id2label.values())
                raise ConfigError(
                    f"oracle.label is not set but the model has {num_labels} outputs ({names}); "
                    "set oracle.label to the one that means 'better' (name or index)."
                )
            return None
        if isinstance(label, str):
            by_name = {str(v).lower(): int(k) for k, v in self.model.config.id2label.items()}
            if label.lower() not in by_name:
                raise ConfigError(
                    f"oracle.label ({label!r}) is not one of the model's labels: "
                    f"{', '.join(by_name)}."
                )
            return by_name[label.lower()]
        if not 0 <= label < num_labels:
            raise ConfigError(f"oracle.label ({label}) is out of range for {num_labels} outputs.")
        return label

    def text(self, prompt: str, completion: str) -> str:
        """What the reward model reads for one completion."""
        if not self.use_chat:
            return prompt + completion
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion},
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    def score(self, texts: list[str]) -> list[float]:
        """One reward per text, batched longest first (less padding)."""
        import torch

        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        scores = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in chunk],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits.float()
            if self.label_index is None:
                values = logits[:, 0]
            else:
                values = torch.log_softmax(logits, dim=-1)[:, self.label_index]
            for i, value in zip(chunk, values.tolist(), strict=True):
                scores[i] = value
        return scores

    def judge(self, request: JudgeRequest) -> Judgement:
        """Judge one request (the batched path is `judge_many`)."""
        out: list[Judgement] = []
        self.judge_many([request], lambda _, judgement: out.append(judgement))
        return out[0]

    def judge_many(
        self, requests: list[JudgeRequest], done: Callable[[int, Judgement], None]
    ) -> None:
        """Score all 2N completions in batches, then decide each pair."""
        if not requests:
            return
        texts = [self.text(r.prompt, r.completion_a) for r in requests]
        texts += [self.text(r.prompt, r.completion_b) for r in requests]
        scores = self.score(texts)
        n = len(requests)
        for i in range(n):
            done(i, self._decide(scores[i], scores[n + i]))

    def _decide(self, s_a: float, s_b: float) -> Judgement:
        diff = s_a - s_b
        if abs(diff) <= self.margin:
            verdict = Verdict.TIE
        else:
            verdict = Verdict.A if diff > 0 else Verdict.B
        rationale = (
            f"Reward A {s_a:.4f}, B {s_b:.4f}: difference {diff:+.4f} "
            f"(margin {self.margin:g}).\nPreferred: {verdict.value}"
        )
        return Judgement(
            verdict=verdict, rationale=rationale, shown_order="AB", judge_id=self.judge_id
        )
