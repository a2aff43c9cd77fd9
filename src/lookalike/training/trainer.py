"""Transfer learning: a new dense hidden layer + softmax on top of a pretrained backbone.

The backbone is frozen by default and its vectors come from the workspace's feature store, so a
head trains in minutes on a CPU. ``finetune_blocks=N`` also trains the backbone's last N blocks on
the images themselves (with flip augmentation; meant for a GPU).

A trained model lives in ``WS/models/<name>/``::

    model.json       settings, label map, per-epoch history, best epoch, status
    head.pt          weights of the best epoch (by validation accuracy; with photo views, by validation photos)
    backbone.pt      fine-tuned backbone weights of the best epoch (only with finetune_blocks > 0)
    checkpoint.pt    state after the last finished epoch (model, optimiser, schedule): resume from here
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingDivergedError
from ..workspace import Workspace
from .heads import DEFAULT_CONV_WIDTHS, LOSSES

Device = Literal["auto", "cpu", "cuda"]
MODEL_FILE = "model.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (a resumed run must use the same)."""

    backbone: str
    name: str
    hidden: int = 4096
    top_categories: int | None = None
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.5
    input_dropout: float = 0.2
    label_smoothing: float = 0.1
    val_fraction: float = 0.1
    holdout_split: str = "test"
    finetune_blocks: int = 0
    head: str = "mlp"
    conv_depth: int = 1
    conv_widths: tuple[int, ...] = DEFAULT_CONV_WIDTHS
    augment: bool = False
    erase: float = 0.0
    flip_tta: bool = False
    loss: str = "softmax"
    margin: float = 0.2
    scale: float = 16.0
    seed: int = 0
    init_seed: int | None = None
    photo_views: int = 0  # synthetic phone photos per training item (street-to-shop training; frozen backbone)
    instance_weight: float = 1.0  # weight of the photo-to-its-item contrastive loss
    temperature: float = 0.05  # of that loss
    val_photos: int = 500  # validation photos (of validation items) that choose the best epoch
    real_backgrounds: float = 0.0  # share of those photos (training and validation) set in real photographs
    recipe: str | None = None  # the named recipe these settings came from

    @property
    def weights_seed(self) -> int:
        """Seed of the initial weights and batch order: ``init_seed``, else ``seed`` (which also draws the split)."""
        return self.seed if self.init_seed is None else self.init_seed

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> TrainConfig:
        """The config of a model.json (defaults for settings added since; JSON lists back to tuples)."""
        values = {f.name: saved.get(f.name, f.default) for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def check(self) -> None:
        from ..extractors import is_builtin

        if not self.name or any(c in self.name for c in "/\\ ") or self.name.startswith("."):
            raise ConfigError(f"--name {self.name!r}: use letters, digits, '-', '_' or '.' (no spaces or slashes)")
        if self.name == self.backbone:
            raise ConfigError("--name must differ from --backbone")
        if is_builtin(self.name):
            raise ConfigError(f"--name {self.name!r} is a built-in model; choose another name")
        for label, value, low in [("--hidden", self.hidden, 1), ("--epochs", self.epochs, 1),
                                  ("--batch-size", self.batch_size, 1), ("--finetune-blocks", self.finetune_blocks, 0),
                                  ("--conv-depth", self.conv_depth, 1)]:
            if value < low:
                raise ConfigError(f"{label} must be at least {low}, got {value}")
        if not self.conv_widths or min(self.conv_widths) < 1:
            raise ConfigError(f"--conv-widths must be positive channel counts, got {self.conv_widths}")
        if not 0 <= self.erase <= 1:
            raise ConfigError(f"--erase is a probability in [0, 1], got {self.erase}")
        if self.erase and not self.augment:
            raise ConfigError("--erase is part of the image augmentation: use it with --augment")
        if self.top_categories is not None and self.top_categories < 2:
            raise ConfigError(f"--top-categories must be at least 2, got {self.top_categories}")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError(f"the validation fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.head not in ("mlp", "conv"):
            raise ConfigError(f"--head must be mlp or conv, got {self.head!r}")
        if self.flip_tta and self.head != "conv":
            raise ConfigError("--flip-tta averages an image with its mirror image inside the conv head; "
                              "use it with --head conv")
        if self.head == "conv" and self.finetune_blocks:
            raise ConfigError("--head conv trains on stored image-shaped vectors; it does not fine-tune a backbone")
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not (self.scale > 0 and math.isfinite(self.scale)) or not 0 <= self.margin < 1:
            raise ConfigError(f"--scale must be positive and --margin in [0, 1); got {self.scale} and {self.margin}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.real_backgrounds <= 1.0:
            raise ConfigError(f"--real-backgrounds is a share from 0 to 1, got {self.real_backgrounds}")
        if self.photo_views < 0 or self.val_photos < 0:
            raise ConfigError(f"--photo-views and --val-photos must be >= 0, got {self.photo_views}, {self.val_photos}")
        if self.photo_views and (self.finetune_blocks or self.augment):
            raise ConfigError("--photo-views trains a head on a frozen backbone's stored vectors: use it without "
                              "--finetune-blocks and --augment (the photos are the augmentation)")
        if self.photo_views and self.val_photos < 1:
            raise ConfigError("--photo-views chooses its best epoch on validation photos: --val-photos must be >= 1")
        if not (self.temperature > 0 and self.instance_weight >= 0):
            raise ConfigError(f"--temperature must be positive and --instance-weight >= 0; got {self.temperature}, "
                              f"{self.instance_weight}")


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


@dataclass
class TrainResult:
    name: str
    directory: Path
    categories: list[str]
    train_items: int
    val_items: int
    best_epoch: int
    best_val_acc: float
    history: list[EpochStats] = field(default_factory=list)
    resumed_from: int = 0
    selected_on: str = "validation accuracy"

    def lines(self) -> list[str]:
        return [f"{self.name}: best epoch {self.best_epoch} with {self.selected_on} {self.best_val_acc:.1%} "
                f"({self.train_items} training / {self.val_items} validation items, {len(self.categories)} "
                f"categories); saved in {self.directory}",
                f"extract its vectors with: lookalike extract --model {self.name} -w {self.directory.parent.parent}"]


def resolve_device(device: Device) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda; got {device!r}")
    return device


def choose_training_items(workspace: Workspace, config: TrainConfig, candidates: set[str] | None = None
                          ) -> tuple[list[str], list[str], list[str], dict[str, str]]:
    """Seeded (train ids, validation ids, categories, id -> category); the hold-out split is never used."""
    items = [it for it in workspace.catalogue.items() if it.split != config.holdout_split
             and (candidates is None or it.id in candidates)]
    if not items:
        raise ConfigError(f"no training items: every item is in the hold-out split {config.holdout_split!r} "
                          "or has no backbone features")
    counts = Counter(it.category for it in items)
    categories = sorted(counts, key=lambda c: (-counts[c], c))
    if config.top_categories is not None:
        categories = categories[: config.top_categories]
    if len(categories) < 2:
        raise ConfigError(f"training needs at least two categories; the training items have {len(counts)}")
    categories = sorted(categories)
    keep = set(categories)
    labelled = {it.id: it.category for it in items if it.category in keep}
    ids = sorted(labelled)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(ids))
    n_val = max(1, round(len(ids) * config.val_fraction))
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    if not train:
        raise ConfigError(f"too few items to train: {len(ids)}")
    return train, val, categories, labelled


def validation_photo_items(config: TrainConfig, train_ids: list[str], val_ids: list[str]
                           ) -> tuple[list[str], list[str]]:
    """The validation items photographed to choose a photo model (``config.val_photos`` of them, seeded), and
    the gallery they are searched in: 10,000 training items (seeded) and every validation item."""
    rng = np.random.default_rng([config.seed, 11])
    photo_items = sorted(val_ids[i] for i in rng.choice(len(val_ids), min(config.val_photos, len(val_ids)),
                                                        replace=False))
    gallery_ids = sorted(train_ids[i] for i in rng.choice(len(train_ids), min(10000, len(train_ids)),
                                                          replace=False)) + list(val_ids)
    return photo_items, gallery_ids


def fresh_validation_photo_items(config: TrainConfig, val_ids: list[str], count: int,
                                 chosen_before: set[str]) -> list[str]:
    """``count`` validation items (seeded) to photograph afresh for a choice made after training: those in
    ``chosen_before`` (whose photos chose the epochs, ``validation_photo_items``) come last, so a later choice
    is not scored on the photos an earlier one was fitted to while other validation items remain."""
    rng = np.random.default_rng([config.seed, 15])
    order = [val_ids[i] for i in rng.permutation(len(val_ids))]
    order = [i for i in order if i not in chosen_before] + [i for i in order if i in chosen_before]
    return sorted(order[:count])


def validation_photo_vectors(workspace: Workspace, backbone, config: TrainConfig, photo_items: list[str],
                             directory: Path, log: Callable[[str], None] = print, *, fresh: bool = False
                             ) -> np.ndarray:
    """``backbone``'s vectors of one synthetic photo of each validation item (true box), made once and kept in
    ``directory``: the same photos for every model trained with the same seed. ``fresh``: other photos (another
    seed, kept apart), for a choice after training that must not reuse the photos that chose the epochs."""
    from .photo_views import photo_view_vectors

    seed, prefix = (config.seed + 2_000_003, "choice-photos") if fresh else (config.seed + 1_000_003, "val-photos")
    return photo_view_vectors(workspace, backbone, photo_items, 1, seed, directory, prefix=prefix,
                              given_only=True, photographs=config.real_backgrounds, log=log)[:, 0]


def training_split(workspace: Workspace, config: TrainConfig
                   ) -> tuple[list[str], list[str], list[str], dict[str, str]]:
    """The items ``train`` uses for ``config``: those with the backbone's stored vectors (its readable images;
    without a store, fine-tuning reads every item), split as in ``choose_training_items``."""
    store = workspace.feature_store(config.backbone)
    have = set(store.ids()) if store.exists() or not config.finetune_blocks else None
    return choose_training_items(workspace, config, have)


def train(workspace: Workspace, config: TrainConfig, *, device: Device = "auto", overwrite: bool = False,
          progress: bool | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume training) the model ``config.name`` in ``workspace``."""
    import torch

    from .heads import build_head

    config.check()
    directory = workspace.models_dir / config.name
    saved = _read_model_file(directory)
    if saved is not None and not overwrite:
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        saved["config"] = _as_json({**defaults, **saved["config"]})  # settings added since it was trained
        wanted = _as_json(asdict(config))
        if saved["config"] != wanted:
            changed = sorted(k for k, v in wanted.items() if saved["config"].get(k) != v)
            raise ConfigError(f"model {config.name!r} exists with other settings ({', '.join(changed)}); "
                              "pass --overwrite to start again, or use another --name")
        if saved["status"] == "trained":
            log(f"{config.name}: already trained ({saved['best_epoch']} best of {config.epochs} epochs); "
                "pass --overwrite to train again")
            return _result_from_file(directory, saved)
    if overwrite and directory.exists():
        for path in directory.iterdir():
            path.unlink()
    directory.mkdir(parents=True, exist_ok=True)

    dev = resolve_device(device)
    torch.manual_seed(config.weights_seed)
    backbone = workspace.create_extractor(config.backbone)
    shape = backbone.feature_shape
    if (config.head == "conv" or config.augment) and not config.finetune_blocks and shape is None:
        raise ConfigError(f"--head conv and --augment need a backbone whose vectors are images (pixels); "
                          f"{config.backbone}'s are not")
    store = workspace.feature_store(config.backbone)
    train_ids, val_ids, categories, labels = training_split(workspace, config)
    in_dim = backbone.dim if config.finetune_blocks else int(store.manifest()["dim"])
    label_of = {c: i for i, c in enumerate(categories)}
    y_train = torch.tensor([label_of[labels[i]] for i in train_ids])
    y_val = torch.tensor([label_of[labels[i]] for i in val_ids])

    try:
        head = build_head(config.head, in_dim, config.hidden, len(categories), dropout=config.dropout,
                          input_dropout=config.input_dropout, in_shape=shape, conv_depth=config.conv_depth,
                          loss=config.loss, scale=config.scale, flip_average=config.flip_tta,
                          conv_widths=config.conv_widths)
    except ValueError as error:  # settings that do not fit the backbone's image size
        raise ConfigError(f"--conv-widths: {error}") from None
    if config.finetune_blocks:
        data = _ImageData(workspace, backbone, config, train_ids, val_ids, dev)
        if store.exists():  # start from the frozen backbone's statistics
            sample = torch.from_numpy(store.vectors_for(train_ids[:10000]).copy())
            head.set_standardisation(sample.mean(0), sample.std(0))
    elif config.photo_views:
        data = _PhotoViewData(workspace, store, backbone, config, train_ids, val_ids, labels, directory, log)
        head.set_standardisation(*data.statistics())
    else:
        data = _VectorData(store, train_ids, val_ids, shape if config.augment else None, erase=config.erase)
        head.set_standardisation(*data.statistics())
    model = data.model(head).to(dev)
    if config.head == "conv":  # oneDNN's convolutions run ~20% faster on a CPU in this layout
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_ids) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=0.1)
    loss_fn = _training_loss(config)

    state = {"config": asdict(config), "categories": categories, "backbone_fingerprint": backbone.fingerprint(),
             "in_dim": in_dim, "train_items": len(train_ids), "val_items": len(val_ids), "history": [],
             "best_epoch": 0, "best_val_acc": -1.0, "status": "training", "device": dev,
             "selected_on": data.selected_on}
    start_epoch = 1
    checkpoint = directory / "checkpoint.pt"
    if checkpoint.is_file() and saved is not None and not overwrite:
        ckpt = torch.load(checkpoint, map_location=dev, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
        schedule.load_state_dict(ckpt["schedule"])
        torch.set_rng_state(ckpt["torch_rng"])
        state.update({k: saved[k] for k in ("history", "best_epoch", "best_val_acc")})
        start_epoch = ckpt["epoch"] + 1
        log(f"{config.name}: resuming after epoch {ckpt['epoch']} of {config.epochs}")
    _write_model_file(directory, state)

    log(f"{config.name}: training a {config.hidden}-unit head on {config.backbone} "
        f"({'last ' + str(config.finetune_blocks) + ' blocks fine-tuned' if config.finetune_blocks else 'frozen'}) "
        f"for {len(categories)} categories: {len(train_ids)} training, {len(val_ids)} validation items, on {dev}")
    for epoch in range(start_epoch, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        data.set_train_mode(model)
        rng = np.random.default_rng([config.weights_seed, epoch])
        order = rng.permutation(len(train_ids))
        total_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(total=len(order), desc=f"epoch {epoch}/{config.epochs}", unit="item", leave=False,
                   disable=None if progress is None else not progress)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            y = y_train[batch].to(dev)
            logits, y, loss = data.batch_loss(model, batch, rng, y, loss_fn, dev)
            if not torch.isfinite(loss):
                bar.close()
                state["status"] = "diverged"
                _write_model_file(directory, state)
                kept = (f"kept the last good checkpoint (epoch {epoch - 1}, best epoch {state['best_epoch']})"
                        if epoch > 1 else "no epoch had finished, so there is no checkpoint")
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch} (loss {float(loss.detach())}); {kept}; "
                    f"try a lower --lr than {config.lr}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.update(len(batch))
        bar.close()
        val_loss, val_acc = data.validate(model, y_val, loss_fn, dev)
        stats = EpochStats(epoch, total_loss / seen, correct / seen, val_loss, val_acc,
                           time.perf_counter() - started)
        state["history"].append(asdict(stats))
        best = val_acc > state["best_val_acc"]
        if best:
            state["best_epoch"], state["best_val_acc"] = epoch, val_acc
            data.save_best(model, directory)
        log(f"epoch {epoch:>3}/{config.epochs}  train loss {stats.train_loss:.4f} acc {stats.train_acc:.1%}  "
            f"val loss {val_loss:.4f} {data.score_name} {val_acc:.1%}{data.score_details()}  {stats.seconds:.0f}s"
            f"{'  best' if best else ''}")
        _save_checkpoint(checkpoint, model, optimiser, schedule, epoch)
        _write_model_file(directory, state)
    state["status"] = "trained"
    _write_model_file(directory, state)
    result = _result_from_file(directory, _read_model_file(directory))
    result.resumed_from = start_epoch - 1
    return result


def _loss(loss_fn, logits, y):
    """The training loss (a seam for tests that simulate divergence)."""
    return loss_fn(logits, y)


def _training_loss(config: TrainConfig) -> Callable:
    """Cross-entropy with label smoothing (softmax), or CosFace: the target's scaled cosine lowered
    by ``scale * margin``, so a category must win by a margin in angle."""
    import torch

    smoothed = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if config.loss == "softmax":
        return smoothed

    def cosface(logits, y):
        return smoothed(logits - config.scale * config.margin * torch.nn.functional.one_hot(y, logits.shape[1]), y)

    return cosface


def _as_json(config: dict[str, Any]) -> dict[str, Any]:
    """A config as it reads back from model.json (tuples become lists), so saved and new settings compare."""
    return json.loads(json.dumps(config))


def _augment_images(x, shape, rng: np.random.Generator, shift: int = 2, erase: float = 0.0):
    """Image-shaped vectors: random horizontal flips and shifts of up to ``shift`` pixels (edge padded);
    with ``erase`` > 0, that share of the images also gets one random rectangle (2-40% of the image, aspect
    0.3-3.3) filled with noise in the batch's value range (random erasing, Zhong et al. 2020)."""
    import torch

    images = x.reshape(-1, *shape)
    flip = torch.from_numpy(rng.random(len(images)) < 0.5)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift), mode="replicate")
    dx, dy = rng.integers(0, 2 * shift + 1, size=2)
    h, w = shape[1], shape[2]
    images = padded[:, :, dy : dy + h, dx : dx + w]
    if erase > 0:
        n = len(images)
        area = rng.uniform(0.02, 0.4, n) * h * w
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3), n))
        eh = np.clip(np.round(np.sqrt(area * aspect)), 1, h).astype(int)
        ew = np.clip(np.round(np.sqrt(area / aspect)), 1, w).astype(int)
        top = (rng.random(n) * (h - eh + 1)).astype(int)
        left = (rng.random(n) * (w - ew + 1)).astype(int)
        rows, cols = np.arange(h), np.arange(w)
        inside = (((rows >= top[:, None]) & (rows < (top + eh)[:, None]))[:, :, None]
                  & ((cols >= left[:, None]) & (cols < (left + ew)[:, None]))[:, None, :])
        inside &= (rng.random(n) < erase)[:, None, None]
        low, high = float(images.min()), float(images.max())
        noise = torch.from_numpy(rng.uniform(low, high, (n, 1, h, w)).astype(np.float32)).to(images.dtype)
        images = torch.where(torch.from_numpy(inside)[:, None], noise, images)
    return images.reshape(len(images), -1)


