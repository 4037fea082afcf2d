"""The jobs, each a config dataclass and a `run_*` function (what the CLI calls), wiring the
lower subpackages together: `extract`, `pretrain_ctx`, `pretrain_backbone`, `probe` (vidsitu,
lvu, score), `synth`, `demo`; `presets` holds the recipes and worlds the demo and benchmarks
share, `steps` runs an experiment as cached, timed steps; `training` (with `checkpoints` and
`distributed`) is what both training loops share; `progress` draws the jobs' progress bars;
`cli` parses flags into a config."""

from hiermovie.lazy import lazy_exports

_WHERE = {"ExtractConfig": "extract", "run_extract": "extract",
          "PretrainCtxConfig": "pretrain_ctx.config", "run_pretrain_ctx": "pretrain_ctx.job",
          "PretrainBackboneConfig": "pretrain_backbone",
          "run_pretrain_backbone": "pretrain_backbone",
          "VidSituProbeConfig": "probe.config", "LvuProbeConfig": "probe.config",
          "run_vidsitu": "probe.vidsitu", "run_lvu": "probe.lvu", "SynthConfig": "synth",
          "run_synth": "synth", "DemoConfig": "demo", "run_demo": "demo"}
__getattr__ = lazy_exports(__name__, _WHERE)
__all__ = sorted(_WHERE)
