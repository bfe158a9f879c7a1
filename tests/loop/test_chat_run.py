"""`apl run` on a chat model with a conversational pool, judged over HTTP with the `chat` template.

The model is the tiny GPT-2 turned into a chat model here (tests/chat_model.py: ChatML
template, `<|im_end|>` ending its turns); the judge is the OpenAI-compatible client talking to
a real local server that prefers the shorter reply. One run goes straight through with full
fine-tuning; one with LoRA is stopped by its call budget mid-run and resumed.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.store.run_dir import load_run_dir

from .conftest import ChatServer, Reply, run_config, user_message, write_config

SYSTEM = "Be brief."


def prefer_shorter(request) -> Reply:
    """A stand-in judge for the chat template: the shorter reply is the better one."""
    text = user_message(request)
    a = text.split("\n\nReply A: ", 1)[1].split("\n\nReply B: ", 1)[0]
    b = text.split("\n\nReply B: ", 1)[1].split("\n\nFirst, provide", 1)[0]
    winner = "A" if len(a) <= len(b) else "B"
    return Reply(content=f"Comparison: {winner} is more concise.\nPreferred: {winner}")


@pytest.fixture()
def chat_judge():
    server = ChatServer(default=prefer_shorter).start()
    yield server
    server.stop()


@pytest.fixture()
def chat_pool(tmp_path):
    """60 conversations in TRL's `messages` format: one or three turns."""
    rows = []
    for i in range(60):
        turns = [{"role": "user", "content": f"Which film should I watch tonight, number {i}?"}]
        if i % 2:
            turns += [
                {"role": "assistant", "content": "What do you like?"},
                {"role": "user", "content": f"Films like number {i + 1}."},
            ]
        rows.append({"messages": turns})
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat_config(model_dir, out, pool, server, **sections):
    return run_config(
        model_dir,
        out,
        task={"name": "custom", "path": str(pool), "system_prompt": SYSTEM, "test_fraction": 0.2},
        oracle={
            "name": "openai_judge",  # the task injects template: chat
            "model": "judge-test",
            "base_url": server.base_url,
            "api_key_env": "APL_TEST_KEY",
            "prices": {"judge-test": [1.0, 2.0]},
            "concurrency": 1,
        },
        generation={"batch_size": 32, "min_new_tokens": 6, "max_new_tokens": 12},
        loop={"label_budget": 8, "query_size": 4, "pool_size": 8},
        dpo={"num_train_epochs": 2, "learning_rate": 1e-3, "per_device_train_batch_size": 4},
        evaluation={"num_prompts": 4},
        **sections,
    )


def check_chat_run(out, server, tokenizer_dir):
    """What every finished chat run must hold, whatever way it got there."""
    from transformers import AutoTokenizer

    end = AutoTokenizer.from_pretrained(tokenizer_dir).convert_tokens_to_ids("<|im_end|>")
    with load_run_dir(out).open_ledger() as ledger:
        assert ledger.rounds() == {1: "evaluated", 2: "evaluated"}
        labelled = ledger.labelled()
        metrics = ledger.metrics()
        eval_prompts = ledger.eval_prompts()
        held = [
            j
            for r in (1, 2)
            for v in (ledger.verdicts(r), ledger.eval_verdicts(r))
            for j in v.values()
        ]
        bought = sum(not j.from_cache for j in held)  # a repeated eval pair comes from the cache
    assert len(labelled) == 8 and "rewards/margins" in metrics[2]
    assert 0 <= metrics[2]["eval/win_rate"] <= 1
    for item in labelled:
        prompt = item.preference.prompt
        assert prompt.messages[0].content == SYSTEM and prompt.messages[-1].role == "user"
        assert prompt.text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n")
        assert prompt.text.endswith("<|im_start|>assistant\n")
        for side in (item.preference.chosen, item.preference.rejected):
            assert end not in side.token_ids[:-1]  # a turn ends at its first <|im_end|>
    sides = [s for i in labelled for s in (i.preference.chosen, i.preference.rejected)]
    assert any(s.token_ids[-1] == end for s in sides)  # some replies ended their turn
    assert all(p.messages for p in eval_prompts)
    # Every paid request showed the conversation by role, and none was bought twice.
    texts = [user_message(r) for r in server.requests]
    assert len(texts) == len(set(texts)) == bought
    assert all(f"Conversation:\nSystem: {SYSTEM}\n\nUser: Which film" in t for t in texts)
    assert all("<|im_start|>" not in t for t in texts)
    rows = [json.loads(line) for line in (out / "export" / "preferences.jsonl").open()]
    assert len(rows) == 8 and rows[0]["prompt"][0] == {"role": "system", "content": SYSTEM}
    assert rows[0]["chosen"][0]["role"] == "assistant"
    saved = AutoTokenizer.from_pretrained(out / "final_model")
    assert saved.chat_template and saved.convert_tokens_to_ids("<|im_end|>") == end


