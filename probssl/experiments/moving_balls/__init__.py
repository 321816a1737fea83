"""The RPM paper's moving-balls experiment (infonce-rpm-v3 Sec. 5, App. D, Fig. 1), in one
package: the experiment (:mod:`.experiment`), the exact sparse encoder evaluation it trains
with (:mod:`.windows`) and its figure (:mod:`.figure`, imported on use: it needs
matplotlib)."""

from probssl.experiments.moving_balls.experiment import (
    LABELS,
    METHODS,
    PAPER,
    QUICK,
    BallsExperimentConfig,
    BallsRun,
    config_from_args,
    critic_loss,
    decode,
    embed,
    fit_readout,
    matched_distances,
    permutations,
    run_experiment,
    score_run,
    supervised_loss,
    train_encoder,
)

__all__ = [
    "LABELS", "METHODS", "PAPER", "QUICK", "BallsExperimentConfig", "BallsRun",
    "config_from_args", "critic_loss", "decode", "embed", "fit_readout", "matched_distances",
    "permutations", "run_experiment", "score_run", "supervised_loss", "train_encoder",
]
