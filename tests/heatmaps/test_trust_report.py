"""The trust report: kept in the workspace and read back, the pointing game as the library's, the model lock
taken per batch of work (another request is served mid-run), provenance that keys the run."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from torch import Tensor

from protoviz.data.datasets import load_batch, open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.explain.pointing import pointing_game
from protoviz.heatmaps.methods import HeatmapOptions
from protoviz.heatmaps.trust import PerturbationConfig, RandomisationConfig
from protoviz.heatmaps.trust_report import (
    TrustConfig,
    TrustReport,
    evaluate_methods,
    pointing_column,
    top_prototypes,
)
from protoviz.locking import ModelLock
from protoviz.models.protopnet import ProtoPNet
from protoviz.passes import PassRecord
from protoviz.payload import as_payload, decode
from protoviz.provenance import dataset_identity, selection_digest
from protoviz.workspace import RunKey, Workspace
from tests.conftest import make_tiny_model

QUICK = TrustConfig(methods=("upsample", "saliency"), options=HeatmapOptions(batch_rows=4),
                    randomisation=RandomisationConfig(stages=2), perturbation=PerturbationConfig(steps=4))


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("trust") / "cub",
                            SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=1))


def test_the_report_round_trips_through_the_workspace(masked: Path) -> None:
    model = make_tiny_model(classes=8, per_class=1)
    dataset = open_dataset(masked, crop_to_box=False)
    positions = [0, 3, 5]
    batch = load_batch(dataset, model.input_spec, positions, with_masks=True)
    record = PassRecord(dataset_identity(dataset), {"images": selection_digest(positions)})
    report = evaluate_methods(model, batch.images, top_prototypes(model, batch.images, 2), QUICK,
                              part_masks=batch.masks, image_names=batch.image_ids, model_name="tiny", record=record)
    payload = as_payload(report)
    assert payload.type == "trust" and payload.tables["scores"] == report.summary_rows()
    assert len(payload.tables["pairs"]) == 2 * 3 * 2  # methods x images x prototypes
    workspace = Workspace()
    key = RunKey.make("trust", "sha", report.provenance["dataset"]["fingerprint"], report.provenance["settings"])
    stored = workspace.save_run(key, report)
    back = decode(workspace.get_run(stored.id).payload)
    assert isinstance(back, TrustReport) and back.summary_rows() == report.summary_rows()
    assert back.image_names == report.image_names and back.provenance == report.provenance
    np.testing.assert_array_equal(back.prototype_indices, report.prototype_indices)
    np.testing.assert_array_equal(back.prototype_parts, report.prototype_parts)
    for name, result in report.results.items():
        again = back.results[name]
        np.testing.assert_array_equal(again.randomisation.rho, result.randomisation.rho)
        np.testing.assert_array_equal(again.curves.deletion, result.curves.deletion)
        assert again.pointing is not None and result.pointing is not None
        np.testing.assert_array_equal(again.pointing.mask, result.pointing.mask)
        scale = np.abs(result.maps).max(axis=(2, 3), keepdims=True)
        assert np.abs(again.maps - result.maps).max() <= 1e-3 * scale.max()  # float16, scaled per map
        assert again.randomisation.stage_labels == result.randomisation.stage_labels
    provenance = report.provenance
    assert provenance["dataset"]["fingerprint"] == dataset_identity(dataset).fingerprint
    assert provenance["settings"]["images"] == selection_digest(positions) and provenance["images"] == 3
    assert provenance["notes"]["masks"] == "given"


def test_the_pointing_game_is_the_librarys(masked: Path) -> None:
    """Per method, the Trust page's pointing game equals protoviz.explain.pointing on the same images."""
    model = make_tiny_model(classes=8, per_class=1, seed=2)
    dataset = open_dataset(masked, crop_to_box=False)
    positions = list(range(len(dataset)))
    batch = load_batch(dataset, model.input_spec, positions, with_masks=True)
    report = evaluate_methods(model, batch.images, top_prototypes(model, batch.images, 2),
                              TrustConfig(methods=("upsample", "prp"), randomisation=RandomisationConfig(stages=1),
                                          perturbation=PerturbationConfig(steps=2)),
                              part_masks=batch.masks)
    for method in ("upsample", "prp"):
        game = pointing_game(model, dataset, method, top=2, indices=positions)
        expected = np.array([[r["mask_relevance"], r["energy_relevance"]] for r in game.rows]).reshape(-1, 2, 2)
        pointing = report.results[method].pointing
        assert pointing is not None
        np.testing.assert_allclose(pointing.mask, expected[..., 0], atol=1e-9)
        np.testing.assert_allclose(pointing.energy, expected[..., 1], atol=1e-6)
        row = next(r for r in report.summary_rows() if r["method"] == method)
        assert row[pointing_column(0.1)] == pytest.approx(game.mask_relevance, abs=1e-4)


def test_without_masks_the_report_says_why() -> None:
    model = make_tiny_model()
    images = torch.randn(2, 3, 64, 64)
    report = evaluate_methods(model, images, top_prototypes(model, images, 1), QUICK, masks_note="no masks here")
    assert report.masks_note == "no masks here" and report.provenance["notes"]["masks"] == "no masks here"
    assert all(r.pointing is None and r.relevance is None for r in report.results.values())
    assert not any("pointing" in column for row in report.summary_rows() for column in row)


class Slow(ProtoPNet):
    """The tiny ProtoPNet taking ``delay`` seconds per forward, logging who ran it and when."""

    delay = 0.02
    log: list[tuple[str, float]]

    def set_latents(self, x: Tensor) -> dict[str, Tensor]:
        self.log.append(("trust", time.monotonic()))
        time.sleep(self.delay)
        return super().set_latents(x)


def test_another_request_is_served_while_trust_runs() -> None:
    """Trust holds the model's lock per batch of work, not for the whole run: a second session's forward
    (taken under the same lock) runs between two of Trust's batches."""
    tiny = make_tiny_model()
    tiny.__class__ = Slow
    model = cast(Slow, tiny)
    model.log = []
    lock = ModelLock("tiny", timeout_s=30)
    images = torch.randn(4, 3, 64, 64)
    started, done = threading.Event(), threading.Event()

    def run() -> None:
        started.set()
        evaluate_methods(model, images, torch.tensor([[0, 1]] * 4), QUICK, lock=lock)
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    started.wait()
    time.sleep(10 * Slow.delay)  # the run is under way
    with lock:  # what another session's single explanation does
        assert not done.is_set()
        model.log.append(("other", time.monotonic()))
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
    worker.join()
    order = [who for who, _ in model.log]
    other = order.index("other")
    assert 0 < other < len(order) - 10 and order.count("trust") > 20  # served mid-run, not after it
