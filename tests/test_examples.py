"""Every script in examples/ runs its --quick mode and prints real, checkable results."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, hide=()):
    """Run examples/NAME as a script in a fresh interpreter, with the modules in ``hide`` missing."""
    path = str(EXAMPLES / name)
    code = ("import runpy, sys\n"
            f"for m in {list(hide)!r}: sys.modules[m] = None\n"
            f"sys.argv = [{path!r}, *sys.argv[1:]]\n"
            f"runpy.run_path({path!r}, run_name='__main__')\n")
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                            timeout=600)
    return result


def accuracies(stdout, label):
    """{variant: (train acc, test acc)} from lines '<variant> ... train accuracy X, test accuracy Y'."""
    found = {}
    for line in stdout.splitlines():
        m = re.match(rf"{label}.*train accuracy (\d\.\d{{3}}), test accuracy (\d\.\d{{3}})", line)
        if m:
            found[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return found


def test_the_training_examples_exist():
    # The dask example is tested with the dask integration.
    tested = {"mlp_digits.py", "cnn_spatial_dropout.py", "rnn_variational_dropout.py", "mc_dropout_uncertainty.py",
              "concrete_dropout.py", "text_sentiment.py"}
    assert tested <= {p.name for p in EXAMPLES.glob("*.py")}


def test_mlp_digits():
    pytest.importorskip("sklearn")
    result = run_example("mlp_digits.py", "--quick")
    assert result.returncode == 0, result.stderr
    found = accuracies(result.stdout, r"(p=\d\.\d\d):")
    assert sorted(found) == ["p=0.00", "p=0.50"]
    for train_acc, test_acc in found.values():
        assert test_acc > 0.85 and train_acc > 0.9         # chance is 0.10


def test_cnn_spatial_dropout():
    pytest.importorskip("sklearn")
    result = run_example("cnn_spatial_dropout.py", "--quick")
    assert result.returncode == 0, result.stderr
    found = accuracies(result.stdout, r"(no dropout|Dropout\(0\.2\)|SpatialDropout2D\(0\.2\))")
    assert sorted(found) == ["Dropout(0.2)", "SpatialDropout2D(0.2)", "no dropout"]
    assert all(test_acc > 0.8 for _, test_acc in found.values())


def test_rnn_variational_dropout():
    pytest.importorskip("sklearn")
    result = run_example("rnn_variational_dropout.py", "--quick")
    assert result.returncode == 0, result.stderr
    found = accuracies(result.stdout, r"(no dropout|per-step|variational)")
    assert sorted(found) == ["no dropout", "per-step", "variational"]
    assert all(test_acc > 0.7 for _, test_acc in found.values())


def test_mc_dropout_uncertainty_is_higher_off_distribution(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    result = run_example("mc_dropout_uncertainty.py", "--quick", "--samples", "30", "--plot", str(tmp_path / "figs"))
    assert result.returncode == 0, result.stderr
    assert "30 dropout masks per input at inference" in result.stdout      # --quick does not override it
    rows = {}
    for line in result.stdout.splitlines():
        m = re.match(r"(.+?)\s+(\d\.\d{3}|-)\s+(\d\.\d{3})\s+(\d\.\d{3})$", line)
        if m:
            rows[m.group(1)] = (m.group(2), float(m.group(3)), float(m.group(4)))
    clean = rows.pop("clean test digits")
    assert float(clean[0]) > 0.85
    assert sorted(rows) == ["digits + noise (sd 0.4)", "digits, centre blotted", "uniform noise images"]
    for name, (_, std, ent) in rows.items():
        assert std > 1.5 * clean[1], name            # predictive std of the predicted class
        assert ent > 1.5 * clean[2], name            # entropy of the mean prediction
    png = tmp_path / "figs" / "mc_dropout_uncertainty.png"         # the directory made for the output
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


def test_concrete_dropout_learns_its_rate(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    result = run_example("concrete_dropout.py", "--quick", "--init-p", "0.1", "--plot", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rates = [float(r) for r in re.findall(r"^epoch +\d+: learned p = (\d\.\d{4})", result.stdout, re.M)]
    assert len(rates) == 8
    assert rates[-1] > 0.3                           # moved far from its initial 0.1
    final = re.search(r"final: p = (\d\.\d{4}) \(from 0.1\), train accuracy (\d\.\d{3}), test accuracy (\d\.\d{3})",
                      result.stdout)
    assert float(final.group(1)) == rates[-1]
    assert float(final.group(3)) > 0.85
    png = tmp_path / "concrete_dropout_rate.png"
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


def test_text_sentiment_needs_only_numpy():
    result = run_example("text_sentiment.py", "--quick", hide=("sklearn", "matplotlib"))
    assert result.returncode == 0, result.stderr
    found = accuracies(result.stdout, r"dropout (p=\d\.\d\d)")
    assert sorted(found) == ["p=0.00", "p=0.50"]
    assert all(test_acc > 0.8 for _, test_acc in found.values())    # chance is 0.5
    assert "50% of test reviews are positive" in result.stdout


def test_missing_extra_in_an_example_is_one_line():
    result = run_example("mlp_digits.py", "--quick", hide=("sklearn",))
    assert result.returncode == 2
    assert result.stderr.strip() == ('mlp_digits.py: the digits data needs scikit-learn, which is not installed: '
                                     'pip install "fastdrop[demo]"')
