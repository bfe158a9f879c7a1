"""The run ledger on a real SQLite file: round trips, first-verdict-wins, labelled set, spend."""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from apl.errors import RunStoreError
from apl.store.ledger import Ledger
from apl.types import Completion, Judgement, Message, Pair, Prompt, Verdict

from .killed_writer import run_and_kill


def make_pairs(n: int, tag: str, seed: int = 0) -> list[Pair]:
    """n distinct pairs with random token ids, log-probs and extras."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        prompt = Prompt(
            uid=f"{tag}-{i}",
            text=f"prompt {tag} {i} é",
            reference=None if i % 2 else f"ref {i}",
            label=i % 2 if i % 3 else None,
        )
        a, b = (
            Completion(
                text=f" {side}{i}",
                token_ids=tuple(rng.randrange(50_000) for _ in range(rng.randint(1, 24))),
                logp=None if i == 1 else -rng.random() * 30,
            )
            for side in "ab"
        )
        extras = {"reward_a": rng.random(), "reward_b": -rng.random(), "bt_prob": rng.random()}
        score = rng.random() if i != 2 else None
        pairs.append(Pair(prompt, a, b, -rng.random() * 30, -rng.random() * 30, score, extras))
    return pairs


def judgement(
    verdict: Verdict, cost: float = 0.01, cached: bool = False, tag: str = ""
) -> Judgement:
    """A judgement with every field set to something non-default."""
    return Judgement(
        verdict=verdict,
        rationale=f"because {tag}",
        shown_order="BA",
        prompt_tokens=120,
        completion_tokens=9,
        cost_usd=cost,
        latency_s=0.25,
        from_cache=cached,
        judge_id="gpt-test|t0.05|random",
        retries=2,
    )


@pytest.fixture()
def ledger(tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as led:
        yield led


def test_candidates_round_trip_in_rank_order(ledger):
    pairs = make_pairs(7, "r1")
    saved = ledger.save_candidates(1, pairs)
    assert [c.rank for c in saved] == list(range(7))
    assert len({c.id for c in saved}) == 7
    assert [c.pair for c in ledger.candidates(1)] == pairs  # every field, floats exact
    assert ledger.phase(1) == "candidates"
    assert ledger.candidates(2) == []
    assert ledger.phase(2) is None


def test_pragmas_durable_settings(ledger):
    conn = ledger._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_saving_a_round_twice_is_refused_and_changes_nothing(ledger):
    first = ledger.save_candidates(0, make_pairs(3, "x"))
    with pytest.raises(ValueError, match="already has candidates"):
        ledger.save_candidates(0, make_pairs(5, "y"))
    assert ledger.candidates(0) == first


def test_a_failing_candidate_write_leaves_no_partial_round(ledger):
    pairs = make_pairs(6, "x")
    bad = pairs[4]
    pairs[4] = Pair(Prompt(bad.prompt.uid, None), bad.a, bad.b)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        ledger.save_candidates(3, pairs)
    assert ledger.phase(3) is None
    assert ledger._conn.execute("SELECT COUNT(*) FROM candidates").fetchone()[0] == 0
    ledger.save_candidates(3, make_pairs(2, "ok"))  # the round can be saved afterwards
    assert len(ledger.candidates(3)) == 2


def test_first_verdict_wins_and_round_trips(ledger, caplog):
    (cand,) = ledger.save_candidates(0, make_pairs(1, "x"))
    assert ledger.verdict_for(cand.id) is None
    first = judgement(Verdict.B, tag="first")
    assert ledger.record_verdict(cand.id, first) is True
    assert ledger.record_verdict(cand.id, judgement(Verdict.A, tag="second")) is False
    assert ledger.verdict_for(cand.id) == first
    assert "first wins" in caplog.text
    assert ledger.verdicts(0) == {cand.id: first}


def test_verdict_for_unknown_candidate_is_rejected(ledger):
    with pytest.raises(sqlite3.IntegrityError):
        ledger.record_verdict(12345, judgement(Verdict.A))


def test_labelled_set_is_ab_only_in_round_rank_order(ledger):
    r0 = ledger.save_candidates(0, make_pairs(4, "r0", seed=1))
    r1 = ledger.save_candidates(1, make_pairs(4, "r1", seed=2))
    # Recorded out of order on purpose; ties and invalid must not become labels.
    plan = [
        (r1[2], Verdict.A),
        (r0[3], Verdict.B),
        (r1[0], Verdict.INVALID),
        (r0[0], Verdict.A),
        (r0[1], Verdict.TIE),
        (r1[1], Verdict.B),
    ]
    for cand, verdict in plan:
        ledger.record_verdict(cand.id, judgement(verdict))
    labelled = ledger.labelled()
    assert [(x.round, x.rank) for x in labelled] == [(0, 0), (0, 3), (1, 1), (1, 2)]
    by_id = {c.id: c.pair for c in r0 + r1}
    for item in labelled:
        pair, pref = by_id[item.candidate_id], item.preference
        if item.judgement.verdict is Verdict.A:
            assert (pref.chosen, pref.rejected) == (pair.a, pair.b)
            assert (pref.ref_logp_chosen, pref.ref_logp_rejected) == (
                pair.ref_logp_a,
                pair.ref_logp_b,
            )
        else:
            assert (pref.chosen, pref.rejected) == (pair.b, pair.a)
            assert (pref.ref_logp_chosen, pref.ref_logp_rejected) == (
                pair.ref_logp_b,
                pair.ref_logp_a,
            )
        assert pref.prompt == pair.prompt
    assert ledger.preferences() == [x.preference for x in labelled]
    assert [(x.round, x.rank) for x in ledger.labelled(up_to_round=0)] == [(0, 0), (0, 3)]
    # Every prompt the oracle saw is acquired (tie and invalid too); unjudged ones are not.
    judged = {c.pair.prompt.uid for c, _ in plan}
    assert ledger.acquired_prompt_uids() == judged
    assert r0[2].pair.prompt.uid not in ledger.acquired_prompt_uids()


def test_phase_moves_forward_only(ledger):
    with pytest.raises(ValueError, match="no saved candidates"):
        ledger.set_phase(0, "labelled")
    ledger.save_candidates(0, make_pairs(1, "x"))
    ledger.set_phase(0, "labelled")
    ledger.set_phase(0, "labelled")  # idempotent
    ledger.set_phase(0, "evaluated")
    with pytest.raises(ValueError, match="cannot go back"):
        ledger.set_phase(0, "trained")
    with pytest.raises(ValueError, match="not one of"):
        ledger.set_phase(0, "done")
    assert ledger.rounds() == {0: "evaluated"}


def test_metrics_history_spend_and_status(ledger):
    c0 = ledger.save_candidates(0, make_pairs(3, "a"))
    c1 = ledger.save_candidates(1, make_pairs(2, "b"))
    ledger.record_verdict(c0[0].id, judgement(Verdict.A, cost=0.25))
    ledger.record_verdict(c0[1].id, judgement(Verdict.INVALID, cost=0.5))
    ledger.record_verdict(c0[2].id, judgement(Verdict.B, cost=0.0, cached=True))
    ledger.record_verdict(c1[0].id, judgement(Verdict.TIE, cost=0.125))
    ledger.set_phase(0, "trained")
    ledger.log_metrics(
        0, {"rewards/margins": 0.5, "eval/win_rate": 0.6, "eval/win_rate_stderr": 0.05}
    )
    ledger.log_metrics(0, {"eval/win_rate": 0.625})  # replaced, others kept
    ledger.log_metrics(1, {"train/loss": None})
    ledger.log_history(0, [{"loss": 0.7, "rewards/accuracies": 0.5}, {"loss": 0.6}, {"loss": 0.5}])
    ledger.log_history(0, [{"loss": 0.69}, {"loss": 0.59}])  # a retrained round replaces
    ledger.save_eval_prompts([Prompt("e1", "t")])
    ledger.record_eval_verdicts(0, {"e1": judgement(Verdict.A, cost=1.0)})

    assert ledger.metrics() == {
        0: {"rewards/margins": 0.5, "eval/win_rate": 0.625, "eval/win_rate_stderr": 0.05},
        1: {"train/loss": None},
    }
    assert ledger.history(0) == [{"loss": 0.69}, {"loss": 0.59}]
    assert ledger.history(7) == []
    spend = ledger.spend()
    assert spend.label_usd == pytest.approx(0.875)
    assert spend.eval_usd == pytest.approx(1.0)
    assert spend.total_usd == pytest.approx(1.875)
    assert (spend.oracle_calls, spend.cache_hits) == (4, 1)
    status = ledger.status(num_rounds=4)
    assert (status.num_rounds, status.rounds_done, status.round, status.phase) == (
        4,
        1,
        1,
        "candidates",
    )
    assert (status.labels, status.verdicts) == (2, 4)
    assert (status.win_rate, status.win_rate_stderr, status.win_rate_round) == (0.625, 0.05, 0)


def test_status_of_an_empty_ledger(ledger):
    status = ledger.status(num_rounds=2)
    assert (status.rounds_done, status.round, status.phase, status.labels) == (0, None, None, 0)
    assert status.win_rate is None and status.spend.total_usd == 0.0


def test_eval_records_round_trip_first_write_wins(ledger):
    prompts = [Prompt(f"e{i}", f"text {i}", reference=f"ref {i}", label=i % 2) for i in range(4)]
    ledger.save_eval_prompts(prompts)
    ledger.save_eval_prompts(prompts)  # same list: no-op
    with pytest.raises(RunStoreError, match="eval prompts that differ"):
        ledger.save_eval_prompts(prompts[::-1])
    assert ledger.eval_prompts() == prompts

    base = {p.uid: Completion(f"base {p.uid}", (1, 2, 3), -4.5) for p in reversed(prompts)}
    ledger.save_baseline(base)
    ledger.save_baseline({"e0": Completion("other", (9,), None)})
    assert list(ledger.baseline()) == ["e0", "e1", "e2", "e3"]  # eval-prompt order
    assert ledger.baseline() == base

    pol = {"e2": Completion("p2", (5,), -1.0), "e0": Completion("p0", (), None)}
    ledger.save_eval_completions(3, pol)
    assert ledger.eval_completions(3) == pol and list(ledger.eval_completions(3)) == ["e0", "e2"]
    assert ledger.eval_completions(4) == {}

    assert ledger.record_eval_verdicts(3, {"e2": judgement(Verdict.B)}) == 1
    assert (
        ledger.record_eval_verdicts(3, {"e2": judgement(Verdict.A), "e0": judgement(Verdict.TIE)})
        == 1
    )
    assert {k: v.verdict for k, v in ledger.eval_verdicts(3).items()} == {
        "e0": Verdict.TIE,
        "e2": Verdict.B,
    }
    with pytest.raises(sqlite3.IntegrityError):  # only the fixed eval prompts can be judged
        ledger.record_eval_verdicts(3, {"nope": judgement(Verdict.A)})


def test_everything_survives_reopening(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        cands = led.save_candidates(0, make_pairs(3, "x"))
        led.record_verdict(cands[1].id, judgement(Verdict.A))
        led.log_metrics(0, {"eval/win_rate": math.pi})
        expected = (led.candidates(0), led.labelled(), led.metrics())
    with Ledger(path) as led:
        assert (led.candidates(0), led.labelled(), led.metrics()) == expected


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(RunStoreError, match="schema version 99"):
        Ledger(path)


CHAT_PROMPT = Prompt(
    uid="custom-chat",
    text="<|im_start|>user\nHi é<|im_end|>\n<|im_start|>assistant\n",
    messages=(Message("system", "Be brief."), Message("user", "Hi é")),
)


def test_conversational_prompts_round_trip_in_candidates_and_eval_prompts(tmp_path):
    pairs = make_pairs(2, "c")
    pairs[0].prompt = CHAT_PROMPT
    with Ledger(tmp_path / "ledger.sqlite") as led:
        led.save_candidates(1, pairs)
        led.save_eval_prompts([CHAT_PROMPT, pairs[1].prompt])
    with Ledger(tmp_path / "ledger.sqlite") as led:
        stored = [c.pair.prompt for c in led.candidates(1)]
        assert stored == [CHAT_PROMPT, pairs[1].prompt] and not stored[1].messages
        assert led.eval_prompts() == [CHAT_PROMPT, pairs[1].prompt]


def test_a_version_1_ledger_gains_the_message_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        led.save_candidates(1, make_pairs(3, "old"))
        led.save_eval_prompts([p.prompt for p in make_pairs(2, "ev")])
        before = (led.candidates(1), led.eval_prompts())
    with sqlite3.connect(path) as conn:  # as apl wrote ledgers before conversational prompts
        conn.execute("ALTER TABLE candidates DROP COLUMN prompt_messages")
        conn.execute("ALTER TABLE eval_prompts DROP COLUMN messages")
        conn.execute("DROP TABLE oracle_calls")  # nor the spend journal (schema 2)
        conn.execute("DROP TABLE oracle_calls_totals")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with Ledger(path) as led:
        assert (led.candidates(1), led.eval_prompts()) == before
        new = make_pairs(1, "new")
        new[0].prompt = CHAT_PROMPT
        assert led.save_candidates(2, new)[0].pair.prompt == CHAT_PROMPT
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            "3",
        )


def test_foreign_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(RunStoreError) as err:
        Ledger(path)
    assert "not a valid apl ledger" in str(err.value) and "\n" not in str(err.value)


def test_disk_full_mid_run_keeps_every_committed_verdict(tmp_path):
    """SQLite's own SQLITE_FULL (via max_page_count, the error a full disk gives) mid-run."""
    path = tmp_path / "ledger.sqlite"
    led = Ledger(path)
    cands = led.save_candidates(0, make_pairs(400, "x"))
    pages = led._conn.execute("PRAGMA page_count").fetchone()[0]
    led._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    stored = []
    with pytest.raises(RunStoreError) as err:
        for cand in cands:
            led.record_verdict(cand.id, judgement(Verdict.A, tag="x" * 500))
            stored.append(cand.id)
    message = str(err.value)
    assert "disk is full" in message and str(path) in message and "\n" not in message
    assert 0 < len(stored) < len(cands)
    led.close()
    with Ledger(path) as again:
        assert again._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert sorted(again.verdicts(0)) == stored


