"""Screenshots of the Prefect UI for a released and a blocked `synthgate run`, from a real server.

    python scripts/screenshot_prefect_ui.py                  # PNGs into docs/screenshots/
    python scripts/screenshot_prefect_ui.py --keep FOLDER    # keep the runs' output (reports) there

Starts ``prefect server start`` on a free local port with a throw-away ``PREFECT_HOME``, points
``PREFECT_API_URL`` at it, and runs ``synthgate run`` twice on 1,500 rows of the demo table (one
epoch, small checks): once with the contract's gates made lenient (the run is released) and once
with ``min_column_shapes: 1.0``, which no model meets exactly (the run is blocked). The gate
settings are there to get one run of each outcome quickly; these pictures show the UI, not model
quality. Then headless chromium shoots, for each run, the flow-run page (Details tab), its Logs tab,
its Artifacts tab (Prefect's v2 UI), and the page of its gates artifact:
``prefect-{released,blocked}-{run,logs,artifacts,gates}.png``. The server and chromium
are stopped by their process ids.

Exit codes: 0 done · 1 a step failed · 2 chromium or prefect is not installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT, LOGS_HEIGHT = 1400, 1000, 2400
# what each shot waits for: the UI is a single-page app that fetches the run from the API
VIRTUAL_TIME_MS = 15_000
# Prefect's v2 UI (served under /v2): it keeps a ?tab= query (the v1 UI drops it while the run loads)
TABS = {"run": "?tab=Details", "logs": "?tab=Logs", "artifacts": "?tab=Artifacts"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(api: str, server: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"error: prefect server exited with {server.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    sys.exit(f"error: prefect server did not answer {api}/health within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process we started, and its children (its own process group), by id."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _configs(work: Path) -> dict[str, Path]:
    import polars as pl
    import yaml

    from synthgate.flows.demo import BLOCKING_GATES, LENIENT_GATES, demo_contract, demo_parquet

    pl.read_parquet(demo_parquet()).sample(n=1500, seed=3).write_parquet(work / "adult.parquet")
    out = {}
    for outcome, gates in (("released", LENIENT_GATES), ("blocked", BLOCKING_GATES)):
        contract = yaml.safe_load(demo_contract().read_text(encoding="utf-8"))
        contract["gates"] = {**(contract.get("gates") or {}), **gates}
        contract["evaluation"] = {
            "shadow_models": 0,
            "attack_rows": 100,
            "anonymeter_attacks": 100,
            "inference_attacks": 100,
        }
        (work / f"{outcome}.contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
        run = work / f"{outcome}.run.yaml"
        run.write_text(
            yaml.safe_dump(
                {
                    "contract": f"{outcome}.contract.yaml",
                    "source": {"path": "adult.parquet"},
                    "out": f"out-{outcome}",
                    "epochs": 1,
                    "evaluation_rows": 500,
                    "registry": "registry.duckdb",
                }
            ),
            encoding="utf-8",
        )
        out[outcome] = run
    return out


def _flow_run_ids(env: dict[str, str], registry: Path, outcome: str) -> tuple[str, str, str]:
    """The flow run id and name of the latest run with ``outcome`` in the registry, and the id of
    its gates artifact."""
    from synthgate.governance.registry import Registry

    record = next(r for r in Registry(registry).runs() if r.status == outcome)  # newest first
    name = f"adult-{record.run_id}"
    probe = (
        "import sys; from prefect.client.orchestration import get_client; "
        "from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, "
        "FlowRunFilter, FlowRunFilterName; "
        "c = get_client(sync_client=True).__enter__(); "
        "(r,) = c.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[sys.argv[1]]))); "
        "(a,) = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id]), "
        "key=ArtifactFilterKey(any_=['adult-release-gates']))); "
        "print(r.id, a.id)"
    )
    done = subprocess.run([sys.executable, "-c", probe, name], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"error: flow run {name!r} or its gates artifact not found on the server:\n{done.stderr[-2000:]}")
    run_id, artifact_id = done.stdout.split()
    return run_id, name, artifact_id


def _shoot(chromium: str, url: str, png: Path, profile: Path, height: int = HEIGHT) -> None:
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        f"--window-size={WIDTH},{height}",
        f"--screenshot={png}",
        url,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        _stop(proc)  # type: ignore[arg-type]
        sys.exit(f"error: chromium did not finish {url} within 180 s")
    if proc.returncode != 0 or not png.exists():
        sys.exit(f"error: chromium failed on {url} (exit {proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    shrink(png)


def shrink(png: Path) -> None:
    """256 colours, as scripts/screenshot_report.py saves its pages: plenty for a UI, a third of the bytes."""
    from PIL import Image

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(png, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"), help="chromium binary")
    parser.add_argument("--keep", type=Path, help="keep the runs' folders (reports, registry) here")
    args = parser.parse_args(argv)
    chromium = shutil.which(args.chromium)
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or shutil.which("prefect")
    if chromium is None or prefect is None:
        print("error: needs chromium (apt-get install chromium) and prefect (this venv) on PATH", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="synthgate-ui-")) if args.keep is None else args.keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    # the CLI's own logging defaults (flows.cli.QUIET_TERMINAL: stage lines to the API's Logs tab, warnings
    # to the terminal) apply unless PREFECT_LOGGING_LEVEL is set: leave it unset here, as a user would
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING_")}
    env: dict[str, Any] = {
        **inherited,
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_UI_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    log = (work / "server.log").open("wb")
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_healthy(api, server)
        print(f"prefect server on {api} (pid {server.pid}); home {work / 'prefect-home'}", flush=True)
        for outcome, run_yaml in _configs(work).items():
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "synthgate.flows.cli", "run", "--config", str(run_yaml), "--quiet"],
                cwd=work,
                env=env,
                check=False,
            )
            expected = 0 if outcome == "released" else 3
            if done.returncode != expected:
                sys.exit(f"error: the {outcome} run exited {done.returncode}, expected {expected}")
            print(f"{outcome} run done in {time.perf_counter() - started:.0f} s", flush=True)
        ui = f"http://127.0.0.1:{port}/v2"
        for outcome in ("released", "blocked"):
            run_id, name, gates_id = _flow_run_ids(env, work / "registry.duckdb", outcome)
            pages = {tab: f"{ui}/runs/flow-run/{run_id}{query}" for tab, query in TABS.items()}
            pages["gates"] = f"{ui}/artifacts/artifact/{gates_id}"
            for what, url in pages.items():
                png = args.out / f"prefect-{outcome}-{what}.png"
                # the Logs tab lists one line per stage below the run graph: a taller window shows them
                _shoot(chromium, url, png, work / "chromium", LOGS_HEIGHT if what == "logs" else HEIGHT)
                print(f"{png} ({name}, {what})", flush=True)
    finally:
        _stop(server)
        log.close()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
