"""The ``lookalike`` command line: a thin shell, one subcommand = one library call.

Errors become one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from . import __version__
from .errors import LookalikeError

WORKSPACE_HELP = "workspace folder (default: $LOOKALIKE_WORKSPACE or ./lookalike-workspace)"


def _workspace(args: argparse.Namespace):
    from .workspace import Workspace

    return Workspace(args.workspace)


def _channel_counts(text: str) -> tuple[int, ...]:
    """``"32,64,128"`` -> ``(32, 64, 128)``; argparse turns a ValueError into a usage message."""
    return tuple(int(part) for part in text.split(","))


def cmd_import(args: argparse.Namespace) -> int:
    from .catalogue import import_catalogue

    ws = _workspace(args)
    summary = import_catalogue(ws.catalogue, args.kind, args.source, limit=args.limit, seed=args.seed,
                               image_dir=ws.images_dir)
    print("\n".join(summary.lines()))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .extractors import create_extractor, list_extractors
    from .workspace import default_workspace

    if args.workspace is not None or default_workspace().is_dir():
        ws = _workspace(args)
        infos = [ws.create_extractor(name).info() for name in ws.list_models(args.pattern)]
    else:
        infos = [create_extractor(name).info() for name in list_extractors(args.pattern)]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    print(f"{'model':<20} {'dim':>5} {'input':>5}  weights")
    for info in infos:
        print(f"{info['name']:<20} {info['dim']:>5} {info['input_size']:>5}  {info['weights']}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from .features import extract_features

    ws = _workspace(args)
    if len(ws.catalogue) == 0:
        raise LookalikeError(f"the catalogue in {ws.root} is empty; run: lookalike import KIND SOURCE -w {ws.root}")
    if args.precision == "int8":
        from .extractors.quantized import quantize

        extractor = quantize(ws, args.model, images=args.calibration_images or 256, seed=args.seed)
        print(f"extracting int8 vectors as model {extractor.name!r} (compare: lookalike evaluate --models "
              f"{args.model},{extractor.name})")
        args.model = extractor.name
    else:
        extractor = ws.create_extractor(args.model, weights=args.weights)
    backbone = extractor.backbone
    items = None
    if args.split is not None or args.limit is not None:
        from .catalogue.readers import sample

        items = sample(list(ws.catalogue.items(split=args.split)), args.limit, args.seed)
        if not items:
            raise LookalikeError(f"no items in split {args.split!r}; splits: {ws.catalogue.split_counts()}")
    from .search import SearchEngine, with_photo_model

    models = with_photo_model(ws, args.model)
    if len(models) > 1:
        print(f"{args.model} searches photos with {models[1]}: extracting both")
    for model in models:
        if model != args.model:
            extractor = ws.create_extractor(model)
            backbone = extractor.backbone
        summary = extract_features(ws.catalogue, extractor, ws.feature_store(model), batch_size=args.batch_size,
                                   overwrite=args.overwrite, items=items,
                                   backbone_store=ws.feature_store(backbone.name) if backbone is not None else None,
                                   part_stores=[ws.feature_store(p.name) for p in extractor.parts],
                                   dask=args.dask, models_dir=ws.models_dir.absolute())
        print("\n".join(summary.lines()))
        for metric, sync in SearchEngine(ws).update_indexes(model).items():  # in place, no rebuild
            print(f"index {model}/{metric}: {sync}")
    return 0


def cmd_features_export(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    count = ws.feature_store(args.model).export_npz(args.out)
    print(f"wrote {count} {args.model} vectors to {args.out} (arrays: ids, vectors)")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    import time

    from .index import INDEXES, describe_backends, parse_params
    from .index.quality import measure_index
    from .metrics import Metric
    from .search import SearchEngine, with_photo_model

    if args.list:
        describe_backends()
        return 0
    if not args.model:
        raise LookalikeError("--model is required (or --list to see the backends)")
    ws = _workspace(args)
    params = parse_params(args.param)
    if args.db is not None:
        params["db"] = f"embedded:{(ws.root / 'pg').absolute()}" if args.db == "embedded" else args.db
    if args.shards is not None:
        params["shards"] = args.shards
    engine = SearchEngine(ws)
    reports = []
    models = with_photo_model(ws, args.model)  # its searches by photo use the photo model's index: built alike
    if len(models) > 1:
        print(f"{args.model} searches photos with {models[1]}: building both indexes")
    for model, metric in ((m, x) for m in models for x in Metric.parse_list(args.metric)):
        backend, stored = engine.index_spec(model, metric)
        backend = args.backend or backend
        if not params and args.backend is None:
            chosen = stored  # rebuild as it was
        else:
            chosen = INDEXES.get(backend).check_params(params)  # one clear line for unknown names
        started = time.perf_counter()
        index = engine.build_index(model, metric, backend=backend, params=chosen)
        seconds = time.perf_counter() - started
        print(f"built {model} {metric.value} index: {index.live_count} items, {index.meta.dim}-d, "
              f"{index.meta.backend}, in {ws.index_dir(model, metric.value)}")
        if args.measure:
            report = measure_index(index, ws.feature_store(model), build_seconds=seconds,
                                   queries=args.measure, seed=args.seed)
            reports.append(report)
            print(f"  {report.line()}")
    if args.json:
        print(json.dumps([r.to_dict() for r in reports]))
    return 0


def cmd_neighbours(args: argparse.Namespace) -> int:
    from .updates import export_neighbours, read_item_ids

    ws = _workspace(args)
    items = read_item_ids(args.items) if args.items is not None else None
    summary = export_neighbours(ws, args.model, args.metric, args.k, args.out, items=items,
                                batch_size=args.batch_size)
    print(summary.line())
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from .updates import read_item_ids, remove_items

    ids = list(args.ids)
    if args.from_file is not None:
        ids += read_item_ids(args.from_file)
    summary = remove_items(_workspace(args), ids)
    print("\n".join(summary.lines()))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .images import parse_box
    from .metrics import Metric
    from .search import SearchEngine

    ws = _workspace(args)
    metric = Metric.parse(args.metric)
    engine = SearchEngine(ws)
    if args.item is not None:
        if args.box:
            raise LookalikeError("--box applies to --image; catalogue items use their own bounding box")
        result = engine.search_item(args.item, args.model, metric, args.k)
    else:
        mode = (args.box or "auto").strip()
        box = mode if mode in ("auto", "none") else parse_box(mode)
        result = engine.search_image(args.image, args.model, metric, args.k, box=box, weights=args.weights,
                                     kind=args.query_kind)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    if result.query.get("box_source") == "none" and args.item is None and (args.box or "auto") == "auto":
        print("no item found in the photo: searched the whole photo", file=sys.stderr)
    print(f"query: {result.query}  model: {result.model}  metric: {result.metric}")
    for rank, m in enumerate(result.results, 1):
        print(f"{rank:>3}. {m.distance:>12.4f}  {m.category:<16} {m.item_id}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    cat = ws.catalogue
    info = {"workspace": str(ws.root), "items": len(cat), "splits": cat.split_counts(),
            "categories": cat.category_counts(),
            "features": {m: len(ws.feature_store(m)) for m in ws.extracted_models()}}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"workspace {info['workspace']}: {info['items']} items, splits {info['splits']}")
        print(f"categories ({len(info['categories'])}): {info['categories']}")
        print(f"feature stores: {info['features'] or 'none yet'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate
    from .metrics import Metric

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    ws = _workspace(args)
    if args.query_photos is not None:
        from .photos.evaluation import evaluate_photos

        report = evaluate_photos(ws, models, Metric.parse_list(args.metrics), args.query_photos,
                                 boxes=args.box or "given,auto,none", subset=args.subset, seed=args.seed,
                                 protocol=args.protocol, split=args.split, gallery_split=args.gallery_split)
    else:
        if args.box is not None:
            raise LookalikeError("--box chooses how query photos are cropped: use it with --query-photos")
        report = evaluate(ws, models, Metric.parse_list(args.metrics), subset=args.subset,
                          queries=args.queries, seed=args.seed, protocol=args.protocol, split=args.split,
                          gallery_split=args.gallery_split)
    print(json.dumps(report.to_dict()) if args.json else report.table())
    if args.report is not None:
        from .report import write_report

        command = "lookalike " + " ".join(sys.argv[1:]) if sys.argv and "lookalike" in sys.argv[0] else ""
        files = write_report(report, ws, args.report, command=command)
        print(f"wrote {', '.join(str(f) for f in files)}", file=sys.stderr if args.json else sys.stdout)
    return 0


# photos.sets.MAKERS, named here so that building the parser does not import the photos package
PHOTO_MAKERS = ("clutter", "scene", "phone")

_TRAIN_FIELDS = ("backbone", "name", "hidden", "top_categories", "epochs", "batch_size", "lr", "weight_decay",
                 "dropout", "input_dropout", "label_smoothing", "holdout_split", "finetune_blocks", "head",
                 "conv_depth", "conv_widths", "augment", "erase", "flip_tta", "loss", "margin", "scale", "seed",
                 "init_seed", "photo_views", "instance_weight", "temperature", "val_photos", "real_backgrounds")


def cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    # flags left unset are dropped, so TrainConfig (or the recipe) holds every default
    given = {f: getattr(args, f) for f in _TRAIN_FIELDS if getattr(args, f) is not None}
    ws = _workspace(args)
    if args.recipe is not None:
        from .training.recipes import train_recipe

        given.pop("name")
        if args.localiser_photos is not None:  # else the recipe's default
            given["localiser_photos"] = args.localiser_photos
        results, localiser = train_recipe(ws, args.recipe, args.name, device=args.device, overwrite=args.overwrite,
                                          **given)
        if localiser is not None:
            print(f"localiser: validation mean IoU {localiser['best_val_mean_iou']:.3f}, saved in {ws.root / 'localiser'}")
        for result in results:
            print(result.lines()[0])
        print(f"{args.name} is ready: lookalike search --image PHOTO --model {args.name} -w {ws.root}")
        return 0
    else:
        if "backbone" not in given:
            raise LookalikeError("--backbone is required (or use --recipe photos, which picks its own)")
        result = train(ws, TrainConfig(**given), device=args.device, overwrite=args.overwrite)
    print("\n".join(result.lines()))
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    from .extractors.combined import save_combined

    ws = _workspace(args)
    weights = None
    if args.weights is not None:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise LookalikeError(f"--weights: give numbers separated by commas, got {args.weights!r}") from None
    model = save_combined(ws.models_dir, args.name, [m.strip() for m in args.models.split(",") if m.strip()],
                          weights, overwrite=args.overwrite, photo_model=args.photo_model)
    print(f"{model.name}: {model.config.architecture} ({model.dim}-d); saved in {model.directory}")
    print(f"extract its vectors (from the parts' stores) with: lookalike extract --model {model.name} -w {ws.root}")
    return 0


def cmd_learn(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .taste.learn import learn

    ws = _workspace(args)
    bar = tqdm(total=100, desc=f"learn {args.name}", unit="%", disable=None)

    def progress(stage: str, fraction: float) -> None:
        bar.set_postfix_str(stage)
        bar.update(round(100 * fraction) - bar.n)

    given = {k: v for k, v in (("min_votes", args.min_votes), ("seed", args.seed), ("shortlist", args.shortlist))
             if v is not None}  # the defaults live in learn()
    try:
        result = learn(ws, args.base, args.metric, args.name, sessions=args.session or None, db_url=args.db,
                       all_systems=args.all_systems, include_flagged=args.include_flagged,
                       overwrite=args.overwrite, progress=progress, **given)
    finally:
        bar.close()
    print("\n".join(result.lines()))
    metric = "l1" if result.base_system.endswith("/l1") else "l2"
    print(f"search with it: lookalike search --model {result.name} --metric {metric} -w {ws.root}; it competes in "
          "Dope or Nope when served" + (" (one player's taste: served to that player only)" if args.session else ""))
    return 0


def cmd_photos_make(args: argparse.Namespace) -> int:
    from .photos import make_query_photos

    ws = _workspace(args)
    items, described = None, f"split {args.split!r} items"
    if args.validation_of is not None:
        from .training.trainer import TrainConfig, training_split

        saved = ws.models_dir / args.validation_of / "model.json"
        if not saved.is_file():
            raise LookalikeError(f"--validation-of: no model {args.validation_of!r} trained in {ws.root}")
        config = TrainConfig.from_saved(json.loads(saved.read_text())["config"])
        items = training_split(ws, config)[1]
        described = f"validation items of {args.validation_of}"
    path = make_query_photos(ws, args.out, count=args.count, split=args.split, items=items, seed=args.seed,
                             maker=args.style)
    print(f"wrote synthetic photos ({args.style}) of {described} and {path}")
    print(f"evaluate with: lookalike evaluate --query-photos {path} --models MODEL -w {ws.root}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from .mapping import make_map

    make_map(_workspace(args), args.model, sample=args.sample, seed=args.seed, perplexity=args.perplexity)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .web import Settings

    systems = [s.strip() for s in args.systems.split(",") if s.strip()] if args.systems else None
    pool = {k: v for k, v in (("workers", args.workers), ("queue", args.queue), ("explore", args.explore),
                              ("taste_votes", args.taste_votes), ("taste_base", args.taste_base)) if v is not None}
    return _serve(_workspace(args), Settings(db_url=args.db, secret=args.secret, systems=systems,
                                             max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                                             secure_cookies=args.secure_cookies, admin_token=args.admin_token,
                                             api_docs=args.api_docs, **pool),
                  args.host, args.port, args.log_level)


def _serve(ws, settings, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from .web import create_app

    app = create_app(ws, settings)
    _warm_up_localiser(app)
    print(f"Lookalike on http://{host}:{port}/  (systems: {', '.join(app.state.lookalike.systems)})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
    return 0


def _warm_up_localiser(app) -> None:
    """Load (on first use: export) the item localiser before serving, so the first upload does not wait."""
    from PIL import Image

    try:
        app.state.lookalike.engine.localiser().locate(Image.new("RGB", (64, 64), (128, 128, 128)))
    except LookalikeError as error:  # weights missing: uploads still work with a box or --box none
        print(f"lookalike: the item localiser is not available ({error}); photos are searched whole")


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .workspace import Workspace

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    ws = Workspace(args.workspace)
    run_demo(ws, limit=args.limit, seed=args.seed, models=models)
    if args.no_serve:
        return 0
    from .mapping import make_map

    print(f"== 8. map of {models[-1]} (t-SNE)")
    make_map(ws, models[-1], sample=min(1000, len(ws.catalogue)), seed=args.seed)
    print("== 9. the web app: search by photo, map, Dope or Nope, leaderboard (Ctrl-C stops it)")
    from .web import Settings

    return _serve(ws, Settings(), args.host, args.port, "warning")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lookalike", description="Visual item search: find products that look alike.")
    parser.add_argument("--version", action="version", version=f"lookalike {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("-w", "--workspace", type=Path, default=None, help=WORKSPACE_HELP)
        p.set_defaults(func=func)
        return p

    from .catalogue import list_readers

    p = add("import", cmd_import, "import a catalogue (images with category labels) into the workspace")
    p.add_argument("kind", help=f"reader: {', '.join(list_readers())}")
    p.add_argument("source", nargs="?", default=None,
                   help="folder or file to read (fashion-mnist defaults to /usr/share/datasets/fashion-mnist)")
    p.add_argument("--limit", type=int, default=None, help="import a seeded random sample of at most N items")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")

    p = add("models", cmd_models, "list the feature extractors (with the models trained in the workspace)")
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'vgg16*'")
    p.add_argument("--json", action="store_true")

    p = add("extract", cmd_extract, "compute the feature vectors the store lacks (resumable)")
    p.add_argument("--model", required=True, help="extractor name (see: lookalike models)")
    p.add_argument("--weights", default=None, help="local weights file (e.g. torchvision's vgg16-397923af.pth)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true", help="discard stored vectors of this model first")
    p.add_argument("--split", default=None, help="only items of this split")
    p.add_argument("--limit", type=int, default=None,
                   help="only a seeded random sample of N items (of --split); a larger N extends a smaller one")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    p.add_argument("--precision", choices=["float32", "int8"], default="float32",
                   help="int8: quantise the model (ONNX Runtime static, calibrated on the catalogue's images) "
                        "and extract into the model MODEL-int8")
    p.add_argument("--dask", default=None, metavar="tcp://HOST:PORT|local:N",
                   help="compute on a Dask cluster (a scheduler's address, or local:N worker processes on "
                        "127.0.0.1); workers need the images at the same paths")
    p.add_argument("--calibration-images", type=int, default=None, metavar="N",
                   help="with --precision int8: seeded catalogue images to calibrate on (default 256)")

    p = sub.add_parser("features", help="feature store tools", description="feature store tools")
    fsub = p.add_subparsers(dest="features_command", required=True, metavar="ACTION")
    e = fsub.add_parser("export", help="write ids and vectors to an .npz file")
    e.add_argument("-w", "--workspace", type=Path, default=None, help=WORKSPACE_HELP)
    e.add_argument("--model", required=True)
    e.add_argument("--out", required=True, type=Path)
    e.set_defaults(func=cmd_features_export)

    p = sub.add_parser("photos", help="query photos: make synthetic phone photos of catalogue items",
                       description="query photos: make synthetic phone photos of catalogue items")
    psub = p.add_subparsers(dest="photos_command", required=True, metavar="ACTION")
    e = psub.add_parser("make", help="phone-like photos of seeded items of a split, with photos.csv (true boxes, "
                                     "item ids) for evaluate --query-photos")
    e.add_argument("-w", "--workspace", type=Path, default=None, help=WORKSPACE_HELP)
    e.add_argument("--out", required=True, type=Path, help="folder for photos/ and photos.csv")
    e.add_argument("--split", default="test", help="photograph items of this split (default test)")
    e.add_argument("--validation-of", default=None, metavar="MODEL",
                   help="photograph the validation items of this trained model instead (for choosing models "
                        "without touching the test split)")
    e.add_argument("--count", type=int, default=400, help="number of photos (default 400)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--style", choices=PHOTO_MAKERS, default="clutter",
                   help="clutter: the maker the photos recipe trains on (drawn clutter); scene: independent code, "
                        "items lit and shadowed in real photographs with camera shake, colour cast and a low-res "
                        "sensor, for judging a model on photos unlike its training ones; phone: a third, the item on a "
                        "shop rail among others, in an app's screenshot or cut by the frame, full-size phone JPEGs "
                        "some stored turned (EXIF) (default clutter)")
    e.set_defaults(func=cmd_photos_make)

    from .index import list_indexes

    p = add("index", cmd_index, "build a nearest-neighbour index from a feature store, and measure it")
    p.add_argument("--model", default=None)
    p.add_argument("--metric", default="l1,l2,hamming", help="comma-separated metrics (default: all three)")
    p.add_argument("--backend", default=None,
                   help=f"one of: {', '.join(list_indexes())} (default: the stored index's, else faiss-flat); "
                        "stored with the index, so search, neighbours, evaluate and serve use it")
    p.add_argument("--param", default=None, metavar="NAME=V,...",
                   help="backend parameters, e.g. M=32,efSearch=64 (faiss-hnsw) or nlist=1024,nprobe=32 "
                        "(faiss-ivf); see --list")
    p.add_argument("--db", default=None,
                   help="pgvector backend: 'embedded' (a PostgreSQL server with its data in WS/pg) or a "
                        "postgresql:// URL (a password is read from PGPASSWORD or ~/.pgpass, never stored)")
    p.add_argument("--shards", default=None, metavar="URL1,URL2,...",
                   help="pgvector backend: spread the rows over these PostgreSQL servers (postgres_fdw partitions "
                        "of the --db coordinator; each shard sorts by distance itself)")
    p.add_argument("--measure", type=int, default=1000, metavar="N",
                   help="recall@10 against exact search on N of the catalogue's own items (seeded), latency, "
                        "queries/s (default 1000; 0 skips)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print the measurements as one JSON list")
    p.add_argument("--list", action="store_true", help="list the backends and their parameters")

    p = add("neighbours", cmd_neighbours, "export the k nearest items of every catalogue item (JSON lines): "
                                          "a 'similar products' feed")
    p.add_argument("--model", required=True)
    p.add_argument("--metric", default="l2", help="l1, l2 or hamming (default l2)")
    p.add_argument("-k", type=int, default=10, help="neighbours per item (default 10)")
    p.add_argument("--out", required=True, type=Path, help="the .jsonl file to write")
    p.add_argument("--items", type=Path, default=None,
                   help="only these query items: one id per line, or a CSV with an item_id column")
    p.add_argument("--batch-size", type=int, default=1024)

    p = add("remove", cmd_remove, "take items out of the catalogue, the feature stores and the indexes")
    p.add_argument("ids", nargs="*", help="item ids")
    p.add_argument("--from-file", type=Path, default=None,
                   help="ids to remove: one per line, or a CSV with an item_id column")

    p = add("search", cmd_search, "find the catalogue items nearest to an item or a photo")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--item", help="catalogue item id to search from (excluded from its own results)")
    q.add_argument("--image", type=Path, help="photo to search from")
    p.add_argument("--box", default=None,
                   help="where the item is: x1,y1,x2,y2 in pixels, 'auto' (find it; the default) or 'none' (the "
                        "whole photo)")
    p.add_argument("--model", required=True)
    p.add_argument("--metric", default="l2", help="l1, l2 or hamming (default l2)")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--weights", default=None, help="weights file, for models whose weights are not packaged")
    p.add_argument("--query-kind", choices=["photo", "catalogue"], default="photo",
                   help="--image is a customer's photo (the default: searched with the model's photo model, where "
                        "it names one) or a clean catalogue image (searched with the model itself)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add("evaluate", cmd_evaluate, "nearest-match same-category accuracy of every model x metric")
    p.add_argument("--models", required=True, help="comma-separated extractors with features in the workspace")
    p.add_argument("--metrics", default="l1,l2,hamming")
    p.add_argument("--subset", type=int, default=20000, help="gallery size (seeded random subset; default 20000)")
    p.add_argument("--queries", type=int, default=1000, help="number of queries (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", choices=["subset", "held-out"], default="subset",
                   help="subset: queries from the gallery (the post's); held-out: queries from --split")
    p.add_argument("--split", default="test", help="query split for the held-out protocol (default test)")
    p.add_argument("--gallery-split", default=None,
                   help="held-out protocol: gallery from this split only (default: every other split)")
    p.add_argument("--query-photos", type=Path, default=None, metavar="CSV",
                   help="search with these photos instead (path,category[,x1,y1,x2,y2][,item]; paths relative to "
                        "the CSV); the gallery is --subset items (outside --split for held-out) plus the named items")
    p.add_argument("--box", default=None, metavar="MODES",
                   help="with --query-photos: any of given,auto,none (the CSV's box, the localiser's, the whole "
                        "photo; default all three)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--report", type=Path, default=None, metavar="DIR",
                   help="write report.md, report.json, top1.png and matches.png into DIR")

    p = add("train", cmd_train, "transfer learning: train a new dense layer + softmax on a backbone's features")
    p.add_argument("--backbone", default=None, help="pretrained extractor whose features feed the new layer "
                   "(required unless --recipe picks one)")
    p.add_argument("--name", required=True, help="name of the new model (an extractor once trained)")
    p.add_argument("--recipe", choices=["photos"], default=None,
                   help="photos: the recommended model for customer photos in one command (Lite0 + street-to-shop "
                        "training on synthetic photos, chosen on validation photos) and the item localiser; other "
                        "flags override its settings")
    p.add_argument("--hidden", type=int, default=None, help="units of the new hidden layer (default 4096)")
    p.add_argument("--top-categories", type=int, default=None, metavar="K",
                   help="train on the K most common categories only")
    p.add_argument("--epochs", type=int, default=None, help="default 20 (the photos recipe: 30)")
    p.add_argument("--batch-size", type=int, default=None, help="default 256")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (one-cycle schedule, AdamW)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--dropout", type=float, default=None, help="dropout after the hidden layer")
    p.add_argument("--input-dropout", type=float, default=None, help="dropout on the backbone features")
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--holdout-split", default=None, help="split never used for training (default test)")
    p.add_argument("--finetune-blocks", type=int, default=None, metavar="N",
                   help="also train the backbone's last N blocks on the images (slow; meant for a GPU)")
    p.add_argument("--head", choices=["mlp", "conv"], default=None,
                   help="mlp: the dense layer on the vectors (default); conv: a small CNN first, for image-shaped "
                        "vectors (pixels)")
    p.add_argument("--conv-depth", type=int, default=None, metavar="D",
                   help="conv layers per stage of the conv head (default 1; 2 is a VGG-style stage)")
    p.add_argument("--conv-widths", type=_channel_counts, default=None, metavar="C1,C2,...",
                   help="channels of the conv head's stages, each ending in a 2x2 max-pool (default 32,64,128)")
    p.add_argument("--augment", action="store_true", default=None,
                   help="random flips and 2-pixel shifts of image-shaped vectors (pixels) while training")
    p.add_argument("--erase", type=float, default=None, metavar="P",
                   help="with --augment: random erasing, a noise rectangle on this share of the training images")
    p.add_argument("--flip-tta", action="store_true", default=None,
                   help="conv head: an image's vector is the mean of its own and its mirror image's (validation, "
                        "extract and search alike)")
    p.add_argument("--loss", choices=["softmax", "cosface"], default=None,
                   help="softmax: ReLU hidden layer + softmax (the post's); cosface: L2-normalised hidden layer + "
                        "large-margin cosine softmax, which makes nearest neighbours follow the classifier")
    p.add_argument("--margin", type=float, default=None, help="cosface margin in cosine (default 0.2)")
    p.add_argument("--scale", type=float, default=None, help="cosface logit scale (default 16)")
    p.add_argument("--localiser-photos", type=int, default=None, metavar="N",
                   help="--recipe photos: synthetic photos the item localiser trains on (default 6000; half on real photographs)")
    p.add_argument("--photo-views", type=int, default=None, metavar="V",
                   help="street-to-shop: V synthetic phone photos per training item, paired with the clean item "
                        "(frozen backbone, mlp head; the best epoch is chosen on validation photos)")
    p.add_argument("--instance-weight", type=float, default=None,
                   help="with --photo-views: weight of the photo-to-its-item contrastive loss (default 1)")
    p.add_argument("--temperature", type=float, default=None, help="of that loss (default 0.05)")
    p.add_argument("--val-photos", type=int, default=None, help="validation photos with --photo-views (default 500)")
    p.add_argument("--real-backgrounds", type=float, default=None, metavar="P",
                   help="with --photo-views: share of the synthetic photos set in real photographs (scikit-image's "
                        "samples) instead of drawn clutter (default 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=None, help="seed of the validation split (and, without --init-seed, "
                   "of the initial weights and batch order; default 0)")
    p.add_argument("--init-seed", type=int, default=None,
                   help="another seed for the initial weights and batch order, same split: models to ensemble")
    p.add_argument("--overwrite", action="store_true", help="discard a model of that name and train anew")

    p = add("combine", cmd_combine, "late fusion: a model whose vector joins other models' normalised vectors")
    p.add_argument("--models", required=True, help="comma-separated models to combine, e.g. pixels-cnn,lite0-head")
    p.add_argument("--name", required=True, help="name of the combined model")
    p.add_argument("--weights", default=None, help="comma-separated positive weights (default: all 1)")
    p.add_argument("--photo-model", default=None,
                   help="a model that answers searches by photo in this one's place (e.g. the parts trained on "
                        "photos, without one trained on clean images only)")
    p.add_argument("--overwrite", action="store_true", help="replace a combined model of that name")

    p = add("learn", cmd_learn, "learn a new model from the Dope-or-Nope votes on a base system (a taste)")
    p.add_argument("--base", required=True, help="the base model, e.g. efficientnet-lite0")
    p.add_argument("--metric", default="l2", help="the base system's metric (default l2)")
    p.add_argument("--name", required=True, help="name of the learned model")
    p.add_argument("--session", action="append", default=[],
                   help="learn one player's taste from their votes only (a session id from the admin vote export; "
                        "repeat for several)")
    p.add_argument("--db", default=None, help="votes database URL (default: sqlite in the workspace)")
    p.add_argument("--all-systems", action="store_true",
                   help="learn from every verdict, whichever system showed the pair (a verdict is about two items)")
    p.add_argument("--min-votes", type=int, default=None, help="fewest votes to learn from (default 50)")
    p.add_argument("--include-flagged", action="store_true",
                   help="also learn from flagged votes (e.g. on items the voter looked up first)")
    p.add_argument("--shortlist", type=int, default=None,
                   help="the base's nearest items the learned taste re-ranks (default 30, as the game explores)")
    p.add_argument("--seed", type=int, default=None, help="seed of the held-out folds and samples (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a learned model of that name")

    p = add("map", cmd_map, "2-D t-SNE map of a seeded sample of the catalogue (for the web page and reports)")
    p.add_argument("--model", required=True)
    p.add_argument("--sample", type=int, default=2000, help="items in the map (default 2000)")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)

    p = add("serve", cmd_serve, "start the web app: search by photo, map, Dope or Nope, leaderboard")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--db", default=None, help="votes database URL (default: sqlite in the workspace; "
                                              "postgresql://user:pass@host/db for a server)")
    p.add_argument("--secret", default=None, help="signing secret (default $LOOKALIKE_SECRET or WS/web-secret)")
    p.add_argument("--systems", default=None,
                   help="competing systems, comma-separated MODEL/METRIC (default: every model x metric)")
    p.add_argument("--max-upload-mb", type=int, default=10)
    p.add_argument("--secure-cookies", action="store_true", help="set when served over HTTPS")
    p.add_argument("--admin-token", default=None,
                   help="token for the full vote export with session ids (/api/admin/votes.jsonl; default "
                        "$LOOKALIKE_ADMIN_TOKEN; none: that export is off)")
    p.add_argument("--api-docs", action="store_true",
                   help="serve /docs and /redoc (their pages load Swagger UI / ReDoc from a CDN)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads that decode photos, run the models and search them (default: one per core "
                        "but one)")
    p.add_argument("--queue", type=int, default=None,
                   help="requests that may wait for a worker before the server answers 503 (default 8)")
    p.add_argument("--explore", type=float, default=None,
                   help="share of game pairs showing a lower-ranked match (rank 2-30), to learn tastes from (default "
                        "0.5; the leaderboard counts top matches only)")
    p.add_argument("--taste-votes", type=int, default=None,
                   help="votes a player needs before 'learn my taste' (default 50)")
    p.add_argument("--taste-base", default=None,
                   help="MODEL/METRIC personal tastes start from (default: the first served system of a model "
                        "that is neither appearance nor learned from votes)")
    p.add_argument("--log-level", default="info")

    p = add("info", cmd_info, "summarise a workspace")
    p.add_argument("--json", action="store_true")

    p = add("demo", cmd_demo, "build a Fashion-MNIST workspace, extract, index and show searches")
    p.add_argument("--limit", type=int, default=5000, help="items to import (default 5000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="pixels,efficientnet-lite0", help="comma-separated extractors")
    p.add_argument("--no-serve", action="store_true", help="stop after the evaluation instead of starting the app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # a long job's progress shows when its output is a file or pipe
    try:
        return args.func(args)
    except LookalikeError as exc:
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lookalike: interrupted; finished work is kept, run the command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
