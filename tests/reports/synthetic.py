"""Synthetic run directories written through the real RunDir and Ledger APIs (no model needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apl.config import config_from_dict
from apl.store.run_dir import open_run_dir
from apl.types import Completion, Judgement, Pair, Prompt, Verdict


def make_run(
    path: Path,
    *,
    acquisition: str = "random",
    seed: int = 0,
    query_size: int = 64,
    win_rates: dict[int, float] | None = None,
    acquired: dict[int, list[tuple[float | None, str]]] | None = None,
    num_rounds: int | None = None,
    complete: bool = True,
    cost_usd: float = 0.0,
    extra: dict[str, Any] | None = None,
    labels_held: dict[int, int] | None = None,
    metrics: dict[int, dict[str, float]] | None = None,
) -> Path:
    """A run whose ledger holds `win_rates` per round and `acquired` (bt_prob, verdict) pairs.

    Rounds in `win_rates` are marked evaluated with `label/total` = round * query_size (or
    `labels_held[round]`, for a round that ended short); a complete run also gets a
    `final_model/` directory.
    """
    win_rates = win_rates or {}
    acquired = acquired or {}
    rounds = sorted(set(win_rates) | set(acquired))
    num_rounds = num_rounds or max(rounds, default=1)
    data: dict[str, Any] = {
        "model": {"model_name_or_path": "synthetic-model"},
        "acquisition": {"name": acquisition},
        "loop": {
            "label_budget": num_rounds * query_size,
            "query_size": query_size,
            "pool_size": query_size,
        },
        "output_dir": str(path),
        "seed": seed,
    }
    for key, value in (extra or {}).items():
        section, _, option = key.partition(".")
        data.setdefault(section, {})[option] = value
    run_dir = open_run_dir(config_from_dict(data))
    with run_dir.open_ledger() as ledger:
        for round in rounds:
            items = acquired.get(round, [])
            pairs = []
            for i, (bt, _) in enumerate(items):
                prompt = Prompt(f"{path.name}-r{round}-{i}", "A film")
                pair = Pair(
                    prompt,
                    Completion(" good", (1,), -1.0),
                    Completion(" bad", (2,), -2.0),
                    -1.0,
                    -2.0,
                    float(-i),
                )
                if bt is not None:
                    pair.extras["bt_prob"] = bt
                pairs.append(pair)
            candidates = ledger.save_candidates(round, pairs)
            for candidate, (_, verdict) in zip(candidates, items, strict=True):
                ledger.record_verdict(candidate.id, Judgement(Verdict(verdict), cost_usd=cost_usd))
            held = (labels_held or {}).get(round, round * query_size)
            ledger.log_metrics(round, {"label/total": held})
            if round in win_rates:
                ledger.log_metrics(
                    round, {"eval/win_rate": win_rates[round], "eval/win_rate_stderr": 0.05}
                )
            if metrics and round in metrics:
                ledger.log_metrics(round, metrics[round])
            for phase in ("labelled", "trained", "evaluated"):
                ledger.set_phase(round, phase)
    if complete:
        (path / "final_model").mkdir()
    return path