# --- kill -9 ------------------------------------------------------------------------------

_WRITER = r"""
import random, sys
from apl.store.ledger import Ledger
from apl.types import Completion, Judgement, Message, Pair, Prompt, Verdict

path, seed, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
verdicts = [Verdict.A, Verdict.B, Verdict.TIE, Verdict.INVALID]

def pairs(r):
    out = []
    for i in range(size):
        ids = tuple(range(r * 1000 + i, r * 1000 + i + 48))
        out.append(Pair(Prompt(f"r{r}-{i}", "p" * 200), Completion("a" * 100, ids, -1.5),
                        Completion("b" * 100, ids[::-1], -2.5), -1.0, -2.0, float(size - i)))
    return out

def label(led, r):
    for cand in led.candidates(r):
        if led.verdict_for(cand.id) is not None:
            continue  # a resumed writer never asks again for a verdict it holds
        v = rng.choice(verdicts)
        if not led.record_verdict(cand.id, Judgement(v, rationale="r" * 300, cost_usd=0.001)):
            print("DUPLICATE", cand.id, flush=True)
        print("verdict", cand.id, v.value, flush=True)
    led.set_phase(r, "labelled")
    print("phase", r, flush=True)

with Ledger(path) as led:
    print("ready", flush=True)
    rounds = led.rounds()
    for r, phase in rounds.items():
        if phase == "candidates":
            label(led, r)  # resume: finish the interrupted round first
    r = max(rounds) + 1 if rounds else 0
    while True:
        led.save_candidates(r, pairs(r))
        print("round", r, flush=True)
        label(led, r)
        r += 1
"""


