"""Malformed manifests and prediction files: exit 2, one line naming the file, the line (or
entry) and what is wrong, in the user's terms; never a traceback, never accepted with wrong ids,
never scored."""

import json

import pytest

from hiermovie.datasets.manifest import load_videos
from hiermovie.workflows.cli import main
from tests.conftest import write_store
from tests.reliability import record
from tests.videos import make_video

CSV_CASES = [  # (what, bytes, words the one line must hold)
    ("header only", b"video_id,path\n", "no rows after the header"),
    ("empty file", b"", "empty file"),
    ("a row with too few fields", b"video_id,path\na,a.mp4\nb\n", ":3: 1 fields, the header has 2"),
    ("an unquoted comma in a path", b"video_id,path\na,my,clip.mp4\n",
     ":2: 3 fields, the header has 2 (a comma inside a path must be quoted)"),
    ("an empty path", b"video_id,path\na,\n", ":2: empty path"),
    ("an empty id", b"video_id,path\n,a.mp4\n", ":2: empty video_id"),
    ("Latin-1 bytes (a spreadsheet's legacy export)", b"video_id,path\nca\xe9,a.mp4\n",
     "not UTF-8 text"),
    ("a bad time", b"video_id,path,start_s,end_s\na,a.mp4,0,soon\n", ":2: bad time 'soon'"),
    ("a duplicate video id", b"video_id,path\na,x.mp4\na,y.mp4\n", "duplicate video id 'a'"),
    ("missing columns", b"id,file\na,x.mp4\n", "missing column(s)"),
    ("a segment ending before it starts", b"video_id,path,start_s,end_s\na,x.mp4,5,2\n",
     "end_s 2.0 <= start_s 5.0"),
]
JSONL_CASES = [
    ("an array on a line", b'["a", "a.mp4"]\n', ":1: expected an object"),
    ("a null path", b'{"video_id": "a", "path": null}\n', ":1: path must be a non-empty string"),
    ("a null id", b'{"video_id": null, "path": "a.mp4"}\n', ":1: video_id must be a non-empty"),
    ("truncated JSON", b'{"video_id": "a", "path": "a.mp4"}\n{"video_id": "b",\n',
     ":2: not valid JSON"),
    ("segments as a string", b'{"video_id": "a", "path": "a.mp4", "segments": "0-2"}\n',
     ":1: segments must be a list"),
    ("no rows", b"\n\n", "no videos listed"),
]


@pytest.mark.parametrize("what,data,words", CSV_CASES + JSONL_CASES,
                         ids=[c[0] for c in CSV_CASES + JSONL_CASES])
