"""Prompt pools: the Task ABC, the TASKS registry and the built-in tasks (imdb, tldr, custom)."""

from apl.data import custom, imdb, tldr  # noqa: F401  (importing registers the tasks)
from apl.data.tasks import TASKS, Task, sample_prompts

__all__ = ["TASKS", "Task", "sample_prompts"]
