"""Hostile command lines: every bad argument or output path of ``fastdrop demo|bench|info``
and of the ``examples/`` scripts is argparse's usage error (exit 2, the argument and the
value named) before any timing or training starts.

"No work was done" is checked directly: the function where the work starts (``bench.run``,
the demo's ``experiment.load``, the examples' ``run_script`` / ``run``) is replaced by one
that fails the test, and stdout must stay empty.  Nothing here times or trains anything.
"""
import importlib.util
import os
import pathlib
import runpy
import subprocess
import sys

import pytest

from fastdrop import bench, cli
from fastdrop.demo import experiment, mnist1d

pytestmark = pytest.mark.adversarial

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
# Linux's /proc takes no new file, even from root (for whom permission bits stop nothing).
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")


class WorkStarted(AssertionError):
    """Raised by the stand-ins of the functions that start a benchmark or a training."""


class Reached(Exception):
    """Raised by the stand-ins when a valid command line gets to its work."""


def _refuse_work(*args, **kwargs):
    raise WorkStarted("the work started although an argument is bad")


@pytest.fixture
def no_work(monkeypatch):
    monkeypatch.setattr(bench, "run", _refuse_work)
    monkeypatch.setattr(experiment, "load", _refuse_work)
    monkeypatch.setattr(experiment, "run_all", _refuse_work)
    monkeypatch.setattr(mnist1d, "load", _refuse_work)
    monkeypatch.setattr(mnist1d, "train_run", _refuse_work)
    monkeypatch.setattr("fastdrop.demo.run_script", _refuse_work)


def usage_error(capsys, call):
    """The stderr of ``call()``, which must exit 2 through argparse with nothing on stdout."""
    with pytest.raises(SystemExit) as exc:
        call()
    captured = capsys.readouterr()
    assert exc.value.code == 2, captured.err
    assert captured.out == ""
    assert captured.err.startswith("usage: "), captured.err
    return captured.err


@pytest.fixture
def paths(tmp_path):
    """{name: path} of the hostile output paths, formatted into the command lines below."""
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    return {"tmp": str(tmp_path), "file": str(a_file), "missing": str(tmp_path / "missing" / "deeper")}


def _format(argv, paths):
    return [a.format(**paths) for a in argv]


BENCH_CASES = [
    (["--threads", "2000"], "argument --threads: must be an integer in [1, 1024], got '2000'"),
    (["--threads", "0"], "argument --threads: must be an integer in [1, 1024], got '0'"),
    (["--threads", "-3"], "argument --threads: must be an integer in [1, 1024], got '-3'"),
    (["--threads", "1.5"], "argument --threads: must be an integer in [1, 1024], got '1.5'"),
    (["--budget", "0"], "argument --budget: must be a finite number > 0, got '0'"),
    (["--budget", "nan"], "argument --budget: must be a finite number > 0, got 'nan'"),
    (["--budget", "inf"], "argument --budget: must be a finite number > 0, got 'inf'"),
    (["--sizes", "1K,,2K"], "argument --sizes: sizes must be positive integers with an optional K/M/G suffix, "
                            "got ''"),
    (["--sizes=-1K"], "argument --sizes: sizes must be positive integers with an optional K/M/G suffix, "
                         "got '-1K'"),
    (["--dtypes", "float32,int8"], "argument --dtypes: dtypes must be among float16, float32, float64, bfloat16, got 'int8'"),
    (["--json", "/nonexistent-fastdrop-dir/x.json"],
     "argument --json: cannot write '/nonexistent-fastdrop-dir/x.json': '/nonexistent-fastdrop-dir' does not exist"),
    (["--json", "{missing}/x.json"], "argument --json: cannot write '{missing}/x.json': '{missing}' does not exist"),
    (["--json", "{file}/x.json"], "argument --json: cannot write '{file}/x.json': '{file}' is not a directory"),
    (["--json", "{tmp}"], "argument --json: '{tmp}' is a directory, a file path is expected"),
    (["--json", ""], "argument --json: must be a file path, got ''"),
    (["--plot", "{tmp}"], "argument --plot: '{tmp}' is a directory, a file path is expected"),
    (["--plot", "{missing}/b.png"], "argument --plot: cannot write '{missing}/b.png': '{missing}' does not exist"),
]



