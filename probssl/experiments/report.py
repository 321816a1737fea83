"""``probssl report GRID``: markdown tables in the SimVAE paper's layout from a bench grid.

Table 1 (MLP probe / kNN), Table 5 (linear probe / GMM accuracy), Table 6 (NMI / ARI),
Table 7 (reconstruction MSE / FID), the content/style table for data with recorded factors,
the attribute table and bar figure (Fig. 4-5) for data with attributes (CelebA), and — for a
swept grid — accuracy against the swept value (the paper's Fig. 6-8 are such grids).
Mean ± s.e. over seeds; only finished cells are read. A damaged ``grid.json`` is one error
naming it; a damaged ``result.json`` is left out like an unfinished cell (and counted), with
one warning line naming it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: no GUI backend chosen, none needed

from probssl.errors import UserError
from probssl.experiments.bench import GRID_FILE, read_grid
from probssl.runs.format import RESULT_FILE, write_text_file
from probssl.runs.result import read_result
from probssl.userio import check_output_file, warn

PAIRS = [
    ("Table 1: MLP probe / kNN accuracy (%)", "mlp_probe", "knn_best", 100),
    ("Table 5: linear probe / GMM accuracy (%)", "linear_probe", "gmm_accuracy", 100),
    ("Table 6: NMI / ARI (×100)", "nmi", "ari", 100),
]


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (NaN for one value; both NaN for none)."""
    if not values:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values[0]), float("nan")
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


def fmt(m: float, s: float) -> str:
    """``m ± s`` to one decimal (``m`` alone when ``s`` is NaN: one seed)."""
    return f"{m:.1f}" if s != s else f"{m:.1f} ± {s:.1f}"


def _fmt(values: list[float], scale: float) -> str:
    if not values:
        return "—"
    return fmt(*mean_se([scale * v for v in values]))


def load_grid(grid_dir: Path, warn_damaged: bool = True) -> tuple[dict, list[dict], int]:
    """A grid's record, the results of its finished cells, and how many cells are left out
    (unfinished, or damaged: one warning each when ``warn_damaged``). A folder without
    ``grid.json`` is a :class:`UserError`."""
    grid_dir = Path(grid_dir)
    if not (grid_dir / GRID_FILE).exists():
        raise UserError(f"{grid_dir} is not a bench grid (no {GRID_FILE}); run probssl bench")
    grid = read_grid(grid_dir / GRID_FILE)
    results, missing = [], 0
    for name in grid["cells"]:
        path = grid_dir / "runs" / name / RESULT_FILE
        if not path.exists():
            missing += 1  # unfinished cells are left out, and counted
            continue
        try:
            results.append(read_result(path))
        except UserError as exc:  # so are damaged ones, and said so (once)
            if warn_damaged:
                warn(f"{exc}; the cell is left out of the report")
            missing += 1
    return grid, results, missing


def check_report_path(grid_dir: Path, out: Path) -> Path:
    """``out`` must not be the grid's own record nor a file of one of its cells."""
    out = check_output_file(out, "--out", protect=[grid_dir / GRID_FILE])
    runs = (grid_dir / "runs").resolve()
    if out.resolve() == (grid_dir / GRID_FILE).resolve() or runs in out.resolve().parents:
        raise UserError(f"--out {out} would overwrite a file of the grid {grid_dir}; choose "
                        "another path")
    return out


