"""`apl judge consistency` and `apl judge label`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from apl.cli import app, handle_errors

judge_app = typer.Typer(
    help="Judges: label pairs, check a judge's self-consistency.", no_args_is_help=True
)
app.add_typer(judge_app, name="judge")

_JUDGE_OPT = typer.Option(
    "--judge", "-j", help="Judge name (repeatable): imdb_judge, openai_judge, human."
)
_OPTION_OPT = typer.Option(
    "--option",
    "-o",
    help="Judge option key=value, value as YAML (repeatable), e.g. -o model=gpt-4o.",
)
_CACHE_OPT = typer.Option(help="Label cache (SQLite). Default: $APL_CACHE_DIR/judgements.sqlite.")


def check_output_path(path: Path, option: str, directory: bool) -> None:
    """Raise ConfigError if `path` cannot be written as a file (or a directory) later."""
    from apl.errors import ConfigError

    kind = "directory" if directory else "file"
    if path.exists() and path.is_dir() != directory:
        raise ConfigError(f"{option} {path} exists and is not a {kind}; choose another path.")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file; choose another path.")
    if not directory and not path.parent.is_dir():
        raise ConfigError(
            f"{option} {path}: directory {path.parent} does not exist; create it first."
        )


def _judge_cache(cache: Path | None, no_cache: bool) -> Any:
    from apl.paths import default_cache_dir
    from apl.store.judgement_cache import JudgementCache

    return None if no_cache else JudgementCache(cache or default_cache_dir() / "judgements.sqlite")


@judge_app.command("consistency")
@handle_errors
def judge_consistency(
    judge: Annotated[list[str] | None, _JUDGE_OPT] = None,
    temperature: Annotated[
        list[float] | None,
        typer.Option(
            "--temperature",
            "-t",
            help="Judge temperature (repeatable); imdb_judge: noise temperature.",
        ),
    ] = None,
    option: Annotated[list[str] | None, _OPTION_OPT] = None,
    pairs: Annotated[
        Path | None, typer.Option(help="JSONL of {prompt, a, b}. Default: IMDB test pairs.")
    ] = None,
    num_pairs: Annotated[
        int, typer.Option(min=1, help="Pairs built from IMDB test reviews without --pairs.")
    ] = 50,
    output_dir: Annotated[Path, typer.Option(help="Where consistency.{md,json,png} go.")] = Path(
        "judge-consistency"
    ),
    cache: Annotated[Path | None, _CACHE_OPT] = None,
    no_cache: Annotated[bool, typer.Option(help="Do not read or write the label cache.")] = False,
    seed: Annotated[int, typer.Option(help="Pair sampling, A/B order and noise draws.")] = 0,
) -> None:
    """Label the same pairs twice per judge and temperature; report agreement ± SE (paper Fig. 1)."""
    import json

    from rich.table import Table

    from apl.config import apply_overrides
    from apl.oracles.consistency import (
        consistency_markdown,
        imdb_pairs,
        judge_settings,
        load_pairs,
        plot_consistency,
        run_consistency,
    )

    options = apply_overrides({}, option or [])
    judge_settings(judge or ["imdb_judge"], temperature or [], options)  # fail before any work
    check_output_path(output_dir, "--output-dir", directory=True)
    requests = load_pairs(pairs) if pairs else imdb_pairs(num_pairs, seed=seed)
    results = run_consistency(
        judge or ["imdb_judge"],
        temperature or [],
        requests,
        options,
        _judge_cache(cache, no_cache),
        seed,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "consistency.md").write_text(consistency_markdown(results))
    (output_dir / "consistency.json").write_text(
        json.dumps([r.as_dict() for r in results], indent=2)
    )
    png = plot_consistency(results, output_dir / "consistency.png")
    table = Table("judge", "temperature", "pairs", "valid", "agreement", "± SE", "spent USD")
    for r in results:
        temp = "-" if r.temperature is None else f"{r.temperature:g}"
        table.add_row(
            r.judge,
            temp,
            str(r.num_pairs),
            str(r.num_valid),
            f"{r.agreement:.3f}",
            f"{r.stderr:.3f}",
            f"{r.spent_usd:.4f}",
        )
    from rich.console import Console

    Console().print(table)
    typer.echo(f"Wrote {output_dir / 'consistency.md'} and {png}")


@judge_app.command("label")
@handle_errors
def judge_label(
    pairs: Annotated[Path, typer.Option(help="JSONL of {prompt, a, b} to label.")],
    output: Annotated[Path, typer.Option(help="JSONL of judgements, one per pair, in order.")],
    judge: Annotated[str, typer.Option("--judge", "-j", help="Judge name.")] = "imdb_judge",
    option: Annotated[list[str] | None, _OPTION_OPT] = None,
    cache: Annotated[Path | None, _CACHE_OPT] = None,
    no_cache: Annotated[bool, typer.Option(help="Do not read or write the label cache.")] = False,
    seed: Annotated[int, typer.Option(help="A/B order and noise draws.")] = 0,
) -> None:
    """Label a file of pairs with one judge (cached: a repeated pair is never paid twice)."""
    import dataclasses
    import json

    from apl.config import apply_overrides
    from apl.oracles import ORACLES
    from apl.oracles.consistency import load_pairs

    options = apply_overrides({}, option or [])
    ORACLES.build(judge, options, cache=None, seed=seed)  # a bad judge or option fails first
    check_output_path(output, "--output", directory=False)
    requests = load_pairs(pairs)
    oracle = ORACLES.build(judge, options, cache=_judge_cache(cache, no_cache), seed=seed)
    judgements = oracle.judge_batch(requests)
    with output.open("w", encoding="utf-8") as handle:
        for judgement in judgements:
            row = dataclasses.asdict(judgement) | {"verdict": judgement.verdict.value}
            handle.write(json.dumps(row) + "\n")
    metrics = oracle.stats.metrics()
    summary = ", ".join(f"{k.removeprefix('judge/')}={v:g}" for k, v in metrics.items())
    typer.echo(f"Labelled {len(judgements)} pairs into {output}: {summary}")
