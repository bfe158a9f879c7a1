"""The custom task: prompt pools from JSONL, CSV, Parquet or a `datasets` directory."""

from __future__ import annotations

import datasets
import pandas as pd
import pytest

from apl.data import TASKS
from apl.data.custom import CustomTask
from apl.errors import ConfigError, DataError

ROWS = [
    {"prompt": f"Question {i}: what is {i} plus {i}? ", "answer": str(2 * i)} for i in range(60)
]


@pytest.fixture()
def jsonl(tmp_path):
    path = tmp_path / "pool.jsonl"
    pd.DataFrame(ROWS).to_json(path, orient="records", lines=True)
    return path


def write(frame: pd.DataFrame, path):
    """Write `frame` in the format `path`'s suffix names; a suffix-less path is a datasets dir."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        datasets.Dataset.from_pandas(frame).save_to_disk(str(path))
    return path


@pytest.mark.parametrize("name", ["pool.csv", "pool.tsv", "pool.parquet", "saved_dataset"])
def test_every_format_gives_the_same_pool(tmp_path, jsonl, name):
    other = write(pd.DataFrame(ROWS), tmp_path / name)
    for split in ("train", "test"):
        expected = CustomTask(str(jsonl), reference_column="answer").load_prompts(split)
        assert CustomTask(str(other), reference_column="answer").load_prompts(split) == expected


def test_prompts_references_and_hash_split(jsonl):
    task = TASKS.build("custom", {"path": str(jsonl), "reference_column": "answer"})
    train, test = task.load_prompts("train"), task.load_prompts("test")
    assert len(train) + len(test) == 60 and 0 < len(test) < 20
    assert not {p.uid for p in train} & {p.uid for p in test}
    by_text = {r["prompt"].rstrip(): r["answer"] for r in ROWS}
    assert all(p.reference == by_text[p.text] and not p.text.endswith(" ") for p in train + test)
    assert task.baseline == "reference" and task.judge_template == "sentiment"
    shuffled = write(pd.DataFrame(ROWS[::-1]), jsonl.with_name("shuffled.csv"))
    assert {p.uid for p in CustomTask(str(shuffled)).load_prompts("test")} == {p.uid for p in test}


def test_without_references_the_baseline_is_the_initial_model(jsonl):
    task = CustomTask(str(jsonl), judge_template="summarization")
    assert task.baseline == "initial" and task.judge_template == "summarization"
    assert all(p.reference is None for p in task.load_prompts("train"))


def test_split_column_replaces_the_hash_split(tmp_path):
    frame = pd.DataFrame(ROWS).assign(part=["test" if i < 5 else "Train" for i in range(60)])
    path = write(frame, tmp_path / "pool.csv")
    test = CustomTask(str(path), split_column="part").load_prompts("test")
    assert [p.text for p in test] == [r["prompt"].rstrip() for r in ROWS[:5]]
    assert len(CustomTask(str(path), split_column="part").load_prompts("train")) == 55
    frame["part"] = "dev"
    write(frame, path)
    with pytest.raises(
        DataError, match=r"no row has 'part' \(`task.split_column`\) == 'test'; values seen: dev"
    ):
        CustomTask(str(path), split_column="part").load_prompts("test")


def test_saved_dataset_dict_keeps_its_own_splits(tmp_path):
    saved = tmp_path / "dd"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(ROWS[:50]),
            "test": datasets.Dataset.from_list(ROWS[50:]),
        }
    ).save_to_disk(str(saved))
    assert len(CustomTask(str(saved)).load_prompts("test")) == 10


def test_blank_and_duplicate_prompts_are_skipped(tmp_path):
    rows = [{"prompt": "Tell me a story. "}, {"prompt": "Tell me a story."}, {"prompt": "  "}] * 3
    path = write(pd.DataFrame(rows), tmp_path / "dups.csv")
    assert [p.text for p in CustomTask(str(path), test_fraction=0.0).load_prompts("train")] == [
        "Tell me a story."
    ]


def test_bad_inputs_name_the_file_and_the_column(tmp_path, jsonl):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(DataError, match=f"task.path: {missing} does not exist"):
        CustomTask(str(missing)).load_prompts("train")
    with pytest.raises(
        DataError,
        match=rf"{jsonl} has no column 'text' \(`task.prompt_column`\); available: prompt, answer; "
        r"set `task.prompt_column` to one of them\.$",
    ):
        CustomTask(str(jsonl), prompt_column="text").load_prompts("train")
    with pytest.raises(DataError, match=r"no column 'summary' \(`task.reference_column`\)"):
        CustomTask(str(jsonl), reference_column="summary").load_prompts("train")
    with pytest.raises(DataError, match=r"no prompts in split 'test' \(column 'prompt'\)"):
        CustomTask(str(jsonl), test_fraction=0.0).load_prompts("test")
    blank_refs = write(pd.DataFrame(ROWS).assign(answer=""), tmp_path / "blank.csv")
    with pytest.raises(DataError, match=r"rows of split 'train' have an empty 'answer'"):
        CustomTask(str(blank_refs), reference_column="answer").load_prompts("train")
    (tmp_path / "pool.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"suffix '.xlsx'; use a JSONL, CSV"):
        CustomTask(str(tmp_path / "pool.xlsx")).load_prompts("train")
    (tmp_path / "broken.jsonl").write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"broken.jsonl could not be read as jsonl"):
        CustomTask(str(tmp_path / "broken.jsonl")).load_prompts("train")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataError, match=r"emptydir is not a `datasets.save_to_disk` directory"):
        CustomTask(str(tmp_path / "emptydir")).load_prompts("train")
    with pytest.raises(ConfigError, match=r"task.test_fraction \(1.5\)"):
        CustomTask(str(jsonl), test_fraction=1.5)


def test_config_kwargs_are_checked_against_the_class():
    with pytest.raises(ConfigError, match="task 'custom' has no option 'prompt_col'"):
        TASKS.build("custom", {"path": "x.jsonl", "prompt_col": "text"})


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jsonl", ""),
        ("blank_lines.jsonl", "\n\n"),
        ("empty.csv", ""),
        ("header_only.csv", "prompt\n"),
        ("empty.parquet", None),
    ],
)
def test_an_empty_file_is_called_empty(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        pd.DataFrame({"prompt": pd.Series([], dtype=str)}).to_parquet(path)
    else:
        path.write_text(content)
    with pytest.raises(DataError, match=rf"task.path: {path} is empty \(no rows\)"):
        CustomTask(str(path)).check()


def test_check_loads_both_splits_once_per_file_version(tmp_path, jsonl):
    task = CustomTask(str(jsonl), test_fraction=0.0)
    with pytest.raises(DataError, match=r"no prompts in split 'test'"):
        task.check()  # the test split is empty: found before any model would load
    good = CustomTask(str(jsonl))
    good.check()
    jsonl.write_text("")  # a new version of the file is checked again
    with pytest.raises(DataError, match="is empty"):
        good.check()
