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
    """Loss and accuracy on each set, measured in eval mode (no dropout) at the points in ``at``
    (epochs or steps done, as the schedule counts)."""
    at: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)

    def record(self, done, model, split):
        self.at.append(done)
        for name, (X, y) in (("train", (split.X_train, split.y_train)), ("test", (split.X_test, split.y_test))):
            loss, acc = evaluate(model, X, y)
            getattr(self, f"{name}_loss").append(loss)
            getattr(self, f"{name}_acc").append(acc)

    def summary(self):
        """The last measurement in words, the line the examples print."""
        return (f"train accuracy {self.train_acc[-1]:.3f}, test accuracy {self.test_acc[-1]:.3f}, "
                f"test loss {self.test_loss[-1]:.3f}")


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


def train_batch(model, optimizer, X, y, before_step=None):
    """One optimizer step on the batch (X, y), in the model's current mode; returns its loss.

    ``before_step()``, when given, runs between backward and the update (to add a
    regularizer's gradient, say)."""
    loss, grad = softmax_cross_entropy(model(X), y)
    model.backward(grad)
    if before_step is not None:
        before_step()
    optimizer.step()
    return loss


def fit(model, optimizer, split, *, batch_size, epochs=None, rng=None, steps=None, eval_every=None,
        progress=None, before_step=None):
    """Train ``model`` on ``split`` and return its History. Two schedules, exactly one given:

    ``epochs``: passes over the training set, each in a new random order drawn from
    ``rng`` (the digits demo and the examples). ``steps``: batches taken in order, step i
    on the training rows ``[(i * batch_size) % n, + batch_size)``, the loop of the
    MNIST-1D reference code. Loss and accuracy on both sets are recorded after every
    ``eval_every`` epochs or steps and at the end (``eval_every=None``: at the end only);
    ``progress.update(done, note)`` follows each record and ``progress.close()`` ends
    the run.
    """
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs and steps")
    history = History()
    model.train()                   # evaluate() puts the model back in this mode after each record
    total = epochs if steps is None else steps
    n = len(split.y_train)
    for done in range(1, total + 1):
        if steps is None:
            order = rng.permutation(n)
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                train_batch(model, optimizer, split.X_train[batch], split.y_train[batch], before_step)
        else:
            start = ((done - 1) * batch_size) % n
            rows = slice(start, start + batch_size)
            train_batch(model, optimizer, split.X_train[rows], split.y_train[rows], before_step)
        if done == total or (eval_every and done % eval_every == 0):
            history.record(done, model, split)
            if progress is not None:
                progress.update(done, f"train loss {history.train_loss[-1]:.3f} test acc {history.test_acc[-1]:.3f}")
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

    def line(self):
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        return f"{self.label} [{bar}] {self.done}/{self.total} {self.note} ({elapsed:.1f} s)"

    def update(self, done, note=""):
        self.done, self.note = done, note
        if self.live:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def close(self):
        self.stream.write(("\r" if self.live else "") + self.line() + "\n")
        self.stream.flush()


class ProgressBoard:
    """Progress bars of runs that go on at the same time (in worker processes), on stderr.

    On a terminal the bars of the running runs share one line, redrawn in place, and each
    run leaves its final line when it ends; elsewhere only the final lines are written,
    one per run, as ProgressBar does.
    """

    def __init__(self, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.bars = {}

    def start(self, key, total, label):
        bar = ProgressBar(total, label, stream=self.stream)
        bar.live = False                # the board draws the running bars itself
        self.bars[key] = bar

    def update(self, key, done, note=""):
        self.bars[key].update(done, note)
        self._draw()

    def close(self, key):
        if self.live:
            self.stream.write("\r\x1b[K")     # clear the shared line before the final one
        self.bars.pop(key).close()
        self._draw()

    def _draw(self):
        if self.live and self.bars:
            self.stream.write("\r\x1b[K" + " | ".join(bar.line() for bar in self.bars.values()))
            self.stream.flush()
