"""Training: recipes and config, the loop, modality balancing, checkpoints, metrics, DDP.

compose(dataset, modality, recipe=, overrides=) -> TrainConfig   defaults ← recipe ← overrides
train(cfg, resume=, overwrite=) -> TrainResult                    the loop (torchrun-aware)
load_model(path) -> LoadedModel                                   a checkpoint's model, eval mode, CPU
build_dataset(config, data_dir, split)                            the cached dataset a run reads
evaluate_checkpoint(path, data_dir, split) -> metrics             what `qkf eval` prints
"""

from qkf_snn.training.checkpoint import LoadedModel, load_model
from qkf_snn.training.config import TrainConfig, compose
from qkf_snn.training.data import build_dataset

__all__ = ["LoadedModel", "TrainConfig", "build_dataset", "compose", "load_model"]
