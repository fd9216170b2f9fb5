"""Normalisation and augmentation shared by every loader backend.

Random draws are a pure function of (seed, epoch, rank, step), so the torch and DALI backends
make the same choices and a run is reproducible whatever the number of reader processes.
Rotations and flips never change labels; mixup mixes labels with the same weight as images.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from jeoparda.config import AugmentConfig

ToDevice = Callable[[torch.Tensor], torch.Tensor]


def normaliser(mean: list[float], std: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 (12, 1, 1) mean and 1/std for :func:`normalise`."""
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    inv = (1.0 / np.asarray(std, np.float64)).astype(np.float32).reshape(-1, 1, 1)
    return m, inv


def normalise(images: np.ndarray, mean: np.ndarray, inv_std: np.ndarray) -> torch.Tensor:
    """(x - mean) * (1 / std) in float32, per band, from uint16 images (numpy) to a new tensor.

    torch's vectorised conversion and in-place arithmetic are about 1.5x faster than numpy here;
    the float32 operations (subtract, then multiply) are those DALI performs.
    """
    return torch.from_numpy(images).float().sub_(torch.from_numpy(mean)).mul_(torch.from_numpy(inv_std))


def geometry_codes(cfg: AugmentConfig, n: int, seed: int, epoch: int, rank: int, step: int) -> np.ndarray:
    """Per sample (n, 3) int: quarter turns k in 0..3, horizontal flip, vertical flip."""
    rng = np.random.default_rng([seed, epoch, rank, step, 1])
    codes = rng.integers(0, [4, 2, 2], size=(n, 3))
    codes[:, 0] *= cfg.rot90
    codes[:, 1:] *= cfg.flip
    return codes


def apply_geometry(images: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Rotate by k quarter turns (as ``np.rot90`` over H, W), then flip W, then flip H; in place.

    Samples with the same code are transformed together (at most 16 groups), not one by one.
    The loaders apply it to the uint16 images before normalising (half the bytes to move; a
    permutation of pixels commutes with per-band normalisation).
    """
    keys = codes[:, 0] * 4 + codes[:, 1] * 2 + codes[:, 2]
    for key in np.unique(keys):
        if key == 0:
            continue
        sel = np.flatnonzero(keys == key)
        k, h, v = codes[sel[0]]
        x = np.rot90(images[sel], int(k), axes=(-2, -1))
        if h:
            x = x[..., ::-1]
        if v:
            x = x[..., ::-1, :]
        images[sel] = x
    return images


def turn_on_device(tensors: list[torch.Tensor], codes: np.ndarray, to_device: ToDevice) -> None:
    """:func:`apply_geometry` on tensors (n, C, H, W) on their device, in place, all with the same
    codes (images, Sentinel-1, maps): per group of samples with one code, its index list crosses
    once, then one gather, rotation, flips and one scatter per tensor. uint16 moves as int16 (the
    same bits: only pixels change places). ``to_device`` moves the index lists."""
    keys = codes[:, 0] * 4 + codes[:, 1] * 2 + codes[:, 2]
    for key in np.unique(keys):
        if key == 0:
            continue
        sel = np.flatnonzero(keys == key)
        k, h, v = (int(c) for c in codes[sel[0]])
        index = to_device(torch.from_numpy(sel))
        for tensor in tensors:
            bits = tensor.view(torch.int16) if tensor.dtype == torch.uint16 else tensor
            x = torch.rot90(bits.index_select(0, index), k, dims=(-2, -1))
            x = x.flip(-1) if h else x
            bits.index_copy_(0, index, x.flip(-2) if v else x)


def _stays(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def mixup(batch: dict[str, torch.Tensor], alpha: float, seed: int, epoch: int, rank: int,
          step: int, to_device: ToDevice = _stays) -> dict[str, torch.Tensor]:
    """Mix each sample with another of the batch: weight lam ~ Beta(alpha, alpha), same lam for
    images and labels. Returns the batch with ``mix_weight`` (the lam used). ``to_device`` moves
    the permutation to the batch's device (the accelerator's: pinned, non-blocking, no host wait)."""
    rng = np.random.default_rng([seed, epoch, rank, step, 2])
    lam = float(rng.beta(alpha, alpha))
    perm = to_device(torch.from_numpy(rng.permutation(len(batch["image"]))))
    mixed = dict(batch)
    mixed["image"] = lam * batch["image"] + (1 - lam) * batch["image"][perm]
    mixed["label"] = lam * batch["label"] + (1 - lam) * batch["label"][perm]
    mixed["mix_weight"] = torch.tensor(lam)
    return mixed


def photometric_params(cfg: AugmentConfig, n: int, bands: int, seed: int, epoch: int, rank: int,
                       step: int) -> dict[str, np.ndarray]:
    """Per sample: crop box (area fraction, aspect, centre) and per-band contrast and brightness,
    drawn from the shared stream (a function of seed, epoch, rank, step) so every backend draws
    the same."""
    rng = np.random.default_rng([seed, epoch, rank, step, 3])
    area = rng.uniform(cfg.crop, 1.0, n)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3), n))
    w = np.minimum(np.sqrt(area * aspect), 1.0)
    h = np.minimum(np.sqrt(area / aspect), 1.0)
    cx, cy = rng.uniform(-1 + w, 1 - w + 1e-12), rng.uniform(-1 + h, 1 - h + 1e-12)
    s = cfg.strength
    return {"w": w, "h": h, "cx": cx, "cy": cy, "contrast": rng.uniform(1 - s, 1 + s, (n, bands)),
            "brightness": rng.uniform(-s, s, (n, bands))}


def device_augment(image: torch.Tensor, cfg: AugmentConfig, seed: int, epoch: int, rank: int,
                   step: int, to_device: ToDevice = _stays) -> torch.Tensor:
    """Random resized crops back to the input size (bilinear, one batched grid_sample) and
    per-band contrast/brightness jitter around each image's band mean, on normalised images on
    their device. Runs after the backend, so torch and DALI batches get the same draws. The
    random parameters reach the device through ``to_device`` (pinned, non-blocking)."""
    n, c = image.shape[:2]
    p = photometric_params(cfg, n, c, seed, epoch, rank, step)
    if cfg.crop < 1:
        theta = np.zeros((n, 2, 3), np.float32)
        theta[:, 0, 0], theta[:, 0, 2] = p["w"], p["cx"]
        theta[:, 1, 1], theta[:, 1, 2] = p["h"], p["cy"]
        grid = torch.nn.functional.affine_grid(to_device(torch.from_numpy(theta)), list(image.shape),
                                               align_corners=False)
        image = torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                                align_corners=False)
    if cfg.strength > 0:
        contrast = to_device(torch.from_numpy(p["contrast"].astype(np.float32)))[:, :, None, None]
        brightness = to_device(torch.from_numpy(p["brightness"].astype(np.float32)))[:, :, None, None]
        mean = image.mean(dim=(2, 3), keepdim=True)
        image = (image - mean) * contrast + mean + brightness
    return image
