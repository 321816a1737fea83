"""Learning curves, convergence and paired differences over seeds, from one or more bench grids.

A cell's learning curve is the online k-NN accuracy on the validation split carved from the
training set (``knn_val`` in its ``metrics.jsonl``, logged with ``--eval-every N``; never the
test split). Cells are grouped by *label*: the method, plus ``key=value`` for a swept grid
(``simvae n_views=10``), so cells of several grids sit in one table.

Convergence rule (issue [3/5]): a label is called **converged** when its seed-mean validation
curve changes over the last 20 % of its epochs by no more than one standard error (across
seeds) of its final value: |mean_s(v_s(E) − v_s(E_w))| ≤ se_s(v_s(E)), with E the last logged
epoch and E_w the first logged epoch of the window [0.8 E, E]. With one seed (no standard
error) nothing is called converged.

Paired differences: two labels are compared on the seeds both have (a seed fixes the data
split, the initial weights and the batch order of every method alike), as the mean ± s.e. of
the per-seed differences and the number of seeds on which the difference is positive — not by
whether two error bars overlap.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from scipy.stats import spearmanr

from probssl.errors import UserError
from probssl.experiments.figures import mean_se_band
from probssl.experiments.report import fmt, load_grid, mean_se
from probssl.runs.format import read_metrics, write_text_file
from probssl.userio import warn

# the columns compared (result.json keys, label, scale)
METRICS = [("knn_best", "kNN", 100), ("mlp_probe", "MLP probe", 100),
           ("linear_probe", "linear probe", 100), ("gmm_accuracy", "GMM acc", 100),
           ("mse", "MSE ×1000", 1000), ("iwae_ll", "log p̂_100 (nats)", 1),
           ("rankme", "RankMe", 1)]
WINDOW = 0.2  # the last fraction of epochs the convergence rule looks at


@dataclass
class Cell:
    """One finished run of a grid: its row label, dataset, seed, final result and curve."""

    label: str
    dataset: str
    seed: int
    result: dict[str, Any]
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, knn_val)
    train_seconds: float = 0.0


def label_of(result: dict[str, Any]) -> str:
    """A result's row label: its method, followed by ``key=value`` of its swept setting when the
    grid sweeps one (``simvae n_views=10``)."""
    sweep = result.get("sweep")
    return result["method"] if sweep is None else f"{result['method']} {sweep[0]}={sweep[1]}"


def load_cells(grid_dirs: list[Path], warn_damaged: bool = True
               ) -> tuple[list[Cell], list[dict], int]:
    """Every finished cell of the grids (with its curve, when one was logged), the grids'
    records, and how many cells are unfinished."""
    cells, grids, missing = [], [], 0
    for grid_dir in grid_dirs:
        grid, results, n_missing = load_grid(Path(grid_dir), warn_damaged)
        grids.append(grid)
        missing += n_missing
        for r in results:
            try:
                rows = read_metrics(Path(grid_dir) / "runs" / r["cell"])
            except UserError as exc:  # a damaged log loses its curve, not the report
                if warn_damaged:
                    warn(f"{exc}; the cell's learning curve is left out")
                rows = []
            curve = [(int(row["epoch"]), float(row["knn_val"])) for row in rows
                     if "knn_val" in row]
            cells.append(Cell(label_of(r), r["dataset"], int(r["seed"]), r, curve,
                              float(r.get("train_seconds") or 0.0)))
    return cells, grids, missing


def _groups(cells: list[Cell]) -> dict[tuple[str, str], dict[int, Cell]]:
    by: dict[tuple[str, str], dict[int, Cell]] = defaultdict(dict)
    for c in cells:
        by[(c.label, c.dataset)][c.seed] = c
    return by


def convergence(seeds: dict[int, Cell], window: float = WINDOW) -> dict[str, Any] | None:
    """The convergence rule (module docstring) for one label's cells; None without curves."""
    curves = [dict(c.curve) for c in seeds.values() if c.curve]
    if not curves or len(curves) != len(seeds):
        return None
    last = min(max(cv) for cv in curves)  # the last epoch every seed logged
    start = next(e for e in sorted(curves[0]) if e >= (1 - window) * last)
    if any(last not in cv or start not in cv for cv in curves):
        return None
    final = [cv[last] for cv in curves]
    delta = [cv[last] - cv[start] for cv in curves]
    f_mean, f_se = mean_se(final)
    d_mean = statistics.fmean(delta)
    return {"last_epoch": last, "window_start": start, "final_mean": f_mean, "final_se": f_se,
            "delta_mean": d_mean, "converged": f_se == f_se and abs(d_mean) <= f_se,
            "n_seeds": len(curves)}


