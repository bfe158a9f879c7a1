"""Round trips with Label Studio and Argilla through `apl label export` / `apl label import`.

The pairs are queued by a real `web` judge on a real run ledger; the tool's side is a file
written exactly as each tool documents its export (no tool is installed here):
- Label Studio: the Pairwise template https://labelstud.io/templates/pairwise_comparison and tag
  https://labelstud.io/tags/pairwise, tasks https://labelstud.io/guide/tasks, and the JSON
  export of annotated tasks https://labelstud.io/guide/task_format (its example's keys:
  id, created_at, updated_at, project, data, annotations[id, result[from_name, id, to_name,
  type, value], was_cancelled, ground_truth, created_at, updated_at, lead_time, result_count,
  task, completed_by], predictions); a pairwise value is {"selected": "left" | "right"}.
- Argilla 2.x: `Settings.for_ranking()` (fields instruction/response1/response2, a
  RankingQuestion `ranking`), `Dataset.to_disk` (.argilla/settings.json, .argilla/dataset.json,
  records.json) https://docs.argilla.io/latest/how_to_guides/import_export/ and a record as
  `Record.to_dict()` gives it: {id, fields, metadata, suggestions, responses: {question:
  [{value, user_id}]}, vectors, _server_id}, a ranking value being the option values best first.
"""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from apl.cli import app
from apl.config import config_from_dict
from apl.errors import LabelsPendingError
from apl.oracles import ORACLES, JudgeRequest
from apl.reports.annotators import annotators_markdown
from apl.reports.collect import load_run
from apl.store.label_queue import LabelQueue
from apl.store.run_dir import open_run_dir
from apl.types import Verdict

REQUESTS = [JudgeRequest(f"prompt {i}", f" good {i}", f" bad {i}") for i in range(4)]


def web_judge(queue: LabelQueue):
    """The run's judge: never waits (the answers come from a file)."""
    judge = ORACLES.build("web", {"timeout_s": 0, "serve": False}, seed=2)
    judge.attach(queue)
    judge.begin(1, "label")
    return judge


@pytest.fixture()
def run(tmp_path):
    """A `web` run whose first batch of four pairs is queued and waiting."""
    run_dir = open_run_dir(
        config_from_dict({"oracle": {"name": "web"}, "output_dir": str(tmp_path)})
    )
    with LabelQueue(run_dir.ledger_path) as queue:
        with pytest.raises(LabelsPendingError):
            web_judge(queue).judge_batch(REQUESTS)
    return tmp_path


def cli(*args: str):
    """`apl ...` in-process."""
    return CliRunner().invoke(app, list(args))


def snapshot(run) -> list:
    """The label tables' rows."""
    conn = sqlite3.connect(run / "ledger.sqlite")
    try:
        return [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("label_pairs", "label_answers", "label_annotators")
        ]
    finally:
        conn.close()


def good_side(left: str) -> str:
    """The side holding the ' good ' completion (request A), given the left text."""
    return "left" if " good " in left else "right"


def verdicts(run) -> list[Verdict]:
    """What the run's judge now hands the loop for the four requests."""
    with LabelQueue(run / "ledger.sqlite") as queue:
        return [j.verdict for j in web_judge(queue).judge_batch(REQUESTS)]


# --- Label Studio ----------------------------------------------------------------------------


def ls_annotation(user, selected=None, tie=False, cancelled=False, n=1) -> dict:
    """One annotation as Label Studio's JSON export writes it."""
    result = []
    if selected:
        result.append(
            {
                "from_name": "pw",
                "id": f"r{n}a",
                "to_name": "text1,text2",
                "type": "pairwise",
                "value": {"selected": selected},
            }
        )
    if tie:
        result.append(
            {
                "from_name": "tie",
                "id": f"r{n}b",
                "to_name": "prompt",
                "type": "choices",
                "value": {"choices": ["Tie"]},
            }
        )
    return {
        "id": 1000 + n,
        "result": result,
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": "2026-03-09T22:16:08.728353Z",
        "updated_at": "2026-03-09T22:16:08.728378Z",
        "lead_time": 4.288,
        "result_count": 0,
        "task": n,
        "completed_by": user,
    }


def ls_export(tasks_file, annotations: list[list[dict]]) -> list[dict]:
    """The export of the imported tasks, each with its annotations."""
    tasks = json.loads(tasks_file.read_text())
    return [
        {
            "id": i,
            "created_at": "2026-03-09T21:52:49.513742Z",
            "updated_at": "2026-03-09T22:16:08.746926Z",
            "project": 83,
            "data": task["data"],
            "annotations": anns,
            "predictions": [],
        }
        for i, (task, anns) in enumerate(zip(tasks, annotations, strict=True), start=1)
    ]


