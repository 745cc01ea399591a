"""Exceptions raised on bad user input. Every message says what was expected and where."""

from __future__ import annotations


class ProtovizError(Exception):
    """Base class of every error protoviz raises on purpose."""


class CheckpointError(ProtovizError):
    """A checkpoint file is unreadable, unsafe, truncated, or does not match its model."""


class ImageError(ProtovizError):
    """An image cannot be decoded, is too large, or has an unsupported format."""


class DatasetError(ProtovizError):
    """A dataset folder is missing files or annotations, or they are malformed."""


class ConfigError(ProtovizError):
    """A configuration value is out of range or inconsistent with the model."""


class ModelError(ProtovizError):
    """A model cannot do what was asked (wrong input shape, missing feature, needs a GPU)."""


class WorkspaceError(ProtovizError):
    """The workspace (PROTOVIZ_HOME) is unreadable, damaged, newer than this protoviz, full, or lacks an entry."""


class PathNotAllowedError(ProtovizError):
    """A typed server path is outside the folders the operator allowed (or typed paths are off)."""


class UploadError(ProtovizError):
    """An upload is too large, over the session's disk budget, or cannot be stored."""
