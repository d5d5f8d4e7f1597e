"""Command line: ``python -m detectors scan|train|evaluate|calibrate|export-heldout|bench|reference-band``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from . import provenance, records
from .media import expand_inputs  # noqa: F401 (also part of this module's interface)

EXIT_OK, EXIT_UNREADABLE_INPUT, EXIT_MISSING_EXTRA = 0, 2, 3
_PROGRESS_FROM = 4  # inputs; fewer finish before a bar would tell anything


def _local_records(inputs: Sequence[Path], args: argparse.Namespace) -> Iterable[records.ScanRecord]:
    import torch

    from . import registry
    from .faces import FaceCropper
    from .pipeline import Analyzer, detector_workers

    loaded = registry.load_all(device=torch.device(args.device))
    for message in loaded.messages:
        print(f"scan: {message}", file=sys.stderr)
    analyzer = Analyzer(loaded.detectors, FaceCropper(device=args.device), ensemble=registry.load_ensemble(loaded.detectors),
                        workers=detector_workers(loaded.detectors))
    scanned = analyzer.scan_many(inputs, frames=args.frames, rule=args.rule)
    yield from tqdm(scanned, total=len(inputs), desc="scan", unit="file", file=sys.stderr, disable=len(inputs) < _PROGRESS_FROM)


def cmd_scan(args: argparse.Namespace) -> int:
    inputs = expand_inputs(args.paths)
    if not inputs:
        print("scan: no image or video files found in the given paths", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    form = "parquet" if args.output and args.output.endswith(".parquet") else args.format
    if args.engine == "ray":
        from . import archive

        try:
            archive.ray_module()
        except archive.RayMissing as error:
            print(f"scan: {error}", file=sys.stderr)
            return EXIT_MISSING_EXTRA
        scanned = archive.scan(inputs, args.frames, args.rule, args.workers, args.address, args.device)
    else:
        scanned = _local_records(inputs, args)
    if form == "parquet":
        if not args.output:
            print("scan: Parquet output needs a file: -o records.parquet", file=sys.stderr)
            return EXIT_UNREADABLE_INPUT
        try:
            out = records.ParquetOut(args.output)
        except ImportError:
            print(f"scan: {records.PARQUET_HINT}", file=sys.stderr)
            return EXIT_MISSING_EXTRA
    else:
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    kept, failed, counts = [], 0, {}
    try:
        for record in scanned:
            failed += record["error"] is not None
            provenance.tally(counts, record.get("provenance"))
            if args.provenance and not provenance.matches(record.get("provenance"), args.provenance):
                continue
            if form == "jsonl":
                out.write(records.to_json(record) + "\n")
                out.flush()
            elif form == "parquet":
                out.write(record)
            else:
                kept.append(record)
        if form == "csv":
            out.write(records.csv_text(kept))
    finally:
        if out is not sys.stdout:
            out.close()
    if failed:
        print(f"scan: {failed} of {len(inputs)} inputs could not be read (see their 'error' field)", file=sys.stderr)
    if args.provenance_summary:
        print(f"scan: {provenance.summary(counts)}", file=sys.stderr)
    return EXIT_UNREADABLE_INPUT if failed else EXIT_OK


def cmd_reference_band(args: argparse.Namespace) -> int:
    from .faces import FaceCropper
    from .spectrum import (BAND_SOURCES, REFERENCE_PATH, ReferenceBands, above_the_band, face_side, log_spectrum,
                           radial_profile, real_faces)
    from .training.reference_band import band_files

    sources = args.sources or list(BAND_SOURCES)
    try:
        built = {name: band_files(args.data, name, "build", args.seed) for name in sources}
        checked = {name: band_files(args.data, name, "check", args.seed) for name in sources}
    except (FileNotFoundError, StopIteration):
        print(f"reference-band: {args.data} lacks one of the sources {', '.join(sources)}", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    cropper = FaceCropper()

    def faces():
        for name, files in built.items():
            for crop in tqdm(real_faces(files, cropper, args.count), total=args.count, desc=name, unit="face", file=sys.stderr):
                yield name, crop.image, face_side(crop)

    built_from = (f"up to {args.count} faces per source from its train and validation files (the split of "
                  f"detectors/training/sources.csv; web-faces, not in that table: the half of its files a seeded hash "
                  f"of the file name puts on the build side), most confident face per picture, cut by the app's cropper; "
                  f"file order seed {args.seed}")
    bands = ReferenceBands.from_faces(faces(), built_from)
    bands.save(Path(args.out) if args.out else REFERENCE_PATH)
    for band in bands.bands:
        print(f"{band.size_label}: {band.count} faces ({band.sources_label})", file=sys.stderr)
    print(f"reference bands from {bands.count} faces written to {args.out or REFERENCE_PATH}", file=sys.stderr)
    if args.check:
        print(f"held-out real faces above their band's 95 % edge over most of the upper half ({args.check} per source):", file=sys.stderr)
        for name, files in checked.items():
            above = [above_the_band(radial_profile(log_spectrum(crop.image))[1], bands.for_face(face_side(crop)))
                     for crop in real_faces(files, cropper, args.check)]
            print(f"  {name}: {sum(above)} of {len(above)} ({sum(above) / max(1, len(above)):.0%})", file=sys.stderr)
    return EXIT_OK


def cmd_manifest(args: argparse.Namespace) -> int:
    from . import registry

    path = registry.write_manifest()
    pinned = registry.manifest(path)
    for name, digests in pinned.items():
        print(f"{name}: " + ", ".join(f"{file} {digest[:12]}" for file, digest in digests.items()))
    print(f"pinned {len(pinned)} checkpoints in {path}", file=sys.stderr)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from . import bench

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench: --device cuda asked for, but no CUDA device is available", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compare_face_search:
        agreement = bench.face_search_agreement(expand_inputs(args.compare_face_search), frames=args.video_frames)
        if not agreement:
            print(f"bench: nothing to compare: no readable picture or clip in {' '.join(args.compare_face_search)}", file=sys.stderr)
            return EXIT_UNREADABLE_INPUT
        print(json.dumps(agreement, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(agreement, indent=2) + "\n")
        return EXIT_OK
    reference = bench.resnet50_reference(device)
    timings, extra = [], {}
    if args.provenance_only:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="deepfake-bench-provenance-"))
        timings = bench.provenance_timings(bench.large_photo(folder / "photo_12mp.jpg"), folder, args.repeats)
    elif not (args.models_only or args.training_only):
        chosen = expand_inputs([args.folder])[: args.folder_count] if args.folder else ()
        timings, extra = bench.pipeline_timings(device, repeats=args.repeats, video_frames=args.video_frames, workers=args.workers,
                                                   clip_seconds=args.clip_seconds, folder_count=args.folder_count, portrait_files=chosen)
        # Measured again after the pipeline and pooled: the machine's speed drifts within a run (on a shared
        # 2-core machine the reference moved from 82 to 134 ms between runs minutes apart).
        before, after = reference, bench.resnet50_reference(device)
        reference = before + after
        extra["reference_ms_before_and_after"] = [round(before.median_s * 1000, 1), round(after.median_s * 1000, 1)]
        if not args.no_startup:
            import tempfile

            timings += bench.startup_timings(Path(tempfile.mkdtemp(prefix="deepfake-bench-start-")))
    if args.models or args.models_only:
        timings += bench.model_latency(device, variants=args.variants, batches=args.batches, repeats=args.repeats)
    if args.training or args.training_only:
        timings += bench.training_steps(device, variants=args.variants, repeats=args.repeats)
    result = bench.report(reference, timings, device, **extra)
    print(f"device: {result['machine']}\n")
    print(bench.markdown_table(reference, timings))
    if "reference_ms_before_and_after" in result:
        print("\nreference (median of both): {} ms before the stages, {} ms after".format(*result["reference_ms_before_and_after"]))
    print(f"\npeak resident memory: {result['peak_rss_mb']:.0f} MB")
    if "video_frames_per_second" in result:
        print(f"video throughput: {result['video_frames_per_second']} sampled frames/s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return EXIT_OK


DEFAULT_DATA = "../shared/data"


def _cache_limits(args: argparse.Namespace) -> dict[str, int]:
    return {"celeba": args.max_celeba} if args.max_celeba else {}


def _face_cache(args: argparse.Namespace) -> Path:
    """Crop the data's faces once (reused when nothing changed); returns the cache folder."""
    from .training.data import build_cache, default_cache

    cache = Path(args.cache) if args.cache else default_cache(args.data, DEFAULT_DATA)
    if int(os.environ.get("RANK", "0")) == 0:
        build_cache(args.data, cache, _cache_limits(args), seed=args.seed, workers=args.cache_workers, table=args.sources)
    return cache


