"""Mini-batch training and evaluation for the demo and the examples (progress: ``fastdrop._progress``)."""
import contextlib
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
