"""Render a run's reports to HTML and take PNG screenshots of them with headless chromium.

    python scripts/screenshot_report.py                       # run the demo flow, then shoot its reports
    python scripts/screenshot_report.py --small-run 4000      # a real run on 4,000 demo rows, 1 epoch: blocked
    python scripts/screenshot_report.py --report out/demo/owner/RUN/report.json [--report ...]

The demo runs into a temporary folder (a few minutes on a laptop CPU) and both of its reports are
shot: the owner's evaluation report (``owner/RUN/report.json``) and the public report of the
release folder (``releases/RUN`` or ``blocked/RUN``). ``--report`` re-renders existing
``report.json`` files with the current renderer instead; ``--small-run ROWS`` shoots the reports of a
real ``synthgate run`` of the demo contract on ROWS demo rows for ``--small-epochs`` (default 1)
instead of the demo, which is what a blocked release looks like. Output, in ``--out`` (default
``docs/screenshots``), per report: ``{owner,public}-{released,blocked}-top.png`` (the first screen:
decision, key figures, gates) and ``...-full.png`` (the whole page), plus the ``.html`` when
``--keep-html`` is given. Chromium runs offline, headless, with a throw-away profile.

Exit codes: 0 done · 1 the demo or chromium failed · 2 chromium is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH = 1280
TOP_HEIGHT = 1000
MAX_HEIGHT = 32000  # pixels; a taller page is cut there
END_BAND = 800  # blank pixels at the bottom that mean the page ended
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--default-background-color=ffffffff",
)


def find_chromium(explicit: str | None) -> str:
    """The chromium binary to use, or exit 2 with how to install one."""
    candidates = [explicit] if explicit else [os.environ.get("CHROMIUM"), *CHROMIUM_NAMES]
    for name in candidates:
        if name and (path := shutil.which(name)):
            return path
    where = f"--chromium {explicit!r} is not an executable" if explicit else "no chromium on PATH"
    print(
        f"error: {where}. Install it with `sudo apt-get install chromium` (Debian/Ubuntu), or pass "
        "--chromium /path/to/chromium (or set CHROMIUM).",
        file=sys.stderr,
    )
    sys.exit(2)


def _env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_HOME": str(folder / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def _reports(out: Path) -> list[Path]:
    """The newest owner's and public report.json under a run's output folder ``out``."""
    reports = []
    for pattern in ("owner/*/report.json", "releases/*/report.json", "blocked/*/report.json"):
        found = sorted(out.glob(pattern), key=lambda p: p.stat().st_mtime)
        reports += found[-1:]
    if not reports:
        sys.exit(f"error: the run finished but wrote no report.json under {out}.")
    return reports


def run_small(folder: Path, rows: int, epochs: float) -> list[Path]:
    """A real `synthgate run` of the demo contract, unchanged (its gates and checks), on ``rows`` rows
    of the demo table (a seeded sample) trained for ``epochs``: a few thousand rows and one epoch is
    what a first try on a small table looks like, and is usually blocked (fidelity gates, or privacy
    checks inconclusive at that size), which is the report this shows. Returns its report.json files."""
    import polars as pl
    import yaml

    from synthgate.flows.demo import demo_contract, demo_parquet

    work = folder / "small"
    work.mkdir()
    pl.read_parquet(demo_parquet()).sample(n=rows, seed=3).write_parquet(work / "adult.parquet")
    shutil.copyfile(demo_contract(), work / "adult.contract.yaml")
    config = {"contract": "adult.contract.yaml", "source": {"path": "adult.parquet"}, "out": "out", "epochs": epochs}
    (work / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [sys.executable, "-m", "synthgate.flows.cli", "run", "--config", "run.yaml", "--quiet"]
    print(f"running synthgate run on {rows} demo rows, {epochs:g} epoch(s) ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=work, env=_env(folder), check=False)
    if done.returncode not in (0, 3):
        sys.exit(f"error: the run exited with {done.returncode}; see its output above.")
    reports = _reports(work / "out")
    print(f"run done in {time.perf_counter() - started:.0f} s (exit {done.returncode}): {reports}", flush=True)
    return reports


def run_demo(folder: Path, epochs: float | None = None) -> list[Path]:
    """Run `synthgate demo` into ``folder`` and return the report.json files it wrote: the owner's
    (owner/RUN) and the public one (releases/RUN or blocked/RUN)."""
    env = _env(folder)
    cmd = [sys.executable, "-m", "synthgate.flows.cli", "demo", "--out", str(folder / "demo"), "--quiet"]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    print(f"running the demo flow into {folder / 'demo'} (a few minutes on a laptop CPU) ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    # 0 released, 3 blocked by a gate: both write a report.
    if done.returncode not in (0, 3):
        sys.exit(f"error: the demo flow exited with {done.returncode}; see its output above.")
    reports = _reports(folder / "demo")
    print(f"demo done in {time.perf_counter() - started:.0f} s: {', '.join(map(str, reports))}", flush=True)
    return reports


def shot_name(report: dict[str, object]) -> str:
    """``owner-released``, ``public-blocked``, ...: whose report, and the run's outcome."""
    kind = "public" if report.get("kind") == "public" else "owner"
    return f"{kind}-{'released' if report.get('released') else 'blocked'}"


