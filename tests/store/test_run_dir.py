"""The run directory: config guard, atomic checkpoints, and unwritable or full disks."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from apl.config import config_from_dict, dump_config, load_config
from apl.errors import RunStoreError
from apl.store.fs import storage_errors
from apl.store.ledger import Ledger
from apl.store.run_dir import CONFIG_FILE, load_run_dir, open_run_dir
from apl.types import Completion, Judgement, Pair, Prompt, Verdict

from .killed_writer import run_and_kill


def make_config(out: Path, **sections):
    return config_from_dict({"output_dir": str(out), **sections})


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --- config guard -------------------------------------------------------------------------


def test_new_run_dir_holds_the_resolved_config(tmp_path):
    config = make_config(tmp_path / "runs" / "a", dpo={"beta": 0.1})
    run = open_run_dir(config)
    assert run.created and run.path == tmp_path / "runs" / "a"
    assert (run.path / CONFIG_FILE).read_text() == dump_config(config)
    assert load_config(run.path / CONFIG_FILE) == config  # every default spelled out, round trips
    again = open_run_dir(config)
    assert not again.created


@pytest.mark.parametrize(
    ("change", "key", "old", "new"),
    [
        ({"dpo": {"beta": 0.1}}, "dpo.beta", "0.2", "0.1"),
        ({"seed": 3}, "seed", "0", "3"),
        ({"evaluation": {"waypoints": [128, 256]}}, "evaluation.waypoints", "None", "[128, 256]"),
        ({"acquisition": {"name": "entropy"}}, "acquisition.name", "'certainty'", "'entropy'"),
        (
            {"task": {"name": "imdb", "max_prompt_tokens": 9}},
            "task.max_prompt_tokens",
            "absent",
            "9",
        ),
    ],
)
def test_a_different_config_names_the_first_differing_key(tmp_path, change, key, old, new):
    open_run_dir(make_config(tmp_path / "run"))
    with pytest.raises(RunStoreError) as err:
        open_run_dir(make_config(tmp_path / "run", **change))
    message = one_line(err)
    assert f"{key} is {old} there, {new} here" in message
    assert "new output_dir" in message and f"apl resume {tmp_path / 'run'}" in message


def test_output_dir_spelling_is_not_a_difference(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    open_run_dir(make_config(Path("runs/x")))
    assert not open_run_dir(make_config(tmp_path / "runs" / "x")).created


def test_a_stored_key_this_version_lacks_is_a_difference(tmp_path):
    run = open_run_dir(make_config(tmp_path / "run"))
    data = yaml.safe_load((run.path / CONFIG_FILE).read_text())
    data["loop"]["warm_start"] = True
    (run.path / CONFIG_FILE).write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(RunStoreError, match="loop.warm_start is True there, absent here"):
        open_run_dir(make_config(tmp_path / "run"))


def test_a_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunStoreError) as err:
        open_run_dir(make_config(tmp_path))
    assert "not an apl run" in one_line(err) and "notes.txt" in str(err.value)
    assert not (tmp_path / CONFIG_FILE).exists()


def test_load_run_dir_uses_the_stored_config_even_after_a_move(tmp_path):
    config = make_config(tmp_path / "old", seed=7)
    open_run_dir(config)
    (tmp_path / "old").rename(tmp_path / "new")
    run = load_run_dir(tmp_path / "new")
    assert run.config.seed == 7 and run.config.output_dir == str(tmp_path / "new")
    assert run.config.model_copy(update={"output_dir": config.output_dir}) == config


def test_load_run_dir_errors(tmp_path):
    with pytest.raises(RunStoreError, match="not an apl run directory") as err:
        load_run_dir(tmp_path / "missing")
    one_line(err)
    (tmp_path / CONFIG_FILE).write_text("- just\n- a list\n")
    with pytest.raises(RunStoreError, match="not a valid apl config"):
        load_run_dir(tmp_path)


def test_status_reads_rounds_from_the_config(tmp_path):
    run = open_run_dir(make_config(tmp_path / "r", loop={"label_budget": 96, "query_size": 32}))
    with run.open_ledger() as ledger:
        prompt = Prompt("u", "p")
        (cand,) = ledger.save_candidates(
            0, [Pair(prompt, Completion("a", (1,)), Completion("b", (2,)))]
        )
        ledger.record_verdict(cand.id, Judgement(Verdict.A, cost_usd=0.5))
    status = run.status()
    assert (status.num_rounds, status.round, status.labels, status.spend.label_usd) == (
        3,
        0,
        1,
        0.5,
    )


def test_exclusive_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path):
    run = open_run_dir(make_config(tmp_path / "run"))
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(run.path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunStoreError) as err:
            with run.exclusive():
                pass
        assert f"pid {holder.pid}" in one_line(err) and "in use" in str(err.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)
    with run.exclusive():  # the kernel released the dead holder's lock
        with pytest.raises(RunStoreError, match="in use"):
            with load_run_dir(run.path).exclusive():
                pass
    with run.exclusive():
        pass
    assert open_run_dir(make_config(tmp_path / "run")).created is False  # .lock is ours


_LOCK_HOLDER = r"""
import sys, time
from apl.store.run_dir import load_run_dir
with load_run_dir(sys.argv[1]).exclusive():
    print("locked", flush=True)
    time.sleep(60)
