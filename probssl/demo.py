"""`probssl demo`: the project's showcase, offline, in minutes on a laptop CPU.

1. the RPM paper's moving-balls experiment (``DEMO`` size: 300 frames, 15 epochs, 3 seeds):
   table, Fig. 1 and what they show;
2. SimVAE vs SimCLR vs VAE vs a random encoder on scikit-learn's digits (a bench grid);
3. the content/style table on the generated ``shapes`` data (what each representation keeps
   of position, scale, rotation, colour and brightness);
4. the reconstruction figure (SimCLR's through a decoder fitted to its frozen encoder).

Everything lands under ``--out`` with one ``report.md`` linking the tables and PNGs.
"""

from __future__ import annotations

import time
from pathlib import Path

from probssl.errors import UserError
from probssl.evaluate import EvalConfig
from probssl.evaluate.generate import frozen_decoder, train_decoder
from probssl.experiments.bench import plan_grid, run_grid
from probssl.experiments.figures import reconstruction_figure
from probssl.experiments.moving_balls import DEMO, BallsExperimentConfig, findings, run_experiment
from probssl.experiments.report import write_report
from probssl.runs.format import load_run
from probssl.runs.provenance import command_line, machine_line

METHODS = ["simvae", "simclr", "vae", "random"]


def run_demo(out: Path, epochs: int = 30, seeds: list[int] | int = (0, 1), progress: bool = True,
             log=print, probe_epochs: int = 100, decoder_epochs: int = 100,
             fid_features: str = "classifier", balls: BallsExperimentConfig = DEMO,
             shapes: str = "shapes", gmm_n_init: int = 5) -> Path:
    """The showcase: moving balls, the digits and shapes grids, reconstructions, one report.
    ``probe_epochs``, ``decoder_epochs`` (SimCLR's decoder), ``fid_features`` ("none" skips
    FID) and ``gmm_n_init`` (GMM restarts; the demo's default is 5) scale the evaluation; the
    other defaults are the protocol's. ``balls`` is the moving-balls size (default ``DEMO``:
    large enough that its findings hold on every seed); ``shapes`` the content/style dataset
    (``shapes-small`` for a faster check)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(f"[demo] 1/4 moving balls ({balls.frames} frames, {balls.epochs} epochs, "
        f"{len(balls.seeds)} seeds)")
    balls_metrics = run_experiment(balls, out / "moving-balls", progress=progress,
                                   command=command_line(), machine=machine_line())
    log("[demo] 2/4 SimVAE, SimCLR, VAE, random on digits")
    eval_cfg = EvalConfig(probe_epochs=probe_epochs, gmm_n_init=gmm_n_init,
                          fid_features=fid_features)
    # a list of seeds, as everywhere (an int is accepted as a count for old callers)
    seeds_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    plan = plan_grid(METHODS, ["digits"], seeds_list, preset="quick", epochs=epochs,
                     train_overrides={"device": "cpu"})
    run_grid(plan, out / "digits", eval_cfg, progress=progress, log=log)
    write_report(out / "digits", out / "digits" / "report.md")
    log(f"[demo] 3/4 content and style on {shapes}")
    plan = plan_grid(METHODS, [shapes], [0], preset="quick", epochs=max(1, epochs // 10),
                     train_overrides={"device": "cpu"})
    run_grid(plan, out / "shapes", eval_cfg, progress=progress, log=log)
    write_report(out / "shapes", out / "shapes" / "report.md")
    log("[demo] 4/4 reconstructions")
    runs = [out / "digits" / "runs" / f"{m}__digits__seed0" for m in METHODS if m != "random"]
    simclr = load_run(runs[1])
    try:
        frozen_decoder(simclr)  # a decoder fitted to this checkpoint already exists
    except UserError:
        train_decoder(simclr, epochs=decoder_epochs, lr=1e-3, progress=progress)
    reconstruction_figure(runs, out / "reconstructions.png", n=10)
    wall = time.perf_counter() - t0
    report = out / "report.md"
    report.write_text("\n".join([
        "# probssl demo", "",
        f"Machine: {machine_line()}. Wall time: {wall:.0f} s. Command: `{command_line()}`.",
        "", f"## 1. Moving balls (RPM paper Fig. 1; {balls.frames} of its 900 frames, "
        f"{balls.epochs} of its 30 epochs)", "",
        "What it shows, computed from the table below: " + " ".join(
            findings(balls_metrics["summary"])) + " The paper-size runs and the verdict: "
        "docs/RESULTS.md, \"Moving balls\".", "",
        (out / "moving-balls" / "table.md").read_text(), "",
        "![moving balls](moving-balls/fig1.png)", "",
        "## 2. SimVAE vs SimCLR vs VAE vs random on digits", "",
        "Full tables: [digits/report.md](digits/report.md).", "",
        _section(out / "digits" / "report.md", "## Table 1"), "",
        "## 3. Content and style on shapes", "",
        "Full tables: [shapes/report.md](shapes/report.md).", "",
        _section(out / "shapes" / "report.md", "## Content and style"), "",
        "## 4. Reconstructions", "",
        "![reconstructions](reconstructions.png)", "",
        "SimCLR has no decoder: one was fitted to its frozen encoder (`probssl "
        "train-decoder`), so its row shows what its representation kept.", ""]))
    log(f"[demo] done in {wall:.0f} s; report: {report}")
    return report


def _section(path: Path, heading: str) -> str:
    """The first section of a report starting with ``heading``."""
    text = path.read_text().split("\n## ")
    for part in text:
        if ("## " + part).startswith(heading):
            return "### " + part.strip()
    return ""