def test_kill9_at_random_moments_leaves_a_consistent_ledger(tmp_path):
    """A real writer process is SIGKILLed at random moments; every acked write must survive."""
    path, size = tmp_path / "ledger.sqlite", 40
    rng = random.Random(1234)
    acked_rounds: set[int] = set()
    acked_verdicts: dict[int, str] = {}
    kills_mid_round = 0
    for attempt in range(6):
        lines = run_and_kill(
            _WRITER,
            [str(path), str(attempt), str(size)],
            rng.uniform(0.05, 0.6),
            tmp_path / f"stderr-{attempt}.txt",
        )
        assert not any(line.startswith("DUPLICATE") for line in lines)
        for line in lines:
            kind, *rest = line.split()
            if kind == "round":
                acked_rounds.add(int(rest[0]))
            elif kind == "verdict":
                cid = int(rest[0])
                assert cid not in acked_verdicts, "a held verdict was asked for again"
                acked_verdicts[cid] = rest[1]
        kills_mid_round += bool(lines) and lines[-1].split()[0] in ("round", "verdict")

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    per_round = dict(conn.execute("SELECT round, COUNT(*) FROM candidates GROUP BY round"))
    assert set(per_round) == set(dict(conn.execute("SELECT round, phase FROM rounds")))
    assert all(n == size for n in per_round.values()), per_round  # all or nothing
    assert acked_rounds <= set(per_round)
    stored = dict(conn.execute("SELECT candidate_id, verdict FROM verdicts"))
    assert all(stored.get(cid) == v for cid, v in acked_verdicts.items())
    assert len(acked_verdicts) > size  # the writers got well into the work
    assert kills_mid_round >= 1  # at least one kill landed between a round's writes
    for r, phase in conn.execute("SELECT round, phase FROM rounds"):
        held = conn.execute(
            "SELECT COUNT(*) FROM verdicts v JOIN candidates c ON c.id = v.candidate_id "
            "WHERE c.round = ?",
            (r,),
        ).fetchone()[0]
        assert phase == "candidates" or held == size  # `labelled` only once every verdict is in
    conn.close()
