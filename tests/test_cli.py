import subprocess
import sys

import pytest

from hiermovie.config import ConfigError, from_dict, load_file
from hiermovie.workflows.cli import JOBS, main
from hiermovie.workflows.extract import ExtractConfig
from tests.reliability import record
from tests.videos import make_video


def test_every_subcommand_has_help(capsys):
    for name in [*JOBS, "store"]:
        with pytest.raises(SystemExit) as e:
            main([*name.split(), "--help"])
        assert e.value.code == 0
        assert f"hiermovie {name}" in capsys.readouterr().out


def test_config_file_then_flags(tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('input = "clips"\nvideos_per_shard = 5\n[backbone]\nname = "tiny3d"\n'
                    'tokens = [1, 2, 2]\n')
    assert main(["extract", "--config", str(toml), "--videos_per_shard", "7",
                 "--plan.kind", "sliding", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "videos_per_shard: 7" in out and "kind: sliding" in out and "input: clips" in out
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(out)  # the printed config loads back as the same config
    assert from_dict(ExtractConfig, load_file(yaml_file)).backbone.tokens == [1, 2, 2]


@pytest.mark.parametrize("args, message", [
    (["extract", "--videos_per_shard", "x"], "videos_per_shard: expected an integer, got 'x'"),
    (["extract", "--videos_per_shard", "0"], "videos_per_shard: must be >= 1"),
    (["extract", "--plan.kind", "foo"], "plan.kind: must be one of"),
    (["extract", "--backbone.tokens", "1,2"], "backbone.tokens: must be three positive integers"),
    (["extract", "--strict", "maybe"], "strict: expected true or false"),
    (["extract", "--backbone.batch_size", "many"], "backbone.batch_size"),
    (["extract", "--plan.num_frames", "-1"], "plan.num_frames"),
    (["pretrain-ctx", "--mask_ratio", "1.5"], "mask.ratio"),
    (["pretrain-backbone", "--clip.clips", "1"], "clip"),
    (["probe", "vidsitu", "--rows", "nonsense"], "rows"),
])
def test_bad_values_give_one_line_naming_the_field(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    record("Bad manifests, stores and configs (exit 2, one line)", f"`hiermovie {' '.join(args)}`",
           1, f"refused: `{err.split('error: ')[-1][:100]}`")


def test_unknown_field_in_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("backbone:\n  nmae: tiny3d\n")
    with pytest.raises(ConfigError, match="backbone.nmae: unknown field"):
        from_dict(ExtractConfig, load_file(f))


def test_console_script_runs_store_info_on_bad_url(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hiermovie.workflows.cli", "store", "info",
                        str(tmp_path / "nope.zarr")], capture_output=True, text=True)
    assert r.returncode == 2 and "not a Zarr group" in r.stderr


def test_top_level_help_and_version_import_no_job(capsys):
    probe = ("import sys; from hiermovie.workflows.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('torch', 'ray', 'transformers', 'zarr') "
             "if m in sys.modules))")
    for args, words in ((["--help"], "extract"), (["--version"], "hiermovie 0"),
                        (["extract", "--help"], "--plan.kind")):
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                           text=True)
        assert words in r.stdout, r.stdout + r.stderr
        loaded = r.stdout.strip().splitlines()[-1]
        assert "torch" not in loaded and "ray" not in loaded, (args, loaded)
    r = subprocess.run([sys.executable, "-m", "hiermovie", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "COMMAND" in r.stdout


def test_choices_listed_and_typos_suggested(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    assert "one of auto, vidsitu, sliding, explicit" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as e:
        main(["extract", "--plan.kindd", "sliding"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage: hiermovie extract" in err
    assert "did you mean --plan.kind?" in err


@pytest.mark.parametrize("kind", ["missing", "not a contextualizer"])
def test_bad_contextualizer_path_is_one_line(tmp_path, kind):
    from hiermovie.contextualizer import load_contextualizer

    path = tmp_path / "ctx"
    if kind != "missing":
        path.mkdir()
        (path / "notes.txt").write_text("x")
    with pytest.raises(ValueError) as e:
        load_contextualizer(str(path))
    assert str(path) in str(e.value) and len(str(e.value).splitlines()) == 1
    assert ("no such folder" if kind == "missing" else "not a contextualizer") in str(e.value)


def test_store_info_shows_the_plan_used_random_weights_and_videos(tmp_path, capsys):
    import dataclasses

    from hiermovie.feature_store import Provenance
    from hiermovie.pipeline.plans import PlanConfig
    from tests.conftest import make_record, write_store

    url = str(tmp_path / "s.zarr")
    plan = dataclasses.asdict(PlanConfig(kind="sliding"))
    write_store(url, Provenance(backbone="tiny3d", dim=8, dtype="float32",
                                 sampling={**plan, "resize": "squash"},
                                 preprocessing={"weights": ""}), [make_record("clip-a", 2)])
    assert main(["store", "info", url, "--videos"]) == 0
    out = capsys.readouterr().out
    assert "RANDOM initialisation" in out and "window_s" in out
    assert "events" not in out and "event_s" not in out  # the vidsitu plan's fields
    assert "clip-a\tok\t2 segments" in out


def test_an_internal_bug_keeps_its_traceback(monkeypatch, tmp_path):
    import hiermovie.workflows.synth as synth

    def buggy(cfg):
        raise ValueError("an internal bug, not the user's")

    monkeypatch.setattr(synth, "run_synth", buggy)
    with pytest.raises(ValueError, match="internal bug"):
        main(["synth", "--out", str(tmp_path / "s")])


@pytest.mark.parametrize("flags, message", [
    (["--backbone.name", "slowfst_r50"], "did you mean 'slowfast_r50'?"),
    (["--backbone.name", "tiny3"], "did you mean 'tiny3d'?"),
    (["--backbone.weights", "/no/such/weights.pth"], "/no/such/weights.pth: no such file"),
    (["--backbone.name", "trained/no/such/run"], "no no/such/run (expected the output folder"),
    (["--backbone.name", "zoo/nope"], "zoo/nope: not in the zoo (shipped: "),
    (["--backbone.name", "hf/not a hub id!"], "no such folder, and not a hub id"),
    (["--backbone.name", "hf/nobody/not-cached-model"], "not in the local Hugging Face cache"),
    (["--backbone.name", "slowfast_r50", "--backbone.weights", "/no/SLOWFAST_8x8.pkl"],
     "/no/SLOWFAST_8x8.pkl: no such file"),
])
def test_a_wrong_backbone_is_one_line_before_ray_starts(tmp_path, capsys, flags, message,
                                                        monkeypatch):
    import ray

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    from tests.videos import make_video

    make_video(tmp_path / "clips" / "a.mp4", seconds=1.0)
    rc = main(["extract", "--input", str(tmp_path / "clips"), "--store",
               str(tmp_path / "f.zarr"), *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert not ray.is_initialized() and not (tmp_path / "f.zarr").exists()
    record('Refusals in one line',
           f"extract with {' '.join(flags)}",
           1,
           'exit 2, one line, before Ray starts (an unknown name was a 30-line '
           'ActorDiedError)')


def test_an_error_quoting_a_huge_value_stays_short(tmp_path, capsys):
    """A 1 KB YAML config whose anchors expand (a "billion laughs" document) is refused with
    one short line, not the expanded value."""
    lines = ["videos_per_shard:", '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"  {name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    f = tmp_path / "laughs.yaml"
    f.write_text("\n".join(lines) + "\n")
    assert f.stat().st_size < 1024
    assert main(["extract", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert "videos_per_shard: expected an integer" in err and len(err) < 600
    assert len(err.splitlines()) == 1
    record('Refusals in one line',
           'a 1 KB YAML config whose anchors expand (billion laughs)',
           1,
           'exit 2, one line under 600 characters (it was 33.9 MB)')


def test_a_contextualizer_with_pickled_weights_is_refused_unrun(tmp_path, capsys):
    """A contextualizer folder whose weights are a pickled pytorch_model.bin (code that runs
    when unpickled): one line naming the folder; the code never runs (only
    model.safetensors is read)."""
    import pickle

    from hiermovie.contextualizer import Contextualizer, ContextualizerConfig, load_contextualizer

    path = tmp_path / "ctx"
    Contextualizer(ContextualizerConfig(in_dim=8, width=16, layers=1, heads=2, ffn=32)
                   ).save_pretrained(path)
    (path / "model.safetensors").unlink()

    class Boom:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    (path / "pytorch_model.bin").write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(ValueError) as e:
        load_contextualizer(str(path))
    assert str(path) in str(e.value) and "pickled weights are never loaded" in str(e.value)
    assert len(str(e.value).splitlines()) == 1
    assert "pickled code ran" not in capsys.readouterr().out
    record('Security',
           'a contextualizer folder holding a pickled pytorch_model.bin that runs code',
           1,
           'refused in one line; never unpickled (only model.safetensors is read)')


@pytest.mark.parametrize("args", [
    ["extract", "--input", "{t}/no-such-folder", "--store", "{t}/s.zarr"],
    ["extract", "--input", "{t}/videos", "--store", "{t}/a-file"],
    ["extract", "--input", "{t}/no-videos", "--store", "{t}/s.zarr"],
    ["pretrain-ctx", "--store", "{t}/missing.zarr", "--out", "{t}/ctx"],
    ["pretrain-ctx", "--store", "{t}/a-file", "--out", "{t}/ctx"],
    ["pretrain-backbone", "--input", "{t}/no-such-folder", "--out", "{t}/bb"],
    ["pretrain-backbone", "--input", "{t}/videos", "--out", "{t}/bb", "--labelled",
     "vidsitu:{t}/no-data"],
    ["probe", "vidsitu", "--store", "{t}/missing.zarr", "--data", "vidsitu:{t}/no-data"],
    ["probe", "lvu", "--store", "{t}/missing.zarr", "--data", "lvu:{t}/no-data"],
    ["probe", "score", "--data", "vidsitu:{t}/no-data", "--predictions", "{t}/none.json"],
    ["synth", "--out", "{t}/a-file"],
    ["demo", "--workdir", "{t}/a-file"],
    ["store", "info", "{t}/missing.zarr"],
    ["store", "info", "{t}/a-file"],
    ["store", "export", "{t}/missing.zarr", "--to", "{t}/out.h5"],
    ["store", "import", "{t}/missing.h5", "{t}/back.zarr"],
], ids=lambda a: " ".join(a[:2]) + (" (a file)" if "{t}/a-file" in a else "")
   + (" (no videos)" if "{t}/no-videos" in a else "")
   + (" (labelled check)" if "--labelled" in a else ""))
def test_every_job_refuses_a_bad_input_in_one_line_with_exit_2(tmp_path, capsys, args):
    """The README's exit-code contract, job by job: an input, file or location the user gave
    that cannot be used is exit 2 and one bounded line naming it, never a traceback."""
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "videos").mkdir()
    make_video(tmp_path / "videos" / "v.mp4", 2.0)
    make_video(tmp_path / "videos" / "w.mp4", 2.0)
    (tmp_path / "no-videos").mkdir()
    (tmp_path / "no-videos" / "readme.md").write_text("x")
    argv = [a.format(t=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hiermovie {argv[0]}") and ": error: " in err[0]
    assert str(tmp_path) in err[0] and len(err[0]) < 600, err
    shown = " ".join(a.replace(str(tmp_path), "T") for a in argv)
    said = err[0].split(": error: ")[-1].replace(str(tmp_path), "T")
    record("Refusals in one line", f"`hiermovie {shown}` (a missing path, a file where a "
           "folder must be, or a folder with no videos)", 1, f"exit 2, one line: `{said[:100]}`")


def test_nested_sections_keep_their_flat_names_for_a_release(capsys):
    """`mask` and `world` are nested sections; their fields' old flat names still work, in
    Python, files and flags, and giving one value both ways is refused."""
    import yaml

    from hiermovie.workflows.pretrain_ctx import PretrainCtxConfig
    from hiermovie.workflows.synth import SynthConfig

    nested = from_dict(PretrainCtxConfig, {"mask": {"loss": "l2", "ratio": 0.5}})
    assert from_dict(PretrainCtxConfig, {"loss": "l2", "mask_ratio": 0.5}) == nested
    assert nested.mask.loss == "l2" and nested.mask.ratio == 0.5
    assert main(["pretrain-ctx", "--loss", "l2", "--mask_ratio", "0.5", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["mask"]["loss"] == "l2" and printed["mask"]["ratio"] == 0.5
    assert "loss" not in printed and "mask_ratio" not in printed
    assert main(["pretrain-ctx", "--loss", "l2", "--mask.loss", "cosine"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert from_dict(SynthConfig, {"p_hidden": 0.3}).world.p_hidden == 0.3
    assert main(["synth", "--world.p_hidden", "2", "--out", "x"]) == 2
    assert "world.p_hidden: must be in [0, 1]" in capsys.readouterr().err