"""


# --- checkpoints --------------------------------------------------------------------------


def test_checkpoints_are_complete_loadable_and_pruned(tmp_path, tiny_model_and_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = tiny_model_and_tokenizer
    run = open_run_dir(make_config(tmp_path / "run"))
    assert run.latest_checkpoint() is None
    junk = run.checkpoints_dir / ".round-09.tmp-999"  # what a killed writer leaves
    junk.mkdir(parents=True)
    (junk / "model.safetensors").write_bytes(b"half")
    for r in range(3):
        with torch.no_grad():
            model.transformer.wte.weight.fill_(float(r))
        run.save_checkpoint(model, tokenizer, r, keep=2)
    assert sorted(run.checkpoints()) == [1, 2]
    assert not junk.exists() and not any(
        p.name.startswith(".") for p in run.checkpoints_dir.iterdir()
    )
    r, path = run.latest_checkpoint()
    assert (r, path.name) == (2, "round-02")
    loaded = AutoModelForCausalLM.from_pretrained(path)
    assert torch.equal(
        loaded.transformer.wte.weight, torch.full_like(loaded.transformer.wte.weight, 2.0)
    )
    assert AutoTokenizer.from_pretrained(path).get_vocab() == tokenizer.get_vocab()
    with torch.no_grad():
        model.transformer.wte.weight.fill_(5.0)
    run.save_checkpoint(model, tokenizer, 2, keep=2)  # a retrained round replaces its checkpoint
    reloaded = AutoModelForCausalLM.from_pretrained(run.checkpoint_path(2))
    assert float(reloaded.transformer.wte.weight[0, 0].detach()) == 5.0
    final = run.save_final_model(model, tokenizer)
    assert final.name == "final_model" and (final / "config.json").is_file()


def test_a_failing_save_leaves_the_old_checkpoint(tmp_path, tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    run = open_run_dir(make_config(tmp_path / "run"))
    run.save_checkpoint(model, tokenizer, 1)

    class Exploding:
        def save_pretrained(self, directory):
            (Path(directory) / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("killed mid-save")

    with pytest.raises(RuntimeError):
        run.save_checkpoint(Exploding(), None, 1)
    assert (run.checkpoint_path(1) / "config.json").is_file()
    assert [p.name for p in run.checkpoints_dir.iterdir()] == ["round-01"]


def test_prune_checkpoints_keeps_rounds_from_before(tmp_path):
    run = open_run_dir(make_config(tmp_path / "run"))

    class Tiny:
        def save_pretrained(self, directory):
            (Path(directory) / "config.json").write_text("{}")

    for r in (1, 2, 3):
        run.save_checkpoint(Tiny(), None, r, keep=3)
    (run.checkpoints_dir / ".round-04.old-1").mkdir()
    run.prune_checkpoints(before=3)
    assert sorted(run.checkpoints()) == [3]
    assert [p.name for p in run.checkpoints_dir.iterdir()] == ["round-03"]
    run.prune_checkpoints(before=3)  # idempotent


_CHECKPOINT_WRITER = r"""
import sys
from pathlib import Path
from apl.store.run_dir import load_run_dir

class BlobModel:  # stands in for a HF model (no torch import, so kills land mid-write often)
    def __init__(self, r):
        self.r = r
    def save_pretrained(self, d):
        Path(d, "model.safetensors").write_bytes(bytes([self.r % 256]) * 2_000_000)
        Path(d, "config.json").write_text(str(self.r))

run = load_run_dir(sys.argv[1])
latest = run.latest_checkpoint()
r = latest[0] + 1 if latest else 0
print("ready", flush=True)
while True:
    run.save_checkpoint(BlobModel(r), None, r, keep=2)
    print("saved", r, flush=True)
    r += 1
