"""ProtoPool research checkpoints: ``{'model_state_dict', 'epoch'}`` (``best_model(_push).pth``).

Keys: ``alfa`` (with ``--use_thresh``; unused in forward), ``proto_presence`` (C, P, S),
``prototype_vectors`` (P, D, 1, 1), ``ones``, ``add_on_layers.0.*``, ``features.*`` and
``last_layer.weight`` (C, C*S) when trained with ``--last_layer`` (otherwise the logits sum over slots).
Neither the slot mode nor ``prototype_activation_function`` is in the file: see
:mod:`protoviz.models.hints` for the hints and the defaults.
"""

from __future__ import annotations

from torch import Tensor

from protoviz.errors import CheckpointError
from protoviz.models.hints import LoadHints, default_slots, record_choice
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import class_names, input_spec, load_weights
from protoviz.models.protopool import ProtoPool, ProtoPoolConfig


def build(state: dict[str, Tensor], label: str, hints: LoadHints | None = None) -> ProtoPool:
    """A :class:`ProtoPool` holding the research weights; ``label`` is the file name (it decides the
    default slot mode)."""
    hints = hints or LoadHints()
    presence, vectors = state.get("proto_presence"), state.get("prototype_vectors")
    if presence is None or vectors is None or presence.dim() != 3:
        raise CheckpointError(f"{label}: expected proto_presence (C, P, S) and prototype_vectors (P, D, 1, 1)")
    C, P, S = (int(v) for v in presence.shape)
    if vectors.shape[0] != P or tuple(vectors.shape[2:]) != (1, 1):
        raise CheckpointError(f"{label}: prototype_vectors {tuple(vectors.shape)} does not fit proto_presence {(C, P, S)}")
    last = state.get("last_layer.weight")
    if last is not None and tuple(last.shape) != (C, C * S):
        raise CheckpointError(f"{label}: last_layer.weight {tuple(last.shape)} should be {(C, C * S)}")
    slots, slots_why = (hints.slots, "given") if hints.slots else default_slots(label)
    activation = hints.activation or "log"
    config = ProtoPoolConfig(class_names(C), infer_backbone(state, "features."), P, int(vectors.shape[1]), S,
                             last is not None, input_spec(), slots=slots, activation=activation)
    model = ProtoPool(config)
    load_weights(model, {k: v for k, v in state.items() if k not in ("ones", "alfa")}, label)
    record_choice(model.metadata, "slots", slots, slots_why)
    record_choice(model.metadata, "activation", activation, "given" if hints.activation else
                  "assumed: the file does not record prototype_activation_function (the script default is log)")
    return model
