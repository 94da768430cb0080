"""Against a real SLURM (scripts/slurm-up.sh; `make test-cluster`: two nodes n1 and n2 emulated on
one host): the launcher's job with one rank on each node, its checkpoints and MLflow run;
preemption by `scontrol requeue` and by submitit's time-limit signal, each followed by a resume
from last.pt, ending with the weights of an uninterrupted run; a MASTER_ADDR that does not
resolve failing both ranks fast with one line; an sbatch refusal in one line; and the workflow
through `--workflow-profile config/profiles/slurm` to the end of its DAG.

Skipped unless LAMM_TEST_CLUSTER=1 (the make target sets it); with it set, a SLURM that does not
answer is a failure, not a skip. Progress goes to stderr (`pytest -s` shows it as it happens).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lamm.models.checkpoint import load_checkpoint
from tests.conftest import ROOT
from tests.helpers.training_data import tiny_trainer_config, write_training_stores

pytestmark = pytest.mark.cluster
ACCOUNT, PARTITION = "lamm", "debug"  # what scripts/slurm-up.sh creates


def say(text: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module", autouse=True)
def slurm():
    if os.environ.get("LAMM_TEST_CLUSTER") != "1":
        pytest.skip("needs a SLURM cluster: make test-cluster (scripts/slurm-up.sh starts one)")
    result = subprocess.run(
        ["sinfo", "-h", "-o", "%T %D %c %m"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and re.search(r"idle|mixed", result.stdout), (
        f"SLURM does not answer: {result.stderr or result.stdout}"
    )
    version = subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip()
    say(f"{version}; node: {result.stdout.strip()} (state, nodes, CPUs, MB)")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    write_training_stores(folder / "stores")
    config = tiny_trainer_config(
        train={
            "epochs": 6.0,
            "checkpoint_epochs": [0, 3.0, 6.0],
            "val_every_steps": 20,
            "log_every_steps": 1,
            "save_every_minutes": 60,
        }
    )
    (folder / "unit.yaml").write_text(yaml.safe_dump(config))
    return folder


def node_interface() -> str:
    """The network interface of the address the emulated nodes' names resolve to."""
    import socket

    address = socket.gethostbyname("n1")
    lines = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=30
    ).stdout
    for line in lines.splitlines():
        fields = line.split()
        if fields[3].split("/")[0] == address:
            return fields[1]
    raise AssertionError(f"no interface has n1's address {address}: {lines}")


