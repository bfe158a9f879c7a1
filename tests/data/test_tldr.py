"""The TL;DR task on local files of the hub schema (the hub itself is unreachable here)."""

from __future__ import annotations

import json

import datasets
import pandas as pd
import pytest

from apl.data import TASKS
from apl.data.tldr import TldrTask, parse_tldr_prompt
from apl.data.truncation import is_token_prefix
from apl.errors import DataError


@pytest.fixture(scope="module")
def rows(tldr_fixture) -> list[dict]:
    return [json.loads(line) for line in tldr_fixture.read_text().splitlines()]


def kept(rows: list[dict]) -> list[dict]:
    """The rows the paper's filters keep, computed here from the raw fields."""
    out = []
    for row in rows:
        subreddit = row["prompt"].split("\n")[0].removeprefix("SUBREDDIT: r/")
        post = row["prompt"].split("\nPOST: ", 1)[1].rsplit("\nTL;DR:", 1)[0].strip()
        if 200 <= len(post) <= 1000 and subreddit not in ("tifu", "offmychest"):
            out.append(row)
    return out


def test_filters_drop_short_long_and_excluded_posts(tldr_fixture, rows):
    task = TASKS.build("tldr", {"path": str(tldr_fixture)})
    loaded = task.load_prompts("train", None) + task.load_prompts("test", None)
    assert len(rows) == 30 and len(kept(rows)) == 24
    assert sorted(p.text for p in loaded) == sorted(r["prompt"].rstrip() for r in kept(rows))
    for prompt in loaded:
        subreddit, post = parse_tldr_prompt(prompt.text)
        assert subreddit not in ("tifu", "offmychest") and 200 <= len(post) <= 1000
        assert prompt.text.endswith("\nTL;DR:")  # trailing spaces removed
        assert prompt.reference and prompt.reference == prompt.reference.strip()
    labels = {r["prompt"].rstrip(): r["label"].strip() for r in rows}
    assert all(p.reference == labels[p.text] for p in loaded)


def test_single_file_split_is_deterministic_and_disjoint(tldr_fixture):
    first = TldrTask(path=str(tldr_fixture))
    train, test = first.load_prompts("train"), first.load_prompts("test")
    assert train and test and not {p.uid for p in train} & {p.uid for p in test}
    again = TldrTask(path=str(tldr_fixture))
    assert again.load_prompts("test") == test and again.load_prompts("train") == train


def test_split_files_and_saved_dataset_dict_pick_their_split(tmp_path, rows):
    for split, part in (("train", rows[:20]), ("test", rows[20:])):
        pd.DataFrame(part).to_csv(tmp_path / f"tldr_{split}.csv", index=False)
    by_file = TldrTask(path=str(tmp_path / "tldr_{split}.csv"))
    assert [p.text for p in by_file.load_prompts("test")] == [
        r["prompt"].rstrip() for r in kept(rows[20:])
    ]
    saved = tmp_path / "saved"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows[:20]),
            "valid": datasets.Dataset.from_list(rows[20:]),
        }
    ).save_to_disk(str(saved))
    assert len(TldrTask(path=str(saved)).load_prompts("train")) == len(kept(rows[:20]))
    with pytest.raises(DataError, match=r"train, valid but no 'test'"):
        TldrTask(path=str(saved)).load_prompts("test")


def test_prompts_end_where_the_summary_starts_cleanly(tldr_fixture, tiny_tokenizer):
    for prompt in TldrTask(path=str(tldr_fixture)).load_prompts("train"):
        assert is_token_prefix(prompt.text, prompt.text + " " + prompt.reference, tiny_tokenizer)


def test_metadata_and_uids_hash_the_prompt(tldr_fixture):
    task = TldrTask(path=str(tldr_fixture))
    assert (task.baseline, task.judge_template) == ("reference", "summarization")
    uids = [p.uid for p in task.load_prompts("train")]
    assert len(set(uids)) == len(uids) and all(u.startswith("tldr-") for u in uids)


def test_offline_hub_is_a_one_line_error_naming_task_path():
    with pytest.raises(DataError) as err:
        TldrTask().load_prompts("test")
    message = str(err.value)
    assert "CarperAI/openai_summarize_tldr" in message and "task.path=" in message
    assert "\n" not in message


def test_bad_local_files(tmp_path, rows, tldr_fixture):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match=f"{missing} does not exist"):
        TldrTask(path=str(missing)).load_prompts("train")
    no_label = tmp_path / "no_label.jsonl"
    pd.DataFrame([{"prompt": r["prompt"], "summary": r["label"]} for r in rows]).to_json(
        no_label, orient="records", lines=True
    )
    with pytest.raises(
        DataError,
        match=r"no column 'label'; available: prompt, summary; rename a column to 'label'\.$",
    ):
        TldrTask(path=str(no_label)).load_prompts("train")
    other = tmp_path / "other.jsonl"
    pd.DataFrame([{"prompt": "Write a poem about cats.", "label": "x"}] * 3).to_json(
        other, orient="records", lines=True
    )
    with pytest.raises(DataError, match=r"other.jsonl: no row of column 'prompt' has the form"):
        TldrTask(path=str(other), test_fraction=0.0).load_prompts("train")
    with pytest.raises(DataError, match=r"no prompts left in split 'train' after filtering"):
        TldrTask(path=str(tldr_fixture), min_post_chars=990).load_prompts("train")