def test_chat_run_end_to_end(tmp_path, tiny_chat_model_dir, chat_pool, chat_judge, monkeypatch):
    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("APL_TEST_KEY", "sk-test-key")
    out = tmp_path / "run"
    config = chat_config(tiny_chat_model_dir, out, chat_pool, chat_judge)
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path / "chat.yaml", config))])
    assert result.exit_code == 0, result.output
    check_chat_run(out, chat_judge, tiny_chat_model_dir)


def test_chat_run_with_lora_stopped_by_its_budget_resumes(
    tmp_path, tiny_chat_model_dir, chat_pool, chat_judge, monkeypatch
):
    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("APL_TEST_KEY", "sk-test-key")
    out = tmp_path / "run"
    lora = {"model_name_or_path": str(tiny_chat_model_dir), "bf16": False}
    lora["lora"] = {"r": 4, "lora_alpha": 8, "target_modules": ["c_attn"]}
    config = chat_config(tiny_chat_model_dir, out, chat_pool, chat_judge, model=lora)
    config["oracle"]["max_calls"] = 6  # round 1's 4 labels, then 2 of its 4 eval verdicts
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(write_config(tmp_path / "lora.yaml", config))])
    assert first.exit_code == 2 and "max_calls" in first.output, first.output
    with load_run_dir(out).open_ledger() as ledger:
        assert ledger.phase(1) == "trained" and len(ledger.eval_verdicts(1)) == 2
    again = runner.invoke(app, ["resume", str(out), "oracle.max_calls=100"])
    assert again.exit_code == 0, again.output
    check_chat_run(out, chat_judge, tiny_chat_model_dir)
    assert (out / "final_model" / "adapter_config.json").is_file()  # the LoRA adapter alone


@pytest.mark.slow
def test_a_chat_run_goes_through_apl_sweep(
    tmp_path, tiny_chat_model_dir, chat_pool, chat_judge, monkeypatch
):
    """A sweep whose grid sets a chat option runs its run as a real `apl run` child process."""
    from apl.sweep import load_sweep_spec

    monkeypatch.setenv("APL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("APL_TEST_KEY", "sk-test-key")
    base = chat_config(tiny_chat_model_dir, tmp_path / "unused", chat_pool, chat_judge)
    del base["output_dir"]
    base["task"]["system_prompt"] = "Be kind."  # the grid must replace it
    write_config(tmp_path / "base.yaml", base)
    spec = {"base": "base.yaml", "grid": {"task.system_prompt": [SYSTEM]}}
    spec["output_dir"] = str(tmp_path / "sweep")
    spec_path = write_config(tmp_path / "sweep.yaml", spec)
    result = CliRunner().invoke(app, ["sweep", str(spec_path)])
    assert result.exit_code == 0, result.output
    (run,) = load_sweep_spec(spec_path).runs
    assert " -m apl run --config " in (tmp_path / "sweep" / "logs" / f"{run.name}.log").read_text()
    check_chat_run(run.run_dir, chat_judge, tiny_chat_model_dir)