@needs_proc
@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_rejects_an_unwritable_place_for_root_too(option, no_work, capsys):
    # The case: /proc/nope/x.json ran the whole benchmark, then lost the numbers.
    err = usage_error(capsys, lambda: cli.main(["bench", option, "/proc/nope/x.json"]))
    assert f"error: argument {option}: cannot write '/proc/nope/x.json': '/proc/nope' does not exist" in err
    err = usage_error(capsys, lambda: cli.main(["bench", option, "/proc/fastdrop.json"]))
    assert f"error: argument {option}: cannot write '/proc/fastdrop.json': " in err


def test_bench_rejects_sizes_beyond_the_memory(no_work, capsys):
    if bench._physical_memory() is None:
        pytest.skip("this OS does not report its physical memory")
    # 2**50 elements need petabytes: the benchmark would have run every smaller size first.
    err = usage_error(capsys, lambda: cli.main(["bench", "--sizes", "1K,1048576G", "--dtypes", "float16"]))
    assert "error: argument --sizes: 1048576G elements of float16 need at least " in err
    assert "GiB of memory" in err


def test_bench_rejects_a_plot_format_and_a_plot_over_the_json(tmp_path, no_work, capsys):
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "b.xyz")
    err = usage_error(capsys, lambda: cli.main(["bench", "--plot", path]))
    assert f"error: argument --plot: matplotlib cannot write 'xyz' files, got {path!r} (it writes " in err
    path = str(tmp_path / "b.png")
    err = usage_error(capsys, lambda: cli.main(["bench", "--json", path, "--plot", path]))
    assert err.splitlines()[-1] == f"fastdrop bench: error: argument --plot: the same file as --json, got {path!r}"


