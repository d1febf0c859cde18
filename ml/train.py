"""Train a detector: `python -m ml.train DATA_DIR --output DIR [options]`, or with `torchrun` for several processes.

DATA_DIR holds real/ and fake/ (see ml.data). The defaults are the seed design's: AdamW with weight decay, learning
rate 1e-4 lowered by ReduceLROnPlateau when the validation ROC-AUC stalls, batch size 16, up to 30 epochs with early
stopping, augmentation as in Wang et al. 2020 (ml.augment), an ImageNet-pretrained backbone when torchvision's
weights can be had. Run `python -m ml.train --help` for every option.

The output folder receives:
    package/model.safetensors, package/model_card.json   the model package (see ml.package for the card's keys)
    checkpoints/last.pth    written after every epoch: everything --resume needs to continue the run
    checkpoints/best.pth    the weights of the epoch with the best validation ROC-AUC so far

The package holds the best epoch's weights; its threshold follows ml.evaluate.THRESHOLD_RULE on the validation set.

Several processes: `torchrun --nproc_per_node N -m ml.train ...` trains with DistributedDataParallel (gloo on CPU,
nccl on CUDA); each process trains on its share of every epoch, validation is shared out and gathered, and only
rank 0 writes checkpoints and the package. --batch-size is per process.
"""

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from ml.architectures import ARCHITECTURES, get_architecture
from ml.augment import Augment, AugmentConfig
from ml.blend import BlendConfig
from ml.calibration import CalibrationError
from ml.calibration import apply as apply_calibration
from ml.data import (
    REAL,
    ImageDataset,
    PairedBatchSampler,
    TrainingData,
    count_classes,
    load_training_data,
    self_blended,
)
from ml.detector import cpu_has_native_bf16
from ml.errors import MLError, TrainingDataError
from ml.evaluate import THRESHOLD_RULE, autocast, calibrate, choose_threshold, compute_metrics, predict_scores
from ml.faces import face_card
from ml.package import write_package

CHECKPOINT_FORMAT = "deepfake-detector-checkpoint/1"
TRAINING_PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULES = ("plateau", "cosine")
MIN_INPUT_SIZE = 32
# channels-last runs the convolutions through oneDNN's faster kernels on x86 CPUs (measured: docs/model-results.md).
MEMORY_FORMAT = torch.channels_last


class ResumeError(MLError):
    """The checkpoint given to --resume is missing, unreadable, or belongs to another architecture or input size."""


@dataclass
class TrainConfig:
    data_dir: Path
    output_dir: Path
    architecture: str = "resnet50"
    input_size: int | None = None  # None: the architecture's default (224)
    epochs: int = 30
    batch_size: int = 16  # per process
    lr: float = 1e-4
    weight_decay: float = 1e-2
    lr_factor: float = 0.5  # ReduceLROnPlateau: multiply the learning rate by this…
    lr_patience: int = 2  # …after this many epochs without a better validation ROC-AUC
    schedule: str = "plateau"  # or "cosine": from lr down to 0 over the run (over --max-minutes when given)
    patience: int = 5  # early stopping: stop after this many epochs without a better validation ROC-AUC
    val_dir: Path | None = None
    val_fraction: float = 0.2
    seed: int = 0
    paired: bool = False  # real/NAME and fake/NAME are one picture before and after manipulation: batch them together
    faces: bool = False  # train on each picture's largest face, framed as inference's face path frames faces
    self_blended: float = 0.0  # self-blended pseudo-fakes per real training picture (ml.blend); 0: none
    ignore_fakes: bool = False  # leave fake/ out entirely: train (and validate) on real pictures and pseudo-fakes
    workers: int = 1
    cache_images: bool = False  # keep decoded pictures in memory after the first epoch: for small, small-image sets
    threads: int | None = None  # PyTorch threads for this process; None: PyTorch's default (one per core)
    max_minutes: float | None = None  # wall-time budget for the whole run, validation and packaging included
    resume: Path | None = None
    pretrained: bool = True
    precision: str = "auto"
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    name: str | None = None
    card_extra: dict = field(default_factory=dict)  # merged into the model card (e.g. detects, limitations)
    progress: bool = True

    def check(self) -> None:
        """Raise MLError naming the first option whose value cannot work."""
        a = self.augment
        problems = [
            (self.epochs < 1, f"--epochs must be at least 1, not {self.epochs}"),
            # Batch normalisation cannot train on a batch of one image.
            (self.batch_size < 2, f"--batch-size must be at least 2, not {self.batch_size}"),
            (self.lr <= 0, f"--lr must be positive, not {self.lr}"),
            (self.weight_decay < 0, f"--weight-decay cannot be negative ({self.weight_decay})"),
            (not 0 < self.lr_factor < 1, f"--lr-factor must be between 0 and 1, not {self.lr_factor}"),
            (self.lr_patience < 0, f"--lr-patience cannot be negative ({self.lr_patience})"),
            (self.schedule not in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule}"),
            (self.patience < 1, f"--patience must be at least 1, not {self.patience}"),
            (self.workers < 0, f"--workers cannot be negative ({self.workers})"),
            (self.self_blended < 0, f"--self-blended cannot be negative ({self.self_blended})"),
            (
                self.ignore_fakes and not self.self_blended,
                "--ignore-fakes needs --self-blended: without fakes there is nothing to learn",
            ),
            (self.threads is not None and self.threads < 1, f"--threads must be at least 1, not {self.threads}"),
            (self.max_minutes is not None and self.max_minutes <= 0, "--max-minutes must be positive"),
            (not 0 <= a.downscale_prob <= 1, f"--downscale-prob must be between 0 and 1, not {a.downscale_prob}"),
            (a.downscale_min_side < 8, f"--downscale-min-side must be at least 8, not {a.downscale_min_side}"),
            (not 0 <= a.blur_prob <= 1, f"--blur-prob must be between 0 and 1, not {a.blur_prob}"),
            (not 0 <= a.jpeg_prob <= 1, f"--jpeg-prob must be between 0 and 1, not {a.jpeg_prob}"),
            (
                not 1 <= a.jpeg_quality[0] <= a.jpeg_quality[1] <= 100,
                f"--jpeg-quality must be two qualities from 1 to 100, low then high, not {a.jpeg_quality}",
            ),
            (not 0 < a.crop_scale <= 1, f"--crop-scale must be in (0, 1], not {a.crop_scale}"),
        ]
        for failed, message in problems:
            if failed:
                raise MLError(message + ".")

    def as_dict(self) -> dict:
        """JSON-compatible, for the model card and the checkpoint."""
        values = dataclasses.asdict(self)
        return json.loads(json.dumps(values, default=str))


