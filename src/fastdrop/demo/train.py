"""Mini-batch training, evaluation and a progress bar for the demo and the examples."""
import contextlib
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .nn import softmax_cross_entropy


def single_threaded_blas():
    """A context in which BLAS uses one thread.

    These matrices are small (a batch of 32 by a 1024-unit layer): on a shared machine
    OpenBLAS's threads spend more time waiting for each other than multiplying (the demo
    ran ten times slower on a loaded 2-core machine), and one thread also makes the
    float sums independent of the core count. threadpoolctl ships with scikit-learn;
    without it the BLAS keeps its own setting.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class History:
    """Per-epoch loss and accuracy, both measured in eval mode (no dropout) on each set."""
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)


def predict_logits(model, X, batch_size=1024):
    """Logits in eval mode; the model's previous mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    finally:
        if was_training:
            model.train()


def evaluate(model, X, y):
    """(mean cross-entropy, accuracy) of ``model`` on (X, y) in eval mode."""
    logits = predict_logits(model, X)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, float((logits.argmax(axis=1) == y).mean())


def train_epoch(model, optimizer, X, y, batch_size, rng):
    """One pass over (X, y) in a random order drawn from ``rng``; returns the mean batch loss."""
    model.train()
    order = rng.permutation(len(y))
    losses = []
    for start in range(0, len(y), batch_size):
        batch = order[start:start + batch_size]
        loss, grad = softmax_cross_entropy(model(X[batch]), y[batch])
        model.backward(grad)
        optimizer.step()
        losses.append(loss)
    return float(np.mean(losses))


def fit(model, optimizer, split, *, epochs, batch_size, rng, progress=None):
    """Train for ``epochs`` epochs; returns the History measured after each epoch."""
    history = History()
    for epoch in range(epochs):
        train_epoch(model, optimizer, split.X_train, split.y_train, batch_size, rng)
        for name, (X, y) in (("train", (split.X_train, split.y_train)), ("test", (split.X_test, split.y_test))):
            loss, acc = evaluate(model, X, y)
            getattr(history, f"{name}_loss").append(loss)
            getattr(history, f"{name}_acc").append(acc)
        if progress is not None:
            progress.update(epoch + 1, f"train loss {history.train_loss[-1]:.3f} test acc {history.test_acc[-1]:.3f}")
    if progress is not None:
        progress.close()
    return history


class ProgressBar:
    """A one-line progress bar on stderr, so stdout carries only the results.

    On a terminal it redraws in place; elsewhere (logs, pipes, tests) it writes one line
    when the run finishes, so the log is not filled with carriage returns.
    """

    def __init__(self, total, label, stream=None, width=24):
        self.total, self.label, self.width = total, label, width
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.start = time.perf_counter()
        self.done, self.note = 0, ""

    def _line(self):
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        return f"{self.label} [{bar}] {self.done}/{self.total} {self.note} ({elapsed:.1f} s)"

    def update(self, done, note=""):
        self.done, self.note = done, note
        if self.live:
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self):
        self.stream.write(("\r" if self.live else "") + self._line() + "\n")
        self.stream.flush()