def cmd_train(args: argparse.Namespace) -> int:
    from .training.trainer import train

    try:
        overrides = json.loads(args.overrides) if args.overrides else None
        changes = json.loads(args.recipe) if args.recipe else None
        if changes is not None and not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        if changes:
            from .training.trainer import RECIPES, recipe_with

            recipe_with(RECIPES[(args.detector, args.variant)], changes)  # refused before any data is read
    except ValueError as error:
        print(f"train: --recipe / --overrides: {error}", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    cache = _face_cache(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import time

        while not (cache / "manifest.json").exists():  # rank 0 is building it
            time.sleep(2)
    best = train(args.detector, args.variant, cache, Path(args.out), seed=args.seed, device=args.device,
                 steps=args.steps, workers=args.workers, val_sbi_count=args.val_sbi, overrides=overrides,
                 batch_size=args.batch_size, lr=args.lr, cpu_bf16=args.bf16, init_from=args.init_from,
                 validate_every=args.validate_every, recipe_changes=changes)
    if int(os.environ.get("RANK", "0")) == 0:
        from .training.model_card import write_model_card

        write_model_card(best, args)
        print(f"best checkpoint: {best}", file=sys.stderr)
    return EXIT_OK


def cmd_export_heldout(args: argparse.Namespace) -> int:
    from .training.data import load_all
    from .training.heldout import export

    folders = export(load_all(_face_cache(args)), args.data, args.out, split=args.split)
    for name, folder in folders.items():
        print(f"{name}: {folder}")
    return EXIT_OK


def _scorers(names: Sequence[str], device: str):
    """Loaded detectors for checkpoint folders or shipped names; 'all' = every registered one + the ensemble."""
    import torch

    from . import checkpoints, registry
    from .checkpoints import CheckpointError

    wanted = list(registry.DETECTORS) + ["ensemble"] if names == ["all"] else list(names)
    loaded = []
    for name in wanted:
        if name == "ensemble":
            continue
        source = str(registry.ASSETS / name) if name in registry.DETECTORS else name
        try:
            architecture = name if name in registry.DETECTORS else checkpoints.load_config(source).architecture
            detector = registry.load_detector(architecture, source, torch.device(device))
        except CheckpointError as error:
            print(f"evaluate: {error}", file=sys.stderr)
            continue
        loaded.append(detector)
    if "ensemble" in wanted:
        ensemble = registry.load_ensemble(loaded)
        if ensemble is not None:
            loaded.append(ensemble)
    return loaded


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import roc, score_folder, summarise
    from .media import InputError

    scorers = _scorers(args.checkpoint, args.device)
    if not scorers:
        print("evaluate: no checkpoint could be loaded", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    try:
        scored = score_folder(args.data, scorers, frames=args.frames)
    except InputError as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    result = {"data": str(args.data), **summarise(scored, scorers)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.roc:
        roc(scored, f"ROC: {Path(args.data).name}").write_html(args.roc, include_plotlyjs="cdn")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .training.calibrate import fit_and_save_clip_rule, fit_and_save_ensemble, heldout_report

    if args.report:
        print(heldout_report(_face_cache(args), args.report, args.device, args.candidate or (), args.clip_logits))
        return EXIT_OK

    if args.clips:
        path, report = fit_and_save_clip_rule(_face_cache(args), Path(args.out) if args.out else None, args.device,
                                              args.clip_rule, tuple(args.clip_splits), args.clip_logits)
        print(report)
        print(f"clip rule written to {path} (field 'clip'); run `python -m detectors manifest` to pin it", file=sys.stderr)
        return EXIT_OK
    path = fit_and_save_ensemble(_face_cache(args), args.device, Path(args.out) if args.out else None, members=args.members,
                                 clip_rule=args.clip_rule, clip_splits=tuple(args.clip_splits), clip_logits=args.clip_logits)
    print(f"ensemble rule written to {path}", file=sys.stderr)
    return EXIT_OK


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="the shared data folder (see ../shared/data/README.md), or your own folder with real/ and fake/ "
                             "sub-folders of images or videos (searched recursively)")
    parser.add_argument("--sources", help="a table of sources (CSV, as detectors/training/sources.csv) for --data; "
                                          "default: real/ + fake/ when --data has them, else the shared data's table")
    parser.add_argument("--cache", help="where face crops are cached (never committed; default cache/faces for the shared "
                                        "data, a folder of its own under cache/ for other data)")
    parser.add_argument("--max-celeba", type=int, default=0,
                        help="CelebA images to use (0 = all: 7,000 in the shared data since it was cut from 12,000)")
    parser.add_argument("--cache-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    from . import models  # the registered detectors and their variants are the choices

    detector_names = [spec.name for spec in models.specs()]
    variant_names = sorted({variant for spec in models.specs() for variant in spec.variants})
    parser = argparse.ArgumentParser(prog="python -m detectors", description="Deepfake detectors side by side.")
    commands = parser.add_subparsers(dest="command", required=True)

    scan = commands.add_parser("scan", help="score images and videos (files or folders); one record per file")
    scan.add_argument("paths", nargs="+", help="image or video files, or folders (searched recursively)")
    scan.add_argument("--format", choices=("jsonl", "csv", "parquet"), default="jsonl",
                      help="jsonl (default), csv, or parquet (also chosen by -o ending in .parquet; needs pyarrow)")
    scan.add_argument("--frames", type=int, default=16, help="frames sampled evenly from each video (default 16)")
    scan.add_argument("--rule", choices=["mean", "confident"], default="mean",
                      help="how frame scores become a video's score (see README: Video aggregation)")
    scan.add_argument("--output", "-o", help="write here instead of standard output")
    scan.add_argument("--device", default="cpu", help="torch device for face detection and the detectors")
    scan.add_argument("--engine", choices=("local", "ray"), default="local",
                      help="local (default): this process; ray: Ray Data workers, on this machine or a cluster (see README: Scanning an archive)")
    scan.add_argument("--address", help="with --engine ray: the Ray cluster to join (default: $RAY_ADDRESS, else a local instance)")
    scan.add_argument("--workers", type=int, default=2, help="with --engine ray: worker processes, each with its own detectors (default 2)")
    scan.add_argument("--provenance", choices=list(provenance.FILTERS),
                      help="write only the records whose file declares this about its origin (see README: Provenance)")
    scan.add_argument("--provenance-summary", action="store_true",
                      help="after the scan, count the files by what they declare (on standard error)")
    scan.set_defaults(run=cmd_scan)

    band = commands.add_parser("reference-band", help="compute the real-face spectrum bands shipped in assets/")
    band.add_argument("--data", default="../shared/data", help="the shared data folder (default ../shared/data)")
    band.add_argument("--sources", nargs="+", help="real sources to build from (default: all of spectrum.BAND_SOURCES)")
    band.add_argument("--count", type=int, default=300, help="faces per source (default 300)")
    band.add_argument("--check", type=int, default=60, help="held-out (test) faces per source to check the bands on (default 60; 0: none)")
    band.add_argument("--seed", type=int, default=0, help="order in which files are drawn")
    band.add_argument("--out", help="output JSON (default assets/spectrum_reference.json)")
    band.set_defaults(run=cmd_reference_band)
    train = commands.add_parser("train", help="train a detector on ../shared/data (face cache built on first use)")
    # Any architecture the models package can build: the shipped detectors and those still in training (effnet).
    train.add_argument("--detector", required=True, choices=models.names())
    train.add_argument("--variant", default="small", choices=sorted({v for name in models.names() for v in models.variants(name)}))
    train.add_argument("--out", required=True, help="run folder: resumable state and the best checkpoint (out/best)")
    _data_arguments(train)
    train.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    train.add_argument("--steps", type=int, help="override the recipe's number of steps (smoke runs)")
    train.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    train.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    train.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                       help="bf16 autocast on the CPU (default: the recipe's; always on a GPU)")
    train.add_argument("--validate-every", type=int, help="steps between validations (each saves the resumable state)")
    train.add_argument("--init-from", help="start from this checkpoint's weights (a shipped name's folder such as "
                                           "assets/checkpoints/sficonv, or another run's best/); a run folder with a saved "
                                           "state resumes that instead: running the same command again continues a run")
    train.add_argument("--workers", type=int, default=1, help="data loader processes")
    train.add_argument("--val-sbi", type=int, default=400, help="validation reals for the self-blended set (shared over the real sources)")
    train.add_argument("--overrides", help="JSON object of architecture overrides, e.g. '{\"input_size\": 96}'")
    train.add_argument("--recipe", help="JSON object of recipe fields to change for an experiment, e.g. "
                                        "'{\"source_adversary\": 1.0, \"mix\": {\"self-blended\": 0.5, \"gan\": 0.5}}' "
                                        "(the model card records the whole recipe)")
    train.set_defaults(run=cmd_train)

    export = commands.add_parser("export-heldout", help="write the held-out test sets as real/ and fake/ folders")
    _data_arguments(export)
    export.add_argument("--split", default="test", choices=("val", "test"))
    export.add_argument("--out", default="cache/heldout")
    export.set_defaults(run=cmd_export_heldout)

    evaluate = commands.add_parser("evaluate", help="AUC, AP, EER, accuracy, TPR at 1 %% / 5 %% FPR on real/ and fake/ folders")
    evaluate.add_argument("--checkpoint", nargs="+", default=["all"], help=f"checkpoint folders or shipped names ({', '.join(detector_names)}, ensemble); 'all' by default")
    evaluate.add_argument("--data", required=True, help="folder with real/ and fake/ sub-folders")
    evaluate.add_argument("--frames", type=int, default=16, help="frames sampled per video")
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--json", help="write the metrics here too")
    evaluate.add_argument("--roc", help="write a plotly ROC figure (HTML) here")
    evaluate.set_defaults(run=cmd_evaluate)

    calibrate = commands.add_parser("calibrate", help="fit the ensemble rule on validation data (assets/checkpoints/ensemble.json)")
    _data_arguments(calibrate)
    calibrate.add_argument("--device", default="cpu")
    calibrate.add_argument("--report", choices=("val", "test"),
                           help="fit nothing: print the shipped detectors' and ensemble's AUC per held-out set and the "
                                "evidence levels per source on that split (the cached crops)")
    calibrate.add_argument("--candidate", nargs="+", metavar="FOLDER",
                           help="with --report: also score these checkpoint folders (e.g. runs/effnet-small/best), in the "
                                "AUC and real-vs-real tables, without shipping or refitting anything")
    calibrate.add_argument("--members", action="store_true",
                           help="also refit each shipped detector's own thresholds (config.json); run `manifest` after")
    calibrate.add_argument("--out", help="where to write the rule (default assets/checkpoints/ensemble.json); with --clips, "
                                         "the ensemble rule to add the clip rule to")
    calibrate.add_argument("--clips", action="store_true",
                           help="fit only the clip rule (how a clip's frames make its level) on the cached validation clips and "
                                "store it in the ensemble rule's 'clip' field; `calibrate` alone also does it after the ensemble")
    calibrate.add_argument("--clip-rule", default="trimmed", choices=("trimmed", "mean", "share", "pool", "auto"),
                           help="the clip score (default trimmed; auto: the best validation AUC of mean, trimmed, share)")
    calibrate.add_argument("--clip-splits", nargs="+", default=["val"], choices=("train", "val"),
                           help="the clips it is fitted on (default val; train clips only for detectors that never trained on them)")
    calibrate.add_argument("--clip-logits", help="the file of every cached clip frame's logits (default <cache>/clip_frame_logits.npz)")
    calibrate.set_defaults(run=cmd_calibrate)

    manifest = commands.add_parser("manifest", help="pin the sha256 of the shipped checkpoints (assets/checkpoints/MANIFEST.json)")
    manifest.set_defaults(run=cmd_manifest)

    bench = commands.add_parser("bench", help="time the app's path stage by stage (median and p95) against a ResNet-50 reference")
    bench.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    bench.add_argument("--repeats", type=int, default=10, help="timed runs per stage after warm-up")
    bench.add_argument("--video-frames", type=int, default=16, help="frames sampled from the generated clip")
    bench.add_argument("--clip-seconds", type=float, default=10.0, help="length of the generated clip")
    bench.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    bench.add_argument("--workers", type=int, default=0,
                       help="detectors run side by side in this many threads (default: as the app and scan run them)")
    bench.add_argument("--models", action="store_true", help="also time every architecture and variant (random weights)")
    bench.add_argument("--models-only", action="store_true", help="only the architecture table (the latency table of docs/speed.md)")
    bench.add_argument("--training", action="store_true",
                       help="also time one training step per architecture: fp32, channels-last, bf16 autocast (batch 32)")
    bench.add_argument("--training-only", action="store_true", help="only the training-step table (implies --training)")
    bench.add_argument("--variants", nargs="+", default=["small", "paper"], choices=variant_names)
    bench.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    bench.add_argument("--folder", help="a folder of pictures for the folder-scan figure (default: generated portraits)")
    bench.add_argument("--folder-count", type=int, default=200, help="pictures in the folder scan (default 200)")
    bench.add_argument("--no-startup", action="store_true", help="skip the cold-start runs (scan and app processes)")
    bench.add_argument("--provenance-only", action="store_true",
                       help="only the provenance lines: reading a 12-megapixel JPEG without a manifest, with EXIF and XMP, signed")
    bench.add_argument("--compare-face-search", nargs="+", metavar="PATH",
                       help="only compare the face search with facenet-pytorch's MTCNN on these pictures, clips or folders: "
                            "faces found by each, boxes' IoU, milliseconds per picture (per folder)")
    bench.add_argument("--json", help="also write the figures to this JSON file")
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "frames", 1) < 1:
        print("scan: --frames must be at least 1", file=sys.stderr)
        return EXIT_UNREADABLE_INPUT
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        sys.stderr.close()
        return EXIT_OK
