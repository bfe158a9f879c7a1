"""Build every stage of a run from its config: the one place that knows all their constructors."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apl.acquisition import ACQUISITIONS, Acquisition
from apl.config import APLConfig
from apl.data import TASKS, Task
from apl.loop.checks import check_oracle_options, validate_config
from apl.oracles import ORACLES, Oracle
from apl.paths import default_cache_dir
from apl.policy.decoding import compiler_available
from apl.policy.model import LoadedModel, load_model, load_tokenizer, resolve_model_path
from apl.policy.reference import ReferenceModel
from apl.policy.sharding import LOCAL, Shards
from apl.policy.view import ModelPolicyView
from apl.store.judgement_cache import JudgementCache
from apl.training.dpo_trainer import DPOTrainer
from apl.types import Prompt

logger = logging.getLogger(__name__)

JUDGEMENT_CACHE_FILE = "judgements.sqlite"
# Completions per process past which compiled decode steps repay their compile (warm inductor
# cache, docs/BENCHMARKS.md): `generation.compile` None turns compile on from here.
COMPILE_BREAK_EVEN = 7_000
KEPT_PAIRS_ONLY = ("random", "entropy")  # sample pairs only for the candidates they keep


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from the run seed and labels such as ("sample", round): independent streams."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def round_rng(seed: int, round: int, stream: str) -> np.random.Generator:
    """NumPy RNG for one round and purpose; the same on a resumed run as on an unbroken one."""
    return np.random.default_rng(derive_seed(seed, stream, round))


def torch_generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded torch generator on `device` (sampling draws there)."""
    return torch.Generator(device=device).manual_seed(seed)


def planned_completions(config: APLConfig, acquisition: Acquisition) -> int:
    """About how many completions a whole run samples: pairs, entropy estimates, evaluation."""
    loop = config.loop
    offered = acquisition.prompts_needed(loop.pool_size)
    estimates = getattr(acquisition, "num_samples", 0) * offered  # entropy / hybrid
    if config.acquisition.name in KEPT_PAIRS_ONLY:
        pairs = acquisition.num_candidates(loop.query_size, loop.pool_size)
    else:  # certainty, hybrid and unknown ones: a pair for every prompt of the pool
        pairs = loop.pool_size
    waypoints = config.evaluation.waypoints
    evaluations = loop.num_rounds if waypoints is None else len(set(waypoints)) + 1
    baseline_and_evals = config.evaluation.num_prompts * (evaluations + 1)
    return loop.num_rounds * (estimates + 2 * pairs) + baseline_and_evals


def resolve_compile(config: APLConfig, acquisition: Acquisition, device: torch.device) -> bool:
    """`generation.compile`, or when None: on where the run samples past the break-even."""
    if config.generation.compile is not None:
        return config.generation.compile
    planned = planned_completions(config, acquisition)
    on = planned >= COMPILE_BREAK_EVEN and compiler_available(device)
    logger.info(
        "Sampling %s: the run samples about %d completions (compile pays from %d) on %s%s",
        "compiled" if on else "uncompiled",
        planned,
        COMPILE_BREAK_EVEN,
        device.type,
        "" if device.type != "cpu" or compiler_available(device) else " without a C++ compiler",
    )
    return on


