"""Any prompt pool from JSONL, CSV, Parquet or a `datasets` directory, plus the file readers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from apl.data.chat import ChatFormat, conversation_key, is_conversation, read_conversation
from apl.data.tasks import TASKS, Split, Task, check_split, hash_split, text_uid
from apl.errors import ConfigError, DataError
from apl.types import Prompt

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

FORMATS = "JSONL, CSV, TSV, Parquet or a `datasets.save_to_disk` directory"


def _read_file(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    readers = {
        ".jsonl": lambda: pd.read_json(path, lines=True, dtype=False),
        ".jsonl.gz": lambda: pd.read_json(path, lines=True, dtype=False),
        ".json": lambda: pd.read_json(path, lines=path.read_text()[:1] != "[", dtype=False),
        ".csv": lambda: pd.read_csv(path, dtype=str, keep_default_na=False),
        ".tsv": lambda: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False),
        ".parquet": lambda: pd.read_parquet(path),
    }
    if suffix not in readers:
        raise DataError(f"task.path: {path} has suffix {suffix!r}; use a {FORMATS}.")
    try:
        return readers[suffix]()
    except Exception as err:  # pandas and pyarrow raise many types for a malformed file
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"task.path: {path} could not be read as {suffix[1:]} ({detail}); check the file."
        ) from None


def read_pool(path: str | Path, split: Split) -> tuple[pd.DataFrame, bool]:
    """Rows of a JSONL/CSV/TSV/Parquet file or a `datasets.save_to_disk` directory.

    Returns (rows, presplit): `presplit` is True when the source held `split` itself (a saved
    DatasetDict), so the caller must not split the rows again.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"task.path: {path} does not exist; pass an existing {FORMATS}.")
    if not path.is_dir():
        try:
            with path.open("rb") as handle:
                empty = not handle.read(1)
        except OSError as err:
            raise DataError(
                f"task.path: {path} cannot be read ({err.strerror}); check its permissions."
            ) from None
        rows = None if empty else _read_file(path)
        if rows is None or rows.empty:
            raise DataError(
                f"task.path: {path} is empty (no rows); add one prompt per row ({FORMATS})."
            )
        return rows, False
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"task.path: {path} is not a `datasets.save_to_disk` directory ({detail})."
        ) from None
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise DataError(
                f"task.path: {path} holds splits {', '.join(saved)} but no {split!r}; "
                f"save a {split!r} split, or pass one dataset to be split by hash."
            )
        return saved[split].to_pandas(), True
    return saved.to_pandas(), False


# Tasks whose files were already checked in this process, keyed by options and file versions.
_CHECKED: set[tuple[Any, ...]] = set()


def check_splits_once(task: Task, *paths: str | Path) -> None:
    """Load `task`'s train and test prompts (raising DataError) unless done for these files."""
    stamps = []
    for path in paths:
        try:
            stat = Path(path).stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append((str(path), None, None))
    key = (type(task).__name__, repr(sorted(vars(task).items())), tuple(stamps))
    if key in _CHECKED:
        return
    for split in ("train", "test"):
        task.load_prompts(split)
    _CHECKED.add(key)


def require_column(
    rows: pd.DataFrame, column: str, source: Path | str, option: str | None = None
) -> None:
    """Raise DataError naming the file, the column and the option, listing existing columns."""
    if column not in rows.columns:
        available = ", ".join(map(str, rows.columns)) or "(none)"
        named = f" (`{option}`)" if option else ""
        fix = f"set `{option}` to one of them" if option else f"rename a column to {column!r}"
        raise DataError(f"{source} has no column {column!r}{named}; available: {available}; {fix}.")


def is_blank(value: Any) -> bool:
    """True for None, NaN, whitespace-only strings and empty conversations."""
    if is_conversation(value):
        return len(value) == 0
    return value is None or (isinstance(value, float) and value != value) or not str(value).strip()


def clean_prompt(value: Any) -> str:
    """The prompt text without trailing spaces, which BPE would merge into the completion."""
    return str(value).rstrip(" \t")


def prompt_key(value: Any, where: str) -> str:
    """What a prompt's uid and hash split come from: its cleaned text, or its turns as JSON."""
    turns = read_conversation(value, where)
    return clean_prompt(value) if turns is None else conversation_key(turns)


