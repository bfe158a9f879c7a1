"""Screenshot the labelling page of a `web` run in headless Chromium (docs/labelling.png).

Serves the run's page on a free loopback port, signs in as an annotator named `screenshot`
(added to the run, like any annotator) and saves the page as a PNG. The run must have a pair
waiting, e.g. after

    apl run oracle.name=web oracle.timeout_s=0 loop.label_budget=8 loop.query_size=4 \
        loop.pool_size=8 evaluation.num_prompts=2 output_dir=runs/web-demo
    python benchmarks/labelling_screenshot.py runs/web-demo docs/labelling.png
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from pathlib import Path

from apl.labelling.app import create_app
from apl.labelling.server import serve_in_thread
from apl.loop.web_labelling import labelling_setup
from apl.store.label_queue import LabelQueue
from apl.store.run_dir import load_run_dir

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    """Parse arguments, serve, screenshot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    setup = labelling_setup(load_run_dir(args.run_dir))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with LabelQueue(setup.run_path / "ledger.sqlite") as queue:
        server = serve_in_thread(create_app(queue, setup.page()), "127.0.0.1", port)
        try:
            link = f"{server.url}/a/{queue.add_annotator('screenshot')}"
            with sync_playwright() as pw:
                context = pw.chromium.launch_persistent_context(
                    tempfile.mkdtemp(prefix="chromium-profile-"),
                    executable_path=args.chromium,
                    headless=True,
                    args=FLAGS,
                    viewport={"width": 1100, "height": 700},
                )
                page = context.new_page()
                page.goto(link)
                page.screenshot(path=str(args.out), full_page=True)
                context.close()
        finally:
            server.stop()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
