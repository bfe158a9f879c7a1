"""Where the `web` judge meets its queue and its page: the ledger's queue, the served page.

During a run, `web_labelling` attaches the run's label queue to the judge and (with
`oracle.serve`) serves the labelling page on a thread for as long as the run lives. The
`apl label` commands use `labelling_setup` to read the same settings from a run directory.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from apl.config import APLConfig
from apl.data import TASKS
from apl.errors import ConfigError, LabelsPendingError, RunStoreError
from apl.oracles import Oracle
from apl.oracles.prompts import load_template
from apl.oracles.web import WebJudge
from apl.store.label_queue import LabelQueue
from apl.store.label_status import HEARTBEAT_EVERY_S
from apl.store.run_dir import RunDir

if TYPE_CHECKING:  # the web server's libraries load only when a page is served
    from apl.labelling.app import PageSettings
    from apl.labelling.server import BackgroundServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabellingSetup:
    """A `web` run's labelling settings, as its stored config resolves them."""

    run_path: Path
    instruction: str
    annotators_per_pair: int
    host: str
    port: int
    undo_window_s: float
    label_budget: int

    @property
    def url(self) -> str:
        """Where the page is served by default."""
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def page(self, allowed_origins: tuple[str, ...] = (), secure: bool = False) -> PageSettings:
        """The page's settings."""
        from apl.labelling.app import PageSettings

        return PageSettings(
            run_name=self.run_path.name,
            instruction=self.instruction,
            label_budget=self.label_budget,
            undo_window_s=self.undo_window_s,
            resume_command=f"apl resume {self.run_path}",
            allowed_origins=allowed_origins,
            secure_cookies=secure,
        )


def labelling_setup(run_dir: RunDir) -> LabellingSetup:
    """Read a run's `web` settings (ConfigError if its oracle is not `web`)."""
    config: APLConfig = run_dir.config
    if config.oracle.name != "web":
        raise ConfigError(
            f"Run {run_dir.path} is judged by oracle {config.oracle.name!r}; only runs with "
            "oracle.name=web queue pairs for people."
        )
    defaults = {
        name: p.default for name, p in inspect.signature(WebJudge.__init__).parameters.items()
    }
    options = {**defaults, **config.oracle.kwargs}
    template = config.oracle.kwargs.get("template") or (
        TASKS.build(config.task.name, config.task.kwargs).judge_template
    )
    return LabellingSetup(
        run_path=run_dir.path,
        instruction=load_template(template).user.strip().splitlines()[0],
        annotators_per_pair=int(options["annotators_per_pair"]),
        host=str(options["host"]),
        port=int(options["port"]),
        undo_window_s=float(options["undo_window_s"]),
        label_budget=config.loop.label_budget,
    )


def _serve(run_dir: RunDir, judge: WebJudge, queue: LabelQueue) -> BackgroundServer | None:
    from apl.labelling.app import create_app
    from apl.labelling.server import serve_in_thread

    page = labelling_setup(run_dir).page()
    try:
        server = serve_in_thread(create_app(queue, page), judge.host, judge.port)
    except ConfigError as err:
        logger.warning("%s This run does not serve the page; `apl label serve` can.", err)
        return None
    logger.info("Labelling page of this run: %s", server.url)
    if not queue.annotators():
        token = queue.add_annotator("operator")
        logger.info(
            "Your link (annotator 'operator'): %s/a/%s ; more people: "
            "`apl label add-annotator %s NAME`",
            server.url,
            token,
            run_dir.path,
        )
    return server


def _beat(queue: LabelQueue, stop: threading.Event) -> None:
    """Tell the page a run is live (waiting, sampling or training) until `stop` is set."""
    while not stop.is_set():
        try:
            queue.heartbeat()
        except RunStoreError as err:  # a full disk must not kill the run from this thread
            logger.warning("%s", err)
        stop.wait(HEARTBEAT_EVERY_S)


@contextmanager
def web_labelling(run_dir: RunDir, oracle: Oracle) -> Iterator[None]:
    """For a `web` judge: attach the run's queue, serve the page; a no-op for other judges."""
    if not isinstance(oracle, WebJudge):
        yield
        return
    queue = LabelQueue(run_dir.ledger_path)
    oracle.attach(queue)
    server = _serve(run_dir, oracle, queue) if oracle.serve else None
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(queue, stop), name="apl-heartbeat", daemon=True)
    beat.start()
    try:
        yield
    except LabelsPendingError as err:
        # This run (and any page it served) is ending; point at what serves the page next.
        raise LabelsPendingError(
            f"{err} (queued in {run_dir.ledger_path}). Answer them on the page that "
            f"`apl label serve {run_dir.path}` (or the resumed run) serves, or import a Label "
            f"Studio / Argilla export with `apl label import {run_dir.path} FILE`; then run "
            f"`apl resume {run_dir.path}`. Every answer given so far is saved."
        ) from None
    finally:
        stop.set()
        beat.join()
        if server is not None:
            server.stop()
        queue.close()
