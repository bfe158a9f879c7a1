"""A small chat model built offline: a GPT-2 given ChatML turns, an end-of-turn token and a template.

The hub's instruct models cannot be downloaded here, so tests make one the way a chat model
is laid out: `<|im_start|>` / `<|im_end|>` added as special tokens (embeddings resized), a
ChatML-like jinja `chat_template`, and `generation_config.eos_token_id` listing both the
tokenizer's EOS and the end-of-turn token, as Qwen and Llama 3 instruct models do.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

END_OF_TURN = "<|im_end|>"
START_OF_TURN = "<|im_start|>"
CHATML = (
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_chat_model(source: Path, out: Path, end_of_turn_logit: float | None = 4.0) -> Path:
    """Save `source` (a GPT-2 directory) as a chat model in `out`; returns `out`.

    `end_of_turn_logit`: pin the end-of-turn token's logit to this constant (one hidden unit
    made constant by `ln_f`, and the tied embedding row reading only it), so a random model
    ends its turn with a steady probability per step (4.0 gives about 0.1 on the tiny model).
    """
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    tokenizer.add_special_tokens({"additional_special_tokens": [START_OF_TURN, END_OF_TURN]})
    tokenizer.chat_template = CHATML
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_of_turn_logit is not None:
        with torch.no_grad():
            model.transformer.ln_f.weight[0] = 0.0  # hidden unit 0 is now 1 everywhere
            model.transformer.ln_f.bias[0] = 1.0
            row = model.get_output_embeddings().weight[end]
            row.zero_()
            row[0] = end_of_turn_logit
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
