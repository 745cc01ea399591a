"""How a result was made: one frozen :class:`Provenance` per pass, and the :class:`RunKey` it answers.

Every dataset-wide result (scores, top-k patches, profiles, global explanations) carries the
Provenance of the pass that made it: what kind of result it is, the model's checkpoint sha256 and
shape, the dataset fingerprint and split, the canonical settings, the seed, the device, the library
versions, how many images and ranks, the batch size asked for and the one that fitted after
out-of-memory halvings.

One concept, one name: a :class:`RunKey` (kind, model sha256, dataset fingerprint, canonical settings
JSON with the split) is what a result is the answer to. The workspace stores runs under it (the same
request twice is served from the store), and two results may be compared or shown side by side only
when their keys are equal. ``Provenance.key`` is the key of the pass, so a page can make the key of a
request before running it (:meth:`RunKey.of` with the settings the pass will record) and find it
stored. The settings cover everything that changes the numbers (the images chosen, the metrics and
their parameters, seeds, the data path) and nothing that does not (batch size, device).

Pure Python at import time (no torch), so the command line and the workspace can import it cheaply.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib import metadata
from typing import Any

SETTINGS_DIGEST_LENGTH = 16


def canonical(value: Any) -> Any:
    """A JSON-ready copy with sorted keys: dataclasses as dicts, tuples as lists, non-finite floats as
    strings, numpy scalars as Python numbers; so that equal settings always serialise equally."""
    if is_dataclass(value) and not isinstance(value, type):
        return canonical(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return canonical(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def digest(value: Any, length: int = SETTINGS_DIGEST_LENGTH) -> str:
    """Hex sha256 of the canonical JSON of ``value`` (the string the workspace keys settings by,
    :func:`protoviz.payload.canonical_json`), cut to ``length`` characters."""
    from protoviz.payload import canonical_json

    return hashlib.sha256(canonical_json(canonical(value)).encode("utf-8")).hexdigest()[:length]


def selection_digest(indices: Sequence[int]) -> str:
    """Digest of the dataset positions a pass used (order-free)."""
    return digest(sorted(int(i) for i in indices))


@dataclass(frozen=True)
class DatasetIdentity:
    """What a pass ran over: ``fingerprint`` (:func:`protoviz.fingerprint.dataset_fingerprint`: the
    split's files, labels, boxes, parts and cropping, the key the workspace stores runs under), ``split``
    and a readable ``description`` (root, kind, counts, parts)."""

    fingerprint: str | None
    split: str | None
    description: Mapping[str, Any] = field(default_factory=dict)


def dataset_identity(dataset: Any) -> DatasetIdentity:
    """The identity of a protoviz ``ImageDataset`` (anything with ``records`` and ``describe()``), or of
    another source (a list of images, tensors) by its length only (no fingerprint)."""
    describe = getattr(dataset, "describe", None)
    description = describe() if callable(describe) else {"images": _length(dataset)}
    if getattr(dataset, "records", None) is None:
        split = description.get("split")
        return DatasetIdentity(None, None if split is None else str(split), description)
    from protoviz.fingerprint import dataset_fingerprint

    return DatasetIdentity(dataset_fingerprint(dataset), getattr(dataset, "split", None), description)


def _length(source: Any) -> int | None:
    try:
        return len(source)
    except TypeError:
        return None


@dataclass(frozen=True)
class RunKey:
    """What a run is the answer to: its ``kind`` (``evaluate``, ``why``, ``trust`` ...), the model file's
    sha256, the dataset fingerprint and ``settings``, canonical JSON (:func:`protoviz.payload.canonical_json`
    of :func:`canonical` settings). Build one with :meth:`make` (every part required) or :meth:`of` (from a
    pass's dataset identity; unknown parts stay empty and the key is then not :attr:`complete`)."""

    kind: str
    model_sha256: str
    dataset_fingerprint: str
    settings: str

    @classmethod
    def make(cls, kind: str, model_sha256: str, dataset_fingerprint: str, settings: Mapping[str, Any] | Any) -> RunKey:
        """A key from any settings mapping or dataclass (canonicalised: key order does not matter)."""
        from protoviz.errors import WorkspaceError
        from protoviz.payload import canonical_json

        for name, value in (("kind", kind), ("model sha256", model_sha256),
                            ("dataset fingerprint", dataset_fingerprint)):
            if not isinstance(value, str) or not value.strip():
                raise WorkspaceError(f"a run key needs a non-empty {name}")
        return cls(kind, model_sha256, dataset_fingerprint, canonical_json(settings))

    @classmethod
    def of(cls, kind: str, model_sha256: str | None, dataset: DatasetIdentity, settings: Mapping[str, Any]) -> RunKey:
        """The key of a pass of ``kind`` over ``dataset`` with ``settings`` (what the pass records in its
        provenance): the split joins the settings. Empty model or dataset parts make an incomplete key."""
        from protoviz.payload import canonical_json

        body = canonical({**dict(settings), "split": dataset.split})
        return cls(kind, model_sha256 or "", dataset.fingerprint or "", canonical_json(body))

    @property
    def complete(self) -> bool:
        """False when the model or the dataset is unidentified (such a result is never stored or joined)."""
        return bool(self.model_sha256 and self.dataset_fingerprint)

    @property
    def settings_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.settings))

    @property
    def digest(self) -> str:
        """A short digest of the settings, for file names and captions."""
        return hashlib.sha256(self.settings.encode("utf-8")).hexdigest()[:SETTINGS_DIGEST_LENGTH]