@dataclass
class TrainingResult:
    package_dir: Path | None  # None on every rank but 0 of a distributed run
    card: dict
    metrics: dict  # validation metrics of the best epoch at the chosen threshold
    checkpoint_dir: Path
    history: list[dict]


# ---------------------------------------------------------------------------------------------------------------
# Devices, precision, processes


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start_processes() -> tuple[Processes, bool]:
    """The process group torchrun set up the environment for (gloo on CPU, nccl on CUDA); (Processes, started)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(), False
    started = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        started = True
    processes = Processes(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=dist.get_backend(),
    )
    return processes, started


def training_device(device: str, processes: Processes) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and processes.distributed:
        return torch.device("cuda", processes.local_rank)
    return torch.device(device)


def training_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 autocast on CPUs that compute bf16 natively (AMX, AVX-512 BF16) and on CUDA GPUs that support it,
    fp16 on older GPUs, else fp32. Measured on an AMX CPU (docs/model-results.md): bf16 trains resnet18 3-4× faster
    than fp32 at 128 px, and 1.5× faster at 64 px on idle cores."""
    if precision not in TRAINING_PRECISIONS:
        raise MLError(f"precision must be one of {', '.join(TRAINING_PRECISIONS)}, not {precision!r}.")
    if precision == "fp16" and device.type != "cuda":
        raise MLError("fp16 mixed precision needs a CUDA GPU; use bf16 or fp32 on the CPU.")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def with_self_blended(data: TrainingData, *, per_real: float, ignore_fakes: bool) -> TrainingData:
    """The data with self-blended pseudo-fakes: `per_real` per real training picture, one per real validation
    picture; without the real fakes when ignore_fakes (the model then never sees a real manipulation)."""
    keep = (lambda s: s.label == REAL) if ignore_fakes else (lambda s: True)
    train = [s for s in data.train if keep(s)] + self_blended(data.train, per_real)
    validation = [s for s in data.validation if keep(s)] + self_blended(data.validation, 1.0)
    description = {
        **data.description,
        "counts": {"train": count_classes(train), "validation": count_classes(validation)},
        "self_blended": {
            "per_real_training_picture": per_real,
            "real_fakes": "left out" if ignore_fakes else "kept",
            "method": "Shiohara & Yamasaki, Detecting Deepfakes with Self-Blended Images, CVPR 2022 (ml.blend)",
            "recipe": BlendConfig().as_dict(),
        },
    }
    return TrainingData(train=train, validation=validation, skipped=data.skipped, description=description)


def _share(processes: Processes, produce: Callable[[], object]) -> object:
    """Run `produce` on rank 0 only and hand its result (or its MLError, re-raised) to every rank."""
    if not processes.distributed:
        return produce()
    box = [None, None]
    if processes.is_main:
        try:
            box = [produce(), None]
        except MLError as exc:
            box = [None, (type(exc).__name__, str(exc))]
    dist.broadcast_object_list(box, src=0)
    if box[1] is not None:
        kind, message = box[1]
        raise (TrainingDataError if kind == "TrainingDataError" else MLError)(message)
    return box[0]


