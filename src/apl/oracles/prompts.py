"""Judge prompt templates: the paper's two (Appendix A) and a chat one built in, or a user's file.

`chat` judges assistant replies for helpfulness and harmlessness, in the style of the paper's
prompts; its `{prompt}` is the conversation with each turn labelled by role (`Prompt.judge_text`).

A template file holds a `[system]` section and a `[user]` section. The user section must use
`{completion_a}` and `{completion_b}` and may use `{prompt}`; every other brace is literal.
Texts are substituted in one pass, so a completion that contains `{completion_b}` (or any
other placeholder) is shown verbatim and cannot pull in the other completion.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from apl.errors import ConfigError

PLACEHOLDER = re.compile(r"\{(prompt|completion_a|completion_b)\}")
SECTION = re.compile(r"^\[(system|user)\][ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class JudgeTemplate:
    """A system message and a user message with placeholders; `digest` names its exact text."""

    name: str
    system: str
    user: str

    @property
    def digest(self) -> str:
        """First 12 hex digits of sha256 over both messages: part of a judge's identity."""
        text = f"{self.system}\x00{self.user}".encode()
        return hashlib.sha256(text).hexdigest()[:12]

    def render(self, prompt: str, completion_a: str, completion_b: str) -> list[dict[str, str]]:
        """Chat messages for one comparison, texts inserted verbatim in a single pass."""
        values = {"prompt": prompt, "completion_a": completion_a, "completion_b": completion_b}
        user = PLACEHOLDER.sub(lambda m: values[m.group(1)], self.user)
        messages = [{"role": "user", "content": user}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return messages


def builtin_templates() -> list[str]:
    """Names of the shipped templates (`chat`, `sentiment`, `summarization`)."""
    folder = resources.files("apl.oracles") / "templates"
    return sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))


def parse_template(text: str, name: str) -> JudgeTemplate:
    """Split a template file's text into its sections and check the placeholders."""
    parts = SECTION.split(text)
    if len(parts) < 3 or parts[0].strip():
        raise ConfigError(
            f"Judge template {name}: expected a '[system]' and/or '[user]' line before the text; "
            "start the file with '[system]' or '[user]'."
        )
    sections = dict(zip(parts[1::2], (body.strip("\n") for body in parts[2::2]), strict=True))
    user = sections.get("user", "")
    missing = [p for p in ("{completion_a}", "{completion_b}") if p not in user]
    if missing:
        raise ConfigError(
            f"Judge template {name}: the [user] section lacks {', '.join(missing)}; "
            "add both placeholders where the two completions go."
        )
    return JudgeTemplate(name=name, system=sections.get("system", ""), user=user)


def load_template(name_or_path: str) -> JudgeTemplate:
    """A built-in template by name (`chat`, `sentiment`, `summarization`) or a file by path."""
    if name_or_path in builtin_templates():
        resource = resources.files("apl.oracles") / "templates" / f"{name_or_path}.txt"
        return parse_template(resource.read_text(encoding="utf-8"), name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"Judge template {name_or_path!r} is neither built in "
            f"({', '.join(builtin_templates())}) nor an existing file; pass one of those or a path."
        )
    return parse_template(path.read_text(encoding="utf-8"), str(path))
