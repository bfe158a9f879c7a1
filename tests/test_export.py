"""Export of the labelled set: TRL-style JSONL and a `datasets` directory TRL's DPO trains on."""

from __future__ import annotations

import json

import pytest

from apl.config import config_from_dict
from apl.errors import RunStoreError
from apl.export import DATASET_DIR, PREFERENCES_FILE, export_preferences, export_run
from apl.store.run_dir import open_run_dir
from apl.types import Completion, Judgement, Pair, Prompt, Verdict

VERDICTS = [Verdict.A, Verdict.B, Verdict.TIE, Verdict.INVALID, Verdict.B, Verdict.A]


@pytest.fixture()
def labelled_run(tmp_path, imdb_sample_texts, tiny_model_and_tokenizer):
    """A run dir whose ledger holds 2 rounds of real-review pairs with mixed verdicts."""
    _, tokenizer = tiny_model_and_tokenizer
    run = open_run_dir(config_from_dict({"output_dir": str(tmp_path / "run")}))
    with run.open_ledger() as ledger:
        for r in range(2):
            pairs = []
            for i in range(6):
                text = imdb_sample_texts[r * 6 + i]
                words = text.split()
                prompt = " ".join(words[:8])
                a, b = " " + " ".join(words[8:20]), " " + " ".join(words[20:30])
                pairs.append(
                    Pair(
                        Prompt(f"train-{r}-{i}", prompt),
                        Completion(a, tuple(tokenizer(a, add_special_tokens=False)["input_ids"])),
                        Completion(b, tuple(tokenizer(b, add_special_tokens=False)["input_ids"])),
                        score=float(6 - i),
                    )
                )
            for cand, verdict in zip(ledger.save_candidates(r, pairs), VERDICTS, strict=True):
                ledger.record_verdict(
                    cand.id, Judgement(verdict, f"why {cand.id}", "BA", judge_id="j1")
                )
        expected = ledger.labelled()
    return run, expected


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_writes_trl_rows_in_round_rank_order(labelled_run):
    run, expected = labelled_run
    result = export_run(run.path)
    assert result.jsonl_path == run.path / "export" / PREFERENCES_FILE
    rows = read_jsonl(result.jsonl_path)
    assert result.num_rows == len(rows) == 8  # 2 rounds x (A, B, B, A); ties and invalid dropped
    for row, item in zip(rows, expected, strict=True):
        pref = item.preference
        assert (row["prompt"], row["chosen"], row["rejected"]) == (
            pref.prompt.text,
            pref.chosen.text,
            pref.rejected.text,
        )
        assert (row["round"], row["rank"], row["prompt_uid"]) == (
            item.round,
            item.rank,
            pref.prompt.uid,
        )
        assert row["rationale"] == f"why {item.candidate_id}" and row["judge_id"] == "j1"
    assert [(r["round"], r["rank"]) for r in rows] == [
        (0, 0),
        (0, 1),
        (0, 4),
        (0, 5),
        (1, 0),
        (1, 1),
        (1, 4),
        (1, 5),
    ]
    # A B verdict swaps the sides: rank 1 chose completion b.
    assert rows[1]["chosen"].split() == run_texts(labelled_run, 0, 1)[1].split()


def run_texts(labelled_run, r, rank):
    run, _ = labelled_run
    with run.open_ledger() as ledger:
        pair = ledger.candidates(r)[rank].pair
    return pair.a.text, pair.b.text


def test_json_and_disk_datasets_read_back_the_same_rows(labelled_run):
    from datasets import load_dataset, load_from_disk

    run, _ = labelled_run
    result = export_run(run.path, run.path / "out")
    rows = read_jsonl(result.jsonl_path)
    from_json = load_dataset("json", data_files=str(result.jsonl_path), split="train")
    from_disk = load_from_disk(str(result.dataset_path))
    assert result.dataset_path == run.path / "out" / DATASET_DIR
    assert from_json.to_list() == rows
    assert from_disk.to_list() == rows
    export_run(run.path, run.path / "out")  # exporting again replaces the dataset atomically
    assert load_from_disk(str(result.dataset_path)).to_list() == rows


def test_trl_dpo_trainer_accepts_and_trains_on_the_export(
    labelled_run, tiny_model_and_tokenizer, tmp_path
):
    """TRL 1.16's own dataset preparation and one optimiser step on the exported directory."""
    from datasets import load_from_disk
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational

    run, expected = labelled_run
    model, tokenizer = tiny_model_and_tokenizer
    dataset = load_from_disk(str(export_run(run.path).dataset_path))
    assert not is_conversational(dataset[0])  # TRL's standard preference format
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=4,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataset_num_proc=None,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    first = trainer.train_dataset[0]
    pref = expected[0].preference
    chosen = tokenizer.decode(first["prompt_ids"] + first["chosen_ids"])
    assert chosen.startswith(pref.prompt.text) and pref.chosen.text.strip() in chosen
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("rewards/margins" in log for log in trainer.state.log_history)