def write_report(grid_dir: Path, out: Path) -> Path:
    """Write the markdown report of the grid in ``grid_dir`` to ``out`` (the tables of the module
    docstring), with ``out``'s ``.png`` accuracy-vs-sweep figure for a swept grid and its
    ``-attributes.png`` figure for data with attributes; returns ``out``."""
    out = check_report_path(Path(grid_dir), Path(out))
    grid, results, missing = load_grid(grid_dir)
    methods, datasets = grid["methods"], grid["datasets"]
    by: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        sweep = None if r["sweep"] is None else str(r["sweep"][1])
        by[(r["method"], r["dataset"], sweep)].append(r)
    lines = [f"# Benchmark report: {Path(grid_dir)}", ""]
    if missing:
        lines += [f"**{missing} of {len(grid['cells'])} cells are not finished and are left "
                  "out.**", ""]
    sweep = grid.get("sweep")
    sweep_values = [None] if sweep is None else [str(v) for v in sweep["values"]]
    for sv in sweep_values:
        suffix = "" if sv is None else f" — {sweep['key']} = {sv}"
        for title, a, b, scale in PAIRS:
            lines += [f"## {title}{suffix}", "", "| method | " + " | ".join(datasets) + " |",
                      "|---|" + "---|" * len(datasets)]
            for m in methods:
                cells = []
                for d in datasets:
                    rs = by.get((m, d, sv), [])
                    cells.append(f"{_fmt([r[a] for r in rs if a in r], scale)} / "
                                 f"{_fmt([r[b] for r in rs if b in r], scale)}")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += [f"## Table 7: reconstruction MSE per pixel (×1000) / FID{suffix}", "",
                  "| method | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
        for m in methods:
            cells = [f"{_fmt([r['mse'] for r in by.get((m, d, sv), []) if 'mse' in r], 1000)}"
                     f" / {_fmt([r['fid'] for r in by.get((m, d, sv), []) if 'fid' in r], 1)}"
                     for d in datasets]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        features = sorted({r["fid_features"] for r in results if "fid_features" in r})
        lines += ["", "MSE and FID only for runs with a decoder (discriminative encoders need "
                  "`probssl train-decoder` first). FID features: "
                  + ("; ".join(features) if features else "none computed") + ".", ""]
        lines += _style_table(methods, datasets, by, sv, suffix)
        lines += _attribute_table(methods, datasets, by, sv, suffix)
    if sweep is not None:
        lines += _sweep_table(sweep, methods, datasets, by)
    proto = grid["protocol"]
    lines += ["", f"Mean ± standard error over seeds {grid['seeds']}. Protocol: frozen encoder "
              f"means; kNN {proto['knn_metric']} k = 1..{proto['k_max']} (best k chosen on the "
              f"test set, as in the paper); linear and MLP probes Adam lr {proto['probe_lr']}, "
              f"{proto['probe_epochs']} epochs, batch {proto['probe_batch_size']}; GMM full "
              f"covariance, n_init {proto['gmm_n_init']}.",
              f"Grid command: `{grid['command']}`  ", f"Machine: {grid['machine']}", ""]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create {out.parent} ({exc.strerror or exc})"
                        ) from None
    write_text_file(out, "\n".join(lines))
    if sweep is not None:
        _sweep_figure(sweep, methods, datasets, by, out.with_suffix(".png"))
    if any("attributes" in r for r in results):
        _attribute_figure(methods, datasets, by, out.with_name(out.stem + "-attributes.png"))
    return out


def _datasets_with(key: str, methods, datasets, by, sv):
    """(dataset, its results holding ``key``) for each dataset where some method has it."""
    for d in datasets:
        rs = [r for m in methods for r in by.get((m, d, sv), []) if key in r]
        if rs:
            yield d, rs


def _attribute_table(methods, datasets, by, sv, suffix) -> list[str]:
    """Fig. 5 as a table: one row per attribute, one column per method (accuracy ×100)."""
    lines: list[str] = []
    for d, rs_any in _datasets_with("attributes", methods, datasets, by, sv):
        names = list(rs_any[0]["attributes"]["attributes"])
        probe = rs_any[0]["attributes"]["probe"]
        lines += [f"## Attributes on {d}{suffix} ({probe} probe accuracy, ×100; paper Fig. 4-5)",
                  "", "| attribute | majority | " + " | ".join(methods) + " |",
                  "|---|---|" + "---|" * len(methods)]

        def row(label, get, majority="", d=d):
            cells = []
            for m in methods:
                rs = [r for r in by.get((m, d, sv), []) if "attributes" in r]
                cells.append(_fmt([v for r in rs if (v := get(r["attributes"])) is not None],
                                  100))
            return f"| {label} | {majority} | " + " | ".join(cells) + " |"

        for n in names:
            maj = rs_any[0]["attributes"]["majority"][n]  # RESULT_SCHEMA: one for each
            lines.append(row(n, lambda a, n=n: a["attributes"].get(n), f"{100 * maj:.1f}"))
        lines.append(row(f"**mean of {len(names)}**", lambda a: sum(a["attributes"].values())
                         / len(a["attributes"])))
        lines.append(row("**hair colour (5 classes)**", lambda a: a.get("hair_colour")))
        lines += ["", "Hair colour: bald / black / blond / brown / gray from the one-hot hair "
                  "attributes; images with none or several set are dropped (as in the paper). "
                  "The 20 attributes are our choice (the paper does not list them).", ""]
    return lines


