"""`lamm pretrain`: parse, then launch `lamm.training.pretrain.run_pretraining` on every rank."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lamm.launch import LaunchSettings, launch
from lamm.run_lock import RunFolderInUse, hold_run_folder


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the ranks run; the defaults start --world-size CPU processes here."""
    group = parser.add_argument_group("launch (submitit)")
    group.add_argument(
        "--launcher",
        choices=["local", "slurm", "none"],
        default="local",
        help="local: processes on this machine; slurm: a submitit SLURM job; none: this "
        "process (one rank)",
    )
    group.add_argument(
        "--world-size", type=int, default=None, help="ranks on this machine (local), default 2"
    )
    group.add_argument("--nodes", type=int, default=1, help="SLURM nodes")
    group.add_argument(
        "--ranks-per-node", type=int, default=None, help="SLURM tasks per node (one per GPU)"
    )
    group.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (0: CPU ranks)")
    group.add_argument("--cpus-per-rank", type=int, default=1, help="CPU cores per rank")
    group.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    group.add_argument("--account", default=None, help="SLURM account (default: yours)")
    group.add_argument("--qos", default=None, help="SLURM quality of service (default: none)")
    group.add_argument(
        "--time-min",
        type=int,
        default=1440,
        help="SLURM time limit; the job requeues itself at the limit",
    )
    group.add_argument(
        "--mem-gb",
        type=int,
        default=None,
        help="SLURM memory per node, GB (default: none asked, the partition's default applies)",
    )
    group.add_argument(
        "--gpus-per-task",
        type=int,
        default=0,
        help="GPUs per SLURM task instead of --gpus-per-node: each rank sees only its own",
    )
    group.add_argument(
        "--rendezvous-timeout-min",
        type=float,
        default=10.0,
        help="how long the ranks wait for each other at the start before failing (minutes)",
    )
    group.add_argument(
        "--master-addr",
        default=None,
        help="address the ranks meet at (default: the first node's name); '{node}' stands for "
        "that name, e.g. '{node}-ib'",
    )
    group.add_argument(
        "--master-port",
        type=int,
        default=None,
        help="port on the first node (default: a free one locally, derived from the job id on "
        "SLURM)",
    )
    group.add_argument(
        "--network-interface",
        default=None,
        help="network interface the ranks talk over (GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME), "
        "e.g. ib0",
    )


def launch_settings(args: argparse.Namespace) -> LaunchSettings:
    if args.launcher == "slurm":
        ranks = args.ranks_per_node or max(1, args.gpus_per_node)
    elif args.launcher == "none":
        ranks = 1
    else:
        ranks = args.world_size or 2
    return LaunchSettings(
        executor=args.launcher,
        nodes=args.nodes if args.launcher == "slurm" else 1,
        ranks_per_node=ranks,
        gpus_per_node=args.gpus_per_node,
        cpus_per_rank=args.cpus_per_rank,
        partition=args.partition,
        account=args.account,
        qos=args.qos,
        time_min=args.time_min,
        mem_gb=args.mem_gb,
        gpus_per_task=args.gpus_per_task,
        rendezvous_timeout_min=args.rendezvous_timeout_min,
        master_addr=args.master_addr,
        master_port=args.master_port,
        network_interface=args.network_interface,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a positive number of steps expected, got {text}")
    return value


def add_length_arguments(parser: argparse.ArgumentParser) -> None:
    """--total-steps (a short run with the whole schedule) and --max-steps (an early stop)."""
    parser.add_argument(
        "--total-steps",
        type=_positive,
        default=None,
        metavar="N",
        help="train for N optimizer steps, the learning-rate warmup and decay spanning them "
        "(sets train.total_steps; default: the config's epochs)",
    )
    parser.add_argument(
        "--max-steps",
        type=_positive,
        default=None,
        metavar="N",
        help="stop after N optimizer steps as an interruption would: the schedule keeps the "
        "run's full length, so --resume continues it exactly (default: no early stop)",
    )


def _pretrain(args: argparse.Namespace) -> int:
    from lamm.training.pretrain import load_trainer_config, run_pretraining

    config = load_trainer_config(args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    if args.total_steps is not None:
        config["train"]["total_steps"] = args.total_steps
    data_dir = Path(args.data or config["data"]["dir"])
    out_dir = Path(args.out or Path("results") / "pretrain" / config["name"])
    settings = launch_settings(args)
    try:
        # the folder first: a live run there is the news, not its last.pt
        with hold_run_folder(out_dir, executor=settings.executor):
            last = out_dir / "checkpoints" / "last.pt"
            if last.exists() and not args.resume:
                raise SystemExit(
                    f"{last} exists: pass --resume to continue that run, or choose another --out"
                )
            summary = launch(
                run_pretraining,
                {
                    "config": config,
                    "data_dir": data_dir,
                    "out_dir": out_dir,
                    "resume": args.resume,
                    "max_steps": args.max_steps,
                },
                settings,
                folder=out_dir / "submitit",
                name=f"lamm-{config['name']}",
            )
    except RunFolderInUse as err:
        raise SystemExit(f"lamm pretrain: error: {err}") from None
    print(json.dumps(summary))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train one model on all subsets (DDP, load-balanced, resumable)",
        description="Pre-train a model on the stores <data>/<subset>.lmdb with the universal loss, "
        "temperature sampling, denoising and the LaMM load balancer. Checkpoints land in "
        "<out>/checkpoints/epoch_<e>.pt (the config's fractional epochs) and last.pt.",
    )
    parser.add_argument(
        "--config", required=True, help="trainer config (e.g. config/pretrain/demo.yaml)"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="directory of <subset>.lmdb stores (default: the config's data.dir)",
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default results/pretrain/<name>)"
    )
    add_length_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue from <out>/checkpoints/last.pt if it exists"
    )
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    add_launch_arguments(parser)
    parser.set_defaults(func=_pretrain)