def paired(a: dict[int, Cell], b: dict[int, Cell], key: str, scale: float
           ) -> tuple[float, float, int, int] | None:
    """Mean and s.e. of the per-seed differences a − b of ``key`` (× ``scale``) on the seeds
    both have, the number of seeds with a > b, and the number of pairs."""
    common = sorted(s for s in set(a) & set(b)
                    if key in a[s].result and key in b[s].result)
    if not common:
        return None
    diffs = [scale * (a[s].result[key] - b[s].result[key]) for s in common]
    mean, se = mean_se(diffs)
    return mean, se, sum(d > 0 for d in diffs), len(diffs)


def _cell_fmt(values: list[float], scale: float) -> str:
    return "—" if not values else fmt(*mean_se([scale * v for v in values]))


def report_lines(cells: list[Cell], paired_with: str | None = None,
                 final_table: bool = True) -> list[str]:
    """The markdown sections: final metrics per label (``final_table``), the convergence
    table, and (with ``paired_with``) each label's paired differences against that label."""
    by = _groups(cells)
    if paired_with is not None and paired_with not in {lab for lab, _ in by}:
        raise UserError(f"--paired-with {paired_with!r}: no finished run has that label; the "
                        f"labels are {', '.join(dict.fromkeys(lab for lab, _ in by))}")
    lines: list[str] = []
    for dataset in dict.fromkeys(c.dataset for c in cells):
        labels = [lab for (lab, d) in by if d == dataset]
        if final_table:
            lines += [f"## Final metrics on {dataset} (%; MSE ×1000), mean ± s.e. over seeds", "",
                      "| run | seeds | epochs | " + " | ".join(m[1] for m in METRICS)
                      + " | train s / seed |", "|---|---|---|" + "---|" * (len(METRICS) + 1)]
            for lab in labels:
                seeds = by[(lab, dataset)]
                rs = [c.result for c in seeds.values()]
                cols = [_cell_fmt([r[k] for r in rs if k in r], s) for k, _, s in METRICS]
                epochs = sorted({int(r["epochs"]) for r in rs})
                secs = statistics.fmean(c.train_seconds for c in seeds.values())
                lines.append(f"| {lab} | {','.join(map(str, sorted(seeds)))} | "
                             f"{','.join(map(str, epochs))} | " + " | ".join(cols)
                             + f" | {secs:.0f} |")
            lines.append("")
        lines += factor_lines({lab: by[(lab, dataset)] for lab in labels}, dataset)
        conv = {lab: convergence(by[(lab, dataset)]) for lab in labels}
        if any(v is not None for v in conv.values()):
            lines += [f"## Convergence on {dataset}: online k-NN on the validation split "
                      "(%)", "",
                      "| run | final k-NN val | change over the last 20 % of epochs | window "
                      "| converged (change within 1 s.e.) |", "|---|---|---|---|---|"]
            for lab, v in conv.items():
                if v is None:
                    lines.append(f"| {lab} | no curve logged | | | |")
                    continue
                lines.append(f"| {lab} | {fmt(100 * v['final_mean'], 100 * v['final_se'])} | "
                             f"{100 * v['delta_mean']:+.1f} | epochs {v['window_start']}-"
                             f"{v['last_epoch']} | {'yes' if v['converged'] else '**no**'} |")
            lines.append("")
        lines += rankme_lines([c for c in cells if c.dataset == dataset], dataset)
        if paired_with is not None and (paired_with, dataset) in by:
            ref = by[(paired_with, dataset)]
            lines += [f"## Paired differences on {dataset}: run − {paired_with} (points), "
                      "mean ± s.e. over common seeds (seeds where run > "
                      f"{paired_with} / pairs)", "",
                      "| run | " + " | ".join(m[1] for m in METRICS) + " |",
                      "|---|" + "---|" * len(METRICS)]
            for lab in labels:
                if lab == paired_with:
                    continue
                cols = []
                for key, _, scale in METRICS:
                    p = paired(by[(lab, dataset)], ref, key, scale)
                    cols.append("—" if p is None else
                                f"{fmt(p[0], p[1]) if p[0] == p[0] else '—'} ({p[2]}/{p[3]})")
                lines.append(f"| {lab} | " + " | ".join(cols) + " |")
            lines.append("")
    return lines