def test_bench_plot_without_matplotlib_is_refused_before_timing(tmp_path, no_work, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import matplotlib raises ImportError
    path = str(tmp_path / "b.png")
    err = usage_error(capsys, lambda: cli.main(["bench", "--plot", path]))
    assert err.splitlines()[-1] == (f"fastdrop bench: error: argument --plot: needs matplotlib, which is not "
                                    f"installed, got {path!r}: pip install matplotlib")


def test_a_rejected_command_leaves_the_output_paths_as_they_were(tmp_path, no_work, capsys):
    # The checks write for real: a new file is removed again, an existing one is not touched,
    # and directories made to test --plot DIR are removed when another argument fails.
    new, kept = tmp_path / "new.json", tmp_path / "kept.json"
    kept.write_text("earlier numbers")
    for target in (new, kept):
        usage_error(capsys, lambda: cli.main(["bench", "--json", str(target), "--threads", "0"]))
    assert not new.exists() and kept.read_text() == "earlier numbers"
    usage_error(capsys, lambda: cli.main(["demo", "--plot", str(tmp_path / "a" / "b"), "--epochs", "0"]))
    usage_error(capsys, lambda: cli.main(["demo", "--data-dir", str(tmp_path / "c" / "d"), "--steps", "0"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]


def test_bench_accepts_the_bounds(tmp_path, monkeypatch, capsys):
    seen = {}

    def record(sizes, dtypes, threads, budget, targets, progress, **options):
        seen.update(sizes=sizes, threads=threads, budget=budget)
        raise Reached

    monkeypatch.setattr(bench, "run", record)
    with pytest.raises(Reached):
        cli.main(["bench", "--threads", "1024", "--budget", "1e-9", "--sizes", "1", "--json", str(tmp_path / "r.json")])
    assert seen == {"sizes": (1,), "threads": 1024, "budget": 1e-9}
    assert capsys.readouterr().out == "" and list(tmp_path.iterdir()) == []


DEMO_CASES = [
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got '0'"),
    (["--epochs", "ten"], "argument --epochs: must be an integer >= 1, got 'ten'"),
    (["--seed", "-1"], "argument --seed: must be an integer in [0, 2**64), got '-1'"),
    (["--seed", str(2**64)], f"argument --seed: must be an integer in [0, 2**64), got '{2**64}'"),
    (["--seed", "1e3"], "argument --seed: must be an integer in [0, 2**64), got '1e3'"),
    (["--plot", "{file}"], "argument --plot: '{file}' exists and is not a directory"),
    (["--plot", "{file}/figs"], "argument --plot: cannot create or write in the directory '{file}/figs': "
                                "Not a directory"),
    (["--plot", ""], "argument --plot: must be a directory path, got ''"),
    (["--steps", "0"], "argument --steps: must be an integer >= 1, got '0'"),
    (["--steps", "1e3"], "argument --steps: must be an integer >= 1, got '1e3'"),
    (["--seeds", "0"], "argument --seeds: must be an integer >= 1, got '0'"),
    (["--workers", "0"], "argument --workers: must be an integer in [1, 64], got '0'"),
    (["--workers", "65"], "argument --workers: must be an integer in [1, 64], got '65'"),
    (["--data-dir", "{file}"], "argument --data-dir: '{file}' exists and is not a directory"),
    (["--data-dir", "{file}/cache"], "argument --data-dir: cannot create or write in the directory "
                                     "'{file}/cache': Not a directory"),
    (["--quick", "--full"], "argument --full: not allowed with argument --quick"),
    (["--epochs", "3"], "argument --epochs: applies to --data digits only (MNIST-1D runs --steps)"),
    (["--data", "digits", "--steps", "10"], "argument --steps: applies to --data mnist1d only"),
    (["--data", "digits", "--full"], "argument --full: applies to --data mnist1d only"),
    (["--data", "digits", "--workers", "2"], "argument --workers: applies to --data mnist1d only"),
    (["--data", "digits", "--data-dir", "{tmp}"], "argument --data-dir: applies to --data mnist1d only"),
]


@pytest.mark.parametrize("command, argv, message", [("bench", *case) for case in BENCH_CASES]
                         + [("demo", *case) for case in DEMO_CASES])
def test_commands_reject_before_working(command, argv, message, paths, no_work, capsys):
    err = usage_error(capsys, lambda: cli.main([command, *_format(argv, paths)]))
    assert err.splitlines()[-1] == f"fastdrop {command}: error: {message.format(**paths)}"


@needs_proc
def test_demo_rejects_a_plot_directory_nobody_can_write(no_work, capsys):
    # The case: --plot /proc trained every network, then failed writing the figures.
    err = usage_error(capsys, lambda: cli.main(["demo", "--plot", "/proc"]))
    assert "fastdrop demo: error: argument --plot: cannot create or write in the directory '/proc': " in err
    err = usage_error(capsys, lambda: cli.main(["demo", "--plot", "/proc/fastdrop/figs"]))
    assert "error: argument --plot: cannot create or write in the directory '/proc/fastdrop/figs': " in err


def test_demo_accepts_the_bounds_and_creates_no_directory_before_its_output(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    seen = {}

    def record(config):
        seen.update(seed=config.seed, epochs=config.epochs)
        raise Reached

    monkeypatch.setattr(experiment, "load", record)
    figs = tmp_path / "new" / "figs"
    with pytest.raises(Reached):
        cli.main(["demo", "--data", "digits", "--seed", str(2**64 - 1), "--epochs", "1", "--plot", str(figs)])
    assert seen == {"seed": 2**64 - 1, "epochs": 1}
    assert not (tmp_path / "new").exists()      # made when the figures are written
    assert capsys.readouterr().out == ""


def test_mnist1d_demo_accepts_the_bounds_and_creates_no_directory_before_its_output(tmp_path, monkeypatch,
                                                                                    capsys):
    pytest.importorskip("mnist1d")
    pytest.importorskip("matplotlib")
    seen = {}

    def record(directory):
        seen.update(directory=directory)
        raise Reached

    monkeypatch.setattr(mnist1d, "load", record)
    figs, cache = tmp_path / "new" / "figs", tmp_path / "other" / "cache"
    with pytest.raises(Reached):
        cli.main(["demo", "--seed", str(2**64 - 1), "--steps", "1", "--seeds", "1", "--workers", "64",
                  "--data-dir", str(cache), "--plot", str(figs)])
    assert seen == {"directory": str(cache)}
    assert sorted(tmp_path.iterdir()) == []     # both made when there is something to write
    assert capsys.readouterr().out == ""


@needs_proc
def test_mnist1d_demo_rejects_an_unwritable_default_cache_before_working(no_work, monkeypatch, capsys):
    # The default cache ($FASTDROP_CACHE_DIR here) is an output path like --data-dir: checked when parsed.
    monkeypatch.setenv("FASTDROP_CACHE_DIR", "/proc/fastdrop-cache")
    err = usage_error(capsys, lambda: cli.main(["demo", "--quick"]))
    assert err.splitlines()[-1].startswith("fastdrop demo: error: argument --data-dir: the default cache directory: "
                                           "cannot create or write in the directory '/proc/fastdrop-cache': ")
    assert err.splitlines()[-1].endswith("; pass --data-dir DIR")


def test_info_and_the_command_itself(no_work, capsys):
    err = usage_error(capsys, lambda: cli.main(["info", "--verbose"]))
    assert err.splitlines()[-1] == "fastdrop info: error: unrecognized arguments: --verbose"
    err = usage_error(capsys, lambda: cli.main([]))
    assert err.splitlines()[-1] == "fastdrop: error: the following arguments are required: command"
    err = usage_error(capsys, lambda: cli.main(["train"]))
    assert "fastdrop: error: argument command: invalid choice: 'train'" in err


def test_the_installed_command_exits_2_without_a_traceback():
    # The case end to end: `fastdrop bench --threads 2000` ended in a traceback.
    r = subprocess.run([sys.executable, "-m", "fastdrop", "bench", "--threads", "2000"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[-1] == "fastdrop bench: error: argument --threads: must be an integer in [1, 1024], " \
                                        "got '2000'"


EXAMPLE_CASES = [
    ("mlp_digits.py", ["--p", "1.5"], "argument --p: must be a finite number in [0, 1], got '1.5'"),
    ("mlp_digits.py", ["--p", "nan"], "argument --p: must be a finite number in [0, 1], got 'nan'"),
    ("mlp_digits.py", ["--seed", "-1"], "argument --seed: must be an integer in [0, 2**64), got '-1'"),
    ("cnn_spatial_dropout.py", ["--p", "-0.1"], "argument --p: must be a finite number in [0, 1], got '-0.1'"),
    ("rnn_variational_dropout.py", ["--seed", "x"], "argument --seed: must be an integer in [0, 2**64), got 'x'"),
    ("text_sentiment.py", ["--p", "2"], "argument --p: must be a finite number in [0, 1], got '2'"),
    ("concrete_dropout.py", ["--init-p", "0"], "argument --init-p: must be a finite number in (0, 1), got '0'"),
    ("concrete_dropout.py", ["--init-p", "1"], "argument --init-p: must be a finite number in (0, 1), got '1'"),
    ("concrete_dropout.py", ["--plot", "{file}"], "argument --plot: '{file}' exists and is not a directory"),
    ("mc_dropout_uncertainty.py", ["--samples", "0"], "argument --samples: must be an integer >= 1, got '0'"),
    ("mc_dropout_uncertainty.py", ["--plot", "{file}/figs"],
     "argument --plot: cannot create or write in the directory '{file}/figs': Not a directory"),
]


@pytest.mark.parametrize("name, argv, message", EXAMPLE_CASES)
def test_examples_reject_before_training(name, argv, message, paths, no_work, monkeypatch, capsys):
    path = str(EXAMPLES / name)
    monkeypatch.setattr(sys, "argv", [path, *_format(argv, paths)])
    err = usage_error(capsys, lambda: runpy.run_path(path, run_name="__main__"))
    assert err.splitlines()[-1] == f"{name}: error: {message.format(**paths)}"


@pytest.mark.parametrize("argv, message", [
    (["--sample", "0"], "argument --sample: must be an integer >= 1, got '0'"),
    (["--quick", "--sample", "17"], "argument --sample: must be at most the 16 chunks of the array, got 17"),
    (["--p", "1.1"], "argument --p: must be a finite number in [0, 1], got '1.1'"),
    (["--seed", "-5"], "argument --seed: must be an integer in [0, 2**64), got '-5'"),
    (["--dir", "{file}"], "argument --dir: '{file}' exists and is not a directory"),
])
def test_dask_example_rejects_before_writing(argv, message, paths, monkeypatch, capsys):
    pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    path = EXAMPLES / "dask_zarr_out_of_core.py"
    spec = importlib.util.spec_from_file_location("dask_zarr_out_of_core", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(example, "run", _refuse_work)
    monkeypatch.setattr(sys, "argv", [str(path)])
    err = usage_error(capsys, lambda: example.main(_format(argv, paths)))
    assert err.splitlines()[-1] == f"dask_zarr_out_of_core.py: error: {message.format(**paths)}"