def model_fingerprint(path: str) -> str:
    """Identify a model's weights: hash of local weight-file names and sizes, else the hub name."""
    local = Path(path)
    if not local.is_dir():
        return path
    h = hashlib.sha256()
    for f in sorted(local.glob("*.safetensors")) + sorted(local.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass
class Components:
    """Everything a run needs, built once from the config."""

    config: APLConfig
    loaded: LoadedModel
    reference: ReferenceModel
    trainer: DPOTrainer
    view: ModelPolicyView
    task: Task
    train_prompts: list[Prompt]
    test_prompts: list[Prompt]
    oracle: Oracle | None  # None on ranks > 0: only rank 0 may pay a judge
    acquisition: Acquisition
    judgement_cache: JudgementCache | None
    fingerprint: str

    def load_trainer_state(self, path: Path) -> None:
        """Restore the trainer from a checkpoint file (each rank reads it; a collective call)."""
        self.trainer.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
        self.view.is_reference = False

    def close(self) -> None:
        """Release the judgement cache's connection."""
        if self.judgement_cache is not None:
            self.judgement_cache.close()


def build_components(
    config: APLConfig, cache_dir: Path | None = None, shards: Shards = LOCAL
) -> Components:
    """Load the task, model, reference, trainer, oracle and acquisition for `config`.

    `shards` places this process among the run's ranks. Rank 0 builds everything; a rank > 0
    builds no oracle, opens no judgement cache and loads no prompts (rank 0 sends token ids):
    it only holds the models, for its share of the model work.
    """
    validate_config(config)
    main = shards.rank == 0
    task = TASKS.build(config.task.name, config.task.kwargs)
    # The tokenizer alone (seconds) settles chat templating, hence the judge's template.
    tokenizer = load_tokenizer(config.model)
    oracle_kwargs = check_oracle_options(config, task.judge_template_for(tokenizer))
    acquisition = ACQUISITIONS.build(config.acquisition.name, config.acquisition.kwargs)

    # The oracle first: a missing API key or bad option fails before minutes of model loading.
    oracle, judgement_cache = None, None
    if main:
        cache_root = cache_dir or default_cache_dir()
        judgement_cache = JudgementCache(cache_root / JUDGEMENT_CACHE_FILE)
        try:
            oracle = ORACLES.build(
                config.oracle.name, oracle_kwargs, cache=judgement_cache, seed=config.seed
            )
        except BaseException:
            judgement_cache.close()
            raise

    torch.manual_seed(derive_seed(config.seed, "init"))
    loaded = load_model(config.model, tokenizer=tokenizer)
    fingerprint = model_fingerprint(resolve_model_path(config.model.model_name_or_path))
    lora = config.model.lora is not None
    reference = ReferenceModel.from_policy(
        loaded.model,
        loaded.tokenizer,
        lora=lora,
        autocast_dtype=loaded.autocast_dtype,
        batch_size=config.generation.batch_size,
    )
    trainer = DPOTrainer(
        loaded.model,
        loaded.tokenizer,
        config.dpo,
        reference=reference,
        seed=config.seed,
        autocast_dtype=loaded.autocast_dtype,
    )
    view = ModelPolicyView(
        loaded.model,
        loaded.tokenizer,
        reference,
        config.generation,
        config.dpo.beta,
        generator=torch_generator(loaded.device, derive_seed(config.seed, "sample", 0)),
        autocast_dtype=loaded.autocast_dtype,
        is_reference=True,
        compile=resolve_compile(config, acquisition, loaded.device),
    )
    reference.shards = view.shards = shards
    if not main:  # rank 0 sends token ids; a rank > 0 never reads the prompt pools
        return Components(
            config, loaded, reference, trainer, view, task, [], [], None, acquisition, None, ""
        )
    train_prompts = task.load_prompts("train", loaded.tokenizer, seed=config.seed)
    test_prompts = task.load_prompts("test", loaded.tokenizer, seed=config.seed)
    logger.info(
        "Task %s: %d train / %d test prompts; model %s on %s (autocast %s); oracle %s; "
        "acquisition %s",
        config.task.name,
        len(train_prompts),
        len(test_prompts),
        config.model.model_name_or_path,
        loaded.device,
        loaded.autocast_dtype,
        oracle.judge_id,
        config.acquisition.name,
    )
    return Components(
        config,
        loaded,
        reference,
        trainer,
        view,
        task,
        train_prompts,
        test_prompts,
        oracle,
        acquisition,
        judgement_cache,
        fingerprint,
    )
