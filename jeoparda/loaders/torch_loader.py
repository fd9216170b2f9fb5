"""The ``torch`` backend: shard reads in persistent background processes (torch DataLoader).

Each item of the DataLoader is a whole batch (no per-sample Python work). Reader processes write
the batch's uint16 images into a ring of shared-memory slots allocated once and send back only
the slot number, labels and mask; sending a fresh 22 MB float32 tensor per batch through shared
memory costs more than reading it (measured: docs/benchmarks.md). The consumer normalises to
float32 on its side: in the main process on CPU; on a GPU, the ring is page-locked in place
(host-registered), so uint16 crosses PCIe straight from the slot the reader wrote, on a side stream
that overlaps the model's kernels, and is normalised there. A slot is handed to a reader again only
after its upload has run (an event on the side stream) and the consumer has taken it: the ring has
more slots than batches the DataLoader can have in flight.
"""
from __future__ import annotations

import atexit
import os
import re
import weakref
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from jeoparda.accelerator import Accelerator
from jeoparda.config import AugmentConfig
from jeoparda.errors import JeopardaError
from jeoparda.loaders.augment import apply_geometry, geometry_codes, normalise, turn_on_device
from jeoparda.loaders.base import Batch, Loader, Planner, SplitSource
from jeoparda.loaders.readers import ReaderWatch, reader_context, start_reader
from jeoparda.loaders.split_reader import SplitReader

_TORCH_DEAD = re.compile(r"\(pids?(?:\(s\))? ([^)]*)\)(.*)")


def torch_dead_readers(message: str) -> str:
    """The reader PIDs and what torch says of them, from its "DataLoader worker (pid(s) 12, 13)
    exited unexpectedly" or "DataLoader worker (pid 12) is killed by signal: Killed." (its own
    check, when the pidfd watch could not tell first)."""
    found = _TORCH_DEAD.search(message)
    if found is None:
        return "(unknown)"
    pids, rest = found.group(1).strip(), found.group(2).split(". ")[0].strip().rstrip(".")
    return f"{pids} ({rest})" if rest else pids


class EpochBatches(Dataset):
    """Item ``(epoch, step, slot)``: read that step's batch into ring slot ``slot`` (uint16 images,
    and float32 Sentinel-1 into the S1 ring when the loader delivers it)."""

    def __init__(self, reader: SplitReader, planner: Planner, augment: AugmentConfig | None,
                 seed: int, rank: int, ring: torch.Tensor | None = None, closing: torch.Tensor | None = None,
                 s1_ring: torch.Tensor | None = None) -> None:
        self.reader, self.planner, self.augment = reader, planner, augment
        self.seed, self.rank, self.ring, self.s1_ring = seed, rank, ring, s1_ring
        self.closing = closing  # shared flag: the loader is shutting its readers down

    def load(self, epoch: int, step: int, out: np.ndarray | None = None, s1_out: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """uint16 images (augmented if configured), float32 labels, mask and S1 of one step."""
        indices, mask = self.planner.plan(epoch).step_batch(step)
        images, labels, s1 = self.reader.read(indices, out, s1_out)
        if self.augment is not None:
            codes = geometry_codes(self.augment, len(images), self.seed, epoch, self.rank, step)
            apply_geometry(images, codes)
            if s1 is not None:
                apply_geometry(s1, codes)
            if labels.ndim == 3:  # reference maps turn with their images
                apply_geometry(labels[:, None], codes)
        return images, labels.astype(np.float32) if labels.ndim == 2 else labels, mask, s1

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, np.ndarray | int]:
        epoch, step, slot = key
        assert self.ring is not None
        s1_out = self.s1_ring[slot].numpy() if self.s1_ring is not None else None
        images, labels, mask, _ = self.load(epoch, step, self.ring[slot].numpy(), s1_out)
        # numpy, not tensors: tensors would travel by file descriptor, numpy by value (small)
        return {"slot": slot, "n": len(images), "label": labels, "mask": mask}


