"""Results as files: CSV (one row per prototype and characteristic) and JSON, with how they were made.

The CSVs are plain tables (``pandas.read_csv`` reads them as they are, :mod:`protoviz.tables`); the
explanation's parameters and mode, the seed, the model (name, family, checkpoint sha256 from
``model.metadata``), the dataset, the protoviz / torch versions and the device are in the JSON files
beside them: the full ``{stem}.json`` document and the ``{stem}.provenance.json`` sidecar.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from protoviz.device import describe_device
from protoviz.explain.global_ import GlobalExplanation
from protoviz.explain.local import LocalExplanation
from protoviz.models.base import PrototypeModel
from protoviz.provenance import library_versions, model_identity
from protoviz.tables import csv_text, write_csv


def provenance(model: PrototypeModel, model_name: str | None = None, dataset: dict[str, Any] | None = None,
               seed: int = 0) -> dict[str, Any]:
    """How a result was made: model, dataset, software versions, device, time."""
    identity = model_identity(model)
    return {
        "model": {**identity, "name": model_name or identity["name"] or model.family,
                  "num_prototypes": model.num_prototypes},
        "dataset": dataset,
        "seed": seed,
        "versions": library_versions(),
        "device": describe_device(model.device),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _number(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def global_rows(result: GlobalExplanation, class_names: list[str] | None = None,
                prototype_classes: list[int] | None = None) -> list[dict[str, Any]]:
    """One row per (explained prototype, characteristic): importance G, mean Delta, mean |Delta|, rank (a
    region run that named prototypes has rows for those only)."""
    rows = []
    for j in result.explained:
        ranking = result.ranking(j, include_identity=True)
        for m, name in enumerate(result.characteristics):
            cls = prototype_classes[j] if prototype_classes is not None else None
            rows.append({
                "prototype": j, "class_index": cls,
                "class_name": class_names[cls] if class_names is not None and cls is not None else None,
                "characteristic": name, "importance": _number(result.importance[j, m]),
                "mean_delta": float(result.mean_delta[j, m]), "mean_abs_delta": float(result.mean_abs_delta[j, m]),
                "rank": ranking.index(name) + 1, "mean_similarity": float(result.mean_similarity[j]),
                "images": result.num_images})
    return rows


def prototype_classes(model: PrototypeModel) -> list[int]:
    """The class each prototype belongs to (argmax of its class identity row)."""
    return [int(c) for c in model.prototype_class_identity.argmax(dim=1).tolist()]


def global_csv(result: GlobalExplanation, model: PrototypeModel | None = None) -> str:
    """The global explanation as plain CSV text (its parameters: :func:`global_provenance`)."""
    return csv_text(global_rows(result, list(model.class_names) if model else None,
                                prototype_classes(model) if model else None))


def global_provenance(result: GlobalExplanation) -> dict[str, Any]:
    """How a global explanation was made: its config and provenance (the CSV's sidecar)."""
    return {"kind": "global_characteristics", "config": result.config.to_dict(), **result.provenance}


def global_json(result: GlobalExplanation, model: PrototypeModel | None = None) -> str:
    """The global explanation as JSON text: config, provenance, and per-prototype vectors."""
    classes = prototype_classes(model) if model else None
    explained = set(result.explained)
    doc = {
        "kind": "global_characteristics", "config": result.config.to_dict(), **result.provenance,
        "characteristics": list(result.characteristics), "images": result.num_images,
        "prototypes": [{"prototype": j, "class_index": classes[j] if classes else None,
                        "importance": {k: _number(v) for k, v in result.vector(j).items()},
                        "mean_delta": dict(zip(result.characteristics, result.mean_delta[j].tolist())),
                        "mean_abs_delta": dict(zip(result.characteristics, result.mean_abs_delta[j].tolist())),
                        "mean_similarity": float(result.mean_similarity[j]),
                        "ranking": result.ranking(j) if j in explained else []}
                       for j in range(result.num_prototypes)],
    }
    return json.dumps(doc, indent=2, default=str)


def local_rows(local: LocalExplanation, image_names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (image, prototype, characteristic) of a local explanation."""
    deltas = local.deltas.numpy()
    rows = []
    for b in range(deltas.shape[0]):
        for k, j in enumerate(local.prototypes.tolist()):
            for m, name in enumerate(local.characteristics):
                rows.append({"image": image_names[b] if image_names else b, "prototype": j, "characteristic": name,
                             "similarity": float(local.similarities[b, k]), "modified_similarity":
                             float(local.modified[b, m, k]), "delta": float(deltas[b, m, k]),
                             "location_row": int(local.locations[b, k, 0]),
                             "location_col": int(local.locations[b, k, 1])})
    return rows


def local_csv(local: LocalExplanation, info: dict[str, Any] | None = None, image_names: list[str] | None = None
              ) -> str:
    """A local explanation as plain CSV text (config and provenance go in :func:`local_json`)."""
    del info  # kept for callers passing it; the CSV holds only the table
    return csv_text(local_rows(local, image_names))


def local_json(local: LocalExplanation, info: dict[str, Any], image_names: list[str] | None = None) -> str:
    """A local explanation as JSON text."""
    doc = {"kind": "local_characteristics", "config": local.config.to_dict(), **info,
           "rows": local_rows(local, image_names)}
    return json.dumps(doc, indent=2, default=str)


def write_global(result: GlobalExplanation, out_dir: str | Path, model: PrototypeModel | None = None,
                 stem: str = "characteristics") -> tuple[Path, Path]:
    """Write ``{stem}.csv`` (with its ``{stem}.provenance.json`` sidecar) and ``{stem}.json`` into ``out_dir``;
    returns the CSV and JSON paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = folder / f"{stem}.csv", folder / f"{stem}.json"
    rows = global_rows(result, list(model.class_names) if model else None, prototype_classes(model) if model else None)
    write_csv(csv_path, rows, global_provenance(result))
    json_path.write_text(global_json(result, model), encoding="utf-8")
    return csv_path, json_path


def read_global_json(path: str | Path) -> dict[str, Any]:
    """Read back a JSON file written by :func:`write_global` (for agreement between two runs)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def importance_matrix(doc: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """(characteristics, (P, M) importance) from a JSON document of :func:`global_json`."""
    names = list(doc["characteristics"])
    values = [[np.nan if p["importance"][n] is None else p["importance"][n] for n in names] for p in doc["prototypes"]]
    return names, np.array(values, dtype=np.float64)
