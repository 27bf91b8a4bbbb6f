"""Training nicodec models: ``train(TrainConfig(data=...))`` or ``nicodec train --data DIR``.

See docs/training.md for the recipe, resuming, exporting and multi-GPU runs.
"""

from .train import DEFAULT_LAMBDAS, Interrupted, TrainConfig, export_weights, learning_rate, rd_loss, train

__all__ = ["DEFAULT_LAMBDAS", "Interrupted", "TrainConfig", "export_weights", "learning_rate", "rd_loss", "train"]
