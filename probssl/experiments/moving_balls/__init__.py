"""The RPM paper's moving-balls experiment (arXiv:2107.02495v3 Sec. 5, App. D, Fig. 1), in one
package: the experiment (:mod:`.experiment`), the exact sparse encoder evaluation it trains
with (:mod:`.windows`), the readout that scores an encoder (:mod:`.readout`) and its
figure (:mod:`.figure`)."""

from probssl.experiments.moving_balls.experiment import (
    DEMO,
    METHODS,
    PAPER,
    QUICK,
    BallsExperimentConfig,
    BallsRun,
    config_from_args,
    critic_loss,
    findings,
    run_experiment,
    score_run,
    supervised_loss,
    train_encoder,
)
from probssl.experiments.moving_balls.figure import LABELS
from probssl.experiments.moving_balls.readout import (
    decode,
    embed,
    fit_readout,
    matched_distances,
    permutations,
)

__all__ = [
    "DEMO", "LABELS", "METHODS", "PAPER", "QUICK", "BallsExperimentConfig", "BallsRun",
    "config_from_args", "critic_loss", "decode", "embed", "findings", "fit_readout",
    "matched_distances",
    "permutations", "run_experiment", "score_run", "supervised_loss", "train_encoder",
]