def _attribute_figure(methods, datasets, by, path: Path) -> None:


    for d, rs_any in _datasets_with("attributes", methods, datasets, by, None):
        names = list(rs_any[0]["attributes"]["attributes"]) + ["hair colour"]
        fig = Figure(figsize=(max(8, 0.6 * len(names) * len(methods) / 3), 4))
        ax = fig.subplots()
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            rs = [r["attributes"] for r in by.get((m, d, None), []) if "attributes" in r]
            if not rs:
                continue
            vals = [mean_se([100 * a["attributes"][n] for a in rs if n in a["attributes"]]
                            or [0.0])[0] for n in names[:-1]]
            vals.append(mean_se([100 * a["hair_colour"] for a in rs if "hair_colour" in a])[0]
                        if any("hair_colour" in a for a in rs) else 0.0)
            ax.bar([j + i * width for j in range(len(names))], vals, width, label=m)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=70,
                      fontsize=7)
        ax.set_ylabel("probe accuracy (%)"), ax.set_title(f"attributes on {d}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return


def _style_table(methods, datasets, by, sv, suffix) -> list[str]:
    lines: list[str] = []
    for d, rs_any in _datasets_with("factors", methods, datasets, by, sv):
        names = list(rs_any[0]["factors"])
        head = [f"{n} ({rs_any[0]['factors'][n]['metric']})" for n in names]
        lines += [f"## Content and style on {d}{suffix} (linear probes, ×100)", "",
                  "| method | content (shape) accuracy | " + " | ".join(head) + " |",
                  "|---|---|" + "---|" * len(names)]
        for m in methods:
            rs = [r for r in by.get((m, d, sv), []) if "factors" in r]
            cells = [_fmt([r["content"] for r in rs if "content" in r], 100)] + \
                [_fmt([r["factors"][n]["value"] for r in rs if n in r["factors"]], 100)
                 for n in names]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _sweep_table(sweep: dict, methods, datasets, by) -> list[str]:
    lines = [f"## kNN accuracy (%) against {sweep['key']}", ""]
    vals = [str(v) for v in sweep["values"]]
    for d in datasets:
        lines += [f"{d}:", "", "| method | " + " | ".join(vals) + " |",
                  "|---|" + "---|" * len(vals)]
        for m in methods:
            lines.append(f"| {m} | " + " | ".join(
                _fmt([r["knn_best"] for r in by.get((m, d, v), [])], 100) for v in vals) + " |")
        lines.append("")
    return lines


def _sweep_figure(sweep: dict, methods, datasets, by, path: Path) -> None:


    vals = [str(v) for v in sweep["values"]]
    fig = Figure(figsize=(4.5 * len(datasets), 3.5))
    axes = fig.subplots(1, len(datasets), squeeze=False)
    for ax, d in zip(axes[0], datasets, strict=True):
        for m in methods:
            pts: list[tuple[str, Any, Any]] = []
            for v in vals:
                rs = by.get((m, d, v), [])
                if rs:
                    mean, se = mean_se([100 * r["knn_best"] for r in rs])
                    pts.append((v, mean, 0 if se != se else se))
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts],
                            marker="o", capsize=3, label=m)
        ax.set_xlabel(sweep["key"]), ax.set_ylabel("kNN accuracy (%)"), ax.set_title(d)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