@dataclass(frozen=True)
class Provenance:
    """How one pass was made, stamped once when the pass ends.

    model: family, backbone, similarity, input size, prototypes, classes, checkpoint sha256.
    settings: the canonical settings the numbers depend on (see :func:`canonical`); ``settings_digest``
    their digest. batch_size: asked for; batch_size_used: the smallest that fitted (halved on
    out-of-memory ``oom_halvings`` times). world_size: ranks that shared the pass (1 = one process).
    notes: facts a result wants to show beside its numbers (class matching, region size in pixels ...).
    kind: what the pass made (``evaluate``, ``why`` ...; set by the function that ran it, empty if none).
    """

    model_sha256: str | None
    model: Mapping[str, Any]
    dataset: DatasetIdentity
    settings: Mapping[str, Any]
    seed: int | None
    device: str
    versions: Mapping[str, str]
    images: int
    batch_size: int | None
    batch_size_used: int | None
    oom_halvings: int
    world_size: int
    started: str
    seconds: float
    notes: Mapping[str, Any] = field(default_factory=dict)
    kind: str = ""

    @property
    def settings_digest(self) -> str:
        return digest(self.settings)

    @property
    def key(self) -> RunKey:
        """The key this pass answers (:meth:`RunKey.of` its kind, model, dataset and settings)."""
        return RunKey.of(self.kind, self.model_sha256, self.dataset, self.settings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of everything above (for result files and the workspace)."""
        return canonical({
            "model_sha256": self.model_sha256, "model": dict(self.model),
            "dataset": {"fingerprint": self.dataset.fingerprint, "split": self.dataset.split,
                        **dict(self.dataset.description)},
            "settings": dict(self.settings), "settings_digest": self.settings_digest, "seed": self.seed,
            "device": self.device, "versions": dict(self.versions), "images": self.images,
            "batch_size": self.batch_size, "batch_size_used": self.batch_size_used,
            "oom_halvings": self.oom_halvings, "world_size": self.world_size, "started": self.started,
            "seconds": round(self.seconds, 3), "notes": dict(self.notes), "kind": self.kind,
        })

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """The provenance :meth:`to_dict` wrote (as the workspace keeps it); its :attr:`key` is the original's.

        A malformed dict, or settings that no longer match their stored digest (edited after the run),
        raise :class:`~protoviz.errors.WorkspaceError`.
        """
        from protoviz.errors import WorkspaceError

        try:
            provenance = cls._from_dict(data)
        except (TypeError, ValueError, AttributeError) as error:
            raise WorkspaceError(f"a stored result's provenance is malformed ({error})") from error
        stored = data.get("settings_digest")
        if stored is not None and stored != provenance.settings_digest:
            raise WorkspaceError("a stored result's settings do not match their digest: it was changed after it was made")
        return provenance

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        dataset = dict(data.get("dataset") or {})
        fingerprint = dataset.pop("fingerprint", None)
        identity = DatasetIdentity(fingerprint, dataset.get("split"), dataset)

        def number(name: str) -> int | None:
            value = data.get(name)
            return None if value is None else int(value)

        return cls(model_sha256=data.get("model_sha256"), model=dict(data.get("model") or {}), dataset=identity,
                   settings=dict(data.get("settings") or {}), seed=number("seed"), device=str(data.get("device", "")),
                   versions=dict(data.get("versions") or {}), images=int(data.get("images") or 0),
                   batch_size=number("batch_size"), batch_size_used=number("batch_size_used"),
                   oom_halvings=int(data.get("oom_halvings") or 0), world_size=int(data.get("world_size") or 1),
                   started=str(data.get("started", "")), seconds=float(data.get("seconds") or 0.0),
                   notes=dict(data.get("notes") or {}), kind=str(data.get("kind", "")))


def model_identity(model: Any) -> dict[str, Any]:
    """What identifies a model in a result: family, backbone, similarity, sizes and checkpoint sha256."""
    meta = getattr(model, "metadata", {}) or {}
    return {"family": model.family, "backbone": model.backbone_name, "similarity": model.similarity_kind,
            "input_size": list(model.input_spec.image_size), "prototypes": model.num_prototypes,
            "classes": model.num_classes, "checkpoint_sha256": meta.get("checkpoint_sha256"),
            "name": meta.get("name")}


def library_versions() -> dict[str, str]:
    """protoviz, torch, torchvision, numpy, opencv and python versions: a loaded module's own
    ``__version__`` (it carries torch's build tag, e.g. ``+cu130``), else the installed distribution's."""
    versions = {"python": platform.python_version()}
    for name, module, dist in (("protoviz", "protoviz", "protoviz"), ("torch", "torch", "torch"),
                               ("torchvision", "torchvision", "torchvision"), ("numpy", "numpy", "numpy"),
                               ("opencv", "cv2", "opencv-python-headless")):
        loaded = sys.modules.get(module)
        version = getattr(loaded, "__version__", None) if loaded is not None else None
        if version is None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                version = "unknown"
        versions[name] = str(version)
    return versions
