"""The Reddit TL;DR task as in the paper: summarise posts of 200-1000 characters.

Rows have the schema of the hub data set `CarperAI/openai_summarize_tldr`: `prompt` is
"SUBREDDIT: r/<name>\\nTITLE: <title>\\nPOST: <body>\\nTL;DR:" and `label` the human summary,
which is kept as the prompt's reference completion (evaluation compares against it).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from apl.data.custom import FORMATS, check_splits_once, is_blank, read_pool, require_column
from apl.data.tasks import TASKS, Split, Task, check_split, hash_split, text_uid
from apl.errors import ConfigError, DataError
from apl.types import Prompt

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

HUB_DATASET = "CarperAI/openai_summarize_tldr"
_TLDR_PROMPT = re.compile(
    r"\s*SUBREDDIT:\s*r/(?P<subreddit>\S+)\s*\nTITLE:.*?\nPOST:(?P<post>.*?)\s*TL;DR:\s*\Z",
    re.DOTALL,
)


def parse_tldr_prompt(prompt: str) -> tuple[str, str] | None:
    """(subreddit, post body) of a TLDR prompt, or None if it does not have that form."""
    match = _TLDR_PROMPT.match(prompt)
    if match is None:
        return None
    return match["subreddit"], match["post"].strip()


@TASKS.register("tldr")
class TldrTask(Task):
    """Reddit posts to summarise, from the hub or, offline, a local file of the same schema.

    Args:
        path: a local file or `datasets` directory; "{split}" in it is replaced by the split.
            A single file without "{split}" is split by a hash of the prompt (`test_fraction`).
        dataset: the hub data set used when `path` is None.
        excluded_subreddits: dropped for explicit content (paper Appendix B).
    """

    baseline = "reference"
    judge_template = "summarization"

    def __init__(
        self,
        path: str | None = None,
        dataset: str = HUB_DATASET,
        min_post_chars: int = 200,
        max_post_chars: int = 1000,
        excluded_subreddits: Sequence[str] = ("offmychest", "tifu"),
        test_fraction: float = 0.1,
    ) -> None:
        if not 0 <= min_post_chars <= max_post_chars:
            raise ConfigError(
                f"task.min_post_chars ({min_post_chars}) must be >= 0 and <= "
                f"task.max_post_chars ({max_post_chars}); fix the range."
            )
        if not 0 <= test_fraction < 1:
            raise ConfigError(f"task.test_fraction ({test_fraction}) must be in [0, 1); e.g. 0.1.")
        self.path = path
        self.dataset = dataset
        self.min_post_chars = min_post_chars
        self.max_post_chars = max_post_chars
        self.excluded_subreddits = {s.lower().removeprefix("r/") for s in excluded_subreddits}
        self.test_fraction = test_fraction

    def check(self) -> None:
        """A local `path`: load both splits once, so file errors surface before a model loads."""
        offline = any(
            os.environ.get(var, "").lower() in ("1", "true", "yes", "on")
            for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
        )
        if self.path is None and offline:
            raise DataError(
                f"tldr: task.path is not set and the hub is offline, so {self.dataset!r} "
                f"cannot be downloaded; pass task.path=<local file> with columns prompt and "
                f"label ({FORMATS})."
            )
        if self.path is not None:
            paths = {self.path.replace("{split}", split) for split in ("train", "test")}
            check_splits_once(self, *sorted(paths))

    def _rows(self, split: Split) -> tuple[pd.DataFrame, str]:
        """The raw rows of `split` and a name for their source."""
        if self.path is None:
            import datasets

            try:
                rows = datasets.load_dataset(self.dataset, split=split).to_pandas()
            except Exception as err:  # offline, unknown name, no such split: all end here
                detail = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise DataError(
                    f"tldr: cannot load {self.dataset!r} split {split!r} from the hub ({detail}); "
                    "offline, pass task.path=<local file> with columns prompt and label "
                    f"({FORMATS})."
                ) from None
            return rows, self.dataset
        source = self.path.replace("{split}", split)
        rows, presplit = read_pool(source, split)
        if not presplit and "{split}" not in self.path:  # one file: split by a hash of the prompt
            require_column(rows, "prompt", source)
            keep = [
                not is_blank(p) and hash_split(str(p).rstrip(), self.test_fraction) == split
                for p in rows["prompt"]
            ]
            rows = rows[keep]
        return rows, source

    def load_prompts(self, split: Split, tokenizer: Any = None, seed: int = 0) -> list[Prompt]:
        """Filtered posts with their human summaries as references; `tokenizer`, `seed` unused."""
        check_split(split, "tldr")
        rows, source = self._rows(split)
        for column in ("prompt", "label"):
            require_column(rows, column, source)
        prompts: dict[str, Prompt] = {}
        counts = {"malformed": 0, "length": 0, "subreddit": 0, "no summary": 0}
        for prompt, label in zip(rows["prompt"], rows["label"], strict=True):
            parsed = None if is_blank(prompt) else parse_tldr_prompt(str(prompt))
            if parsed is None:
                counts["malformed"] += 1
                continue
            subreddit, post = parsed
            if not self.min_post_chars <= len(post) <= self.max_post_chars:
                counts["length"] += 1
            elif subreddit.lower() in self.excluded_subreddits:
                counts["subreddit"] += 1
            elif is_blank(label):
                counts["no summary"] += 1
            else:
                text = str(prompt).rstrip()  # "TL;DR:" then the completion's own " word"
                uid = text_uid("tldr", text)
                prompts.setdefault(uid, Prompt(uid=uid, text=text, reference=str(label).strip()))
        if counts["malformed"] == len(rows) and len(rows):
            raise DataError(
                f"{source}: no row of column 'prompt' has the form "
                "'SUBREDDIT: r/...\\nTITLE: ...\\nPOST: ...\\nTL;DR:'; "
                "use task `custom` for other pools."
            )
        if not prompts:
            tally = ", ".join(f"{k}: {v}" for k, v in counts.items())
            raise DataError(
                f"{source}: no prompts left in split {split!r} after filtering ({tally}); "
                "check the file and the filters."
            )
        dropped = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        logger.info(
            "tldr/%s: %d prompts from %s (dropped: %s)",
            split,
            len(prompts),
            source,
            dropped or "none",
        )
        return list(prompts.values())