class EpochSampler(Sampler):
    """(epoch, step, slot) for the steps the loader asks for; slots go round.

    It holds its own cursor, not the loader: a loader -> DataLoader -> sampler -> loader cycle
    would leave the reader processes to the cyclic garbage collector, whose finaliser waits
    10 s per process for a shutdown message that never arrives (measured).
    """

    def __init__(self, slots: int) -> None:
        self.slots, self.issued = slots, 0
        self.epoch, self.first, self.steps = 0, 0, 0
        self.copied: dict[int, Any] = {}  # slot -> event: its last upload to the device is done

    def __len__(self) -> int:
        return self.steps - self.first

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        for step in range(self.first, self.steps):
            self.issued += 1
            slot = (self.issued - 1) % self.slots
            done = self.copied.pop(slot, None)
            if done is not None:  # a reader may refill the slot once the device has read it
                done.synchronize()
            yield self.epoch, step, slot


class TorchLoader(Loader):
    _stream: DataLoader | None = None
    _ring: torch.Tensor | None = None
    _s1_ring: torch.Tensor | None = None
    _closing: torch.Tensor | None = None
    _sampler: EpochSampler

    _registered: tuple[torch.Tensor, ...] = ()
    _finish: _HostFinisher | _DeviceFinisher | None = None

    def close(self) -> None:
        """Stop the reader processes now (they also stop when the loader is dropped or at exit)."""
        if self._closing is not None:
            self._closing[0] = True
        self._stream = None
        if self._registered:
            self.accel.synchronize()  # no upload out of the ring may still be queued
        for ring in self._registered:
            self.accel.unregister_host(ring)
        self._registered = ()
        self._finish = None
        self._ring = self._s1_ring = None

    def __del__(self) -> None:
        self.close()

    @property
    def _turns_on_device(self) -> bool:
        """Flips and quarter turns on the GPU (readers only read), where there is one."""
        return self.augment and self.accel.gpu

    def _dataset(self, ring: torch.Tensor | None = None, s1_ring: torch.Tensor | None = None) -> EpochBatches:
        assert self.planner is not None
        readers_turn = self.augment and not self._turns_on_device
        return EpochBatches(self.src.reader(), self.planner, self.cfg.data.augment if readers_turn else None,
                            self.cfg.train.seed, self.env.rank, ring, self._closing, s1_ring)

    def _open_stream(self) -> DataLoader:
        data = self.cfg.data
        slots = data.workers * data.prefetch + 2
        reader = self.src.reader()
        self._ring = torch.empty((slots, self.batch_size, *reader.image_shape), dtype=torch.uint16).share_memory_()
        if self.src.bands.s1:
            self._s1_ring = torch.empty((slots, self.batch_size, *reader.s1_shape)).share_memory_()
        self._closing = torch.zeros(1, dtype=torch.bool).share_memory_()
        # Page-locked in place: the device reads batches straight from the ring (no copy on the host)
        rings = (r for r in (self._ring, self._s1_ring) if r is not None)
        self._registered = tuple(r for r in rings if self.accel.register_host(r))
        # Before multiprocessing's own exit handler (atexit runs last-registered first), which
        # would terminate the readers and wait for them: stop them the orderly way.
        atexit.register(_close_if_alive, weakref.ref(self))
        self._sampler = EpochSampler(slots)
        return DataLoader(self._dataset(self._ring, self._s1_ring), batch_size=None, sampler=self._sampler,
                          num_workers=data.workers, prefetch_factor=data.prefetch,
                          persistent_workers=True, multiprocessing_context=reader_context(),
                          collate_fn=_as_is, worker_init_fn=partial(start_reader, os.getpid()))

    def host_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]:
        """uint16 images, float32 labels, mask and S1 (or None) of steps ``start_step`` .. of the
        current epoch, on the host. With reader processes the arrays are views into the shared
        ring: valid until the next batch is taken (the DALI backend copies them when fed)."""
        for _, *arrays in self._host_items():
            yield tuple(arrays)  # type: ignore[misc]

    def _host_items(self) -> Iterator[tuple[int | None, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]:
        """:meth:`host_batches` with the ring slot each batch lies in (None without readers), in step order."""
        if self.cfg.data.workers == 0:
            dataset = self._dataset()
            for step in range(self.start_step, self.steps_per_epoch):
                yield (None, *dataset.load(self.epoch, step))
            return
        if self._stream is None:
            self._stream = self._open_stream()
        self._sampler.epoch, self._sampler.first = self.epoch, self.start_step
        self._sampler.steps = self.steps_per_epoch
        assert self._ring is not None
        stream = iter(self._stream)
        readers = ReaderWatch(getattr(stream, "_workers", []))  # torch's list; without it torch looks every 5 s
        try:
            for item in stream:
                dead = readers.dead() if readers.ended() else ""
                if dead:
                    raise self._reader_died(dead)
                slot, n = item["slot"], item["n"]
                s1 = self._s1_ring[slot, :n].numpy() if self._s1_ring is not None else None
                yield slot, self._ring[slot, :n].numpy(), item["label"], item["mask"], s1
        except RuntimeError as exc:  # torch's own check, after 5 s without a batch
            if "DataLoader worker" not in str(exc):
                raise
            raise self._reader_died(readers.dead() or torch_dead_readers(str(exc))) from None

    def _reader_died(self, which: str) -> JeopardaError:
        """One line for a reader process that died while the loader ran; its siblings are stopped."""
        self.close()
        where = f"rank {self.env.rank}: " if self.env.world_size > 1 else ""
        return JeopardaError(f"{where}{self.cfg.data.path}: reader process {which} of the torch data loader "
                             "died (out of memory?); the run stops")

    def _batches(self) -> Iterator[Batch]:
        if self.cfg.data.workers and self._stream is None:
            self._stream = self._open_stream()  # the ring exists (and is registered) before the finisher
        if self._finish is None:  # made anew after close(), with the new ring
            self._finish = (_DeviceFinisher(self.src, self.accel, self._registered) if self.accel.gpu
                            else _HostFinisher(self.src))
        finish = self._finish
        aug, seed, rank = self.cfg.data.augment, self.cfg.train.seed, self.env.rank
        for step, (slot, images, labels, mask, s1) in enumerate(self._host_items(), start=self.start_step):
            codes = geometry_codes(aug, len(images), seed, self.epoch, rank, step) if self._turns_on_device else None
            batch, copied = finish(images, labels, mask, s1, codes)
            if slot is not None and copied is not None:
                self._sampler.copied[slot] = copied
            yield batch


def _as_is(item: Any) -> Any:
    """The DataLoader's collate step: keep the reader's dict as it is (no tensor conversion)."""
    return item


def _close_if_alive(ref: weakref.ReferenceType) -> None:
    loader = ref()
    if loader is not None:
        loader.close()


class _HostFinisher:
    """uint16 batch on the host -> normalised float32 batch on the host (no accelerator); Sentinel-1
    channels, where delivered, are normalised with their own statistics and follow the optical ones."""

    def __init__(self, src: SplitSource) -> None:
        self.mean, self.inv_std = src.mean, src.inv_std
        self.s1_mean, self.s1_inv = torch.from_numpy(src.s1_mean), torch.from_numpy(src.s1_inv_std)

    def __call__(self, images: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                 s1: np.ndarray | None = None, codes: np.ndarray | None = None) -> tuple[Batch, Any]:
        batch = {"image": normalise(images, self.mean, self.inv_std), "label": torch.from_numpy(labels),
                 "mask": torch.from_numpy(mask)}
        if s1 is not None:
            # not in place: s1 may be the shared ring itself
            radar = (torch.from_numpy(s1) - self.s1_mean) * self.s1_inv
            batch["image"] = torch.cat([batch["image"], radar], dim=1)
        return batch, None


class _DeviceFinisher:
    """uint16 batch on the host -> normalised float32 batch on the accelerator.

    Arrays in host-registered memory (the reader ring) are uploaded from where they lie; any other
    array (labels and masks sent by the readers, whole batches without reader processes) is first
    copied into one of two alternating sets of pinned buffers. Uploads and normalisation run on
    the copier's side stream; the compute stream waits for them on the device. The event returned
    with each batch says when its host memory may be written again: it is recorded on the side
    stream right after the uploads, so waiting for it waits neither for the model's kernels nor for
    the normalisation queued after the copies (that would not be data wait)."""

    def __init__(self, src: SplitSource, accel: Accelerator, registered: tuple[torch.Tensor, ...]) -> None:
        copier = accel.copier()
        assert copier is not None
        self.accel, self.copier, self.registered = accel, copier, registered
        with copier.copying([]):  # made on the side stream, where they are used: no race with their copies
            self.mean, self.inv, self.s1_mean, self.s1_inv = (
                accel.to_device(torch.from_numpy(a)) for a in (src.mean, src.inv_std, src.s1_mean, src.s1_inv_std))
        self.sets: list[tuple[dict[str, torch.Tensor], Any]] = [({}, None), ({}, None)]
        self.turn = 0

    def __call__(self, images: np.ndarray, labels: np.ndarray, mask: np.ndarray,
                 s1: np.ndarray | None = None, codes: np.ndarray | None = None) -> tuple[Batch, Any]:
        """The batch on the device and the event after which its host memory may be reused;
        ``codes``: flips and quarter turns to apply on the device (images, S1 and maps alike)."""
        arrays = {"image": images, "label": labels, "mask": mask, **({"s1": s1} if s1 is not None else {})}
        host = self._page_locked({k: torch.from_numpy(a) for k, a in arrays.items()})
        outputs: list[torch.Tensor] = []
        with self.copier.copying(outputs):
            dev = {k: self.copier.upload(t) for k, t in host.items()}
            done = self.copier.mark()  # the host memory is free once these uploads ran
            if codes is not None:  # maps (n, H, W) turn with their images
                turn_on_device([dev[k].unsqueeze(1) if dev[k].ndim == 3 else dev[k]
                                for k in ("image", "s1", "label") if k in dev and dev[k].ndim >= 3],
                               codes, self.accel.to_device)
            image = dev["image"].float().sub_(self.mean).mul_(self.inv)
            if "s1" in dev:
                image = torch.cat([image, dev["s1"].sub_(self.s1_mean).mul_(self.s1_inv)], dim=1)
            batch = {"image": image, "label": dev["label"], "mask": dev["mask"]}
            outputs.extend(batch.values())
        self.sets[self.turn] = (self.sets[self.turn][0], done)  # that set is free again once done has passed
        return batch, done

    def _inside_registered(self, tensor: torch.Tensor) -> bool:
        ptr = tensor.data_ptr()
        return any(r.data_ptr() <= ptr < r.data_ptr() + r.nbytes for r in self.registered)

    def _page_locked(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every tensor in page-locked memory: registered ones as they are, the others (labels and
        masks at least) copied into the next pinned set once the uploads out of its last use ran."""
        loose = [k for k, t in tensors.items() if not self._inside_registered(t)]
        self.turn = 1 - self.turn
        bufs, done = self.sets[self.turn]
        if done is not None:
            done.synchronize()
        out = dict(tensors)
        for key in loose:
            t = tensors[key]
            buf = bufs.get(key)
            if buf is None or buf.shape[0] < len(t) or buf.shape[1:] != t.shape[1:] or buf.dtype != t.dtype:
                buf = bufs[key] = self.copier.pinned(t)
            out[key] = buf[:len(t)]
            out[key].copy_(t)
        return out
