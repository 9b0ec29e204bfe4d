"""The demo's figures say what their colours mean, and panels that are compared share a scale."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")
from fastdrop.demo import plots  # noqa: E402


def _figure_of(draw, monkeypatch, *args):
    monkeypatch.setattr(plots, "save", lambda fig, directory, name: fig)
    return draw(plots.pyplot(), *args)


def test_hidden_activations_share_one_labelled_scale(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    panels = [(p, np.maximum(rng.standard_normal((8, 16)), 0) * (1 + p), np.maximum(rng.standard_normal((8, 16)), 0))
              for p in (0.0, 0.5, 0.8)]
    fig = _figure_of(plots.hidden_activations, monkeypatch, panels, str(tmp_path))
    images = [image for ax in fig.axes for image in ax.get_images()]
    everything = np.concatenate([a.ravel() for _, *pair in panels for a in pair])
    assert len(images) == 6
    assert [image.get_clim() for image in images] == [(0.0, pytest.approx(np.percentile(everything, 99.5)))] * 6
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1 and "activation after ReLU" in colorbars[0].get_ylabel()
    plots.pyplot().close(fig)


def test_confusion_matrix_colorbar_is_labelled(monkeypatch, tmp_path):
    fig = _figure_of(plots.confusion_heatmap, monkeypatch, np.eye(3, dtype=int) * 5, str(tmp_path), "t")
    colorbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert [ax.get_ylabel() for ax in colorbars] == ["test images"]
    plots.pyplot().close(fig)
