"""The `hiermovie` command: one subcommand per job, each reading one typed config."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import sys
from collections.abc import Callable

from hiermovie.config import ConfigError, Terminated, add_arguments, dump, resolve

# subcommand -> (module, config class, run function, one-line help)
JOBS: dict[str, tuple[str, str, str, str]] = {
    "extract": ("hiermovie.workflows.extract", "ExtractConfig", "run_extract",
                "run a frozen backbone over every clip into a Zarr feature store"),
    "pretrain-ctx": ("hiermovie.workflows.pretrain_ctx", "PretrainCtxConfig", "run_pretrain_ctx",
                     "pretrain the contextualizer by mask prediction on a store"),
    "pretrain-backbone": ("hiermovie.workflows.pretrain_backbone", "PretrainBackboneConfig",
                          "run_pretrain_backbone",
                          "train a video backbone self-supervised (CVRL or rho-BYOL)"),
    "probe vidsitu": ("hiermovie.workflows.probe.vidsitu", "VidSituProbeConfig", "run_vidsitu",
                      "VidSitu verbs, relations and roles: each row's heads, at one or more "
                      "label counts"),
    "probe lvu": ("hiermovie.workflows.probe.lvu", "LvuProbeConfig", "run_lvu",
                  "the nine LVU long-form tasks on windows of segment features"),
    "probe score": ("hiermovie.workflows.probe.score", "ScoreConfig", "run_score",
                    "the official metrics of a VidSitu prediction file"),
    "synth": ("hiermovie.workflows.synth", "SynthConfig", "run_synth",
              "render the synthetic movie benchmark (VidSitu and LVU layouts)"),
    "demo": ("hiermovie.workflows.demo", "DemoConfig", "run_demo",
             "synthetic benchmark -> extract -> pretrain-ctx -> probe, on this machine"),
}


def _load_job(name: str) -> tuple[type, Callable[..., int]] | None:
    """The config class and run function of one job, importing only its module (the jobs'
    modules import torch, transformers or Ray: importing all of them took 5-9 s)."""
    module, cfg, fn, _ = JOBS[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:  # this job is not part of this build
            return None
        raise
    return getattr(mod, cfg), getattr(mod, fn)


def _command(argv: list[str]) -> str | None:
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["probe"] and len(words) > 1 and f"probe {words[1]}" in JOBS:
        return f"probe {words[1]}"
    return words[0] if words else None


def _store_info(url: str, storage_options: str, list_videos: bool = False,
                verify: bool = False) -> int:
    from hiermovie.feature_store import FeatureStore

    store = FeatureStore(url, storage_options=json.loads(storage_options) or None, cache_bytes=0)
    info = store.info()
    prov = info.pop("provenance")
    print(f"store      {info['url']}")
    random = not prov["preprocessing"].get("weights") and not prov.get("weights_origin")
    weights = ("RANDOM initialisation, not trained weights" if random and "imported" not in
               prov["sampling"] else prov["preprocessing"].get("weights") or "from the file")
    print(f"backbone   {prov['backbone']}  (weights: {weights}; fingerprint "
          f"{prov['weights_fingerprint'] or '-'})")
    print(f"features   K={prov['tokens_per_segment']} D={prov['dim']} {prov['dtype']}, "
          f"storage {info['storage']}")
    if prov.get("weights_origin"):
        print(f"weights    {prov['weights_origin']}")
    from hiermovie.pipeline.plans import fields_used

    print(f"sampling   {fields_used(prov['sampling'])}")
    print(f"preprocess {prov['preprocessing']}")
    print(f"written by hiermovie {prov['package_version']} at {prov['created']} "
          f"(format {prov['format_version']})")
    print(f"counts     {info['shards']} shards, {info['videos']} videos ({info['videos_ok']} ok, "
          f"{info['videos_failed']} failed), {info['segments']} segments")
    print(f"sizes      {info['feature_bytes'] / 2**20:.2f} MiB of features, "
          f"{info['feature_bytes_stored'] / 2**20:.2f} MiB stored")
    for vid, err in info["failures"].items():
        print(f"failed     {shown(vid)}: {err}")
    bad = store.check(deep=verify)
    what = "every chunk read back" if verify else "metadata; --verify reads every chunk"
    if not bad:
        print(f"check      sound: {info['shards']} shards match the schema ({what})")
    for shard, why in bad.items():
        print(f"check      shard {shard}: {why}")
    if list_videos:
        for vid in store.videos(status=None):
            e = store.entry(vid)
            print(f"video      {shown(vid)}\t{e.status}\t{e.num_segments} segments\t"
                  f"{e.duration_s:.2f} s{chr(9) + e.error if e.error else ''}")
    if bad:
        print(f"hiermovie store: error: {url}: {len(bad)} of {info['shards']} shards do not "
              "match the schema (listed above); readers refuse them", file=sys.stderr)
        return 2
    return 0


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict]:
    """The parser, with the flags of the one job `argv` names (the others only listed)."""
    from hiermovie import __version__

    parser = argparse.ArgumentParser(
        prog="hiermovie", description="Hierarchical self-supervised movie representations.")
    parser.add_argument("--version", action="version", version=f"hiermovie {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _command(argv)
    jobs = {}
    probe = sub.add_parser("probe", help="judge features and contextualizers with task heads "
                           "(vidsitu, lvu, score)")
    probe_sub = probe.add_subparsers(dest="probe_command", required=True, metavar="TASK")
    for name, (*_, help_) in JOBS.items():
        job = _load_job(name) if name == chosen else None
        if name == chosen and job is None:
            continue
        parent, word = (probe_sub, name.split()[1]) if name.startswith("probe ") else (sub, name)
        p = parent.add_parser(word, help=help_, description=(
            (job[1].__doc__ or help_).split("\n")[0] if job else help_))
        if job:
            add_arguments(p, job[0])
            jobs[name] = (*job, p)
    store = sub.add_parser("store", help="inspect a feature store")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    info = store_sub.add_parser("info", help="print a store's provenance, sizes and counts")
    info.add_argument("url", help="store path or fsspec URL")
    info.add_argument("--storage-options", default="{}", help="fsspec options as JSON")
    info.add_argument("--videos", action="store_true", help="list every video")
    info.add_argument("--verify", action="store_true", help="read every chunk back, as well "
                      "as checking each shard's metadata against the schema")
    export = store_sub.add_parser("export", help="write a store's features, times and "
                                  "provenance to HDF5 (.h5) or a folder of .npy files")
    export.add_argument("url", help="store path or fsspec URL")
    export.add_argument("--to", required=True, help="out.h5 / out.hdf5, or a folder")
    export.add_argument("--storage-options", default="{}", help="fsspec options as JSON")
    imp = store_sub.add_parser("import", help="make a store from HDF5 (.h5) or a folder of "
                               "{id}_feats.npy files (an export keeps its provenance)")
    imp.add_argument("source", help="file.h5 or a folder of .npy files")
    imp.add_argument("url", help="the new store")
    imp.add_argument("--dtype", choices=["float16", "float32"], default=None,
                     help="stored dtype (default: the input's; float16 stays float16, other "
                          "types become float32)")
    imp.add_argument("--segment-s", type=float, default=None,
                     help="segment length when the input has no times (default: 2 s for .npy "
                          "as VidSitu, 1 s for HDF5)")
    return parser, jobs


def _store_transfer(args: argparse.Namespace) -> int:
    from hiermovie.feature_store import FeatureStore, interop

    if args.store_command == "export":
        store = FeatureStore(args.url, storage_options=json.loads(args.storage_options) or None)
        to_h5 = args.to.endswith((".h5", ".hdf5"))
        n = (interop.export_hdf5 if to_h5 else interop.export_npy_folder)(store, args.to)
        print(f"store export: {n} videos -> {args.to}")
        return 0
    h5 = args.source.endswith((".h5", ".hdf5"))
    kw = {"dtype": args.dtype}
    if args.segment_s:
        kw["segment_s"] = args.segment_s
    n = (interop.import_hdf5 if h5 else interop.import_npy_folder)(args.source, args.url, **kw)
    print(f"store import: {n} videos -> {args.url}")
    return 0


def _refuse_unknown(sub: argparse.ArgumentParser, unknown: list[str]) -> None:
    """A mistyped flag: the job's usage, and the nearest field."""
    import difflib

    flag = next((u for u in unknown if u.startswith("--")), unknown[0]).split("=", 1)[0]
    known = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    near = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else f"; see {sub.prog} --help"
    sub.print_usage(sys.stderr)
    sub.exit(2, f"{sub.prog}: error: unrecognized argument {flag}{hint}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, jobs = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if args.command == "probe":
        args.command = f"probe {args.probe_command}"
    if unknown:
        if args.command in jobs:
            _refuse_unknown(jobs[args.command][2], unknown)
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    from hiermovie.datasets.manifest import ManifestError
    from hiermovie.feature_store import StoreError

    try:
        if args.command == "store" and args.store_command == "info":
            return _store_info(args.url, args.storage_options, args.videos, args.verify)
        if args.command == "store":
            return _store_transfer(args)
        cfg_cls, fn, _ = jobs[args.command]
        cfg = resolve(cfg_cls, args)
        if args.print_config:
            print(dump(cfg), end="")
            return 0
        return int(fn(cfg) or 0)
    except (ConfigError, StoreError, ManifestError, FileNotFoundError) as e:
        # what the user can fix; anything else is a bug and keeps its traceback
        print(f"hiermovie {args.command}: error: {bounded(str(e))}", file=sys.stderr)
        return 2
    except (NotADirectoryError, IsADirectoryError, FileExistsError) as e:
        # a location the user gave that is a file where a folder must be (or the reverse)
        print(f"hiermovie {args.command}: error: {bounded(f'{e.filename}: {e.strerror}')}; "
              "give another location", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise  # anything else is a bug and keeps its traceback
        # the disk, not the input: exit 1; what was written before stays, a rerun resumes
        where = f"{e.filename}: " if e.filename else ""
        print(f"hiermovie {args.command}: error: {bounded(where + (e.strerror or str(e)))}; "
              "free space (or fix permissions) and rerun the same command", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM where a job turned it into this
        print(f"hiermovie {args.command}: interrupted; rerun the same command to resume",
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) or Terminated.seen else 130


def shown(video_id: str) -> str:
    """An id as printed for a person: escaped (repr) when it holds a control or formatting
    character (a newline, a right-to-left override), which would make it read as another."""
    from hiermovie.datasets.manifest import misleading

    return repr(video_id) if misleading(video_id) else video_id


def bounded(message: str, limit: int = 400) -> str:
    """At most `limit` characters of an error: messages quote the user's input, which can be
    huge (a YAML file whose anchors expand to megabytes)."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}... ({len(message) - limit} more characters not shown)"


if __name__ == "__main__":
    sys.exit(main())
