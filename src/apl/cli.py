"""The `apl` command line: thin typer commands that parse, call the library, and report."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from apl.errors import APLError
from apl.log import setup_logging

app = typer.Typer(
    name="apl",
    help="Active preference learning: DPO fine-tuning that buys only the labels that teach most.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn an APLError into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except APLError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
) -> None:
    setup_logging(verbose)



# --- pretrain (issue 2) ---
def _pt(help_text: str, name: str) -> Any:
    """A `apl pretrain` option whose help shows PretrainConfig's default."""
    from apl.pretrain.config import default_of

    return typer.Option(help=f"{help_text} Default: {default_of(name)}.")


@app.command()
@handle_errors
def pretrain(
    output_dir: Annotated[str | None, _pt("Where to save_pretrained.", "output_dir")] = None,
    max_steps: Annotated[int | None, _pt("Optimiser steps.", "max_steps")] = None,
    seed: Annotated[int | None, _pt("Seed: init, data order, samples.", "seed")] = None,
    vocab_size: Annotated[int | None, _pt("BPE vocabulary size.", "vocab_size")] = None,
    n_layer: Annotated[int | None, _pt("Transformer layers.", "n_layer")] = None,
    n_embd: Annotated[int | None, _pt("Width.", "n_embd")] = None,
    n_head: Annotated[int | None, _pt("Attention heads.", "n_head")] = None,
    n_positions: Annotated[int | None, _pt("Context length.", "n_positions")] = None,
    batch_size: Annotated[int | None, _pt("Blocks per step.", "batch_size")] = None,
    learning_rate: Annotated[float | None, _pt("Peak AdamW lr.", "learning_rate")] = None,
    eval_every: Annotated[int | None, _pt("Steps between curve points.", "eval_every")] = None,
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast. Default: where supported.")
    ] = None,
    max_train_reviews: Annotated[
        int | None, typer.Option(help="Use only the first N train reviews (smoke runs). Default: all.")
    ] = None,
) -> None:
    """Train the BPE tokenizer and small GPT-2 on IMDB train text (the shipped default model)."""
    from apl.pretrain.train import make_pretrain_config
    from apl.pretrain.train import pretrain as run_pretrain

    config = make_pretrain_config(
        output_dir=output_dir, max_steps=max_steps, seed=seed, vocab_size=vocab_size,
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions,
        batch_size=batch_size, learning_rate=learning_rate, eval_every=eval_every, bf16=bf16,
        max_train_reviews=max_train_reviews,
    )
    result = run_pretrain(config, command=" ".join(["apl", *sys.argv[1:]]))
    typer.echo(
        f"saved {result.output_dir}: val loss {result.val_loss:.4f} nats/token (saved weights "
        f"{result.saved_val_loss:.4f}), {result.tokens_seen:,} tokens, {result.wall_s:.0f} s"
    )


# --- judge (issue 3) ---
judge_app = typer.Typer(
    help="Judges: label pairs, check a judge's self-consistency.", no_args_is_help=True
)
app.add_typer(judge_app, name="judge")

_JUDGE_OPT = typer.Option("--judge", "-j", help="Judge name (repeatable): imdb_judge, openai_judge, human.")
_OPTION_OPT = typer.Option(
    "--option", "-o", help="Judge option key=value, value as YAML (repeatable), e.g. -o model=gpt-4o."
)
_CACHE_OPT = typer.Option(help="Label cache (SQLite). Default: $APL_CACHE_DIR/judgements.sqlite.")


def _judge_cache(cache: Path | None, no_cache: bool) -> Any:
    from apl.oracles.base import default_cache_dir
    from apl.store.judgement_cache import JudgementCache

    return None if no_cache else JudgementCache(cache or default_cache_dir() / "judgements.sqlite")


