"""The reward_model judge on a real HF reward model trained here on the offline judge's labels."""

from __future__ import annotations

import shutil

import pytest
import torch

from apl.errors import ConfigError, OracleError
from apl.oracles import ORACLES
from apl.oracles.imdb_judge import ImdbJudge
from apl.oracles.reward_model import RewardModelJudge
from apl.policy.model import bf16_supported
from apl.types import Verdict

from .tiny_reward_model import imdb_pairs


@pytest.fixture(scope="module")
def held_out(fitted_judge_cache):
    """300 IMDB test pairs and the offline judge's verdicts on them."""
    requests = imdb_pairs("test", 300, seed=1)
    judge = ImdbJudge(cache_dir=str(fitted_judge_cache))
    return requests, [j.verdict for j in judge.judge_batch(requests)]


def test_agrees_with_the_offline_judge_on_held_out_pairs(tiny_reward_model_dir, held_out):
    requests, expected = held_out
    judge = ORACLES.build("reward_model", {"model_name_or_path": str(tiny_reward_model_dir)})
    got = [j.verdict for j in judge.judge_batch(requests)]
    decided = [(g, e) for g, e in zip(got, expected, strict=True) if e in (Verdict.A, Verdict.B)]
    agreement = sum(g is e for g, e in decided) / len(decided)
    assert agreement > 0.68, agreement  # chance is 0.5; measured 0.77 at training time
    assert sum(g is Verdict.TIE for g in got) < 10


def test_runs_on_the_best_device_in_bf16_where_supported(tiny_reward_model_dir):
    judge = RewardModelJudge(str(tiny_reward_model_dir))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert judge.device.type == expected
    bf16 = bf16_supported(judge.device)
    assert judge.model.dtype == (torch.bfloat16 if bf16 else torch.float32)
    assert f"dtype={'bfloat16' if bf16 else 'float32'}" in judge.judge_id


def test_batching_and_padding_do_not_change_scores(tiny_reward_model_dir, held_out):
    requests, _ = held_out
    texts = [r.prompt + r.completion_a for r in requests[:40]]
    one = RewardModelJudge(str(tiny_reward_model_dir), batch_size=1, dtype="float32")
    many = RewardModelJudge(str(tiny_reward_model_dir), batch_size=64, dtype="float32")
    assert many.score(texts) == pytest.approx(one.score(texts), abs=1e-4)
    assert many.concurrency == 64  # the loop hands it 64 pairs per call


