"""The training Dataset: augmentation draws, targets at the augmented joints, flips, validation geometry, workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from shipped import paper, preset_raw, recipe
from torch.utils.data import DataLoader

from hourglass.bench.loader import make_raw_set
from hourglass.config.params_file import ConfigError, parse_params
from hourglass.data.augment import AugmentParams, sample_augmentation
from hourglass.data.dataset import PoseDataset, create_dataset
from hourglass.data.preprocess import preprocess
from hourglass.geometry import crop_image, flip_image, transform_points
from hourglass.heatmaps import decode, heatmaps_to_image
from hourglass.io.annotations import read_annotations
from hourglass.io.images import single_threaded_cv2
from hourglass.joints import MPII

RES, OUT = 128, 32


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("set")
    raw, out = root / "raw", root / "processed"
    make_raw_set(raw, 12, np.random.default_rng(3))
    params = recipe("mpii", {"model": {"input_res": RES}, "preprocess": {"workers": 1}})
    preprocess(raw, out, params, dataset="synthetic", progress=False)
    return raw, out


def original_image(raw: Path, name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(raw / "images" / name)), cv2.COLOR_BGR2RGB)


def test_augmentation_draws_follow_the_original_distribution():
    config = paper("augment")
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(config, rng) for _ in range(4000)]
    scales = np.array([d.scale for d in draws])
    rotations = np.array([d.rotation for d in draws])
    colours = np.array([d.colour for d in draws])
    assert scales.min() >= 2 ** -0.5 - 1e-12 and scales.max() <= 2 ** 0.5 + 1e-12
    assert np.std(np.log2(scales)) == pytest.approx(0.25, rel=0.1)
    assert np.abs(rotations).max() <= 60.0
    assert np.mean(rotations != 0) == pytest.approx(0.4, abs=0.04)
    assert np.mean([d.flip for d in draws]) == pytest.approx(0.5, abs=0.04)
    assert colours.min() >= 0.6 and colours.max() <= 1.4 and colours.std(axis=0).min() > 0.2
    off = sample_augmentation(paper("augment", enabled=False), rng)
    assert off == AugmentParams()


def test_augment_config_rejects_bad_ranges():
    with pytest.raises(ConfigError, match="colour_low"):
        parse_params(preset_raw({"augment": {"colour_low": 1.5, "colour_high": 1.0}}))
    with pytest.raises(ConfigError, match="rotation_prob"):
        parse_params(preset_raw({"augment": {"rotation_prob": 1.5}}))


@pytest.mark.parametrize("draw", [AugmentParams(1.3, 25.0, False, (1.0, 1.0, 1.0)),
                                  AugmentParams(0.75, -50.0, True, (0.7, 1.0, 1.3))])
def test_targets_peak_at_the_augmented_joints_and_pixels_agree(processed, draw: AugmentParams):
    """Joints and image of a sample rendered from the stored crop equal an independent crop of the ORIGINAL image
    with the same scale, rotation and flip (geometry.crop_image + transform_points + flip)."""
    raw, out = processed
    ds = PoseDataset(out, "train", input_res=RES, augment=paper("augment"))
    for index in range(len(ds)):
        image, target, mask = ds.render(index, ds.read_crop(index), draw)
        center, scale = ds.center[index], ds.scale[index] * draw.scale
        expected = transform_points(ds.joints[index], center, scale, RES, draw.rotation)
        annotated = ds.annotated[index]
        reference = crop_image(original_image(raw, read_names(out)[ds.rows[index]]), center, scale, RES,
                               draw.rotation)
        if draw.flip:
            expected[:, 0] = RES - 1 - expected[:, 0]
            expected, annotated = expected[list(np.argsort(MPII.flip))], annotated[list(np.argsort(MPII.flip))]
            reference = flip_image(reference)
        np.testing.assert_array_equal(mask, annotated)
        heat = (expected + 0.5) * OUT / RES - 0.5
        peaks = np.floor(heat + 0.5)
        inside = annotated & (peaks >= 0).all(1) & (peaks < OUT).all(1)
        assert inside.sum() >= 8
        flat = target.reshape(len(target), -1).argmax(1)
        found = np.stack([flat % OUT, flat // OUT], 1)
        np.testing.assert_array_equal(found[inside], peaks[inside])
        assert np.allclose(target[inside].max(axis=(1, 2)), 1.0)
        assert (target[~annotated] == 0).all()
        # Pixels: the stored crop loses only resampling detail, never position or colour.
        expected_image = np.clip(reference.astype(np.float32) / 255 * np.float32(draw.colour), 0, 1)
        assert image.shape == (3, RES, RES) and image.dtype == np.float32
        diff = np.abs(image.transpose(1, 2, 0) - expected_image)
        assert diff.mean() < 0.03, (index, diff.mean())


def read_names(out: Path) -> list[str]:
    from hourglass.data.table import read_table

    return read_table(out / "annotations.parquet").column("imgname").to_pylist()


def test_flip_swaps_left_and_right(processed):
    _, out = processed
    ds = PoseDataset(out, "train", input_res=RES, augment=paper("augment"))
    plain = AugmentParams()
    mirrored = AugmentParams(flip=True)
    image, target, _ = ds.render(0, ds.read_crop(0), plain)
    image_f, target_f, _ = ds.render(0, ds.read_crop(0), mirrored)
    np.testing.assert_allclose(image_f, image[:, :, ::-1], atol=1e-6)
    for right, left in ((0, 5), (10, 15), (12, 13)):
        assert MPII.names[right].startswith("r_") and MPII.names[left].startswith("l_")
        np.testing.assert_allclose(target_f[left], target[right][:, ::-1], atol=1e-6)
        np.testing.assert_allclose(target_f[right], target[left][:, ::-1], atol=1e-6)


def test_validation_samples_are_the_plain_crop_and_decode_to_the_original(processed):
    raw, out = processed
    params = recipe("mpii", {"model": {"input_res": RES}})
    ds = create_dataset(out, "train", params, train=False)  # the synthetic set only has a train split
    names = read_names(out)
    for index in range(len(ds)):
        sample = ds[index]
        center, scale = sample["center"].numpy(), sample["scale"]
        reference = crop_image(original_image(raw, names[sample["row"]]), center, scale, RES)
        assert np.abs(sample["image"].numpy().transpose(1, 2, 0) - reference / 255.0).mean() < 0.03
        coords, _ = decode(sample["target"].numpy())
        back = heatmaps_to_image(coords, center, scale, OUT)
        ok = sample["annotated"].numpy() & (np.abs(coords - (OUT - 1) / 2) < OUT / 2 - 1).all(1)
        # Within one heatmap pixel of the truth (target peaks sit on the nearest pixel).
        err = np.abs(back[ok] - sample["joints"].numpy()[ok])
        assert err.max() <= 200 * scale / OUT, err.max()
        truth = read_annotations(raw / "annot" / "train.h5")
        np.testing.assert_array_equal(sample["joints"].numpy(), truth.joints[sample["row"]])


def test_augmentation_larger_than_the_stored_margin_is_refused(processed):
    _, out = processed
    with pytest.raises(ValueError, match="margin"):
        PoseDataset(out, "train", input_res=RES, augment=paper("augment", scale_sigma=0.5))
    with pytest.raises(ValueError, match="split 'valid'"):
        PoseDataset(out, "valid", input_res=RES)


def test_pickles_without_open_files_and_loads_with_spawn_workers(processed):
    _, out = processed
    ds = PoseDataset(out, "train", input_res=RES, augment=paper("augment"))
    ds[0]
    assert ds._files
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._files == {}
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="spawn",
                        worker_init_fn=single_threaded_cv2)
    batches = list(loader)
    assert len(batches) == 3
    batch = batches[0]
    assert batch["image"].shape == (4, 3, RES, RES) and batch["image"].dtype == torch.float32
    assert batch["target"].shape == (4, 16, OUT, OUT)
    assert batch["center"].dtype == torch.float64 and batch["joints"].shape == (4, 16, 2)
    assert sorted(torch.cat([b["row"] for b in batches]).tolist()) == list(range(12))
    assert float(batch["image"].max()) <= 1.0 and float(batch["image"].min()) >= 0.0
    ds.close()


def test_augmentation_is_a_function_of_the_torch_seed_and_index(processed):
    """Resumed runs must augment like uninterrupted ones: no process id or call order enters the draw."""
    _, out = processed
    ds = PoseDataset(out, "train", input_res=RES, augment=paper("augment"))
    torch.manual_seed(7)
    first = [ds.draw(i) for i in (0, 1, 2)]
    torch.manual_seed(7)
    again = [ds.draw(i) for i in (2, 1, 0)][::-1]
    assert first == again
    assert len({(d.scale, d.rotation, d.flip) for d in first}) == 3
    torch.manual_seed(8)
    assert [ds.draw(i) for i in (0, 1, 2)] != first
    np.testing.assert_array_equal(ds[1]["image"].numpy(), ds[1]["image"].numpy())


def test_target_sigma_and_radius_come_from_params(processed):
    from hourglass.data.dataset import create_dataset

    _, out = processed
    params = recipe("mpii", {"model": {"input_res": RES}, "targets": {"sigma": 3.0, "radius": 9}})
    ds = create_dataset(out, "train", params, train=False)
    assert (ds.sigma, ds.radius) == (3.0, 9)
    target = ds[0]["target"].numpy()
    wide = (target > 0).sum(axis=(1, 2))
    assert wide.max() > (2 * 3 + 1) ** 2  # wider than the default 7x7 patch


def test_sampled_augmentation_does_not_depend_on_loader_workers_and_repeats_differ(processed):
    """A sampler's Draw carries its stream (seed, epoch, position): the batches are the same with 0, 1 or 2 spawned
    workers, and a person met twice in one epoch of several passes is augmented twice, differently."""
    from torch.utils.data import DataLoader

    from hourglass.data.sampler import EpochSampler
    from hourglass.data.workers import worker_context

    _, out = processed
    ds = PoseDataset(out, "train", input_res=RES, augment=paper("augment"))
    sampler = EpochSampler(len(ds), 4, steps=2 * len(ds) // 4 + 1, seed=5)  # more than two passes
    sampler.set_epoch(3)
    images = {}
    for workers in (0, 1, 2):
        torch.manual_seed(workers)  # torch's seed (and so each worker's) must play no part
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers,
                            multiprocessing_context=worker_context(workers))
        images[workers] = torch.cat([batch["image"] for batch in loader])
    torch.testing.assert_close(images[1], images[0], rtol=0, atol=0)
    torch.testing.assert_close(images[2], images[0], rtol=0, atol=0)
    order = [int(i) for i in sampler]
    first, second = order.index(order[0]), order.index(order[0], len(ds))
    assert not torch.equal(images[0][first], images[0][second])
    draws = list(sampler)
    assert draws[0].stream == (5, 3, 0) and draws[5].stream == (5, 3, 5)
    assert ds.draw(draws[first]) != ds.draw(draws[second])