@judge_app.command("consistency")
@handle_errors
def judge_consistency(
    judge: Annotated[list[str] | None, _JUDGE_OPT] = None,
    temperature: Annotated[
        list[float] | None,
        typer.Option("--temperature", "-t", help="Judge temperature (repeatable); imdb_judge: noise temperature."),
    ] = None,
    option: Annotated[list[str] | None, _OPTION_OPT] = None,
    pairs: Annotated[Path | None, typer.Option(help="JSONL of {prompt, a, b}. Default: IMDB test pairs.")] = None,
    num_pairs: Annotated[int, typer.Option(min=1, help="Pairs built from IMDB test reviews without --pairs.")] = 50,
    output_dir: Annotated[Path, typer.Option(help="Where consistency.{md,json,png} go.")] = Path("judge-consistency"),
    cache: Annotated[Path | None, _CACHE_OPT] = None,
    no_cache: Annotated[bool, typer.Option(help="Do not read or write the label cache.")] = False,
    seed: Annotated[int, typer.Option(help="Pair sampling, A/B order and noise draws.")] = 0,
) -> None:
    """Label the same pairs twice per judge and temperature; report agreement ± SE (paper Fig. 1)."""
    import json

    from rich.table import Table

    from apl.config import apply_overrides
    from apl.oracles.consistency import (
        consistency_markdown, imdb_pairs, load_pairs, plot_consistency, run_consistency,
    )

    requests = load_pairs(pairs) if pairs else imdb_pairs(num_pairs, seed=seed)
    options = apply_overrides({}, option or [])
    results = run_consistency(
        judge or ["imdb_judge"], temperature or [], requests, options, _judge_cache(cache, no_cache), seed
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "consistency.md").write_text(consistency_markdown(results))
    (output_dir / "consistency.json").write_text(json.dumps([r.as_dict() for r in results], indent=2))
    png = plot_consistency(results, output_dir / "consistency.png")
    table = Table("judge", "temperature", "pairs", "valid", "agreement", "± SE", "spent USD")
    for r in results:
        temp = "-" if r.temperature is None else f"{r.temperature:g}"
        table.add_row(r.judge, temp, str(r.num_pairs), str(r.num_valid), f"{r.agreement:.3f}", f"{r.stderr:.3f}", f"{r.spent_usd:.4f}")
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

    requests = load_pairs(pairs)
    oracle = ORACLES.build(judge, apply_overrides({}, option or []), cache=_judge_cache(cache, no_cache), seed=seed)
    judgements = oracle.judge_batch(requests)
    with output.open("w", encoding="utf-8") as handle:
        for judgement in judgements:
            row = dataclasses.asdict(judgement) | {"verdict": judgement.verdict.value}
            handle.write(json.dumps(row) + "\n")
    metrics = oracle.stats.metrics()
    summary = ", ".join(f"{k.removeprefix('judge/')}={v:g}" for k, v in metrics.items())
    typer.echo(f"Labelled {len(judgements)} pairs into {output}: {summary}")


# --- run / resume / status / export (issue 5) ---
# Options a resumed run may change: limits on spending and waiting, never what is computed.
RESUME_OVERRIDABLE = (
    "oracle.budget_usd", "oracle.max_calls", "oracle.concurrency", "oracle.timeout_s",
    "oracle.max_retries", "oracle.backoff_base_s", "oracle.backoff_max_s",
)


def _print_result(result: Any) -> None:
    from rich.console import Console

    from apl.reports.summary import rounds_table

    Console().print(rounds_table(result.metrics, title=f"apl run {result.run_dir}"))
    typer.echo(f"Labels: {result.run_dir}/export; model: {result.run_dir}/final_model")


@app.command()
@handle_errors
def run(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="[CONFIG.yaml] then section.option=value overrides, e.g. loop.query_size=32 seed=1."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config; defaults: offline IMDB.")
    ] = None,
) -> None:
    """Run active preference learning (Algorithm 1); no arguments runs the offline IMDB default."""
    from apl.config import load_config
    from apl.loop.runner import run as run_loop

    args = list(overrides or [])
    if args and "=" not in args[0] and args[0].endswith((".yaml", ".yml")):
        if config is not None:
            raise typer.BadParameter(f"two configs given: {config} and {args[0]}; pass one.")
        config = Path(args.pop(0))
    _print_result(run_loop(load_config(config, args)))