def test_label_studio_round_trip(run, tmp_path_factory):
    out = run / "label-label-studio"
    result = cli("label", "export", str(run), "--format", "label-studio")
    assert result.exit_code == 0, result.output
    assert "4 open pairs" in result.output
    view = ET.fromstring((out / "label_config.xml").read_text())
    pairwise = view.find("Pairwise")
    assert pairwise is not None and pairwise.get("toName") == "text1,text2"
    texts = {t.get("name"): t.get("value") for t in view.iter("Text")}
    assert texts == {"prompt": "$prompt", "text1": "$text1", "text2": "$text2"}
    tasks = json.loads((out / "tasks.json").read_text())
    lefts = [t["data"]["text1"] for t in tasks]
    assert {" good " in left for left in lefts} == {True, False}  # shown order, both ways

    export = ls_export(
        out / "tasks.json",
        [
            [
                ls_annotation(10, good_side(lefts[0]), n=1),
                ls_annotation(11, good_side(lefts[0]), n=5),
            ],
            [ls_annotation({"id": 12, "email": "ann@example.org"}, good_side(lefts[1]), n=2)],
            [ls_annotation(10, tie=True, n=3)],
            [ls_annotation(10, cancelled=True, n=4)],
        ],
    )
    file = tmp_path_factory.mktemp("ls") / "export.json"
    file.write_text(json.dumps(export))
    result = cli("label", "import", str(run), str(file))
    assert result.exit_code == 0, result.output
    assert "Imported 5 answers for 4 pairs" in result.output
    before = snapshot(run)
    again = cli("label", "import", str(run), str(file))
    assert again.exit_code == 0 and "Imported 0 answers" in again.output
    assert "5 already stored" in again.output
    assert snapshot(run) == before  # idempotent
    assert verdicts(run) == [Verdict.A, Verdict.A, Verdict.TIE, Verdict.INVALID]
    names = {row[1] for row in snapshot(run)[2]}
    assert names == {"label-studio:10", "label-studio:11", "label-studio:ann@example.org"}
    # `apl report` and `apl status` read who labelled, with agreement on the doubly-labelled pair
    people = load_run(run).annotators
    stats = {s.name: s for s in people.annotators}
    assert stats["label-studio:10"].answers == 3 and stats["label-studio:10"].agreement == 1.0
    assert people.agreement == 1.0 and people.compared_pairs == 1
    assert "| label-studio:11 | 1 | 1 | 0 | 0 | - | 1.00 (1) |" in annotators_markdown(
        [("run", people)]
    )
    status = CliRunner().invoke(app, ["status", str(run)], env={"COLUMNS": "200"})
    assert status.exit_code == 0 and "label-studio:10" in status.output


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda e: e[1]["data"].update(apl_pair=999),
            "task 2 (id 2), annotation 1: pair 999 is not in the queue",
        ),
        (lambda e: e[1]["data"].update(apl_key="0123456789abcdef"), "not in the queue"),
        (lambda e: e[1]["data"].pop("apl_pair"), "no data.apl_pair"),
        (
            lambda e: e[1]["annotations"].append(ls_annotation(10, "left", n=9)),
            "answered pair",  # user 10 said right and left on one task
        ),
        (lambda e: e[1]["annotations"][0].update(result=[]), "picks no side"),
        (lambda e: e[1]["annotations"][0].pop("completed_by"), "no completed_by"),
        (
            lambda e: e[1]["annotations"][0]["result"].append(
                ls_annotation(10, tie=True)["result"][0]
            ),
            "says both",
        ),
    ],
)
def test_label_studio_bad_files_are_refused_whole(run, tmp_path_factory, mutate, message):
    cli("label", "export", str(run), "--format", "label-studio")
    export = ls_export(
        run / "label-label-studio" / "tasks.json",
        [[ls_annotation(10, "left", n=1)], [ls_annotation(10, "right", n=2)], [], []],
    )
    mutate(export)
    file = tmp_path_factory.mktemp("ls") / "export.json"
    file.write_text(json.dumps(export))
    before = snapshot(run)
    result = cli("label", "import", str(run), str(file))
    assert result.exit_code == 2
    assert message in result.output and "nothing was imported" in result.output.lower()
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert snapshot(run) == before  # task 1's valid answer was not half-imported