def _validate(model, data, y_val, loss_fn, dev) -> tuple[float, float]:
    import torch

    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y_val), data.val_chunk):
            idx = np.arange(start, min(start + data.val_chunk, len(y_val)))
            logits = model(data.val_batch(idx).to(dev))
            y = y_val[idx].to(dev)
            total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    return total / len(y_val), correct / len(y_val)


def _save_checkpoint(path: Path, model, optimiser, schedule, epoch: int) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                "torch_rng": torch.get_rng_state(), "epoch": epoch}, tmp)
    tmp.replace(path)


def _write_model_file(directory: Path, state: dict[str, Any]) -> None:
    tmp = directory / (MODEL_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(directory / MODEL_FILE)


def _read_model_file(directory: Path) -> dict[str, Any] | None:
    path = directory / MODEL_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _result_from_file(directory: Path, saved: dict[str, Any]) -> TrainResult:
    return TrainResult(saved["config"]["name"], directory, saved["categories"], saved["train_items"],
                       saved["val_items"], saved["best_epoch"], saved["best_val_acc"],
                       [EpochStats(**h) for h in saved["history"]],
                       selected_on=saved.get("selected_on", "validation accuracy"))


class _Data(ABC):
    """Where training batches come from; ``batch_loss`` and ``validate`` are the trainer's two calls."""

    val_chunk = 4096
    score_name = "acc"
    selected_on = "validation accuracy"

    @abstractmethod
    def train_batch(self, batch: np.ndarray, rng: np.random.Generator):
        """The inputs of one training batch (rows ``batch`` of the training items)."""

    def score_details(self) -> str:
        return ""

    def batch_loss(self, model, batch: np.ndarray, rng: np.random.Generator, y, loss_fn, dev):
        """(logits, their labels, loss) of one training batch."""
        logits = model(self.train_batch(batch, rng).to(dev))
        return logits, y, _loss(loss_fn, logits, y)

    def validate(self, model, y_val, loss_fn, dev) -> tuple[float, float]:
        """(validation loss, the score that chooses the best epoch)."""
        return _validate(model, self, y_val, loss_fn, dev)


class _VectorData(_Data):
    """Frozen backbone: training batches are rows of the backbone's feature store."""

    val_chunk = 4096

    def __init__(self, store, train_ids: list[str], val_ids: list[str], augment_shape=None, erase: float = 0.0):
        import torch

        self.x_train = torch.from_numpy(store.vectors_for(train_ids).copy())
        self.x_val = torch.from_numpy(store.vectors_for(val_ids).copy())
        self.augment_shape = augment_shape
        self.erase = erase

    def statistics(self):
        return self.x_train.mean(0), self.x_train.std(0)

    def model(self, head):
        return head

    def set_train_mode(self, model) -> None:
        pass

    def train_batch(self, batch: np.ndarray, rng: np.random.Generator):
        x = self.x_train[batch]
        if self.augment_shape is None:
            return x
        return _augment_images(x, self.augment_shape, rng, erase=self.erase)

    def val_batch(self, idx: np.ndarray):
        return self.x_val[idx]

    def save_best(self, head, directory: Path) -> None:
        import torch

        torch.save(head.state_dict(), directory / "head.pt.tmp")
        (directory / "head.pt.tmp").replace(directory / "head.pt")


class _ImageData(_Data):
    """Fine-tuning: batches are images through the backbone, whose last N blocks train (BN statistics frozen)."""

    val_chunk = 128

    def __init__(self, workspace: Workspace, backbone, config: TrainConfig, train_ids, val_ids, dev: str):
        self.workspace, self.backbone, self.dev = workspace, backbone, dev
        self.train_ids, self.val_ids = train_ids, val_ids
        self.module = backbone.build_torch()
        for p in self.module.parameters():
            p.requires_grad_(False)
        blocks = backbone.trainable_blocks(self.module)
        if config.finetune_blocks > len(blocks):
            raise ConfigError(f"--finetune-blocks {config.finetune_blocks}: {config.backbone} has {len(blocks)} blocks")
        for block in blocks[-config.finetune_blocks:]:
            for p in block.parameters():
                p.requires_grad_(True)

    def model(self, head):
        from .heads import OnBackbone

        return OnBackbone(self.module, head, output="logits")

    def set_train_mode(self, model) -> None:
        for m in model.backbone.modules():  # frozen BN statistics: small batches must not move them
            if "BatchNorm" in type(m).__name__:
                m.eval()

    def _images(self, ids: list[str], flip: np.ndarray | None):
        import torch

        from ..images import load_image

        catalogue = self.workspace.catalogue
        arrays = []
        for n, item in enumerate(catalogue.get_many(ids)[i] for i in ids):
            arr = self.backbone.preprocess(load_image(catalogue.resolve(item.path), item.box))
            arrays.append(arr[:, :, ::-1] if flip is not None and flip[n] else arr)
        return torch.from_numpy(np.ascontiguousarray(np.stack(arrays)))

    def train_batch(self, batch: np.ndarray, rng: np.random.Generator):
        return self._images([self.train_ids[i] for i in batch], rng.random(len(batch)) < 0.5)

    def val_batch(self, idx: np.ndarray):
        return self._images([self.val_ids[i] for i in idx], None)

    def save_best(self, model, directory: Path) -> None:
        import torch

        for name, part in (("head.pt", model.head), ("backbone.pt", model.backbone)):
            torch.save(part.state_dict(), directory / (name + ".tmp"))
            (directory / (name + ".tmp")).replace(directory / name)


class _PhotoViewData(_VectorData):
    """Street-to-shop: each batch pairs items' clean vectors with one synthetic photo of each (frozen backbone).

    Loss: the category loss on both, plus a contrastive loss that makes each photo nearest its own item
    among the batch's items (InfoNCE, both directions), which keeps what tells items of one category apart.
    The best epoch is the one whose validation photos (of validation items, true box) find their category
    and their item best in a gallery of training and validation items.
    """

    def __init__(self, workspace: Workspace, store, backbone, config: TrainConfig, train_ids, val_ids, labels,
                 directory: Path, log):
        import torch

        from ..evaluation import RetrievalEvaluator
        from .photo_views import photo_view_vectors

        super().__init__(store, train_ids, val_ids)
        self.config = config
        views = photo_view_vectors(workspace, backbone, train_ids, config.photo_views, config.seed, directory,
                                   photographs=config.real_backgrounds, log=log)
        self.views = torch.from_numpy(views)
        photo_items, gallery_ids = validation_photo_items(config, train_ids, val_ids)
        photos = validation_photo_vectors(workspace, backbone, config, photo_items, directory, log)
        self.evaluator = RetrievalEvaluator(photos, [labels[i] for i in photo_items], store.vectors_for(gallery_ids),
                                            gallery_ids, [labels[i] for i in gallery_ids], photo_items,
                                            name="validation photos")
        self.last_scores: dict[str, float] = {}

    score_name = "photo score"
    selected_on = "validation photo score (mean of top-1 and item Recall@10)"

    def score_details(self) -> str:
        return " (" + ", ".join(f"{k} {v:.1%}" for k, v in self.last_scores.items()) + ")"

    def batch_loss(self, model, batch, rng, y, loss_fn, dev):
        import torch
        import torch.nn.functional as F

        clean = self.x_train[batch]
        photo = self.views[torch.from_numpy(batch), torch.from_numpy(rng.integers(self.views.shape[1], size=len(batch)))]
        features = model.embed(torch.cat([clean, photo]).to(dev))
        labels = torch.cat([y, y])
        logits = model.logits(features)
        loss = _loss(loss_fn, logits, labels)
        if self.config.instance_weight:
            a, b = F.normalize(features[: len(batch)], dim=1), F.normalize(features[len(batch) :], dim=1)
            similarity = b @ a.T / self.config.temperature
            target = torch.arange(len(batch), device=similarity.device)
            contrast = (F.cross_entropy(similarity, target) + F.cross_entropy(similarity.T, target)) / 2
            loss = loss + self.config.instance_weight * contrast
        return logits, labels, loss

    def validate(self, model, y_val, loss_fn, dev) -> tuple[float, float]:
        """Validation loss on clean items; the score is the mean of photo top-1 and photo item Recall@10."""
        import torch

        val_loss, _ = _validate(model, self, y_val, loss_fn, dev)

        def transform(vectors: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return torch.cat([model.embed(torch.from_numpy(vectors[s : s + 4096]).to(dev)).cpu()
                                  for s in range(0, len(vectors), 4096)]).numpy()

        self.last_scores = self.evaluator(transform)
        return val_loss, self.last_scores[self.evaluator.primary]