def _average_buffers(model: nn.Module, processes: Processes) -> None:
    """Average batch-norm running statistics over the ranks, so every rank ends an epoch with the same model."""
    if not processes.distributed:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(processes.world_size)


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every tensor of the state dict, in key order: equal digests mean equal weights."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_model(arch_name: str, *, pretrained: bool, log: Callable[[str], None]) -> tuple[nn.Module, dict]:
    """A fresh model and a note on its starting weights. torchvision's download chatter and the architecture's
    warning are collected and reported in one plain line."""
    arch = get_architecture(arch_name)
    if not pretrained:
        return arch.build(pretrained=False), {"requested": False, "loaded": False}
    chatter = io.StringIO()
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(chatter),
        contextlib.redirect_stderr(chatter),
    ):
        warnings.simplefilter("always")
        model = arch.build(pretrained=True)
    problems = [str(w.message) for w in caught if "ImageNet weights" in str(w.message)]
    if problems:
        log(f"warning: {problems[0]}")
        return model, {"requested": True, "loaded": False, "why_not": problems[0]}
    return model, {"requested": True, "loaded": True, "weights": str(arch.imagenet_weights)}


# ---------------------------------------------------------------------------------------------------------------
# One epoch, one evaluation


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    *,
    device: torch.device,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    should_stop: Callable[[float], bool] | None = None,
    before_step: Callable[[], None] | None = None,
    bar: tqdm | None = None,
) -> dict:
    """One pass over the loader. should_stop(seconds per image so far) is asked before each batch (time budget);
    returns the mean loss, the number of images seen, the duration, and whether the pass was cut short."""
    model.train()
    started = time.monotonic()
    total_loss, seen, partial = 0.0, 0, False
    for images, labels in loader:
        if should_stop is not None and seen and should_stop((time.monotonic() - started) / seen):
            partial = True
            break
        if before_step is not None:
            before_step()
        images = images.to(device, non_blocking=True).contiguous(memory_format=MEMORY_FORMAT)
        labels = labels.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(images)
        loss = loss_fn(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
    return {
        "loss": total_loss / max(seen, 1),
        "images": seen,
        "seconds": time.monotonic() - started,
        "partial": partial,
    }


def evaluate(
    model: nn.Module,
    dataset: ImageDataset,
    *,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 32,
    workers: int = 0,
    processes: Processes | None = None,
    progress: bool = False,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(metrics at the THRESHOLD_RULE threshold, labels, scores) on the dataset. In a distributed run every rank
    scores every world_size-th image and all ranks get all scores, so they all take the same decisions."""
    processes = processes or Processes()
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    indices = list(range(processes.rank, len(dataset), processes.world_size))
    shard = torch.utils.data.Subset(dataset, indices)
    scores = predict_scores(
        module,
        shard,
        batch_size=batch_size,
        workers=workers,
        device=device,
        precision=precision,
        progress=progress,
        desc="validating",
    )
    if processes.distributed:
        gathered = [None] * processes.world_size
        dist.all_gather_object(gathered, (indices, scores.tolist()))
        ordered = np.zeros(len(dataset), dtype=np.float64)
        for rank_indices, rank_scores in gathered:
            ordered[rank_indices] = rank_scores
        scores = ordered
    labels = np.array([sample.label for sample in dataset.samples])
    return compute_metrics(labels, scores, choose_threshold(labels, scores)), labels, scores


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    """Write atomically: an interrupted save never leaves a half-written checkpoint behind."""
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)


def load_checkpoint(path: Path | str, *, architecture: str, input_size: int) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"There is no checkpoint at {path}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many kinds for a damaged or foreign file
        raise ResumeError(f"{path} is not a readable checkpoint ({exc.__class__.__name__}: {exc}).") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ResumeError(
            f"{path} is not a training checkpoint written by ml.train (use the run's checkpoints/last.pth)."
        )
    if (checkpoint["architecture"], checkpoint["input_size"]) != (architecture, input_size):
        raise ResumeError(
            f"{path} was trained as {checkpoint['architecture']} at {checkpoint['input_size']} px, but this run asks "
            f"for {architecture} at {input_size} px. To continue it, use --architecture {checkpoint['architecture']} "
            f"--input-size {checkpoint['input_size']}; to train {architecture}, start without --resume."
        )
    return checkpoint


# ---------------------------------------------------------------------------------------------------------------
# The run


def _log_to_stderr(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def train(config: TrainConfig, *, log: Callable[[str], None] = _log_to_stderr) -> TrainingResult:
    """Train, validate every epoch, checkpoint, and write the model package of the best epoch (rank 0)."""
    processes, started_here = start_processes()
    previous_threads = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        return _train(config, processes, log if processes.is_main else (lambda message: None))
    finally:
        torch.set_num_threads(previous_threads)
        if started_here:
            dist.destroy_process_group()


@dataclass
class Loaders:
    data: TrainingData
    train_set: ImageDataset
    validation_set: ImageDataset
    loader: torch.utils.data.DataLoader
    sampler: torch.utils.data.Sampler | None
    # Every random draw of an epoch (order, augmentations, dropout) is seeded from (seed, epoch, rank) when the
    # epoch starts (seed_epoch), so a resumed run repeats exactly what the uninterrupted run would have done.
    sampler_generator: torch.Generator
    loader_generator: torch.Generator


def load_data(config: TrainConfig, processes: Processes, input_size: int, *, device: torch.device) -> Loaders:
    """The training and validation data (read and split on rank 0, shared with the others) and the training loader."""
    data = _share(
        processes,
        lambda: load_training_data(
            config.data_dir,
            val_dir=config.val_dir,
            val_fraction=config.val_fraction,
            seed=config.seed,
            paired=config.paired,
            progress=config.progress,
            need_fakes=not config.self_blended,
        ),
    )
    if config.self_blended:
        data = with_self_blended(data, per_real=config.self_blended, ignore_fakes=config.ignore_fakes)
    if len(data.train) // processes.world_size < config.batch_size:
        raise TrainingDataError(
            f"There are {len(data.train)} training images, fewer than one batch of {config.batch_size} per process. "
            "Add images or lower --batch-size."
        )
    framing = {"faces": config.faces, "cache": config.cache_images}
    train_set = ImageDataset(data.train, input_size, augment=Augment(config.augment), **framing)
    # The validation pseudo-fakes are the same blends every epoch, so epochs are compared on the same images.
    validation_set = ImageDataset(data.validation, input_size, blend_seed=config.seed, **framing)
    sampler_generator, loader_generator = torch.Generator(), torch.Generator()
    batching: dict = {"batch_size": config.batch_size, "drop_last": True}  # a batch of one breaks batch norm
    sampler = None
    if config.paired:
        batching = {
            "batch_sampler": PairedBatchSampler(
                data.train,
                config.batch_size,
                generator=sampler_generator,
                rank=processes.rank,
                world_size=processes.world_size,
            )
        }
    elif processes.distributed:
        sampler = torch.utils.data.DistributedSampler(
            train_set, num_replicas=processes.world_size, rank=processes.rank, seed=config.seed, drop_last=True
        )
    else:
        sampler = torch.utils.data.RandomSampler(train_set, generator=sampler_generator)
    loader = torch.utils.data.DataLoader(
        train_set,
        sampler=sampler,
        num_workers=config.workers,
        **batching,
        persistent_workers=False,  # new workers each epoch, seeded from loader_generator
        pin_memory=device.type == "cuda",
        generator=loader_generator,  # seeds the workers' augmentations
    )
    if len(loader) == 0:
        raise TrainingDataError(
            f"The {len(data.train)} training images do not make one full batch of {config.batch_size} per process "
            "(pairs and leftover images are batched apart). Add images or lower --batch-size."
        )
    return Loaders(data, train_set, validation_set, loader, sampler, sampler_generator, loader_generator)


def seed_epoch(loaders: Loaders, config: TrainConfig, epoch: int, processes: Processes) -> None:
    if isinstance(loaders.sampler, torch.utils.data.DistributedSampler):
        loaders.sampler.set_epoch(epoch)
    shared_seed = (config.seed * 100_003 + epoch) * 101  # the same on every rank: one batch order to share
    epoch_seed = shared_seed + processes.rank
    loaders.sampler_generator.manual_seed(shared_seed)
    loaders.loader_generator.manual_seed(epoch_seed + 1)
    torch.manual_seed(epoch_seed + 2)
    random.seed(epoch_seed + 3)  # augmentations drawn in this process (--workers 0)


class TimeBudget:
    """--max-minutes for the whole run, validation and packaging included. Every rank takes the same decision."""

    def __init__(self, started: float, max_minutes: float | None, *, validation_images: int, processes: Processes):
        self.started = started
        self.deadline = started + max_minutes * 60 if max_minutes else None
        self.validation_images = validation_images
        self.processes = processes
        self.validation_seconds: float | None = None  # measured once a validation has run

    def should_stop(self, seconds_per_image: float) -> bool:
        """Stop now to keep time to validate (estimated from the training speed until one validation has run; a
        forward pass costs about a third of a training step), save and package."""
        if self.deadline is None:
            return False
        estimate = (
            self.validation_seconds or self.validation_images / self.processes.world_size * seconds_per_image / 2.5
        )
        flag = torch.tensor(float(time.monotonic() > self.deadline - 1.25 * estimate - 10))
        if self.processes.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def elapsed_share(self) -> float:
        return (time.monotonic() - self.started) / (self.deadline - self.started)


class CosineSchedule:
    """The learning rate from lr down to 0 along half a cosine, stepped before every batch: by time when there is a
    budget (the epochs that fit are not known in advance; not reproducible on --resume), else by steps."""

    def __init__(self, optimizer, *, lr: float, total_steps: int, steps_done: int, budget: TimeBudget):
        self.optimizer, self.lr, self.budget = optimizer, lr, budget
        self.total_steps, self.steps_done = max(1, total_steps), steps_done

    def step(self) -> None:
        progress = (
            self.budget.elapsed_share() if self.budget.deadline is not None else self.steps_done / self.total_steps
        )
        self.steps_done += 1
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class Run:
    """What every step of one training run shares."""

    config: TrainConfig
    processes: Processes
    architecture: str
    input_size: int
    device: torch.device
    precision: str
    started: float
    checkpoint_dir: Path
    package_dir: Path
    pretrained: dict = field(default_factory=dict)  # whether ImageNet weights were asked for and had


@dataclass
class Progress:
    """Where a run stands between epochs: what a checkpoint keeps and --resume restores."""

    start_epoch: int = 1
    best: dict | None = None  # epoch, roc_auc, model state, validation scores and labels of the best epoch so far
    epochs_since_best: int = 0
    history: list[dict] = field(default_factory=list)
    stopped_because: str = ""
    improved: bool = False  # the last epoch was the best so far

    def record(self, epoch: int, module: nn.Module, metrics: dict, labels, scores) -> bool:
        """Note the epoch's validation; True when it is the best so far (its weights are kept)."""
        improved = self.best is None or metrics["roc_auc"] > self.best["roc_auc"] + 1e-6
        if improved:
            self.best = {
                "epoch": epoch,
                "roc_auc": metrics["roc_auc"],
                "model": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
                "scores": torch.from_numpy(scores.astype(np.float32)),
                "labels": torch.from_numpy(labels.astype(np.int64)),
            }
            self.epochs_since_best = 0
        else:
            self.epochs_since_best += 1
        return improved


def _train(config: TrainConfig, processes: Processes, log: Callable[[str], None]) -> TrainingResult:
    config.check()
    run = _run(config, processes)
    _share(processes, lambda: _check_output(config, run.checkpoint_dir))
    resumed = (
        load_checkpoint(config.resume, architecture=run.architecture, input_size=run.input_size)
        if config.resume
        else None
    )
    loaders = load_data(config, processes, run.input_size, device=run.device)
    torch.manual_seed(config.seed)
    module, model, optimizer, plateau = _model_and_optimizer(run, log)
    counts = count_classes(loaders.data.train)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(counts["real"] / counts["fake"], device=run.device))
    progress = Progress(stopped_because=f"reached the last epoch ({config.epochs})")
    if resumed is not None:
        progress = _resume(resumed, module, optimizer, plateau, progress, log, config.resume)
    budget = TimeBudget(
        run.started, config.max_minutes, validation_images=len(loaders.data.validation), processes=processes
    )
    cosine = None
    if config.schedule == "cosine":
        steps = len(loaders.loader)
        cosine = CosineSchedule(
            optimizer, lr=config.lr, total_steps=config.epochs * steps, steps_done=(progress.start_epoch - 1) * steps,
            budget=budget,
        )  # fmt: skip
    if processes.is_main:
        run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(progress.start_epoch, config.epochs + 1):
        if epoch > progress.start_epoch and budget.should_stop(0.0):
            progress.stopped_because = "time budget (--max-minutes)"
            break
        seed_epoch(loaders, config, epoch, processes)
        bar = _bar(run, epoch, len(loaders.loader))
        stats = train_one_epoch(
            model, loaders.loader, optimizer, loss_fn, device=run.device, precision=run.precision,
            scaler=torch.amp.GradScaler(run.device.type) if run.precision == "fp16" else None,
            should_stop=budget.should_stop if budget.deadline else None, before_step=cosine.step if cosine else None,
            bar=bar,
        )  # fmt: skip
        _average_buffers(module, processes)
        metrics = _validate(run, epoch, model, module, loaders, stats, optimizer, budget, progress)
        _show(bar, stats, metrics, progress.best)
        if cosine is None:
            plateau.step(metrics["roc_auc"])
        if processes.is_main:
            _save_checkpoints(run, epoch, module, optimizer, plateau, progress)
        if stats["partial"]:
            progress.stopped_because = "time budget (--max-minutes)"
            break
        if progress.epochs_since_best >= config.patience:
            progress.stopped_because = f"early stopping: no better validation ROC-AUC for {config.patience} epochs"
            break
    if progress.best is None:
        raise MLError("The time budget ran out before one epoch could be trained; give a larger --max-minutes.")
    return _package(run, module, loaders.data, progress)


def _run(config: TrainConfig, processes: Processes) -> Run:
    started = time.monotonic()
    arch = get_architecture(config.architecture)
    input_size = config.input_size or arch.default_input_size
    if input_size < MIN_INPUT_SIZE:
        raise MLError(f"The input size must be at least {MIN_INPUT_SIZE} pixels, not {input_size}.")
    device = training_device(config.device, processes)
    output = Path(config.output_dir)
    return Run(
        config,
        processes,
        arch.name,
        input_size,
        device,
        training_precision(config.precision, device),
        started,
        output / "checkpoints",
        output / "package",
    )


def _model_and_optimizer(run: Run, log: Callable[[str], None]):
    """The model (and its DistributedDataParallel wrapper in a distributed run), AdamW and the plateau scheduler."""
    config, processes = run.config, run.processes
    # Only rank 0 fetches ImageNet weights: DistributedDataParallel copies rank 0's weights to the others.
    module, run.pretrained = build_model(run.architecture, pretrained=config.pretrained and processes.is_main, log=log)
    module = module.to(run.device, memory_format=MEMORY_FORMAT)
    model = module
    if processes.distributed:
        device_ids = [run.device.index] if run.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience
    )
    return module, model, optimizer, plateau


