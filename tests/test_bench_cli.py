"""``fastdrop bench`` runs, prints its table and writes well-formed JSON and a plot.

Only behaviour is tested here, on tiny sizes and budgets: speed lives in bench/.
"""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from fastdrop import bench


def _run_main(capsys, *argv):
    code = bench.main(["--sizes", "1K,3000", "--dtypes", "float32,float16", "--budget", "0.001", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_is_written_and_well_formed(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = _run_main(capsys, "--no-targets", "--json", str(path))
    assert code == 0
    result = json.loads(path.read_text())
    assert [(c["dtype"], c["size"]) for c in result["cases"]] == [
        ("float32", 1024), ("float16", 1024), ("float32", 3000), ("float16", 3000)]
    for c in result["cases"]:
        assert c["rounds"] >= 3
        assert {"floor", "copy", "fastdrop", "numpy-backend", "naive"} <= set(c["ns_per_element"])
        assert all(np.isfinite(v) and v > 0 for v in c["ns_per_element"].values())
        assert c["fastdrop_over_floor"] > 0 and c["fastdrop_over_copy"] > 0
        assert set(c["speedup"]) == set(c["ns_per_element"]) - {"floor", "copy", "fastdrop"}
    assert result["threads"] == 1 and result["targets"] == []     # no 64K/1M/16M float32 case, no extras
    assert result["isa"] == bench.fastdrop.info()["isa"]
    assert "float16     1K" in out and "fd/floor" in out
    # the progress line: off a terminal one plain line when the run ends, no carriage returns
    assert re.search(r"^fastdrop bench \[#+\] 4/4 float16 3000 \(\d+\.\d s\)$", err, re.M) and "\r" not in err


def test_large_cases_report_both_floors_threads_and_the_streaming_threshold(tmp_path, capsys, monkeypatch):
    run = bench.run
    monkeypatch.setattr(bench, "run", lambda *a, **k: run(*a, **k, large_size=3001))
    path = tmp_path / "bench.json"
    before = bench.fastdrop.get_num_threads()
    code, out, err = _run_main(capsys, "--no-targets", "--large", "--json", str(path))
    assert code == 0
    result = json.loads(path.read_text())
    assert [(c["dtype"], c["size"]) for c in result["large"]] == [("float32", 3001), ("float64", 3001)]
    for c in result["large"]:
        assert set(c["ns_per_element"]) == {"floor", "copy", "copy 2 threads", "fastdrop", "fastdrop 2 threads"}
        assert all(r > 0 for r in c["ratios"].values())
    assert [t["case"] for t in result["targets"]] == [
        f"{d} 3001: {what}" for d in ("float32", "float64")
        for what in ("fastdrop / np.copyto", "2 threads: fastdrop / 2-thread copy")]
    assert result["streaming_threshold_bytes"] == bench.fastdrop.get_streaming_threshold()
    assert "streaming stores for outputs of >=" in out and "fd2/copy2" in out
    assert bench.fastdrop.get_num_threads() == before    # restored


def test_target_cases_and_threads(tmp_path, capsys):
    path = tmp_path / "bench.json"
    before = bench.fastdrop.get_num_threads()            # FASTDROP_NUM_THREADS may have set it
    code, out, _ = _run_main(capsys, "--threads", "2", "--json", str(path))
    assert code == 0
    assert "float32 1K call" in out and "spatial (64, 128, 32, 32)" in out and "1 thread / 2 threads" in out
    assert bench.fastdrop.get_num_threads() == before    # restored
    targets = json.loads(path.read_text())["targets"]
    assert len(targets) == 3
    for t in targets:
        assert t["ratio"] > 0 and t["met"] == (t["ratio"] <= float(t["target"][3:]) if t["target"].startswith("<=")
                                               else t["ratio"] >= float(t["target"][3:]))


def test_bfloat16_is_a_dtype_asked_for_by_name(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, _ = _run_main(capsys, "--dtypes", "bfloat16,float32", "--sizes", "4K", "--no-targets",
                             "--json", str(path))
    assert code == 0
    cases = json.loads(path.read_text())["cases"]
    assert [c["dtype"] for c in cases] == ["bfloat16", "float32"]
    assert "torch" not in cases[0]["speedup"]            # torch.from_numpy takes no bfloat16 (bench --torch does)
    assert all(c["fastdrop_over_copy"] > 0 for c in cases)


def test_table_targets_are_read_off_the_cases():
    case = {"dtype": "float32", "size": 1 << 24, "fastdrop_over_floor": 1.3,
            "ns_per_element": {"floor": 1.0, "fastdrop": 1.3, "numpy-backend": 30.0, "naive": 10.0},
            "speedup": {"numpy-backend": 23.0, "naive": 7.7}}
    rows = {r["case"]: r for r in bench.table_targets([case])}
    assert rows["float32 16M: fastdrop / floor"]["met"] is False
    assert rows["float32 16M: naive / fastdrop"]["met"] is True
    assert rows["float32 16M: numpy backend / naive NumPy dropout"] == {
        "case": "float32 16M: numpy backend / naive NumPy dropout", "ratio": 3.0, "target": "<= 2", "met": False}
    assert len(rows) == 3                                  # no torch column, no other size


def test_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    code, _, _ = _run_main(capsys, "--no-targets", "--plot", str(path))
    assert code == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "12Q"], "sizes must be positive integers with an optional K/M/G suffix, got '12Q'"),
    (["--sizes", "0"], "sizes must be positive integers with an optional K/M/G suffix, got '0'"),
    (["--dtypes", "int8"], "dtypes must be among float16, float32, float64, bfloat16, got 'int8'"),
    (["--threads", "0"], "argument --threads: must be an integer in [1, 1024], got '0'"),
    (["--budget", "-1"], "argument --budget: must be a finite number > 0, got '-1'"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_naive_dropout_is_a_dropout():
    x = np.ones(10_000, dtype=np.float32)
    y = bench.naive_dropout(x, 0.25, np.random.default_rng(0))
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 4.5 * np.sqrt(0.25 * 0.75 / x.size)


def test_cli_and_module_entry_points():
    for cmd in (["-m", "fastdrop", "bench", "--help"], ["-m", "fastdrop.cli", "bench", "--help"]):
        r = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "--json FILE" in r.stdout and "--plot FILE.png" in r.stdout


def test_family_table_and_json(tmp_path, capsys, monkeypatch):
    """--family times every variant's forward and backward and every layer against its
    functional twin; a small shape keeps the test fast."""
    run = bench.run_family
    monkeypatch.setattr(bench, "run_family", lambda *a, **k: run(*a, **k, shape=(4, 8, 16, 16)))
    path = tmp_path / "family.json"
    code = bench.main(["--family", "--budget", "0.001", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and "bench --family" in out and "dropblock2d" in out and "Dropout " in out
    result = json.loads(path.read_text())
    assert [(r["variant"], r["direction"]) for r in result["variants"]] == [
        (v, d) for v in bench.FAMILY_TARGETS for d in ("forward", "backward")]
    for r in result["variants"]:
        assert r["fastdrop_over_floor"] > 0 and "naive" in r["speedup"] and r["rounds"] >= 3
    assert [r["layer"] for r in result["layers"]] == list(bench.layer_pairs())
    assert all(r["ratio"] > 0 and r["size"] == 10_000 for r in result["layers"])


def test_family_refuses_plot(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--family", "--plot", "x.png"])
    assert exc.value.code == 2 and "--family does not run" in capsys.readouterr().err


@pytest.mark.parametrize("variant", ["alpha_dropout", "drop_path", "spatial_dropout", "dropblock2d"])
def test_naive_family_forward_is_its_variant(variant):
    """The naive formulations drop about p (DropBlock: its blocks, fewer for overlaps) and
    backward applies forward's mask."""
    x = np.ones((64, 16, 16, 16), dtype=np.float32)
    p = bench.FAMILY_TARGETS[variant][0]
    forward, backward = bench.naive_family(variant, x, p, np.random.default_rng(0))
    y = forward()
    dropped = np.mean(y == np.float32(y.min())) if variant == "alpha_dropout" else np.mean(y == 0)
    assert 0.5 * p < dropped < 1.5 * p
    assert np.array_equal(backward() == 0, (y == 0) if variant != "alpha_dropout" else (y == y.min()))