def pretrain(work: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`lamm pretrain` on SLURM, one rank on each of the two nodes (memory: the partition's)."""
    command = [
        sys.executable,
        "-m",
        "lamm",
        "pretrain",
        "--config",
        str(work / "unit.yaml"),
        "--data",
        str(work / "stores"),
        "--out",
        str(out),
        "--launcher",
        "slurm",
        "--nodes",
        "2",
        "--ranks-per-node",
        "1",
        "--cpus-per-rank",
        "1",
        "--rendezvous-timeout-min",
        "2",
        "--time-min",
        "30",
        "--partition",
        PARTITION,
        "--account",
        ACCOUNT,
        *extra,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
    }
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def job_states(job: str) -> list[str]:
    """Every attempt of the job as sacct records it (requeued attempts included)."""
    out = subprocess.run(
        [
            "sacct",
            "-j",
            job,
            "-X",
            "--duplicates",
            "-n",
            "-P",
            "-o",
            "JobID,State,ExitCode,Start,End",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [line for line in out.splitlines() if line]


def nodes_of(job: str) -> str:
    """The nodes SLURM gave the job (its latest attempt)."""
    out = subprocess.run(
        ["sacct", "-j", job, "-X", "-n", "-P", "-o", "NodeList"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return out.split()[-1] if out.split() else ""


def ended(job: str, timeout_s: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while any(
        state.split("|")[1] in ("RUNNING", "COMPLETING", "PENDING") for state in job_states(job)
    ):
        assert time.monotonic() < deadline, job_states(job)
        time.sleep(1)
    return job_states(job)


def squeue_state(job: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True, timeout=30
    ).stdout
    return out.strip() or "gone"


def steps_logged(out: Path) -> int:
    path = out / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def last_step(out: Path) -> int:
    return int(load_checkpoint(out / "checkpoints" / "last.pt")["training"]["step"])


def final(out: Path):
    payload = load_checkpoint(out / "checkpoints" / "last.pt")
    return (
        payload["training"]["step"],
        payload["model"],
        payload["ema"],
        payload["training"]["mlflow_run_id"],
    )


def watch(launcher: subprocess.Popen, job: str, until, timeout_s: float, seen: list[str]) -> None:
    """Poll the job's state (recording each change) until `until()` or the timeout."""
    deadline = time.monotonic() + timeout_s
    while not until():
        state = squeue_state(job)
        if not seen or seen[-1] != state:
            seen.append(state)
            say(f"job {job}: {state}")
        assert launcher.poll() is None, launcher.communicate()
        assert time.monotonic() < deadline, f"timed out; states seen {seen}"
        time.sleep(0.5)


def test_pretrain_on_slurm_survives_requeue_and_time_limit_with_the_same_weights(work):
    # a: an uninterrupted run, one rank on each of the 2 nodes
    started = time.monotonic()
    reference = pretrain(work, work / "a")
    out, err = reference.communicate(timeout=1200)
    assert reference.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    job_a = re.search(r"submitted slurm job (\d+)", err)[1]
    ended(job_a)  # the launcher returns with rank 0's result; the job's end follows
    say(
        f"b: job {job_a} ran {summary['steps']} steps on {summary['world_size']} ranks in "
        f"{time.monotonic() - started:.0f} s; "
        f"sacct: {job_states(job_a)}"
    )
    assert summary["world_size"] == 2 and summary["steps"] == summary["total_steps"]
    assert nodes_of(job_a) == "n[1-2]"
    names = sorted(p.name for p in (work / "a" / "checkpoints").glob("*.pt"))
    assert names == ["epoch_0.pt", "epoch_3.pt", "epoch_6.pt", "last.pt"], names
    assert all(state.split("|")[1] == "COMPLETED" for state in job_states(job_a))
    step_a, model_a, ema_a, run_a = final(work / "a")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    run = client.get_run(run_a)
    assert run.info.status == "FINISHED" and run.data.params["world_size"] == "2"
    assert len(client.get_metric_history(run_a, "loss")) == summary["steps"]
    say(
        f"b: MLflow run {run_a}: {run.info.status}, {len(run.data.metrics)} metrics, loss "
        f"at {summary['steps']} steps"
    )

    # b: the same run, preempted twice; the ranks talk over the nodes' interface (as on a
    # cluster whose fast network is not the default route), which changes no number
    out_b = work / "b"
    launcher = pretrain(work, out_b, "--network-interface", node_interface())
    while (
        not (out_b / "locks" / "launcher.lock").is_file()
        or "job" not in (out_b / "locks" / "launcher.lock").read_text()
    ):
        assert launcher.poll() is None, launcher.communicate()
        time.sleep(0.2)
    job = str(json.loads((out_b / "locks" / "launcher.lock").read_text())["job"])
    seen: list[str] = []
    watch(launcher, job, lambda: steps_logged(out_b) >= 5, 900, seen)

    say(f"c: scontrol requeue {job} at step {steps_logged(out_b)}")
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    watch(launcher, job, lambda: not squeue_state(job).startswith("RUNNING"), 120, seen)
    watch(launcher, job, lambda: squeue_state(job).startswith("PENDING"), 120, seen)
    first_stop = last_step(out_b)
    say(
        f"c: requeued; last.pt at step {first_stop}; SLURM holds a requeued job back "
        "(BeginTime), releasing it now"
    )
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=60)
    watch(launcher, job, lambda: steps_logged(out_b) >= first_stop + 5, 900, seen)

    say(
        f"c: time-limit signal (scancel --signal=USR2 {job}, what SLURM sends 180 s before "
        f"the limit) at step {steps_logged(out_b)}"
    )
    subprocess.run(["scancel", "--signal=USR2", job], check=True, timeout=60)
    watch(
        launcher,
        job,
        lambda: squeue_state(job).startswith("PENDING") or last_step(out_b) > first_stop,
        300,
        seen,
    )
    watch(launcher, job, lambda: squeue_state(job).startswith("PENDING"), 300, seen)
    second_stop = last_step(out_b)
    say(f"c: requeued by submitit; last.pt at step {second_stop}; releasing")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=60)
    deadline = time.monotonic() + 1200
    while launcher.poll() is None:
        state = squeue_state(job)
        if seen[-1] != state:
            seen.append(state)
            say(f"job {job}: {state}")
        assert time.monotonic() < deadline, seen
        time.sleep(0.5)
    out, err = launcher.communicate()
    assert launcher.returncode == 0, err[-3000:]
    attempts = ended(job)
    say(f"c: states seen {seen}; sacct attempts: {attempts}")
    assert first_stop < second_stop < summary["steps"]
    ranks_log = "".join(p.read_text() for p in (out_b / "submitit").glob(f"{job}_0_log.err"))
    assert f"stopped by SIGTERM after step {first_stop}" in ranks_log
    assert f"stopped by SIGUSR2 after step {second_stop}" in ranks_log
    assert "Requeued job" in "".join(
        p.read_text() for p in (out_b / "submitit").glob(f"{job}_0_log.out")
    )
    with open(
        out_b / "metrics.csv"
    ) as handle:  # each step once: both restarts went on from last.pt
        assert [int(line.split(",")[0]) for line in list(handle)[1:]] == list(
            range(1, summary["steps"] + 1)
        )
    step_b, model_b, ema_b, run_b = final(out_b)
    assert step_b == step_a and run_b != run_a
    same = all(torch.equal(model_a[k], model_b[k]) for k in model_a) and all(
        torch.equal(ema_a[k], ema_b[k]) for k in ema_a
    )
    say(f"c: final step {step_b}, weights equal to the uninterrupted run: {same}")
    assert same and nodes_of(job) == "n[1-2]"
    assert client.get_run(run_b).info.status == "FINISHED"


def test_a_master_addr_that_does_not_resolve_fails_both_nodes_fast_with_one_line(work):
    launcher = pretrain(work, work / "bogus", "--master-addr", "no-such-node.invalid")
    out, err = launcher.communicate(timeout=600)
    exited = datetime.datetime.now()
    job = re.search(r"submitted slurm job (\d+)", err)[1]
    last = err.strip().splitlines()[-1]
    _, state, _, start, end = ended(job)[-1].split("|")
    start, end = datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(end)
    say(
        f"bogus address: job {job} {state} {(end - start).total_seconds():.0f} s after it "
        f"started; the launcher exited {launcher.returncode} {(exited - end).total_seconds():.0f} "
        f"s after the job's end: {last}"
    )
    assert launcher.returncode == 1 and state == "FAILED"
    assert (end - start).total_seconds() < 120 and (exited - end).total_seconds() < 60
    assert last.startswith(f"lamm pretrain: error: job {job} failed: rendezvous failed: rank 0/2")
    assert "MASTER_ADDR=no-such-node.invalid MASTER_PORT=" in last and "--master-addr" in last
    logs = sorted((work / "bogus" / "submitit").glob(f"{job}_*_log.err"))
    assert len(logs) == 2  # a task on each node, each stopped with its one line
    for log in logs:
        assert log.read_text().count("rank stopped: rendezvous failed") == 1, log.read_text()


def test_a_request_the_partition_cannot_meet_is_refused_in_one_line(work):
    launcher = pretrain(work, work / "huge", "--mem-gb", "100000")
    out, err = launcher.communicate(timeout=300)
    last = err.strip().splitlines()[-1]
    say(f"refused: {last}")
    assert launcher.returncode == 1
    assert last.startswith("lamm pretrain: error: sbatch refused the job (2 nodes x 1 tasks")
    assert "100000 GB per node" in last and "--mem-gb" in last


# The tiny demo through sbatch: what the slurm profile's defaults ask for (4 CPUs, 16 GB, GPUs for
# fine-tuning) does not fit a 2-CPU test node, so the command overrides the resources, as a user
# sets them for their cluster; pre-training stays a local rule that starts its own ranks.
TINY = {
    "data": {"scale": "tiny"},
    "bench_throughput": {
        "steps": 6,
        "warmup": 2,
        "group_steps": 2,
        "repeats": 1,
        "budget_minutes": None,
        "batch_per_rank": [2],
    },
    "ablation_denoising": {"epochs": 1.0},
    "umap": {"atoms_per_subset": 50, "n_epochs": 20},
    "bench_batching": {"batches": 5},
}
RESOURCES = [
    "--default-resources",
    f"slurm_account={ACCOUNT}",
    f"slurm_partition={PARTITION}",
    "mem_mb=2000",
    "cpus_per_task=1",
    "runtime=30",
    "--set-resources",
    "data_demo:cpus_per_task=2",
    *[
        f"{rule}:{key}"
        for rule in ("finetune", "bench_throughput")
        for key in (
            f"slurm_partition={PARTITION}",
            "gpu=0",
            "mem_mb=3000",
            f"cpus_per_task={2 if rule == 'bench_throughput' else 1}",
        )
    ],
]


def test_the_workflow_runs_through_the_slurm_profile_to_the_end(tmp_path):
    results = tmp_path / "results"
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({**TINY, "results": str(results)}))
    command = [
        str(Path(sys.executable).parent / "snakemake"),
        "--cores",
        "2",
        "--workflow-profile",
        "config/profiles/slurm",
        "--configfile",
        "config/config.yaml",
        str(tiny),
        *RESOURCES,
    ]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "CI": "true",
    }
    say("workflow: " + " ".join(command))
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=2400)
    log = run.stdout + run.stderr
    (tmp_path / "snakemake.log").write_text(log)
    assert run.returncode == 0, log[-4000:]
    jobs = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    states = [line.split("|")[1] for job in jobs for line in job_states(job)]
    say(
        f"workflow: {len(jobs)} sbatch jobs in {time.monotonic() - started:.0f} s; sacct "
        f"states {sorted(set(states))}"
    )
    assert len(jobs) >= 15 and states and all(state == "COMPLETED" for state in states)
    assert "steps (100%) done" in log
    for output in (
        "report.html",
        "tables/table3_finetune.csv",
        "tables/throughput.csv",
        "figures/fig8_umap.png",
    ):
        assert (results / output).is_file(), output