def _bar(run: Run, epoch: int, batches: int) -> tqdm:
    return tqdm(
        total=batches,
        desc=f"epoch {epoch}/{run.config.epochs}",
        unit="batch",
        disable=not (run.config.progress and run.processes.is_main),
        file=sys.stderr,
    )


def _validate(run: Run, epoch: int, model, module, loaders: Loaders, stats: dict, optimizer, budget, progress) -> dict:
    """Validate the epoch's model, note it in the progress (the best so far kept) and the history; its metrics."""
    started = time.monotonic()
    metrics, labels, scores = evaluate(
        model, loaders.validation_set, device=run.device, precision=run.precision,
        batch_size=run.config.batch_size * 2, workers=run.config.workers, processes=run.processes,
    )  # fmt: skip
    budget.validation_seconds = time.monotonic() - started
    progress.improved = progress.record(epoch, module, metrics, labels, scores)
    progress.history.append(
        _epoch_record(epoch, stats, metrics, optimizer, budget.validation_seconds, run.processes.world_size)
    )
    return metrics


def _show(bar: tqdm, stats: dict, metrics: dict, best: dict) -> None:
    bar.set_postfix(
        loss=f"{stats['loss']:.4f}", val_auc=f"{metrics['roc_auc']:.4f}", val_acc=f"{metrics['accuracy']:.4f}",
        best=f"{best['roc_auc']:.4f}@{best['epoch']}",
    )  # fmt: skip
    bar.close()


