"""`lamm bench model`: forward+backward throughput and peak memory of the potential, side by
side with schnetpack's PaiNN or fairchem's EquiformerV2 (see `lamm.bench.model`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lamm.config import load_yaml


def _csv(choices: tuple[str, ...] | str):
    """A comma-separated subset of `choices`, or of `lamm.bench.model.<choices>` looked up
    only when the option is parsed: that module imports torch, too slow for building every
    `lamm` parser."""

    def parse(text: str) -> list[str]:
        allowed = choices
        if isinstance(allowed, str):
            from lamm.bench import model as benchmark

            allowed = getattr(benchmark, allowed)
        values = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(allowed)}, got {text!r}"
            )
        return values

    return parse


def _preset(name: str) -> str:
    from lamm.bench.model import PRESETS

    if name not in PRESETS:
        raise argparse.ArgumentTypeError(
            f"unknown preset {name!r}; expected one of {', '.join(sorted(PRESETS))}"
        )
    return name


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model",
        help="atoms/s and peak memory of the potential (and schnetpack's PaiNN, fairchem's "
        "EquiformerV2)",
        description=__doc__,
        epilog="schnetpack runs in its own venv, e.g.: python3 -m venv /tmp/spk && "
        "/tmp/spk/bin/pip install "
        "torch==2.13.0 && /tmp/spk/bin/pip install --no-deps schnetpack==2.1.1 && "
        "/tmp/spk/bin/pip install "
        "numpy ase matscipy pyyaml tqdm dirsync fasteners pytorch_lightning h5py omegaconf "
        "torch-ema; "
        "then --schnetpack-python /tmp/spk/bin/python. fairchem-core 1.x (EquiformerV2, "
        "for --preset lamm-l): "
        "make fairchem-env (scripts/setup-fairchem.sh), then --fairchem-python "
        ".venv-fairchem/bin/python",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--preset",
        type=_preset,
        default="lamm-s",
        help="model config preset of lamm.bench.model (default lamm-s)",
    )
    model.add_argument(
        "--model-config",
        type=Path,
        help="YAML file: a model mapping, or a config with a `model:` section",
    )
    parser.add_argument(
        "--store", type=Path, help="take the batch from this store instead of the Cu(111)+CO slabs"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="structures in the batch (default 8: 598 atoms)"
    )
    parser.add_argument(
        "--modes",
        type=_csv(("direct", "gradient")),
        default=["direct", "gradient"],
        help="force modes (default direct,gradient)",
    )
    parser.add_argument(
        "--phases",
        type=_csv("PHASES"),
        default=["train"],
        help="train (forward+loss+backward) and/or infer (default train)",
    )
    parser.add_argument(
        "--dtypes",
        type=_csv("DTYPES"),
        help="float32,bf16 (bf16 = autocast; default float32 on CPU, both on CUDA)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="auto: cuda when available, else cpu",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads in every worker (default: torch's default); on a machine "
        "shared with other "
        "jobs, --threads 1 --rounds 2 gives steadier comparisons",
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps before each measurement"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed steps per case and round (median reported)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run all cases this many times in turn, keep each case's fastest round",
    )
    _add_run_arguments(parser)
    parser.set_defaults(func=run)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Seeds, peers and where the results go."""
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights and inputs")
    parser.add_argument(
        "--schnetpack-python",
        help="python of a venv with schnetpack: adds its PaiNN at the same size",
    )
    parser.add_argument(
        "--fairchem-python",
        help="python of a venv with fairchem-core 1.x (scripts/setup-fairchem.sh): "
        "adds its EquiformerV2 at the same size (an equiformer_v2 model config, e.g. "
        "--preset lamm-l)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument(
        "--out", type=Path, default=Path("results/tables/model_throughput.csv"), help="CSV to write"
    )


def run(args: argparse.Namespace) -> int:
    from lamm.bench import model as benchmark
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    if min(args.batch_size, args.repeats, args.rounds) < 1 or args.warmup < 0:
        raise SystemExit(
            "--batch-size, --repeats and --rounds must be positive, --warmup not negative"
        )
    if args.model_config is not None:
        loaded = load_yaml(args.model_config)
        config = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
        name = str(args.model_config)
    else:
        config, name = benchmark.PRESETS[args.preset], args.preset
    device = benchmark.default_device() if args.device == "auto" else args.device
    dtypes = args.dtypes or (["float32", "bf16"] if device == "cuda" else ["float32"])
    if args.store is not None:
        records, source = (
            benchmark.store_records(args.store, args.batch_size, seed=args.seed),
            str(args.store),
        )
    else:
        records, source = benchmark.cu111_co_records(args.batch_size, seed=args.seed), "cu111_co"
    cases = benchmark.plan_cases(
        args.modes,
        args.phases,
        dtypes,
        with_schnetpack=bool(args.schnetpack_python),
        with_fairchem=bool(args.fairchem_python),
    )
    params = {
        "model": name,
        "device": device,
        "source": source,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "schnetpack": bool(args.schnetpack_python),
        "fairchem": bool(args.fairchem_python),
    }
    with RunTracker("bench", "model_throughput", params=params) as tracker:
        rows = benchmark.run_model_benchmark(
            config,
            records,
            cases,
            device=device,
            threads=args.threads,
            warmup=args.warmup,
            repeats=args.repeats,
            seed=args.seed,
            schnetpack_python=args.schnetpack_python,
            fairchem_python=args.fairchem_python,
            timeout=args.timeout,
            source=source,
            rounds=args.rounds,
        )
        for row in rows:
            key = f"{row['impl']}.{row['force_mode']}.{row['phase']}.{row['dtype']}"
            if row["status"] == "ok":
                tracker.log_metrics(
                    {
                        f"{key}.atoms_per_s": row["atoms_per_s"],
                        f"{key}.peak_memory_gb": row["peak_memory_gb"],
                    },
                    step=0,
                )
        table = write_csv(rows, args.out)
        tracker.log_artifact(table)
    summary = {"table": str(table), "model": name, **benchmark.summarize(rows)}
    print(json.dumps(summary))
    return 0 if all(row["status"] == "ok" for row in rows) else 1