"""


def test_kill9_during_checkpoint_saves_never_leaves_a_half_checkpoint(tmp_path):
    """A real process saving checkpoints is SIGKILLed; the model is a byte-blob stand-in."""
    run = open_run_dir(make_config(tmp_path / "run"))
    rng = random.Random(7)
    acked = -1
    for _ in range(4):
        lines = run_and_kill(
            _CHECKPOINT_WRITER, [str(run.path)], rng.uniform(0.05, 0.5), tmp_path / "stderr.txt"
        )
        saved = [int(line.split()[1]) for line in lines if line.startswith("saved ")]
        acked = max([acked, *saved])
        found = run.checkpoints()
        assert max(found) >= acked
        for r, path in found.items():
            assert (path / "config.json").read_text() == str(r)
            blob = (path / "model.safetensors").read_bytes()
            assert len(blob) == 2_000_000 and blob.count(bytes([r % 256])) == len(blob)
    assert acked >= 1


# --- unwritable and full disks ------------------------------------------------------------


@contextlib.contextmanager
def unwritable(path: Path):
    """Make `path` unwritable: mode 0555, or (as root, which ignores modes) chattr +i."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o555)
    immutable = False
    try:
        try:
            (path / ".probe").touch()
            (path / ".probe").unlink()
            immutable = (
                subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
            )
            if not immutable:
                pytest.skip("cannot make a directory unwritable here (root without chattr)")
        except PermissionError:
            pass
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        os.chmod(path, 0o755)


def test_unwritable_locations_are_one_line_errors(tmp_path):
    with unwritable(tmp_path / "ro") as ro:
        with pytest.raises(RunStoreError) as err:
            open_run_dir(make_config(ro / "run"))  # cannot create it
        assert "permission denied" in one_line(err) and "output_dir" in str(err.value)
        with pytest.raises(RunStoreError) as err:
            open_run_dir(make_config(ro))  # exists, empty, cannot write config.yaml
        assert "permission denied" in one_line(err)
    run = open_run_dir(make_config(tmp_path / "run"))
    Ledger(run.ledger_path).close()
    with unwritable(run.path):
        with pytest.raises(RunStoreError) as err:
            run.open_ledger()
        assert "ledger" in one_line(err) and "permission denied" in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunStoreError, match="is a file, not a directory"):
        open_run_dir(make_config(blocker / "run"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_enospc_from_a_real_device_is_a_one_line_error():
    with pytest.raises(RunStoreError) as err:
        with storage_errors("write", "/dev/full"), open("/dev/full", "w") as fh:
            fh.write("label")
            fh.flush()
    assert "disk is full" in one_line(err)
    assert err.value.__cause__.errno == errno.ENOSPC


@pytest.fixture()
def small_disk(tmp_path):
    """A real 3 MiB tmpfs (root only; skipped elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk is full."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 4096)
    return filler


def test_a_really_full_disk_loses_no_stored_label(small_disk, tiny_model_and_tokenizer):
    model, tokenizer = tiny_model_and_tokenizer
    run = open_run_dir(make_config(small_disk / "run"))
    run.save_checkpoint(model, tokenizer, 0)
    ledger = run.open_ledger()
    pair = Pair(Prompt("u", "p"), Completion("a", (1,)), Completion("b", (2,)))
    cands = ledger.save_candidates(0, [pair] * 2000)
    stored = []
    for cand in cands[:5]:  # labels bought before the disk filled up
        ledger.record_verdict(cand.id, Judgement(Verdict.A, rationale="early"))
        stored.append(cand.id)
    filler = fill(small_disk)
    with pytest.raises(RunStoreError) as err:
        for cand in cands[5:]:
            ledger.record_verdict(cand.id, Judgement(Verdict.B, rationale="r" * 2000))
            stored.append(cand.id)
    assert "disk is full" in one_line(err) and "resume" in str(err.value)
    with pytest.raises(RunStoreError, match="disk is full"):
        run.save_checkpoint(model, tokenizer, 1)
    assert sorted(run.checkpoints()) == [0]
    assert not any(p.name.startswith(".") for p in run.checkpoints_dir.iterdir())
    with pytest.raises(RunStoreError, match="disk is full"):
        open_run_dir(make_config(small_disk / "other"))
    ledger.close()
    filler.unlink()  # the user frees space and resumes
    with Ledger(run.ledger_path) as again:
        assert again._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert sorted(again.verdicts(0)) == stored
        assert again.record_verdict(cands[-1].id, Judgement(Verdict.A))
    shutil.rmtree(run.path)