def _check_output(config: TrainConfig, checkpoint_dir: Path) -> None:
    if config.resume is None and (checkpoint_dir / "last.pth").exists():
        raise MLError(
            f"{config.output_dir} already holds a training run. Choose another --output, or continue that run with "
            f"--resume {checkpoint_dir / 'last.pth'}."
        )


def _resume(resumed: dict, module, optimizer, plateau, progress: Progress, log, path) -> Progress:
    module.load_state_dict(resumed["model"])
    optimizer.load_state_dict(resumed["optimizer"])
    plateau.load_state_dict(resumed["scheduler"])
    log(f"resuming {path} after epoch {resumed['epoch']} (best so far: epoch {resumed['best']['epoch']})")
    return Progress(
        start_epoch=resumed["epoch"] + 1,
        best=resumed["best"],
        epochs_since_best=resumed["epochs_since_best"],
        history=resumed["history"],
        stopped_because=progress.stopped_because,
    )


def _epoch_record(epoch, stats, metrics, optimizer, validation_seconds: float, world_size: int) -> dict:
    return {
        "epoch": epoch,
        "train_loss": round(stats["loss"], 5),
        "train_images": stats["images"] * world_size,
        "partial": stats["partial"],
        "lr": optimizer.param_groups[0]["lr"],
        "seconds": round(stats["seconds"] + validation_seconds, 1),
        "validation": {k: metrics[k] for k in ("roc_auc", "average_precision", "accuracy", "f1")},
    }


