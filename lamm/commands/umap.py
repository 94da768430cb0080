"""`lamm umap CKPT`: UMAP of the per-atom representations of a checkpoint (LaMM Fig. 8)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def _umap(args: argparse.Namespace) -> int:
    from ase.data import chemical_symbols

    from lamm.analysis.umap_atoms import atom_representations, embed, open_stores
    from lamm.analysis.umap_figure import choose_ellipse_elements, plot_umap
    from lamm.models.checkpoint import load_potential
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    start = time.monotonic()
    potential = load_potential(args.checkpoint)
    subsets = args.subsets or [h for h in potential.heads if not h.endswith("_is2re")]
    stores = open_stores(args.data, subsets)
    ellipse_subset = args.ellipse_subset or subsets[0]
    if ellipse_subset not in subsets:
        raise SystemExit(f"--ellipse-subset {ellipse_subset!r} is not among the subsets {subsets}")
    params = {
        "checkpoint": str(args.checkpoint),
        "subsets": subsets,
        "atoms_per_subset": args.atoms_per_subset,
        "seed": args.seed,
        "n_neighbors": args.n_neighbors,
        "n_epochs": args.n_epochs,
        "min_dist": args.min_dist,
        "ellipse_subset": ellipse_subset,
    }
    out = Path(args.out)
    with RunTracker(
        "analysis",
        "umap",
        params=params,
        inputs=[args.checkpoint, *[s.path for s in stores.values()]],
    ) as tracker:
        sample = atom_representations(potential, stores, args.atoms_per_subset, args.seed)
        represented = time.monotonic()
        embedding = embed(
            sample.features,
            args.seed,
            n_neighbors=args.n_neighbors,
            n_epochs=args.n_epochs,
            min_dist=args.min_dist,
        )
        embedded = time.monotonic()
        if args.ellipse_elements:
            chosen = [chemical_symbols.index(symbol) for symbol in args.ellipse_elements]
        else:
            chosen = choose_ellipse_elements(sample.subset, sample.atomic_number, ellipse_subset)
        rows = _embedding_rows(sample, embedding, chemical_symbols)
        write_csv(rows, out / "embedding.csv")
        plot_umap(
            embedding,
            sample.subset,
            sample.atomic_number,
            args.figure,
            subsets=subsets,
            ellipse_subset=ellipse_subset,
            ellipse_elements=chosen,
        )
        summary = {
            "atoms": len(rows),
            "feature_dim": int(sample.features.shape[1]),
            "subsets": subsets,
            "ellipse_elements": [chemical_symbols[z] for z in chosen],
            "representation_s": represented - start,
            "umap_s": embedded - represented,
            "wall_s": time.monotonic() - start,
            "embedding": str(out / "embedding.csv"),
            "figure": str(args.figure),
        }
        tmp = out / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(out / "summary.json")
        tracker.log_metrics(
            {k: summary[k] for k in ("atoms", "representation_s", "umap_s", "wall_s")}
        )
        tracker.log_artifact(args.figure)
        tracker.log_artifact(out / "embedding.csv")
    print(json.dumps(summary))
    return 0


def _embedding_rows(sample: Any, embedding: Any, symbols: list[str]) -> list[dict[str, Any]]:
    """One row per sampled atom: its subset, element, sample and atom index, and 2-D position."""
    return [
        {
            "subset": s,
            "element": symbols[z],
            "atomic_number": int(z),
            "sample_index": int(i),
            "atom_index": int(a),
            "x": float(x),
            "y": float(y),
        }
        for s, z, i, a, (x, y) in zip(
            sample.subset,
            sample.atomic_number,
            sample.sample_index,
            sample.atom_index,
            embedding,
            strict=True,
        )
    ]


def _symbol(text: str) -> str:
    from ase.data import chemical_symbols

    if text not in chemical_symbols[1:]:
        raise argparse.ArgumentTypeError(f"unknown element symbol {text!r}")
    return text


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "umap",
        help="UMAP map of a checkpoint's per-atom representations (Fig. 8)",
        description="Sample N atoms per subset (seeded), compute the encoder's "
        "rotation-invariant atom "
        "representations, embed them in 2-D with UMAP (seeded) and draw the four panels of "
        "LaMM Fig. 8. "
        "Writes <out>/embedding.csv (subset, element, x, y, ...), <out>/summary.json and "
        "the figure.",
    )
    parser.add_argument(
        "checkpoint", help="a lamm checkpoint (e.g. results/pretrain/demo/checkpoints/epoch_2.pt)"
    )
    parser.add_argument("--data", required=True, help="directory of <subset>.lmdb stores")
    parser.add_argument(
        "--subsets",
        nargs="+",
        default=None,
        help="subsets to map (default: the checkpoint's heads without the IS2RE ones, as "
        "in the paper)",
    )
    parser.add_argument(
        "--atoms-per-subset", type=int, default=300, help="atoms sampled per subset (paper: 1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the atom sampling and of UMAP")
    parser.add_argument("--n-neighbors", type=int, default=15, help="UMAP n_neighbors")
    parser.add_argument("--n-epochs", type=int, default=200, help="UMAP optimization epochs")
    parser.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist")
    parser.add_argument(
        "--ellipse-subset",
        default=None,
        help="subset whose elements get ellipses in panel (d) (default: the first)",
    )
    parser.add_argument(
        "--ellipse-elements",
        nargs="+",
        type=_symbol,
        default=None,
        help="elements with ellipses in panel (d) (default: the 8 most frequent "
        "non-H/C/N/O of that subset)",
    )
    parser.add_argument(
        "--out", default="results/umap", help="directory for embedding.csv and summary.json"
    )
    parser.add_argument("--figure", default="results/figures/fig8_umap.png", help="Fig. 8 to write")
    parser.set_defaults(func=_umap)