@TASKS.register("custom")
class CustomTask(Task):
    """Prompts from a user file, used whole (trailing spaces removed so completions start cleanly).

    A prompt is plain text or a conversation (a list of `{"role", "content"}` messages, TRL's
    conversational format); with chat templating on (see `apl.data.chat`) both are rendered by
    the tokenizer's chat template, plain text as one user turn.

    Args:
        prompt_column: the prompts; when the default `prompt` is absent, a `messages` column.
        reference_column: reference completions; if given, evaluation compares against them.
        test_fraction: share of prompts held out for evaluation, chosen by a hash of the text.
        split_column: a column of `train` / `test` values that replaces the hash split.
        judge_template: the oracle template (built-in name or a template file); default
            `chat` for chat-templated prompts, else `sentiment`.
        chat_template: `auto` (when the tokenizer has one), true or false.
        add_generation_prompt, system_prompt: see `ChatFormat`.
    """

    def __init__(
        self,
        path: str,
        prompt_column: str = "prompt",
        reference_column: str | None = None,
        test_fraction: float = 0.1,
        split_column: str | None = None,
        judge_template: str | None = None,
        chat_template: bool | Literal["auto"] = "auto",
        add_generation_prompt: bool = True,
        system_prompt: str | None = None,
    ) -> None:
        if not 0 <= test_fraction < 1:
            raise ConfigError(f"task.test_fraction ({test_fraction}) must be in [0, 1); e.g. 0.1.")
        self.path = Path(path)
        self.prompt_column = prompt_column
        self.reference_column = reference_column
        self.test_fraction = test_fraction
        self.split_column = split_column
        self.chat = ChatFormat(chat_template, add_generation_prompt, system_prompt)
        self._judge_template = judge_template
        self.judge_template = judge_template or "sentiment"
        self.baseline = "reference" if reference_column else "initial"

    def check(self) -> None:
        """Load both splits once per file version: every file error surfaces before a model loads."""
        check_splits_once(self, self.path)

    def judge_template_for(self, tokenizer: Any) -> str:
        """The configured template, else `chat` when prompts are chat-templated for `tokenizer`."""
        if self._judge_template is not None:
            return self._judge_template
        return "chat" if self.chat.enabled(tokenizer) else "sentiment"

    def _column(self, rows: pd.DataFrame) -> str:
        """The prompt column: `prompt_column`, or TRL's `messages` when the default is absent."""
        if (
            self.prompt_column == "prompt"
            and "prompt" not in rows.columns
            and "messages" in rows.columns
        ):
            return "messages"
        require_column(rows, self.prompt_column, self.path, "task.prompt_column")
        return self.prompt_column

    @property
    def name(self) -> str:
        """`custom:<file name>` for messages."""
        return f"custom:{self.path.name}"

    def _select_split(self, rows: pd.DataFrame, split: Split, column: str) -> pd.DataFrame:
        if self.split_column is None:
            keep = [
                not is_blank(t)
                and hash_split(prompt_key(t, f"{self.path} row {i}"), self.test_fraction) == split
                for i, t in zip(rows.index, rows[column], strict=True)
            ]
            return rows[keep]
        require_column(rows, self.split_column, self.path, "task.split_column")
        values = rows[self.split_column].astype(str).str.strip().str.lower()
        if not (values == split).any():
            seen = ", ".join(sorted(set(values))[:10])
            raise DataError(
                f"{self.path}: no row has {self.split_column!r} (`task.split_column`) == "
                f"{split!r}; values seen: {seen}. Use 'train' and 'test'."
            )
        return rows[values == split]

    def load_prompts(self, split: Split, tokenizer: Any = None, seed: int = 0) -> list[Prompt]:
        """The prompts of `split`, chat-templated for `tokenizer` when templating is on.

        uids hash the cleaned text (or a conversation's turns), never the template or the
        system prompt, so they are the same with and without templating. `seed` is unused.
        """
        check_split(split, self.name)
        rows, presplit = read_pool(self.path, split)
        column = self._column(rows)
        if self.reference_column is not None:
            require_column(rows, self.reference_column, self.path, "task.reference_column")
        if not presplit:
            rows = self._select_split(rows, split, column)
        prompts: dict[str, Prompt] = {}
        blank_refs = 0
        has_refs = self.reference_column is not None
        references = rows[self.reference_column] if has_refs else [None] * len(rows)
        for i, text, value in zip(rows.index, rows[column], references, strict=True):
            if is_blank(text):
                continue
            blank_refs += has_refs and is_blank(value)
            reference = None if is_blank(value) else str(value).strip()
            prompts.setdefault(*self._prompt(text, reference, f"{self.path} row {i}"))
        if blank_refs:
            raise DataError(
                f"{self.path}: {blank_refs} rows of split {split!r} have an empty "
                f"{self.reference_column!r} (`task.reference_column`); fill or drop them."
            )
        if not prompts:
            raise DataError(
                f"{self.path}: no prompts in split {split!r} (column {column!r}); "
                "add rows, or raise `task.test_fraction` if the test split is empty."
            )
        if len(prompts) < len(rows):
            logger.info(
                "%s/%s: %d blank or duplicate prompts skipped",
                self.name,
                split,
                len(rows) - len(prompts),
            )
        return self.chat.apply(list(prompts.values()), tokenizer, str(self.path))

    @staticmethod
    def _prompt(value: Any, reference: str | None, where: str) -> tuple[str, Prompt]:
        """(uid, Prompt) for one row: plain text, or a conversation whose text is set later."""
        turns = read_conversation(value, where)
        if turns is not None:
            uid = text_uid("custom", conversation_key(turns))
            return uid, Prompt(uid=uid, text="", reference=reference, messages=turns)
        uid = text_uid("custom", clean_prompt(value))
        return uid, Prompt(uid=uid, text=clean_prompt(value), reference=reference)