def _save_checkpoints(run: Run, epoch: int, module, optimizer, plateau, progress: Progress) -> None:
    """checkpoints/last.pth (everything --resume needs) and, when the epoch is the best so far, best.pth."""
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "architecture": run.architecture,
        "input_size": run.input_size,
        "epoch": epoch,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": plateau.state_dict(),
        "best": progress.best,
        "epochs_since_best": progress.epochs_since_best,
        "history": progress.history,
        "config": run.config.as_dict(),
    }
    save_checkpoint(checkpoint, run.checkpoint_dir / "last.pth")
    if progress.improved:
        save_checkpoint({**checkpoint, "best": None, "model": progress.best["model"]}, run.checkpoint_dir / "best.pth")


def _package(run: Run, module: nn.Module, data: TrainingData, progress: Progress) -> TrainingResult:
    """The best epoch's weights, its threshold and metrics, and the model card, written by rank 0."""
    processes = run.processes
    module.load_state_dict(progress.best["model"])
    digests = [state_digest(module)]
    if processes.distributed:
        digests = [None] * processes.world_size
        dist.all_gather_object(digests, state_digest(module))
    labels, scores = progress.best["labels"].numpy(), progress.best["scores"].numpy().astype(np.float64)
    calibration = _calibration(labels, scores)
    if calibration:  # the detector gives calibrated probabilities: the threshold and metrics are on that scale
        scores = apply_calibration(calibration, scores)
    threshold = choose_threshold(labels, scores)
    metrics = compute_metrics(labels, scores, threshold)
    card = model_card(run, data, progress, threshold=threshold, metrics=metrics, digests=digests)
    if calibration:
        card["calibration"] = calibration
    if processes.is_main:
        card = write_package(module, run.package_dir, card)
    if processes.distributed:
        dist.barrier()  # the package exists before any rank returns
    return TrainingResult(
        package_dir=run.package_dir if processes.is_main else None,
        card=card,
        metrics=metrics,
        checkpoint_dir=run.checkpoint_dir,
        history=progress.history,
    )