def shoot(chromium: str, page: Path, png: Path, height: int, profile: Path) -> None:
    cmd = [
        chromium,
        *OFFLINE_FLAGS,
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={WIDTH},{height}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0 or not png.exists():
        sys.exit(f"error: chromium failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def content_height(png: Path) -> int:
    """Rows down to the last one that is not plain background."""
    from PIL import Image, ImageChops

    with Image.open(png) as im:
        rgb = im.convert("RGB")
        bbox = ImageChops.difference(rgb, Image.new("RGB", rgb.size, (255, 255, 255))).getbbox()
    return 0 if bbox is None else bbox[3]


def full_page(chromium: str, page: Path, out: Path, work: Path, name: str) -> tuple[int, int]:
    """Screenshot the whole page: grow the window until a tall blank band ends the shot.

    The page has no script to ask for its height, so the window is made taller than the
    page: a blank band of ``END_BAND`` pixels at the bottom, more than any gap inside the
    page, shows the page ended above it.
    """
    from PIL import Image

    height = 8000
    while True:
        raw = work / f"raw-{name}-{height}.png"
        shoot(chromium, page, raw, height, work / "profile")
        used = content_height(raw)
        if used < height - END_BAND or height >= MAX_HEIGHT:
            break
        height = min(MAX_HEIGHT, height * 2)
    with Image.open(raw) as im:
        rgb = im.convert("RGB")
        for suffix, bottom in (("full", used + 32), ("top", TOP_HEIGHT)):
            shot = rgb.crop((0, 0, WIDTH, min(height, bottom)))
            # 256 colours are plenty for a page of text and flat figures: a third of the bytes.
            shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
                out / f"{name}-{suffix}.png", optimize=True
            )
    return used, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--report", type=Path, action="append", help="an existing report.json; repeatable (default: run the demo flow)"
    )
    parser.add_argument(
        "--demo-epochs", type=float, help="passes over the data for the demo run (default: the model's)"
    )
    parser.add_argument(
        "--small-run",
        type=int,
        metavar="ROWS",
        help="instead of the demo: a real `synthgate run` of the demo contract on ROWS demo rows (usually blocked)",
    )
    parser.add_argument("--small-epochs", type=float, default=1.0, help="passes over the data for --small-run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument("--chromium", help="chromium binary (default: $CHROMIUM or chromium on PATH)")
    parser.add_argument("--keep-html", action="store_true", help="also copy each report's HTML into --out")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)  # fail before a two-minute demo run
    from synthgate.validation.report import render_html

    with tempfile.TemporaryDirectory(prefix="synthgate-shots-") as tmp:
        work = Path(tmp)
        if args.report:
            sources = args.report
        elif args.small_run:
            sources = run_small(work, args.small_run, args.small_epochs)
        else:
            sources = run_demo(work, args.demo_epochs)
        args.out.mkdir(parents=True, exist_ok=True)
        for source in sources:
            if not source.is_file():
                sys.exit(f"error: --report {source} is not a file. Pass the report.json of a run.")
            report = json.loads(source.read_text(encoding="utf-8"))
            name = shot_name(report)
            started, cpu = time.perf_counter(), time.process_time()
            page_html = render_html(report)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            page = work / f"{name}.html"
            page.write_text(page_html, encoding="utf-8")
            size = len(page_html.encode("utf-8"))
            print(
                f"rendered {source} -> {page.name}: {size / 1024:.0f} KiB in {seconds:.2f} s "
                f"({cpu:.2f} s CPU, {page_html.count('<svg')} figures)"
            )
            used, _ = full_page(chromium, page, args.out, work, name)
            if args.keep_html:
                shutil.copyfile(page, args.out / page.name)
            print(
                f"wrote {args.out / f'{name}-top.png'} and {args.out / f'{name}-full.png'} ({WIDTH} x {used} px page)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
