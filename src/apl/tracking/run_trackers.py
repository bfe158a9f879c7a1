"""One run's trackers: the config once as parameters, each finished round once as metrics.

What each tracker has been sent is kept in RUN_DIR/trackers/state.json (rounds sent, run ids,
whether the parameters were stored), rewritten atomically after every round, so a resumed
run sends only the rounds it has not sent and continues the same tracker run. A tracker that
fails is logged and dropped for the rest of the process: tracking never stops a run that is
paying for labels, and the rounds it missed are sent by the next `apl resume`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apl.errors import ConfigError
from apl.tracking.backends import TrackerRun, start_tracker

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as `section.option` -> bool/int/float/str (lists as JSON, None as 'none')."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_params(value, f"{name}."))
        elif value is None:
            out[name] = "none"
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out


class RunTrackers:
    """Started trackers of one run; use as a context manager."""

    def __init__(
        self,
        names: Sequence[str],
        directory: Path,
        project: str,
        run_name: str,
        params: Mapping[str, Any],
    ) -> None:
        self.directory = directory
        self._state_path = directory / STATE_FILE
        self.state = self._read_state()
        self.trackers: dict[str, Any] = {}
        for name in names:
            sent = self.state["sent"].get(name, [])
            started_before = name in self.state["params"]
            run = TrackerRun(
                directory=directory,
                project=project,
                run_name=run_name,
                run_id=self.state["run_ids"].get(name),
                resend_from=max(sent) + 1 if sent else (1 if started_before else None),
            )
            first = not started_before
            try:
                tracker, run_id = start_tracker(name, run, dict(params), first)
            except Exception as err:  # noqa: BLE001 - any library's failure becomes one line
                self.close()
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise ConfigError(
                    f"tracking.report_to ({name!r}) could not start: {reason}; fix the "
                    f"tracker's setup (login, server) or drop {name!r} and `apl resume`."
                ) from None
            self.trackers[name] = tracker
            if run_id is not None:
                self.state["run_ids"][name] = run_id
            if first:
                self.state["params"].append(name)
            self.state["sent"].setdefault(name, [])
        self._write_state()

    def _read_state(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"sent": {}, "run_ids": {}, "params": []}
        try:
            state = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError):
            logger.warning("%s is unreadable; every round will be sent again.", self._state_path)
            return empty
        return {k: state.get(k, v) for k, v in empty.items()}

    def _write_state(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_name(f".{STATE_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, self._state_path)

    def unsent(self, rounds: Sequence[int]) -> list[int]:
        """The rounds, of those given, that some tracker has not been sent yet."""
        return [r for r in rounds if any(r not in self.state["sent"][n] for n in self.trackers)]

    def send(self, round: int, metrics: Mapping[str, float]) -> None:
        """Log one finished round (step = the round) to each tracker that has not had it."""
        for name in list(self.trackers):
            if round in self.state["sent"][name]:
                continue
            try:
                self.trackers[name].log(dict(metrics), step=round)
            except Exception as err:  # noqa: BLE001 - a tracker never stops a paid run
                logger.warning(
                    "Tracker %s failed on round %d (%s); it is off until `apl resume`.",
                    name,
                    round,
                    err,
                )
                self._finish(name)
                continue
            self.state["sent"][name].append(round)
            self._write_state()

    def _finish(self, name: str) -> None:
        tracker = self.trackers.pop(name)
        try:
            tracker.finish()
        except Exception as err:  # noqa: BLE001 - closing is best effort
            logger.warning("Tracker %s did not close cleanly: %s", name, err)

    def close(self) -> None:
        """Finish every tracker (flushes TensorBoard, ends the W&B / MLflow / trackio run)."""
        for name in list(self.trackers):
            self._finish(name)

    def __enter__(self) -> RunTrackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
