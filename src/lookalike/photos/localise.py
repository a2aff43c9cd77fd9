"""Find the item(s) in a photo without a box: class-agnostic localisation from a CNN's own activations.

SCDA (Wei et al. 2017, "Selective Convolutional Descriptor Aggregation"): sum a conv map over its
channels, keep the cells above the map's mean, and take connected parts as items. Following the paper,
two depths are combined: the last conv map (stride 32, semantic, coarse) and the map of the last stride-16
stage (sharper); a cell is kept when both agree. Each connected part is a candidate box, ranked by its
share of the activation, so a photo with several items gives several boxes.

The network is EfficientNet-Lite0 with its ImageNet weights (the same package as the extractor), run
through ONNX Runtime on a letterboxed ``input_size`` square.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from tqdm.auto import tqdm

from .synthesis import Box


@dataclass(frozen=True)
class Detection:
    """A candidate item: its box in the photo's pixels and its share of the photo's item evidence (0..1; of the
    main-item map where the localiser has one)."""

    box: Box
    score: float

    def to_dict(self) -> dict:
        return {"box": [round(v, 1) for v in self.box], "score": round(self.score, 4)}


def _localiser_module(variant: str, input_size: int, summed: bool = True):
    import torch
    from torch import nn

    from ..extractors import create_extractor

    class ActivationMaps(nn.Module):
        """Images -> activation maps at stride 16 and stride 32, channel-summed (each ``(n, h, w)``) or whole."""

        def __init__(self, net):
            super().__init__()
            self.net = net
            strides = [int(np.prod(b._block_args.stride)) if not isinstance(b._block_args.stride, int)
                       else b._block_args.stride for b in net._blocks]
            downs = [i for i, s in enumerate(strides) if s > 1]
            self.mid = downs[-1] - 1  # the last block before the final downsampling: stride 16

        def forward(self, x: torch.Tensor):
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            mid = x
            for i, block in enumerate(net._blocks):
                x = block(x)
                if i == self.mid:
                    mid = x
            head = net._swish(net._bn1(net._conv_head(x)))
            if not summed:
                return mid, head
            return mid.clamp_min(0).sum(1), head.sum(1)

    extractor = create_extractor(variant)
    return ActivationMaps(extractor.build_torch().net).eval(), extractor


class Localiser(ABC):
    """Finds candidate item boxes in a photo. Subclasses implement ``_probability``: a map of how likely each
    cell of the letterboxed photo belongs to an item, and whether it lies inside the photo."""

    description = "localiser"
    threshold = 0.5
    #: a product shot (the item on a plain backdrop, its box at least this share of the photo, its centre within
    #: ``shot_centre`` of the photo's side from the photo's centre) is searched whole
    shot_fill = 0.25
    shot_centre = 0.1
    #: share of the pixels outside the box within ``plain_tolerance`` (RGB distance, 0..1) of their median colour
    plain_share = 0.9
    plain_tolerance = 0.08
    #: margins (share of the box's size) of the crops whose vectors are averaged into the query
    view_margins = (0.0, 0.04, 0.1)

    def __init__(self, variant: str = "efficientnet-lite0", input_size: int = 320, min_area: float = 0.004,
                 max_boxes: int = 4, margin: float = 0.04):
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        self.variant, self.input_size, self.min_area, self.max_boxes = variant, input_size, min_area, max_boxes
        self.margin = margin
        self._session = None
        self._extractor = None

    def _letterbox(self, img: Image.Image) -> tuple[np.ndarray, float, int, int]:
        from ..extractors import create_extractor

        if self._extractor is None:
            self._extractor = create_extractor(self.variant)
        cfg = self._extractor.config.preprocess
        size = self.input_size
        scale = size / max(img.size)
        w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        canvas = Image.new("RGB", (size, size), tuple(round(m * 255) for m in cfg.mean))
        left, top = (size - w) // 2, (size - h) // 2
        canvas.paste(img.resize((w, h), Image.Resampling.BILINEAR), (left, top))
        arr = (np.asarray(canvas, np.float32) / 255.0 - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std,
                                                                                                     np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))[None], scale, left, top

    def _session_for(self, path: Path):
        if self._session is None:
            from ..extractors.base import SESSION_LOCK, ort_session

            with SESSION_LOCK:
                if self._session is None:
                    self._session = ort_session(path)
        return self._session

    @abstractmethod
    def _probability(self, batch: np.ndarray) -> np.ndarray:
        """The letterboxed photo's ``(1, 3, S, S)`` batch -> item probability per cell ``(h, w)``."""

    def _maps(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Any-item probability per cell, and the main item's where the localiser tells them apart."""
        return self._probability(batch), None

    def locate(self, img: Image.Image) -> list[Detection]:
        """Candidate item boxes in ``img``, best first; empty when nothing stands out.

        A localiser that also maps the main item (the one the photo is of: larger, in front) ranks the items
        by their share of that map instead of their share of the any-item map.
        """
        batch, scale, left, top = self._letterbox(img)
        anything, main = self._maps(batch)
        return self._parts(anything, img, scale, left, top, rank=main)[: self.max_boxes]

    def _parts(self, prob: np.ndarray, img: Image.Image, scale: float, left: int, top: int,
               rank: np.ndarray | None = None) -> list[Detection]:
        """Connected parts of ``prob`` above ``threshold`` as boxes in the photo, ranked by their share of
        ``rank`` (default: of ``prob``), largest first."""
        from scipy import ndimage

        size = self.input_size
        upsample = 4  # sub-cell box edges: the map is bilinearly upsampled before thresholding
        fine = prob.shape[0] * upsample

        def upsampled(amap: np.ndarray) -> np.ndarray:
            amap = Image.fromarray(amap.astype(np.float32), "F")
            return np.asarray(amap.resize((fine, fine), Image.Resampling.BILINEAR))

        prob = upsampled(prob)
        cell = size / fine
        centres = (np.arange(fine) + 0.5) * cell
        inside_x = (centres >= left) & (centres < left + img.width * scale)
        inside_y = (centres >= top) & (centres < top + img.height * scale)
        valid = inside_y[:, None] & inside_x[None, :]
        mask = (prob > self.threshold) & valid
        labels, count = ndimage.label(mask)
        if count == 0:
            return []
        weight = prob if rank is None else upsampled(rank) * valid
        total = float(weight[mask].sum()) if rank is None else float(weight.sum())
        total = total or 1.0
        detections, masses = [], []
        for part, slices in enumerate(ndimage.find_objects(labels), 1):
            region = labels == part
            if region.sum() / max(1, valid.sum()) < self.min_area:
                continue
            rows, cols = slices
            x1, x2 = (cols.start * cell - left) / scale, (cols.stop * cell - left) / scale
            y1, y2 = (rows.start * cell - top) / scale, (rows.stop * cell - top) / scale
            box = (max(0.0, x1), max(0.0, y1), min(float(img.width), x2), min(float(img.height), y2))
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                detections.append(Detection(box, float(weight[region].sum()) / total))
                masses.append(float(prob[region].sum()))
        order = sorted(range(len(detections)), key=lambda n: (-detections[n].score, -masses[n]))
        return [detections[n] for n in order]

    def choose(self, img: Image.Image) -> tuple[Box | None, str, list[Detection]]:
        """The box to search (the best item's box widened by ``margin``), its source, and every candidate.

        ``(None, "none", [])`` when no item is found. A product shot (the item centred on a plain backdrop and at
        least ``shot_fill`` of the photo) is searched whole, framed as catalogue images are: cutting it loses
        more than the plain backdrop costs. In a busy photo the item is cut out, however large it is, and so is
        an item off-centre or cut by the frame (a close-up on a table: the whole photo is not framed like a
        catalogue image).
        """
        return self._choice(img)[:3]

    def _choice(self, img: Image.Image) -> tuple[Box | None, str, list[Detection], bool]:
        """``choose``'s answer, and whether the whole photo is what gets searched."""
        found = self.locate(img)
        if not found:
            return None, "none", found, True
        if self.product_shot(img, found[0].box):
            return (0.0, 0.0, float(img.width), float(img.height)), "auto", found, True
        return pad_box(found[0].box, img.size, self.margin), "auto", found, False

    def product_shot(self, img: Image.Image, box: Box) -> bool:
        """Whether ``box`` holds a large item, centred, on a plain backdrop (the rest of the photo is one colour)."""
        x1, y1, x2, y2 = box
        if (x2 - x1) * (y2 - y1) < self.shot_fill * img.width * img.height:
            return False
        if (abs((x1 + x2) / 2 - img.width / 2) > self.shot_centre * img.width
                or abs((y1 + y2) / 2 - img.height / 2) > self.shot_centre * img.height):
            return False
        small = img.copy()
        small.thumbnail((96, 96), Image.Resampling.BILINEAR)  # shrunk before converting: a cheap copy
        sx, sy = small.width / img.width, small.height / img.height
        arr = np.asarray(small.convert("RGB"), np.float32) / 255.0
        outside = np.ones(arr.shape[:2], bool)
        outside[max(0, int(y1 * sy)) : int(np.ceil(y2 * sy)), max(0, int(x1 * sx)) : int(np.ceil(x2 * sx))] = False
        pixels = arr[outside]
        if len(pixels) < 0.02 * outside.size:  # the item fills the frame: nothing else to cut away
            return True
        distance = np.sqrt(((pixels - np.median(pixels, axis=0)) ** 2).sum(1))
        return float((distance <= self.plain_tolerance).mean()) >= self.plain_share

    def views(self, img: Image.Image) -> tuple[list[Image.Image], Box | None, str, list[Detection]]:
        """What to search for ``img``: crops of the best box at each of ``view_margins`` (their vectors are
        averaged: a box a little too tight or too loose matters less), or the whole photo (a product shot, or no
        item found); then ``choose``'s box, source and candidates."""
        box, source, found, whole = self._choice(img)
        if whole:
            return [img], box, source, found
        crops = [img.crop(tuple(round(v) for v in pad_box(found[0].box, img.size, m))) for m in self.view_margins]
        return crops, box, source, found


class ActivationLocaliser(Localiser):
    """SCDA boxes from EfficientNet-Lite's ImageNet activations; needs no training.

    A cell counts as item when both channel-summed maps (stride 16 and stride 32) are above their mean over
    the photo; the probability map is that agreement (0 or 1).
    """

    description = "SCDA on efficientnet-lite0 activations (untrained)"

    def _onnx_path(self) -> Path:
        from ..extractors import create_extractor
        from ..extractors.base import cache_dir

        weights = create_extractor(self.variant).weights_checksum()
        key = json.dumps(["scda-maps-v1", self.variant, self.input_size, weights])
        return cache_dir() / "onnx" / f"localiser-{self.variant}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"

    def session(self):
        from ..extractors.base import SESSION_LOCK

        path = self._onnx_path()
        if self._session is None:
            with SESSION_LOCK:  # one export, whatever the threads
                if not path.is_file():
                    module, _ = _localiser_module(self.variant, self.input_size)
                    _export(module, path, self.input_size, ["mid", "head"])
        return self._session_for(path)

    def _probability(self, batch: np.ndarray) -> np.ndarray:
        mid, head = (m[0] for m in self.session().run(["mid", "head"], {"images": batch}))
        head = np.kron(head, np.ones((mid.shape[0] // head.shape[0], mid.shape[1] // head.shape[1]), np.float32))
        agree = np.ones_like(mid, dtype=bool)
        for amap in (mid, head):  # mean over the whole square: the letterbox padding is flat and weak
            agree &= amap > amap.mean()
        return agree.astype(np.float32)


def _export(module, path: Path, input_size: int, outputs: list[str]) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    dummy = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (dummy,), str(tmp), input_names=["images"], output_names=outputs,
                          dynamic_axes={"images": {0: "batch"}}, opset_version=17, dynamo=False)
    tmp.replace(path)


def pad_box(box: Box, size: tuple[int, int], margin: float, min_side: float = 12.0) -> Box:
    """``box`` widened by ``margin`` of its size on each side (and to at least ``min_side`` pixels), clipped
    to the photo."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    grow_x = max(margin * w, (min_side - w) / 2, 0.0)
    grow_y = max(margin * h, (min_side - h) / 2, 0.0)
    return (max(0.0, x1 - grow_x), max(0.0, y1 - grow_y), min(float(size[0]), x2 + grow_x),
            min(float(size[1]), y2 + grow_y))


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class ObjectnessHead:
    """Torch module factory (kept out of import time): maps at stride 16 and 32 -> item logit per stride-16 cell."""

    @staticmethod
    def build(mid_channels: int, head_channels: int, width: int = 48, outputs: int = 1):
        import torch
        from torch import nn

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.reduce_mid = nn.Conv2d(mid_channels, width, 1)
                self.reduce_head = nn.Conv2d(head_channels, width, 1)
                self.mix = nn.Sequential(nn.ReLU(), nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(),
                                         nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, outputs, 1))

            def forward(self, mid: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
                up = nn.functional.interpolate(self.reduce_head(head), size=mid.shape[-2:], mode="nearest")
                out = self.mix(torch.cat([self.reduce_mid(mid), up], 1))
                return out[:, 0] if outputs == 1 else out

        return Head()


class TrainedLocaliser(Localiser):
    """An objectness head on EfficientNet-Lite0's maps, trained on synthetic photos of catalogue items
    (``train_localiser``); saved as one ONNX graph photo -> per stride-16 cell, the probability of any item
    (``probability``) and of the main item (``main``: the item the photo is of; localisers trained before it
    have only ``probability``)."""

    FILE, META = "localiser.onnx", "localiser.json"

    def __init__(self, directory: str | Path, **kwargs):
        self.directory = Path(directory)
        meta = json.loads((self.directory / self.META).read_text())
        super().__init__(meta["variant"], meta["input_size"], **kwargs)
        self.meta = meta
        self.description = f"objectness head trained on {meta['train_photos']} photos of catalogue items"

    def _probability(self, batch: np.ndarray) -> np.ndarray:
        return self._session_for(self.directory / self.FILE).run(["probability"], {"images": batch})[0][0]

    def _maps(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if "main" not in self.meta.get("outputs", []):  # localisers trained before main-item maps
            return self._probability(batch), None
        anything, main = self._session_for(self.directory / self.FILE).run(["probability", "main"], {"images": batch})
        return anything[0], main[0]


def train_localiser(workspace, train_ids: list[str], val_ids: list[str], directory: str | Path, *,
                    photos: int = 2000, val_photos: int = 300, epochs: int = 12, seed: int = 0,
                    variant: str = "efficientnet-lite0", input_size: int = 320, device: str = "cpu",
                    log=print) -> dict:
    """Train an objectness localiser on synthetic photos of ``train_ids`` (checked on photos of ``val_ids``)
    and save it in ``directory``. Returns its metadata, including the validation IoU of the best epoch.

    Two maps are learned at once: any item's cells, and the main item's (the photo's own item, larger and in
    front of a second one). Boxes come from the first; the second ranks them.
    """
    import time

    import torch

    from .sets import photo_of_item
    from .synthesis import TRAINING_STYLE

    started = time.perf_counter()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    catalogue = workspace.catalogue
    rng = np.random.default_rng([seed, 7])
    torch.manual_seed(seed)
    maps_module, extractor = _localiser_module(variant, input_size, summed=False)
    base = ActivationLocaliser(variant, input_size)  # for its letterbox only

    def make_set(ids: list[str], count: int, desc: str, keep_photos: bool):
        """Backbone maps and target masks of ``count`` photos; the photos themselves only if ``keep_photos``
        (about 0.8 MB each: 6,000 training photos kept would hold about 5 GB for nothing)."""
        items = catalogue.get_many(ids)
        pool = [items[i] for i in ids]
        mids, heads, targets, boxes = [], [], [], []
        for n in tqdm(range(count), desc=desc, unit="photo", disable=None):
            item = pool[int(rng.integers(len(pool)))]
            style = replace(TRAINING_STYLE, size=tuple(int(v) for v in rng.choice([240, 320, 400, 480], 2)))
            photo = photo_of_item(item, catalogue, pool, rng, style)
            batch, scale, left, top = base._letterbox(photo.image)
            with torch.no_grad():
                mid, head = maps_module(torch.from_numpy(batch))
            cells = mid.shape[-1]
            w, h = round(photo.image.width * scale), round(photo.image.height * scale)
            target = []
            for mask in (photo.mask, photo.mask if photo.main_mask is None else photo.main_mask):  # any item, main
                canvas = Image.new("L", (input_size, input_size), 0)
                item = Image.fromarray(mask.astype(np.uint8) * 255, "L")
                canvas.paste(item.resize((w, h), Image.Resampling.BILINEAR), (left, top))
                target.append(np.asarray(canvas.resize((cells, cells), Image.Resampling.BOX), np.float32) / 255.0)
            mids.append(mid[0].half()), heads.append(head[0].half()), targets.append(torch.from_numpy(np.stack(target)))
            if keep_photos:
                boxes.append((photo, scale, left, top))
        return torch.stack(mids), torch.stack(heads), torch.stack(targets), boxes

    torch.set_num_threads(max(1, torch.get_num_threads()))
    x_mid, x_head, y, _ = make_set(train_ids, photos, "localiser photos", keep_photos=False)
    v_mid, v_head, v_y, v_photos = make_set(val_ids, val_photos, "localiser validation photos", keep_photos=True)
    head = ObjectnessHead.build(x_mid.shape[1], x_head.shape[1], outputs=2).to(device)
    optimiser = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(y) + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    best, best_state, history = -1.0, None, []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        head.train()
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(y)))
        total = 0.0
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            logits = head(x_mid[idx].float().to(device), x_head[idx].float().to(device))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        head.eval()
        with torch.no_grad():
            prob = torch.sigmoid(head(v_mid.float().to(device), v_head.float().to(device))).cpu().numpy()
        ious = [_iou_of_map(p[0], p[1], photo, scale, left, top, input_size)
                for p, (photo, scale, left, top) in zip(prob, v_photos)]
        iou = float(np.mean(ious))
        history.append({"epoch": epoch, "loss": total / len(y), "val_mean_iou": iou,
                        "seconds": time.perf_counter() - t0})
        if iou > best:
            best, best_state = iou, {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
        log(f"localiser epoch {epoch:>2}/{epochs}  loss {total / len(y):.4f}  validation mean IoU {iou:.3f}"
            f"{'  best' if iou >= best else ''}  {time.perf_counter() - t0:.0f}s")
    head.load_state_dict(best_state)

    class Whole(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.maps, self.head = maps_module, head.cpu()

        def forward(self, images):
            mid, top = self.maps(images)
            prob = torch.sigmoid(self.head(mid, top))
            return prob[:, 0], prob[:, 1]

    outputs = ["probability", "main"]
    _export(Whole(), directory / TrainedLocaliser.FILE, input_size, outputs)
    meta = {"variant": variant, "input_size": input_size, "outputs": outputs, "train_photos": photos,
            "val_photos": val_photos,
            "train_items": len(train_ids), "val_items": len(val_ids), "epochs": epochs, "seed": seed,
            "best_val_mean_iou": best, "history": history, "weights_sha256": extractor.weights_checksum(),
            "seconds": time.perf_counter() - started}
    (directory / TrainedLocaliser.META).write_text(json.dumps(meta, indent=2))
    return meta


def _iou_of_map(prob: np.ndarray, main: np.ndarray | None, photo, scale: float, left: int, top: int,
                input_size: int) -> float:
    """IoU of the best box found in the probability maps with the photo's main-item box (validation)."""

    class _Fixed(Localiser):
        def _letterbox(self, img):
            return None, scale, left, top

        def _probability(self, batch):
            return prob

        def _maps(self, batch):
            return prob, main

    found = _Fixed(input_size=input_size).locate(photo.image)
    return box_iou(found[0].box, photo.box) if found else 0.0


def workspace_localiser(workspace) -> Localiser:
    """The workspace's trained localiser (``WS/localiser``, made by ``lookalike train --recipe photos``), else
    the untrained SCDA one."""
    directory = workspace.root / "localiser"
    if (directory / TrainedLocaliser.META).is_file() and (directory / TrainedLocaliser.FILE).is_file():
        return TrainedLocaliser(directory)
    return ActivationLocaliser()