def test_a_cut_off_file_and_a_contradiction_with_the_ledger(run, tmp_path_factory):
    cli("label", "export", str(run), "--format", "label-studio")
    tasks_file = run / "label-label-studio" / "tasks.json"
    first = ls_export(tasks_file, [[ls_annotation(10, "left")], [], [], []])
    folder = tmp_path_factory.mktemp("ls")
    (folder / "cut.json").write_text(json.dumps(first)[:-40])
    result = cli("label", "import", str(run), str(folder / "cut.json"))
    assert result.exit_code == 2 and "not valid JSON" in result.output
    (folder / "one.json").write_text(json.dumps(first))
    assert cli("label", "import", str(run), str(folder / "one.json")).exit_code == 0
    flipped = ls_export(tasks_file, [[ls_annotation(10, "right")], [], [], []])
    (folder / "flipped.json").write_text(json.dumps(flipped))
    before = snapshot(run)
    result = cli("label", "import", str(run), str(folder / "flipped.json"))
    assert result.exit_code == 2 and "already has answer" in result.output
    assert snapshot(run) == before


# --- Argilla -----------------------------------------------------------------------------------


def test_argilla_round_trip(run):
    result = cli("label", "export", str(run), "-f", "argilla")
    assert result.exit_code == 0, result.output
    out = run / "label-argilla"
    settings = json.loads((out / ".argilla" / "settings.json").read_text())
    assert [f["name"] for f in settings["fields"]] == ["instruction", "response1", "response2"]
    (question,) = settings["questions"]
    assert question["name"] == "ranking" and question["settings"]["type"] == "ranking"
    assert [o["value"] for o in question["settings"]["options"]] == ["response1", "response2"]
    dataset = json.loads((out / ".argilla" / "dataset.json").read_text())
    assert dataset["distribution"] == {"strategy": "overlap", "min_submitted": 1}
    records = json.loads((out / "records.json").read_text())
    lefts = [r["fields"]["response1"] for r in records]

    def best_first(left: str) -> list[str]:
        return ["response1", "response2"] if " good " in left else ["response2", "response1"]

    user = "2c4f7cd0-5b4c-4f32-9f5e-3b1a2f6a9d10"
    records[0]["responses"] = {"ranking": [{"value": best_first(lefts[0]), "user_id": user}]}
    records[1]["responses"] = {  # the API's form, ranks
        "ranking": [
            {
                "value": [{"value": v, "rank": i + 1} for i, v in enumerate(best_first(lefts[1]))],
                "user_id": user,
            }
        ]
    }
    records[2]["responses"] = {  # equal ranks: a tie
        "ranking": [
            {
                "value": [{"value": "response1", "rank": 1}, {"value": "response2", "rank": 1}],
                "user_id": user,
            }
        ]
    }
    records[3]["responses"] = {
        "ranking": [
            {"value": ["response1", "response2"], "user_id": "d2", "status": "draft"},
            {"user_id": user, "status": "discarded", "value": []},
        ]
    }
    for r in records:
        r["_server_id"] = "0b6c2f5e-6a8f-4a77-8a51-77f1e2d7a9c3"
    (out / "records.json").write_text(json.dumps(records))
    result = cli("label", "import", str(run), str(out))  # the to_disk directory
    assert result.exit_code == 0, result.output
    assert "Imported 4 answers for 4 pairs" in result.output
    before = snapshot(run)
    assert (
        "Imported 0 answers" in cli("label", "import", str(run), str(out / "records.json")).output
    )
    assert snapshot(run) == before
    assert verdicts(run) == [Verdict.A, Verdict.A, Verdict.TIE, Verdict.INVALID]


@pytest.mark.parametrize(
    "response, message",
    [
        ({"value": ["response1"], "user_id": "u"}, "does not rank response1 and response2"),
        ({"value": ["response1", "response2"]}, "without user_id"),
        ({"value": ["response1", "response2"], "user_id": "u", "status": "odd"}, "status"),
    ],
)
def test_argilla_bad_records_are_refused_whole(run, response, message):
    cli("label", "export", str(run), "-f", "argilla")
    out = run / "label-argilla"
    records = json.loads((out / "records.json").read_text())
    records[0]["responses"] = {"ranking": [{"value": ["response2", "response1"], "user_id": "u"}]}
    records[1]["responses"] = {"ranking": [response]}
    (out / "records.json").write_text(json.dumps(records))
    before = snapshot(run)
    result = cli("label", "import", str(run), str(out))
    assert result.exit_code == 2 and message in result.output and "record 2" in result.output
    assert snapshot(run) == before


def test_export_and_import_say_what_is_wrong(run, tmp_path):
    assert "--format 'csv' is unknown" in cli("label", "export", str(run), "-f", "csv").output
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    result = cli("label", "import", str(run), str(empty))
    assert result.exit_code == 2 and "--format label-studio" in result.output
    missing = cli("label", "import", str(run), str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