def test_margin_makes_close_pairs_ties_and_verdicts_follow_scores(tiny_reward_model_dir, held_out):
    requests, _ = held_out
    requests = requests[:20]
    plain = RewardModelJudge(str(tiny_reward_model_dir), dtype="float32")
    scores_a = plain.score([r.prompt + r.completion_a for r in requests])
    scores_b = plain.score([r.prompt + r.completion_b for r in requests])
    gaps = sorted(abs(a - b) for a, b in zip(scores_a, scores_b, strict=True))
    # Between two neighbouring gaps, about half become ties; no pair sits within float noise
    # of the margin (batches of other shapes may shift a score in its last bits).
    margin = (gaps[len(gaps) // 2 - 1] + gaps[len(gaps) // 2]) / 2
    assert gaps[len(gaps) // 2] - gaps[len(gaps) // 2 - 1] > 1e-4
    wide = RewardModelJudge(str(tiny_reward_model_dir), margin=margin, dtype="float32")
    for request, a, b, p, w in zip(
        requests,
        scores_a,
        scores_b,
        plain.judge_batch(requests),
        wide.judge_batch(requests),
        strict=True,
    ):
        assert p.verdict is (Verdict.A if a > b else Verdict.B)
        assert w.verdict is (Verdict.TIE if abs(a - b) <= margin else p.verdict)
        assert w.rationale.endswith(f"Preferred: {w.verdict.value}")
    assert plain.judge_id != wide.judge_id and f"margin={margin:g}" in wide.judge_id


def test_cached_like_every_judge(tiny_reward_model_dir, held_out, cache):
    requests, _ = held_out
    first = RewardModelJudge(str(tiny_reward_model_dir), cache=cache).judge_batch(requests[:10])
    again = RewardModelJudge(str(tiny_reward_model_dir), cache=cache).judge_batch(requests[:10])
    assert not any(j.from_cache for j in first) and all(j.from_cache for j in again)
    assert [j.verdict for j in again] == [j.verdict for j in first]
    other = RewardModelJudge(str(tiny_reward_model_dir), margin=0.5, cache=cache)
    assert not any(j.from_cache for j in other.judge_batch(requests[:10]))


def test_judge_id_names_the_weights_not_the_path(tiny_reward_model_dir, tmp_path):
    copy = shutil.copytree(tiny_reward_model_dir, tmp_path / "elsewhere")
    original = RewardModelJudge(str(tiny_reward_model_dir)).judge_id
    assert RewardModelJudge(str(copy)).judge_id == original  # same weights, same cache entries
    assert str(tmp_path) not in original and "local:" in original
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(copy)
    with torch.no_grad():
        model.score.weight.mul_(-1)  # same shapes and file size, different weights
    model.save_pretrained(copy)
    flipped = RewardModelJudge(str(copy))
    assert flipped.judge_id != original


def test_chat_template_where_the_tokenizer_has_one(tiny_reward_model_dir, tmp_path):
    from transformers import AutoTokenizer

    copy = shutil.copytree(tiny_reward_model_dir, tmp_path / "chat")
    tokenizer = AutoTokenizer.from_pretrained(copy)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m.role }} says {{ m.content }} ; {% endfor %}"
    )
    tokenizer.save_pretrained(copy)
    chat = RewardModelJudge(str(copy))
    assert chat.use_chat and "tpl=chat" in chat.judge_id
    assert (
        chat.text("Great film.", " I loved it")
        == "user says Great film. ; assistant says  I loved it ; "
    )
    text = RewardModelJudge(str(copy), chat_template=False)
    assert text.text("Great film.", " I loved it") == "Great film. I loved it"
    assert "tpl=text" in text.judge_id and text.judge_id != chat.judge_id
    with pytest.raises(ConfigError, match="has no chat template"):
        RewardModelJudge(str(tiny_reward_model_dir), chat_template=True)


def test_a_classifier_with_several_labels_needs_label(tiny_reward_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_reward_model_dir,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        ignore_mismatched_sizes=True,
    )
    model.save_pretrained(tmp_path / "two")
    AutoTokenizer.from_pretrained(tiny_reward_model_dir).save_pretrained(tmp_path / "two")
    with pytest.raises(ConfigError, match=r"2 outputs \(NEGATIVE, POSITIVE\)"):
        RewardModelJudge(str(tmp_path / "two"))
    judge = RewardModelJudge(str(tmp_path / "two"), label="positive", dtype="float32")
    assert judge.label_index == 1 and "label=1" in judge.judge_id
    (score,) = judge.score(["A fine film"])
    assert score < 0  # log p(POSITIVE)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({}, ConfigError, "oracle.model_name_or_path is required"),
        ({"model_name_or_path": "/nonexistent/rm"}, OracleError, "'/nonexistent/rm'"),
        ({"model_name_or_path": "x", "margin": -1}, ConfigError, "oracle.margin (-1)"),
        ({"model_name_or_path": "x", "dtype": "int8"}, ConfigError, "oracle.dtype ('int8')"),
        ({"model_name_or_path": "x", "device": "tpu"}, ConfigError, "oracle.device ('tpu')"),
    ],
)
def test_bad_options_are_one_line_errors(options, error, message):
    with pytest.raises(error) as caught:
        ORACLES.build("reward_model", options)
    assert message in str(caught.value) and "\n" not in str(caught.value)
