"""What a user can tell :func:`protoviz.models.load_model` about a checkpoint that the file cannot tell.

- ``family``: ProtoPNet and TesNet state dicts have identical keys.
- ``slots`` (ProtoPool): ``soft`` mixes prototypes with softmax(proto_presence), as the repository's
  default ``forward(x)`` scores a model trained without ``--pp_gumbel``; ``hard`` takes the argmax slot,
  as ``forward(x, gumbel_scale=10e3)`` does after push. Without a hint: ``hard`` for a file whose name
  contains ``push`` (``best_model_push.pth`` is written and scored only after push), else ``soft``.
- ``activation`` (ProtoPNet, ProtoPool): ``log`` or ``linear`` (``prototype_activation_function``). A whole
  pickled ProtoPNet records it; a state dict does not, and ``log`` is assumed.
- ``backbone`` (PIP-Net): ``convnext_tiny_26`` or ``convnext_tiny_13``; their weights are identical, only
  strides differ. Without a hint: the run folder's ``metadata/args.txt`` (``net: ...``), else PIP-Net's
  default ``convnext_tiny_26``.

The choice made, and why, is recorded in the model (its config and ``metadata``), so a converted file
keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from protoviz.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from protoviz.models.base import PrototypeModel

SLOTS = ("soft", "hard")
ACTIVATIONS = ("log", "linear")
BACKBONE_HINTS = ("convnext_tiny_26", "convnext_tiny_13")
# Families each hint applies to.
HINT_FAMILIES = {"slots": ("protopool",), "activation": ("protopnet", "protopool"), "backbone": ("pipnet",)}


@dataclass(frozen=True)
class LoadHints:
    """Facts about a checkpoint given by the user; ``None`` = let the file (or the documented default) decide."""

    family: str | None = None
    slots: str | None = None
    activation: str | None = None
    backbone: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("slots", SLOTS), ("activation", ACTIVATIONS), ("backbone", BACKBONE_HINTS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")

    @classmethod
    def of(cls, family: str | None = None, **hints: Any) -> LoadHints:
        """From keyword arguments, refusing unknown names."""
        unknown = sorted(set(hints) - {"slots", "activation", "backbone"})
        if unknown:
            raise ConfigError(f"unknown load hint(s) {', '.join(unknown)}; known: family, slots, activation, backbone")
        return cls(family=family, **hints)

    def given(self) -> dict[str, str]:
        """The hints other than ``family`` that were given."""
        return {k: v for k in HINT_FAMILIES if (v := getattr(self, k)) is not None}

    def check_family(self, family: str, label: str) -> None:
        """Refuse a hint that does not apply to ``family`` (e.g. ``slots`` for a ProtoPNet)."""
        for name, value in self.given().items():
            if family not in HINT_FAMILIES[name]:
                raise ConfigError(f"{label} is a {family} model; the {name} hint ({value!r}) applies only to "
                                  f"{', '.join(HINT_FAMILIES[name])}")

    def with_default(self, **values: str | None) -> LoadHints:
        """These hints with unset fields filled from ``values`` (values that are None are ignored)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None and getattr(self, k) is None})


def default_slots(file_name: str) -> tuple[str, str]:
    """(slots, why) for a ProtoPool file given without a ``slots`` hint."""
    if "push" in file_name.lower():
        return "hard", (f"'{file_name}' names a pushed model; ProtoPool evaluates those with "
                        "forward(x, gumbel_scale=10e3), i.e. argmax slots")
    return "soft", (f"'{file_name}' does not name a pushed model; ProtoPool's default forward(x) mixes "
                    "prototypes with softmax(proto_presence)")


def record_choice(metadata: dict[str, Any], name: str, value: str, why: str) -> None:
    """Record in a model's ``metadata["load_hints"]`` how a setting the file does not hold was chosen
    (``metadata`` is kept by conversion to the native format)."""
    metadata.setdefault("load_hints", {})[name] = f"{value}: {why}"


def apply_to_native(model: PrototypeModel, hints: LoadHints, label: str) -> PrototypeModel:
    """A native model with ``hints`` applied: a ``slots`` hint re-evaluates a ProtoPool in that mode (same
    weights); any other hint must agree with what the file records."""
    given = hints.given()
    if not given:
        return model
    hints.check_family(model.family, label)
    config = model.config_dict()
    for name, value in given.items():
        key = "similarity" if (name, model.family) == ("activation", "protopnet") else name
        if name != "slots" and config.get(key) != value:
            raise CheckpointError(f"{label} records {key} {config.get(key)!r}, not {value!r} as the {name} hint says")
    if given.get("slots", config.get("slots")) == config.get("slots"):
        return model
    rebuilt = type(model).from_config({**config, "slots": given["slots"]})
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.prototype_sources, rebuilt.metadata = model.prototype_sources, dict(model.metadata)
    record_choice(rebuilt.metadata, "slots", given["slots"], f"given (the file was converted with {config['slots']!r})")
    return rebuilt.to(model.device).eval()
