"""The `hiermovie` command: one subcommand per job, each reading one typed config."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable

from hiermovie.config import ConfigError, add_arguments, dump, resolve

# subcommand -> (module, config class, run function, one-line help)
JOBS: dict[str, tuple[str, str, str, str]] = {
    "extract": ("hiermovie.workflows.extract", "ExtractConfig", "run_extract",
                "run a frozen backbone over every clip into a Zarr feature store"),
    "pretrain-ctx": ("hiermovie.workflows.pretrain_ctx", "PretrainCtxConfig", "run_pretrain_ctx",
                     "pretrain the contextualizer by mask prediction on a store"),
    "pretrain-backbone": ("hiermovie.workflows.pretrain_backbone", "PretrainBackboneConfig",
                          "run_pretrain_backbone",
                          "train a video backbone self-supervised (CVRL or rho-BYOL)"),
    "probe": ("hiermovie.workflows.probe", "ProbeConfig", "run_probe",
              "train task heads on frozen features and print the results table"),
    "synth": ("hiermovie.workflows.synth", "SynthConfig", "run_synth",
              "render the synthetic movie benchmark (VidSitu and LVU layouts)"),
    "demo": ("hiermovie.workflows.demo", "DemoConfig", "run_demo",
             "synthetic benchmark -> extract -> pretrain-ctx -> probe, on this machine"),
}


def _available_jobs() -> dict[str, tuple[type, Callable[..., int], str]]:
    out = {}
    for name, (module, cfg, fn, help_) in JOBS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # this job is not part of this build
                continue
            raise
        out[name] = (getattr(mod, cfg), getattr(mod, fn), help_)
    return out


def _store_info(url: str, storage_options: str) -> int:
    from hiermovie.feature_store import FeatureStore

    store = FeatureStore(url, storage_options=json.loads(storage_options) or None, cache_bytes=0)
    info = store.info()
    prov = info.pop("provenance")
    print(f"store      {info['url']}")
    print(f"backbone   {prov['backbone']}  (weights {prov['weights_fingerprint'] or '-'})")
    print(f"features   K={prov['tokens_per_segment']} D={prov['dim']} {prov['dtype']}, "
          f"storage {info['storage']}")
    if prov.get("weights_origin"):
        print(f"weights    {prov['weights_origin']}")
    print(f"sampling   {prov['sampling']}")
    print(f"preprocess {prov['preprocessing']}")
    print(f"written by hiermovie {prov['package_version']} at {prov['created']} "
          f"(format {prov['format_version']})")
    print(f"counts     {info['shards']} shards, {info['videos']} videos ({info['videos_ok']} ok, "
          f"{info['videos_failed']} failed), {info['segments']} segments")
    print(f"sizes      {info['feature_bytes'] / 2**20:.2f} MiB of features, "
          f"{info['feature_bytes_stored'] / 2**20:.2f} MiB stored")
    for vid, err in info["failures"].items():
        print(f"failed     {vid}: {err}")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="hiermovie", description="Hierarchical self-supervised movie representations.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    jobs = _available_jobs()
    for name, (cfg_cls, fn, help_) in jobs.items():
        p = sub.add_parser(name, help=help_, description=(fn.__doc__ or help_).split("\n")[0])
        add_arguments(p, cfg_cls)
    store = sub.add_parser("store", help="inspect a feature store")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    info = store_sub.add_parser("info", help="print a store's provenance, sizes and counts")
    info.add_argument("url", help="store path or fsspec URL")
    info.add_argument("--storage-options", default="{}", help="fsspec options as JSON")
    return parser, jobs


def main(argv: list[str] | None = None) -> int:
    parser, jobs = build_parser()
    args = parser.parse_args(argv)
    from hiermovie.feature_store import StoreError

    try:
        if args.command == "store":
            return _store_info(args.url, args.storage_options)
        cfg_cls, fn, _ = jobs[args.command]
        cfg = resolve(cfg_cls, args)
        if args.print_config:
            print(dump(cfg), end="")
            return 0
        return int(fn(cfg) or 0)
    except (ConfigError, StoreError, ValueError, FileNotFoundError) as e:
        print(f"hiermovie {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hiermovie {args.command}: interrupted; rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
