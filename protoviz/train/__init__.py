"""ProtoPNet training: stages (warm-up, joint, push, last layer), losses, push, and the demo models."""

from protoviz.train.config import PRESETS, TrainConfig, preset
from protoviz.train.data import ImageTensors, load_split
from protoviz.train.push import push_prototypes
from protoviz.train.trainer import ProgressPrinter, TrainResult, accuracy, predict, train_protopnet

__all__ = ["PRESETS", "ImageTensors", "ProgressPrinter", "TrainConfig", "TrainResult", "accuracy",
           "load_split", "predict", "preset", "push_prototypes", "train_protopnet"]
