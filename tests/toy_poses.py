"""``ToyPoses``, an in-memory dataset with the training sample layout of hourglass.data (a coloured blob at each
joint on a dark noisy image), and ``tiny_params``, the small deterministic config the training tests run it with:
mechanics need no preprocessed data and take seconds."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from shipped import recipe_raw
from torch.utils.data import Dataset

from hourglass.config.params_file import parse_params
from hourglass.heatmaps import gaussian_heatmaps, heatmaps_to_image

RES = 64  # input pixels; heatmaps are RES / 4


# One colour per joint, so that which blob is which joint can be learnt (identical blobs could not be told apart).
PALETTE = np.array(list(itertools.product((0.3, 0.65, 1.0), repeat=3))[-16:], dtype=np.float32)


class ToyPoses(Dataset):
    """``count`` people with 16 joints, each a blob of its own colour on dark noise; the original image is the
    crop itself (centre RES/2, scale RES/200)."""

    def __init__(self, count: int, seed: int = 0, res: int = RES, joints: int = 16) -> None:
        rng = np.random.default_rng(seed)
        self.res, hm = res, res // 4
        self.hm_points = rng.integers(2, hm - 2, size=(count, joints, 2)).astype(np.float32)
        self.annotated = rng.random((count, joints)) > 0.1
        self.center = np.full((count, 2), res / 2, dtype=np.float32)
        self.scale = np.full(count, res / 200, dtype=np.float32)
        self.joints = heatmaps_to_image(self.hm_points, self.center, self.scale, hm).astype(np.float32)
        self.joints[~self.annotated] = np.nan
        self.noise = rng.random((count, 3, res, res), dtype=np.float32) * 0.2

    def __len__(self) -> int:
        return len(self.hm_points)

    def __getitem__(self, i: int) -> dict:
        target = gaussian_heatmaps(self.hm_points[i], self.annotated[i], self.res // 4)
        blobs = torch.nn.functional.interpolate(torch.from_numpy(target)[None], scale_factor=4)[0].numpy()
        image = np.clip(self.noise[i] + np.einsum("jc,jhw->chw", PALETTE[:len(blobs)], blobs), 0, 1).astype(np.float32)
        return {"image": image, "target": target, "row": i, "center": self.center[i], "scale": self.scale[i],
                "joints": self.joints[i], "annotated": self.annotated[i], "normalize": np.float32(self.res / 4)}


def tiny_params(**train_overrides):
    """A 1-stack, 16-feature network on 64 px inputs, fp32, deterministic, MLflow off."""
    train = {"batch_size": 4, "epochs": 3, "steps_per_epoch": None, "val_batch_size": 8, "workers": 0,
             "precision": "fp32", "deterministic": True, "log_every": 1, **train_overrides}
    return parse_params(recipe_raw("mpii", {"dataset": "synthetic", "seeds": [3],
                         "model": {"stacks": 1, "features": 16, "input_res": RES},
                         "train": train, "mlflow": {"enabled": False}}))
