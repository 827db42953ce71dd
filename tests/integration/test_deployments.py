"""A real `prefect server` on loopback, a process work pool and worker, and a scheduled release run.

The ephemeral API that flows use by default has no scheduler, so this starts `prefect server
start` (scheduler loop shortened to 2 s), registers a deployment of the release flow with
`synthgate deploy --interval`, starts `prefect worker start`, and waits for the scheduler's run
to finish the whole pipeline. Everything is stopped at the end. Also checks that prefect.yaml
registers with `prefect deploy`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from synthgate.flows.demo import demo_contract
from synthgate.governance.registry import Registry

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prefect server did not answer within 120 s"
            time.sleep(0.5)
        yield env
    finally:
        _stop(proc)
        log.close()


def _api(method: str, url: str, *, json: object = None, attempts: int = 5) -> httpx.Response:
    """One call to the test server, retried on timeouts: on a loaded 2-core CI machine the server's
    SQLite database can be locked for longer than one request waits (CI saw a 10 s ReadTimeout)."""
    for attempt in range(attempts):
        try:
            response = httpx.request(method, url, json=json, timeout=30)
            response.raise_for_status()
            return response
        except (httpx.TimeoutException, httpx.HTTPStatusError) as error:
            if attempt == attempts - 1 or (
                isinstance(error, httpx.HTTPStatusError) and error.response.status_code < 500
            ):
                raise
            time.sleep(2 * (attempt + 1))
    raise AssertionError("unreachable")


def _run(args: list[str], env: dict[str, str], *, cwd: Path = REPO) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def test_prefect_yaml_registers_its_deployments(server: dict[str, str]) -> None:
    _run([str(BIN / "prefect"), "work-pool", "create", "synthgate", "--type", "process"], server)
    _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], server)
    api = server["PREFECT_API_URL"]
    found = _api("GET", f"{api}/deployments/name/synthgate-scheduled-release/adult-nightly").json()
    assert found["parameters"] == {"run_config": "deploy/adult.run.yaml"}
    assert [s["schedule"]["cron"] for s in found["schedules"]] == ["0 2 * * *"]


def test_a_scheduled_release_runs_on_a_process_worker(
    server: dict[str, str], tmp_path: Path, small_source: Path
) -> None:
    source = small_source
    run_config = tmp_path / "adult.run.yaml"
    run_config.write_text(
        yaml.safe_dump(
            {
                "contract": str(demo_contract()),
                "source": {"path": str(source)},
                "out": str(tmp_path / "out"),
                "epochs": 1.0,
                "batch_size": 250,
            }
        )
    )
    _run([str(BIN / "prefect"), "work-pool", "create", "synthgate-test", "--type", "process"], server)
    out = _run(
        [
            sys.executable,
            "-m",
            "synthgate.flows.cli",
            "deploy",
            "--run-config",
            str(run_config),
            "--name",
            "scheduled-test",
            "--pool",
            "synthgate-test",
            "--interval",
            "10",
        ],
        server,
    )
    assert "registered" in out
    api = server["PREFECT_API_URL"]
    deployment = _api("GET", f"{api}/deployments/name/synthgate-scheduled-release/scheduled-test").json()

    # Interval runs are anchored at registration, so the first falls due within 10 s.
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "synthgate-test", "--limit", "1"],
        env=server,
        cwd=REPO,
        stdout=worker_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            runs = _api(
                "POST", f"{api}/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment["id"]]}}}
            ).json()
            final = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
            if final:
                break
            assert worker.poll() is None, worker_log.read_text()[-3000:]
            assert time.monotonic() < deadline, (
                f"no scheduled run finished: {[r['state_type'] for r in runs]}\n{worker_log.read_text()[-3000:]}"
            )
            time.sleep(2)
    finally:
        # No more runs after the first: pause the schedule, then stop the worker (and its run). Stopping
        # the worker is what ends the test's runs; a pause the busy server does not answer must not hide
        # the test's own outcome, so it is attempted and then the worker is stopped regardless.
        try:
            _api("PATCH", f"{api}/deployments/{deployment['id']}", json={"paused": True})
        finally:
            _stop(worker)
    run = final[0]
    assert run["auto_scheduled"], "the run must come from the scheduler, not a manual trigger"
    # The whole pipeline ran to its gate: released (COMPLETED) or blocked (FAILED, saying so).
    # The 10 s interval can start a second run before the schedule is paused (the worker takes it once the
    # first ends, and stopping the worker leaves it unfinished): judge the run that reached its gate.
    (record,) = [
        r for r in Registry(tmp_path / "out" / "registry.duckdb").runs() if r.status in ("released", "blocked")
    ]
    if run["state_type"] == "COMPLETED":
        assert record.status == "released"
    else:
        assert run["state_type"] == "FAILED" and "BLOCKED" in (run["state"]["message"] or ""), run["state"]
        assert record.status == "blocked"
    assert (Path(record.folder) / "report.json").exists()