def factor_lines(by_label: dict[str, dict[int, Cell]], dataset: str) -> list[str]:
    """The per-factor probe table (data with ground-truth factors, e.g. ``shapes``): for each
    label and factor the mean ± s.e. over seeds of R² (continuous) or accuracy (discrete),
    ×100, with the seeds' values; nothing when no cell has factors."""
    names: list[str] = []
    for seeds in by_label.values():
        for c in seeds.values():
            for name in c.result.get("factors", {}):
                if name not in names:
                    names.append(name)
    if not names:
        return []
    lines = [f"## Style and content factors on {dataset}: linear probes on frozen features, "
             "×100 (R² for continuous factors, accuracy for discrete ones), mean ± s.e. over "
             "seeds [per seed]", "", "| run | seeds | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for lab, seeds in by_label.items():
        cols = []
        for name in names:
            vals = [100 * seeds[s].result["factors"][name]["value"] for s in sorted(seeds)
                    if name in seeds[s].result.get("factors", {})]
            cols.append("—" if not vals else
                        f"{fmt(*mean_se(vals))} [{', '.join(f'{v:.1f}' for v in vals)}]")
        lines.append(f"| {lab} | {','.join(map(str, sorted(seeds)))} | " + " | ".join(cols)
                     + " |")
    return lines + [""]


def rankme_lines(cells: list[Cell], dataset: str) -> list[str]:
    """How well the label-free RankMe ranks these runs as kNN accuracy does: Spearman's ρ
    over every run (all labels and seeds) that has both; nothing with fewer than 4 runs."""
    pairs = [(c.result["rankme"], c.result["knn_best"]) for c in cells
             if "rankme" in c.result and "knn_best" in c.result]
    if len(pairs) < 4:
        return []
    rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
    return [f"RankMe against kNN accuracy on {dataset}: Spearman ρ = {rho:.2f} over "
            f"{len(pairs)} runs (p = {p:.2g}); RankMe needs no labels, so where ρ is high it "
            "can stand in for the supervised protocol when choosing among runs.", ""]


def curves_figure(cells: list[Cell], path: Path) -> Path | None:
    """Seed-mean online k-NN (± s.e.) against epoch, one line per label, one panel per
    dataset; None when no cell logged a curve."""
    by = _groups(cells)
    datasets = list(dict.fromkeys(d for (_, d), seeds in by.items()
                                  if any(c.curve for c in seeds.values())))
    if not datasets:
        return None
    fig = Figure(figsize=(6 * len(datasets), 4.2))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=True):
        for (lab, dd), seeds in by.items():
            curves = [dict(c.curve) for c in seeds.values() if c.curve]
            if dd != d or not curves:
                continue
            epochs = sorted(set.intersection(*(set(cv) for cv in curves)))
            mean_se_band(ax, [[100 * cv[e] for e in epochs] for cv in curves], x=epochs,
                         label=f"{lab} ({len(curves)} seeds)", marker=".")
        ax.set_xlabel("epoch"), ax.set_ylabel("online k-NN on the validation split (%)")
        ax.set_title(d), ax.legend(fontsize=7), ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_curves_report(grid_dirs: list[Path], out: Path, paired_with: str | None = None,
                        append: bool = False) -> Path:
    """Several grids merged into one report (final metrics, convergence, paired differences)
    at ``out`` and their curves at ``out``'s name + ``-curves.png``; with ``append`` (one grid,
    whose paper-layout report is already at ``out``) only the convergence and paired sections
    are added to it."""
    cells, grids, missing = load_cells(grid_dirs, warn_damaged=not append)
    if not cells and append:
        return out  # the paper-layout report already says that no cell is finished
    if not cells:
        raise UserError(f"{', '.join(map(str, grid_dirs))}: no finished cell to report")
    lines = report_lines(cells, paired_with, final_table=not append)
    figure = curves_figure(cells, out.with_name(out.stem + "-curves.png"))
    if figure is not None:
        lines += [f"![learning curves]({figure.name})", ""]
    if append:
        text = out.read_text().rstrip("\n") + "\n\n" + "\n".join(lines)
    else:
        head = [f"# Report: {', '.join(str(g) for g in grid_dirs)}", ""]
        if missing:
            head += [f"**{missing} cells are not finished and are left out.**", ""]
        tail = [f"Grid command: `{g['command']}`  " for g in grids]
        tail += [f"Machine: {m}  " for m in dict.fromkeys(g["machine"] for g in grids)]
        text = "\n".join(head + lines + tail) + "\n"
    write_text_file(out, text)
    return out