@app.command()
@handle_errors
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The output_dir of an interrupted `apl run`.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help=f"Only spending limits may change: {', '.join(RESUME_OVERRIDABLE)}."),
    ] = None,
) -> None:
    """Continue a killed or stopped run; paid verdicts are reused, never bought again."""
    from apl.loop.runner import resume_run

    _print_result(resume_run(run_dir, overrides or [], RESUME_OVERRIDABLE))


@app.command()
@handle_errors
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run's output_dir.")],
) -> None:
    """Show a run's progress, labels held, spend and latest win-rate."""
    from rich.console import Console

    from apl.reports.summary import rounds_table, status_table
    from apl.store.run_dir import load_run_dir

    directory = load_run_dir(run_dir)
    console = Console()
    console.print(status_table(directory.status(), str(run_dir)))
    with directory.open_ledger() as ledger:
        console.print(rounds_table(ledger.metrics()))


@app.command()
@handle_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run's output_dir.")],
    out: Annotated[Path | None, typer.Option(help="Where to write; default: the run dir.")] = None,
) -> None:
    """Export a run's labelled preferences as TRL-style JSONL and a `datasets` directory."""
    from apl.export import export_run

    result = export_run(run_dir, out)
    typer.echo(f"{result.num_rows} preferences -> {result.jsonl_path} and {result.dataset_path}")



# --- sweep / report (issue 6) ---
@app.command()
@handle_errors
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep YAML: base, grid, output_dir[, parallel].")],
    parallel: Annotated[
        int | None,
        typer.Option(min=1, help="Runs at once. Default: the spec's, else one per GPU / per core."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads per run. Default: cores / parallel.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="List the runs and what would be done; start nothing.")
    ] = False,
) -> None:
    """Run a grid of configs (strategies x seeds x ...) as resumable runs; complete ones are skipped."""
    from rich.console import Console
    from rich.table import Table

    from apl.sweep import load_sweep_spec, plan_sweep, run_sweep

    loaded = load_sweep_spec(spec)
    if dry_run:
        table = Table("run", "state", "action", "command", title=f"apl sweep {spec} (dry run)")
        for item in plan_sweep(loaded):
            action = {"new": "run", "incomplete": "resume", "complete": "skip"}[item.state]
            table.add_row(item.run.name, item.state, action, " ".join(item.command or []))
        Console().print(table)
        return
    result = run_sweep(loaded, parallel=parallel, threads=threads)
    table = Table("run", "action", "result", "seconds", "log", title=f"apl sweep {loaded.root}")
    for o in result.outcomes:
        status = "ok" if o.ok else f"FAILED (exit {o.returncode}): {o.detail}"
        log = str(o.log_path) if o.action != "skip" else ""
        table.add_row(o.name, o.action, status, f"{o.seconds:.0f}", log)
    Console().print(table)
    if result.failed:
        typer.echo(
            f"{len(result.failed)} of {len(result.outcomes)} runs failed; see their logs, fix, "
            f"and rerun `apl sweep {spec}` (complete runs are skipped).",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
@handle_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run dirs and/or sweep roots.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Report directory.")
    ] = Path("report"),
    consistency: Annotated[
        Path | None, typer.Option(help="An `apl judge consistency --output-dir` to include.")
    ] = None,
) -> None:
    """Write the paper's Table 2, Figures 2-3, label efficiency and spend as Markdown + PNG + CSV."""
    from apl.reports.markdown import write_report

    written = write_report(runs, output, consistency_dir=consistency)
    typer.echo(
        f"Wrote {written.markdown} ({written.num_runs} runs, {written.num_groups} strategies)"
    )


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