def test_plain_preferences_export_without_provenance(labelled_run, tmp_path):
    _, expected = labelled_run
    result = export_preferences([item.preference for item in expected], tmp_path / "plain")
    rows = read_jsonl(result.jsonl_path)
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "prompt_uid"}
    assert [r["chosen"] for r in rows] == [i.preference.chosen.text for i in expected]


def test_a_run_without_labels_exports_empty_files_with_the_columns(tmp_path):
    from datasets import load_from_disk

    run = open_run_dir(config_from_dict({"output_dir": str(tmp_path / "run")}))
    run.open_ledger().close()
    result = export_run(run.path)
    assert result.num_rows == 0 and result.jsonl_path.read_text() == ""
    empty = load_from_disk(str(result.dataset_path))
    assert len(empty) == 0 and {"prompt", "chosen", "rejected", "round"} <= set(empty.column_names)


def test_export_errors_are_one_line(tmp_path):
    run = open_run_dir(config_from_dict({"output_dir": str(tmp_path / "run")}))
    with pytest.raises(RunStoreError, match="has no ledger.sqlite yet") as err:
        export_run(run.path)
    assert "\n" not in str(err.value)
    with pytest.raises(RunStoreError, match="not an apl run directory"):
        export_run(tmp_path / "nowhere")


@pytest.fixture()
def chat_run(tmp_path, tiny_chat_model_and_tokenizer):
    """A run dir whose ledger holds pairs sampled by the tiny chat model for templated prompts."""
    import torch

    from apl.data.custom import CustomTask
    from apl.policy.sampling import encode_prompts, sample_completions

    model, tokenizer = tiny_chat_model_and_tokenizer
    pool = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Name film {i}."}]} for i in range(8)]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = CustomTask(str(pool), test_fraction=0.0, system_prompt="Be brief.")
    prompts = task.load_prompts("train", tokenizer)
    samples = sample_completions(
        model,
        tokenizer,
        encode_prompts(tokenizer, [p.text for p in prompts]),
        min_new_tokens=6,
        max_new_tokens=10,
        generator=torch.Generator().manual_seed(0),
    )
    run = open_run_dir(config_from_dict({"output_dir": str(tmp_path / "run")}))
    with run.open_ledger() as ledger:
        pairs = [Pair(p, a, b) for p, (a, b) in zip(prompts, samples, strict=True)]
        for cand, verdict in zip(ledger.save_candidates(1, pairs), VERDICTS[:2] * 4, strict=True):
            ledger.record_verdict(cand.id, Judgement(verdict, "why", "AB", judge_id="j"))
        expected = ledger.labelled()
    return run, expected


def test_chat_prompts_export_in_trls_conversational_format(chat_run):
    run, expected = chat_run
    rows = read_jsonl(export_run(run.path).jsonl_path)
    assert len(rows) == len(expected) == 8
    for row, item in zip(rows, expected, strict=True):
        pref = item.preference
        assert row["prompt"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": pref.prompt.messages[1].content},
        ]
        assert row["chosen"] == [{"role": "assistant", "content": pref.chosen.text}]
        assert row["rejected"] == [{"role": "assistant", "content": pref.rejected.text}]


def test_trl_dpo_trainer_trains_on_the_conversational_export_unchanged(
    chat_run, tiny_chat_model_and_tokenizer, tmp_path
):
    """TRL renders the exported conversation with the same template: its prompt ids are the
    ones apl sampled from, and each reply ends with the end-of-turn token."""
    from datasets import load_from_disk
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational

    run, expected = chat_run
    model, tokenizer = tiny_chat_model_and_tokenizer
    dataset = load_from_disk(str(export_run(run.path).dataset_path))
    assert is_conversational(dataset[0])
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=4,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        dataset_num_proc=None,
    )
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    for row, item in zip(trainer.train_dataset, expected, strict=True):
        pref = item.preference
        assert (
            row["prompt_ids"] == tokenizer(pref.prompt.text, add_special_tokens=False)["input_ids"]
        )
        assert tokenizer.decode(row["chosen_ids"]) == f"{pref.chosen.text}<|im_end|>\n"
        assert tokenizer.decode(row["rejected_ids"]) == f"{pref.rejected.text}<|im_end|>\n"
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("rewards/margins" in log for log in trainer.state.log_history)


def test_export_writes_a_dataset_card_from_the_ledger(labelled_run):
    from cards.helpers import machine_paths
    from huggingface_hub import DatasetCard

    run, _ = labelled_run
    result = export_run(run.path)
    card_path = result.jsonl_path.parent / "README.md"
    card = DatasetCard.load(card_path)
    assert card.data.apl["verdicts"] == {"A": 4, "B": 4, "tie": 2, "invalid": 2}
    assert card.data.apl["labels"] == 8 and card.data.apl["judge_id"] == "j1"
    assert card.data.apl["base_model"] == "builtin:imdb-gpt2"
    assert card.data.apl["base_model_fingerprint"].startswith("local:")
    assert machine_paths(card_path.read_text()) == []
    assert not (run.path / "final_model").exists()  # no model yet: no model card