def _calibration(labels: np.ndarray, scores: np.ndarray) -> dict | None:
    """The calibration fitted on the best epoch's validation predictions, or None when there are too few
    (ml.calibration.METHOD_RULE)."""
    try:
        return calibrate(labels, scores)
    except CalibrationError:
        return None


def model_card(run: Run, data: TrainingData, progress: Progress, *, threshold: float, metrics: dict, digests) -> dict:
    """The model card of a trained package (ml.package lists its keys)."""
    config = run.config
    return {
        "name": config.name or f"{run.architecture} trained on {Path(config.data_dir).name}",
        "version": time.strftime("%Y.%m.%d-%H%M%S", time.gmtime()),
        "architecture": run.architecture,
        "input_size": run.input_size,
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE,
        "faces": face_card() if config.faces else None,
        "metrics": {"validation": metrics},
        "data": {"description": f"real/ and fake/ images from {config.data_dir}", **data.description},
        "training": {
            "hyperparameters": _hyperparameters(config, run.pretrained),
            "epochs_run": len(progress.history),
            "best_epoch": progress.best["epoch"],
            "stopped_because": progress.stopped_because,
            "history": progress.history,
            "duration_s": round(time.monotonic() - run.started, 1),
            "device": str(run.device),
            "precision": run.precision,
            "threads_per_process": torch.get_num_threads(),
            "distributed": {
                "world_size": run.processes.world_size,
                "backend": run.processes.backend,
                "weights_sha256_per_rank": digests,
            },
            "resumed_from": str(config.resume) if config.resume else None,
        },
        **config.card_extra,
    }


def _hyperparameters(config: TrainConfig, pretrained: dict) -> dict:
    return {
        "optimizer": "AdamW",
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "batch_size": config.batch_size,
        "scheduler": (
            f"ReduceLROnPlateau on validation ROC-AUC (factor {config.lr_factor}, patience {config.lr_patience})"
            if config.schedule == "plateau"
            else "cosine decay from lr to 0 over " + ("the time budget" if config.max_minutes else "the epochs")
        ),
        "early_stopping_patience": config.patience,
        "paired_batches": config.paired,
        "max_epochs": config.epochs,
        "max_minutes": config.max_minutes,
        "loss": "binary cross-entropy on the fake logit, positive weight = real/fake training ratio",
        "augmentation": config.augment.as_dict(),
        "seed": config.seed,
        "pretrained": pretrained,
    }


# ---------------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser, *, output_required: bool = True) -> None:
    """The training options, shared by `python -m ml.train` and `manage.py train_detector`."""
    defaults, augment = TrainConfig(Path(), Path()), AugmentConfig()
    _model_arguments(parser, defaults, output_required=output_required)
    _data_arguments(parser, defaults)
    _run_arguments(parser, defaults)
    _augmentation_arguments(parser, augment)