def test_malformed_manifest_is_one_line_naming_the_line(tmp_path, capsys, what, data, words):
    suffix = ".csv" if (what, data, words) in CSV_CASES else ".jsonl"
    path = tmp_path / f"manifest{suffix}"
    path.write_bytes(data)
    assert main(["extract", "--input", str(path), "--store", str(tmp_path / "s.zarr"),
                 "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and words in err, err
    assert not (tmp_path / "s.zarr").exists()
    record("Malformed manifests", f"{suffix} manifest: {what}", 1, f"exit 2: `{words}`")


def test_spreadsheet_csvs_are_read_as_meant(tmp_path):
    """A byte-order mark, semicolons (many locales' CSV), spaces around fields and a quoted
    comma: the ids and paths the user wrote."""
    path = tmp_path / "m.csv"
    path.write_bytes('\ufeffvideo_id; path\r\n a ; clip one.mp4\r\n"b;c";"x,y.mp4"\r\n'.encode())
    items = load_videos(str(path))
    assert [(i.video_id, i.path) for i in items] == [
        ("a", str(tmp_path / "clip one.mp4")), ("b;c", str(tmp_path / "x,y.mp4"))]
    arr = tmp_path / "m.json"
    arr.write_text(json.dumps([{"video_id": 7, "path": "seven.mp4"}]))
    assert [(i.video_id, i.path) for i in load_videos(str(arr))] == [
        ("7", str(tmp_path / "seven.mp4"))]


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    from hiermovie.datasets.synth import write_vidsitu

    root = tmp_path_factory.mktemp("ann")
    write_vidsitu(root, 2, 3, seed=0, render=False)
    return root


def _verbs(n=3):
    return [{"ann_idx": i, "pred_vbs_ev": [["jump.01"] * 5] * 5} for i in range(n)]


PRED_CASES = [  # (what, task, entries, words)
    ("four events instead of five", "verb",
     [{**p, "pred_vbs_ev": p["pred_vbs_ev"][:4]} for p in _verbs()],
     "entry 0 (ann_idx 0): pred_vbs_ev must hold 5 events, got 4"),
    ("a verb event that is a bare string", "verb",
     [{**p, "pred_vbs_ev": ["jump.01"] * 5} for p in _verbs()],
     "event 1 of pred_vbs_ev must be a list of ranked verb ids"),
    ("an ann_idx past the split", "verb", _verbs() + [{**_verbs(1)[0], "ann_idx": 99}],
     "entry 3: ann_idx 99 is not an index of the 3 clips"),
    ("relations with 2 labels per pair", "relation",
     [{"ann_idx": i, "pred_evrels_ev": [["Causes", "Causes"]] * 4} for i in range(3)],
     "event 1 of pred_evrels_ev must be a list of 3 relation labels"),
    ("roles whose phrases are lists", "roles",
     [{"ann_idx": i, "vb_output": {"Ev1": {"Arg0": ["a"]}}} for i in range(3)],
     "vb_output must map Ev1..Ev5 to an object of role -> phrase"),
    ("not a list", "verb", {"ann_idx": 0}, "expected a non-empty list of prediction entries"),
]


@pytest.mark.parametrize("what,task,entries,words", PRED_CASES, ids=[c[0] for c in PRED_CASES])
def test_malformed_prediction_file_is_refused_not_scored(annotations, tmp_path, capsys, what,
                                                         task, entries, words):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps(entries))
    assert main(["probe", "score", "--data", f"vidsitu:{annotations}", "--predictions",
                 str(path), "--task", task]) == 2
    out, err = capsys.readouterr()
    assert not out.strip()  # nothing scored
    assert len(err.strip().splitlines()) == 1 and str(path) in err and words in err, err
    record("Malformed prediction files", f"`probe score` of a {task} file: {what}", 1,
           f"exit 2, nothing scored: `{words}`")


def test_a_quoted_id_with_a_newline_is_refused_not_changed(tmp_path):
    """The CSV was split into lines before the reader saw it, so `"a<newline>b"` became the
    id `a` (and a row `b"`...); now the quoted field is read whole and refused by name, as is
    a right-to-left override that makes an id read as another."""
    from hiermovie.datasets.manifest import ManifestError, scan_folder

    (tmp_path / "v.mp4").write_bytes(b"")
    m = tmp_path / "m.csv"
    m.write_text('video_id,path\n"clip\nB",v.mp4\n')
    with pytest.raises(ManifestError, match=r"video id 'clip\\nB' holds a control"):
        load_videos(str(m))
    m.write_text("video_id,path\nclip\u202eB,v.mp4\n")
    with pytest.raises(ManifestError, match="holds a control or formatting character"):
        load_videos(str(m))
    m.write_text('video_id,path\n"a, b",v.mp4\n')  # a quoted comma is an ordinary id
    assert [i.video_id for i in load_videos(str(m))] == ["a, b"]
    # in a folder, such a file is skipped and named escaped; the others are extracted
    from tests.videos import make_video

    make_video(tmp_path / "clips" / "good.mp4", seconds=0.5)
    make_video(tmp_path / "clips" / "bad\nname.mp4", seconds=0.5)
    items, skipped = scan_folder(str(tmp_path / "clips"))
    assert [i.video_id for i in items] == ["good"]
    assert skipped == {"'bad\\nname.mp4'": "its name holds a control or formatting character"}
    record('Ids',
           'a CSV id quoted with a newline in it; an id with a right-to-left override',
           1,
           'refused naming the row (it was stored as another id); in a folder such a file is'
           ' skipped and listed escaped')


def test_store_import_of_an_object_npy_is_one_line_and_runs_nothing(tmp_path, capsys):
    """An object-dtype .npy can only be read by unpickling it: exit 2, one line naming the
    file (it was exit 1 with numpy's raw ValueError), and its payload never runs."""
    import numpy as np

    folder = tmp_path / "npy"
    folder.mkdir()
    marker = tmp_path / "ran"
    payload = np.array([_Boom(str(marker))], dtype=object)
    np.save(folder / "v1_feats.npy", payload, allow_pickle=True)
    rc = main(["store", "import", str(folder), str(tmp_path / "s.zarr")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "v1_feats.npy: refused" in err and "pickled objects are never loaded" in err
    assert not marker.exists()
    record('Security',
           '`store import` of an object-dtype .npy (only a pickle holds one)',
           1,
           'exit 2, one line naming the file; its payload never ran')


class _Boom:
    """Unpickling this creates a file: proof that pickled code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_export_of_an_id_too_long_for_a_file_name_is_refused_before_writing(tmp_path, capsys):
    """`store export --to dir/` of an id whose file name the file system cannot hold: exit 2,
    one line, and nothing written (it was OSError 'File name too long' after a partial
    export); HDF5 keeps any id."""
    import numpy as np

    from hiermovie.feature_store import Provenance, VideoRecord

    url = str(tmp_path / "s.zarr")
    ids = ["a", "x" * 300]
    write_store(url, Provenance(backbone="t", dim=4, dtype="float32"),
                [VideoRecord(v, np.ones((2, 1, 4), np.float32), np.arange(2.0),
                                  np.arange(2.0) + 1, np.zeros((2, 0), np.int64)) for v in ids])
    out = tmp_path / "out"
    assert main(["store", "export", url, "--to", f"{out}/"]) == 2
    err = capsys.readouterr().err
    assert "makes a file name of 310 bytes" in err and len(err.strip().splitlines()) == 1
    assert not any(out.glob("*.npy"))
    assert main(["store", "export", url, "--to", str(tmp_path / "o.h5")]) == 0
    record('Refusals in one line',
           '`store export --to dir/` of an id longer than a file name may be',
           1,
           'exit 2 before any file is written (was OSError after a partial export)')


@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_a_prediction_file_nested_too_deeply_is_one_line(annotations, tmp_path, capsys, suffix):
    """Nesting deep enough to exhaust Python's recursion (in the JSON parser, or in the
    checks of a pickle's entries) was a RecursionError traceback; now exit 2, one line."""
    import pickle

    path = tmp_path / f"pred{suffix}"
    if suffix == ".json":
        path.write_text("[" * 100_000 + "]" * 100_000)
    else:  # opcodes by hand: pickle.dumps itself recurses; loading is iterative
        def text(s: str) -> bytes:
            return b"X" + len(s).to_bytes(4, "little") + s.encode()

        n = 100_000
        path.write_bytes(b"\x80\x02]}" + text("ann_idx") + b"K\x00s" + text("pred_vbs_ev")
                         + b"]" * n + b"a" * (n - 1) + b"sa.")
        assert len(pickle.loads(path.read_bytes())) == 1
    assert main(["probe", "score", "--data", f"vidsitu:{annotations}", "--predictions",
                 str(path), "--task", "verb"]) == 2
    out, err = capsys.readouterr()
    assert not out.strip() and len(err.strip().splitlines()) == 1, err
    record('Refusals in one line',
           f"`probe score` of a {suffix} prediction file nested 100 000 deep",
           1,
           'exit 2, one line (was a RecursionError traceback)')


def test_a_store_location_holding_other_files_is_refused_by_every_job(tmp_path, capsys):
    url = tmp_path / "folder"
    url.mkdir()
    (url / "notes.txt").write_text("hello")
    make_video(tmp_path / "clips" / "v.mp4", 2.0)
    runs = [["store", "info", url], ["pretrain-ctx", "--store", url, "--out", tmp_path / "o"],
            ["extract", "--input", tmp_path / "clips", "--store", url, "--backbone.name",
             "tiny3d/8"]]
    for args in runs:
        assert main([str(a) for a in args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert str(url) in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in url.iterdir()) == ["notes.txt"]
    record("Bad manifests, stores and configs (exit 2, one line)",
           "store URL that is a folder of other files (store, pretrain-ctx, extract)", len(runs),
           f"refused: `{err.split('error: ')[-1][:100]}`")


@pytest.mark.parametrize("theirs", ["zarr group", "shards folder"])
def test_a_location_holding_someone_elses_zarr_group_or_shards_is_left_alone(tmp_path, capsys,
                                                                            theirs):
    """extract and store import refuse a folder holding the user's own Zarr group (a zarr.json
    with their attributes) or their own shards/ (both were adopted with exit 0, the zarr.json
    rewritten); nothing in it changes."""
    import numpy as np
    import zarr

    from tests.videos import make_video

    loc = tmp_path / "theirs"
    if theirs == "zarr group":
        zarr.open_group(str(loc), mode="w", attributes={"owner": "me"})
    else:
        (loc / "shards" / "mine").mkdir(parents=True)
        (loc / "shards" / "mine" / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in loc.rglob("*") if p.is_file()}
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "v1_feats.npy", np.ones((5, 8), np.float32))
    make_video(tmp_path / "clips" / "a.mp4", seconds=1.0)
    for args in (["store", "import", str(npy), str(loc)],
                 ["extract", "--input", str(tmp_path / "clips"), "--store", str(loc),
                  "--backbone.name", "tiny3d/8", "--plan.kind", "sliding"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "refusing to write into it" in err and len(err.strip().splitlines()) == 1, err
    assert {p: p.read_bytes() for p in loc.rglob("*") if p.is_file()} == before
    record('Store locations',
           f"extract and store import into a folder holding the user's own {theirs}",
           1,
           'both refused, exit 2, one line; nothing in the folder changed (was adopted, exit'
           ' 0)')


def test_store_info_escapes_ids_that_would_read_as_others(tmp_path, capsys):
    """Ids already in a store (another tool, an older version) print escaped when they hold a
    newline or a right-to-left override: each video stays one line that reads as itself."""
    import numpy as np

    from hiermovie.feature_store import Provenance, VideoRecord

    url = str(tmp_path / "s.zarr")
    ids = ["plain", "two\nlines", "abc\u202edef"]
    write_store(url, Provenance(backbone="t", dim=4, dtype="float32"),
                [VideoRecord(v, np.ones((2, 1, 4), np.float32), np.arange(2.0),
                                  np.arange(2.0) + 1, np.zeros((2, 0), np.int64)) for v in ids])
    assert main(["store", "info", url, "--videos"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("video ")]
    assert len(lines) == 3 and lines[0].split()[1] == "plain"
    assert "'two\\nlines'" in lines[1] and "'abc\\u202edef'" in lines[2]
    assert not any("\u202e" in ln for ln in lines)
    record('Ids',
           '`store info --videos` of ids holding a newline or a right-to-left override',
           1,
           'printed escaped, one line each')
