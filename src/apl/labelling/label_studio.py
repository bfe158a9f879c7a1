"""Label Studio's own formats: a Pairwise labelling config plus tasks JSON out, its JSON export in.

Written and read as Label Studio documents them (no Label Studio package needed):
- labelling config: https://labelstud.io/templates/pairwise_comparison and
  https://labelstud.io/tags/pairwise (`<Pairwise name toName="text1,text2">` over two `<Text>`),
  plus a `<Choices>` with one choice, `Tie` (https://labelstud.io/tags/choices);
- tasks to import: a JSON list of `{"data": {...}}` whose keys match the config's `$variables`
  (https://labelstud.io/guide/tasks);
- the JSON export: tasks with `annotations[]`, each with `result[]`, `completed_by`,
  `was_cancelled` (a skip) and `lead_time` seconds (https://labelstud.io/guide/task_format);
  a Pairwise result is `{"type": "pairwise", "value": {"selected": "left" | "right"}}`.
`text1` is the completion apl shows first (left), so an answer maps back through the pair's
stored shown order exactly like an answer on apl's own page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from apl.errors import LabelImportError
from apl.types import ImportedAnswer

TIE_CHOICE = "Tie"
KEY_TAG_CHARS = 16  # how much of a pair's queue key the export carries, to catch mix-ups


def labelling_config(instruction: str) -> str:
    """The Label Studio labelling config (XML) for apl's pairs."""
    return f"""<View>
  <Header value={quoteattr(instruction)}/>
  <Text name="prompt" value="$prompt"/>
  <Pairwise name="pw" toName="text1,text2" leftClass="text1" rightClass="text2"/>
  <View style="display: flex;">
    <View style="flex: 50%; margin-right: 1em;">
      <Header value="A"/>
      <Text name="text1" value="$text1"/>
    </View>
    <View style="flex: 50%;">
      <Header value="B"/>
      <Text name="text2" value="$text2"/>
    </View>
  </View>
  <Choices name="tie" toName="prompt" choice="single">
    <Choice value="{TIE_CHOICE}"/>
  </Choices>
</View>
"""


def tasks(pairs: Sequence[Any]) -> list[dict]:
    """One task per open pair (`PairState`): the texts in shown order and the pair's ids."""
    out = []
    for pair in pairs:
        left, right = pair.shown
        out.append(
            {
                "data": {
                    "prompt": pair.prompt,
                    "text1": left,
                    "text2": right,
                    "apl_pair": pair.id,
                    "apl_key": pair.key[:KEY_TAG_CHARS],
                    "apl_round": pair.round,
                    "apl_purpose": pair.purpose,
                }
            }
        )
    return out


def _fail(where: str, problem: str) -> LabelImportError:
    return LabelImportError(f"Label Studio export, {where}: {problem}; nothing was imported.")


def _annotator(annotation: dict, where: str) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if who is None or isinstance(who, (list, dict)) or str(who) == "":
        raise _fail(where, "the annotation has no completed_by (a cut or edited file?)")
    return f"label-studio:{who}"


def _choice(annotation: dict, where: str) -> str:
    if annotation.get("was_cancelled"):
        return "skip"
    results = annotation.get("result")
    if not isinstance(results, list):
        raise _fail(where, "the annotation has no result list (a cut or edited file?)")
    found = []
    for result in results:
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, dict):
            continue
        if result.get("type") == "pairwise":
            if value.get("selected") not in ("left", "right"):
                raise _fail(where, f"pairwise selected {value.get('selected')!r} is not left/right")
            found.append(value["selected"])
        elif result.get("type") == "choices" and TIE_CHOICE in (value.get("choices") or []):
            found.append("tie")
    if len(set(found)) > 1:
        raise _fail(where, f"the annotation says both {found[0]} and {found[1]}")
    if not found:
        raise _fail(where, "the annotation picks no side and no Tie (an empty or partial result)")
    return found[0]


def read_export(data: Any) -> list[ImportedAnswer]:
    """Answers from a Label Studio JSON export (the parsed JSON: a list of tasks)."""
    if not isinstance(data, list):
        raise _fail("top level", "expected a JSON list of tasks (Export > JSON)")
    answers = []
    for i, task in enumerate(data, start=1):
        where = f"task {i}" + (f" (id {task.get('id')})" if isinstance(task, dict) else "")
        fields = task.get("data") if isinstance(task, dict) else None
        if not isinstance(fields, dict) or "apl_pair" not in fields or "apl_key" not in fields:
            raise _fail(
                where, "no data.apl_pair / data.apl_key (not a task `apl label export` made)"
            )
        try:
            pair_id = int(fields["apl_pair"])
        except (TypeError, ValueError):
            raise _fail(where, f"data.apl_pair {fields['apl_pair']!r} is not a pair id") from None
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise _fail(where, "annotations is not a list")
        for j, annotation in enumerate(annotations, start=1):
            spot = f"{where}, annotation {j}"
            if not isinstance(annotation, dict):
                raise _fail(spot, "the annotation is not an object")
            seconds = annotation.get("lead_time")
            answers.append(
                ImportedAnswer(
                    pair_id=pair_id,
                    key_tag=str(fields["apl_key"]),
                    annotator=_annotator(annotation, spot),
                    shown_choice=_choice(annotation, spot),
                    seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
                    where=spot,
                )
            )
    return answers