def _model_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig, *, output_required: bool) -> None:
    parser.add_argument("data_dir", type=Path, help="folder with real/ and fake/ images")
    parser.add_argument("--output", type=Path, required=output_required, help="run folder: package/ and checkpoints/")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default=defaults.architecture)
    parser.add_argument("--input-size", type=int, help="pixels per side (default: the architecture's, 224)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--lr-factor", type=float, default=defaults.lr_factor)
    parser.add_argument("--lr-patience", type=int, default=defaults.lr_patience)
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=defaults.schedule,
        help="plateau: ReduceLROnPlateau on the validation ROC-AUC; cosine: lr to 0 over the run or --max-minutes",
    )
    parser.add_argument("--patience", type=int, default=defaults.patience, help="early-stopping patience (epochs)")


def _data_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    parser.add_argument("--val-dir", type=Path, help="a separate validation folder with real/ and fake/")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--paired",
        action="store_true",
        help="real/NAME and fake/NAME (any suffix) are one picture before and after manipulation: keep each pair in "
        "one batch and on one side of the split",
    )
    parser.add_argument(
        "--faces",
        action="store_true",
        help="train on each image's largest face, framed as the analysis of photos frames faces (ml.faces); "
        "the model then analyses the faces of every photo",
    )
    parser.add_argument(
        "--self-blended",
        type=float,
        nargs="?",
        const=1.0,
        default=defaults.self_blended,
        metavar="PER_REAL",
        help="add self-blended pseudo-fakes made from the real pictures (ml.blend), PER_REAL per real training "
        "picture (1 when given without a number); fake/ may then be missing",
    )
    parser.add_argument(
        "--ignore-fakes",
        action="store_true",
        help="with --self-blended: leave fake/ out, so the model never sees a real manipulation (and fake/ can be "
        "an unseen kind to evaluate it on)",
    )
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data-loading processes")
    parser.add_argument(
        "--cache-images",
        action="store_true",
        help="keep decoded (and face-framed) pictures in memory after the first epoch: faster, for sets that fit",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="PyTorch threads (default: one per core); 1 is faster when other work keeps the cores busy",
    )


def _run_arguments(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    parser.add_argument("--max-minutes", type=float, help="wall-time budget for the whole run")
    parser.add_argument("--resume", type=Path, help="a checkpoints/last.pth to continue")
    parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=defaults.pretrained)
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, default=defaults.precision)
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:1…")


def _augmentation_arguments(parser: argparse.ArgumentParser, augment: AugmentConfig) -> None:
    parser.add_argument(
        "--downscale-prob",
        type=float,
        default=augment.downscale_prob,
        help="probability of resizing a training picture to a random smaller size (resolution then says nothing)",
    )
    parser.add_argument("--downscale-min-side", type=int, default=augment.downscale_min_side)
    parser.add_argument("--blur-prob", type=float, default=augment.blur_prob)
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=augment.jpeg_quality,
        help="the JPEG re-compression's quality range",
    )
    parser.add_argument("--jpeg-prob", type=float, default=augment.jpeg_prob)
    parser.add_argument("--crop-scale", type=float, default=augment.crop_scale, help="1 disables random crops")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=augment.flip)
    parser.add_argument("--name", help="the model's name in its card")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data_dir=args.data_dir,
        output_dir=args.output,
        architecture=args.architecture,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        lr_factor=args.lr_factor,
        lr_patience=args.lr_patience,
        schedule=args.schedule,
        patience=args.patience,
        val_dir=args.val_dir,
        val_fraction=args.val_fraction,
        seed=args.seed,
        paired=args.paired,
        faces=args.faces,
        self_blended=args.self_blended,
        ignore_fakes=args.ignore_fakes,
        workers=args.workers,
        cache_images=args.cache_images,
        threads=args.threads,
        max_minutes=args.max_minutes,
        resume=args.resume,
        pretrained=args.pretrained,
        precision=args.precision,
        device=args.device,
        augment=AugmentConfig(
            downscale_prob=args.downscale_prob,
            downscale_min_side=args.downscale_min_side,
            blur_prob=args.blur_prob,
            jpeg_quality=tuple(args.jpeg_quality),
            jpeg_prob=args.jpeg_prob,
            crop_scale=args.crop_scale,
            flip=args.flip,
        ),
        name=args.name,
        progress=not args.no_progress,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        result = train(config_from_args(args))
    except MLError as exc:
        if main_rank:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if main_rank:
            print(f"interrupted; continue with --resume {args.output / 'checkpoints' / 'last.pth'}", file=sys.stderr)
        return 130
    if result.package_dir is not None:
        m, training = result.metrics, result.card["training"]
        print(
            f"wrote {result.package_dir} ({training['epochs_run']} epochs, best {training['best_epoch']}, "
            f"{training['duration_s']:.0f} s; {training['stopped_because']})\n"
            f"validation: roc_auc {m['roc_auc']:.4f}  average_precision {m['average_precision']:.4f}  "
            f"accuracy {m['accuracy']:.4f}  f1 {m['f1']:.4f}  threshold {result.card['threshold']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
