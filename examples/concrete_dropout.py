"""Concrete dropout: the drop rate is a parameter, learned by gradient descent with the weights.

    python examples/concrete_dropout.py [--quick] [--init-p 0.1] [--plot DIR] [--seed 0]

An MLP on 300 digits, Dense(64 -> 1024), ReLU, fastdrop ConcreteDropout, Dense(1024 -> 10).
ConcreteDropout (Gal, Hron and Kendall 2017) relaxes the Bernoulli mask so that the loss
is differentiable in the rate p = sigmoid(logit): its backward stores d loss / d logit,
and ``regularization()`` adds the variational penalty (weight decay scaled by 1/(1-p)
on the next layer's weights, minus the entropy of the rate) with Gal's settings for N
training images: weight_regularizer = l^2 / N (prior length-scale l = 0.1),
dropout_regularizer = 2 / N. The logit is trained by the same SGD as the weights; the
learned rate is printed after every epoch (and plotted with --plot DIR). The logit is
a parameter of a small layer around ConcreteDropout, so the kit's ``fit`` trains it.

What to expect (measured, seed 0): the rate swings around 0.5 for the first three epochs
and then stays there, from init_p 0.1 (final p 0.502, test accuracy 0.957) and from
init_p 0.8 (final p 0.501, test accuracy 0.954). With only 300 images and 1024 units the
entropy term (2 / N per unit) outweighs the data term once the training loss is small,
and the entropy is largest at p = 0.5: the prior decides. Training on 1500 images instead
changes little (final p 0.497): the digits are fitted so well that the data term
vanishes.
"""
import argparse
import sys

import numpy as np

import fastdrop as fd
from fastdrop import _cli_args
from fastdrop.demo import run_script
from fastdrop.demo.data import load_digits_split
from fastdrop.demo.nn import SGD, Dense, Layer, ReLU, Sequential
from fastdrop.demo.train import fit


class LearnedRate(Layer):
    """ConcreteDropout with its logit as a 1-element parameter, so the optimizer trains it
    with the weights (momentum included), and Gal's penalty added to the gradients.

    ``head`` is the layer the dropout feeds: the penalty's weight decay is on its weights.
    Its backward has run when this one runs (backward goes in reverse), so the penalty's
    gradient is added to the head's before the optimizer steps.
    """

    def __init__(self, concrete, head):
        self.concrete, self.head = concrete, head
        self.children = (concrete,)
        self.logit, self.grad_logit = np.array([concrete.logit]), np.zeros(1)

    def parameters(self):
        return [(self.logit, self.grad_logit)]

    def forward(self, x):
        self.concrete.logit = float(self.logit[0])      # the value the optimizer left
        return self.concrete(x)

    def backward(self, gy):
        gx = self.concrete.backward(gy)
        reg_logit, (reg_head,) = self.concrete.regularization_grad([self.head.W])
        self.head.dW += reg_head.astype(self.head.dW.dtype)
        self.grad_logit[0] = self.concrete.grad_logit + reg_logit
        return gx


class RateLog:
    """fit's progress hook: the learned rate after every epoch."""

    def __init__(self, concrete):
        self.concrete, self.rates = concrete, [concrete.p]

    def update(self, done, note=""):
        self.rates.append(self.concrete.p)

    def close(self):
        pass


def run(args):
    data = load_digits_split(train_size=300, seed=args.seed)
    n = len(data.y_train)
    rng = np.random.default_rng(args.seed)
    concrete = fd.ConcreteDropout(args.init_p, temperature=0.1, weight_regularizer=0.1 ** 2 / n,
                                  dropout_regularizer=2.0 / n, seed=args.seed)
    hidden = Dense(64, 1024, rng)
    head = Dense(1024, 10, rng)
    model = Sequential(hidden, ReLU(), LearnedRate(concrete, head), head)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    epochs = 8 if args.quick else 60
    print(f"{n} training / {len(data.y_test)} test digits, {epochs} epochs, "
          f"ConcreteDropout(init_p={args.init_p}, temperature=0.1)")
    log = RateLog(concrete)
    history = fit(model, optimizer, data, epochs=epochs, batch_size=32, rng=rng, eval_every=1, progress=log)
    for epoch, (p, test_acc) in enumerate(zip(log.rates[1:], history.test_acc), start=1):
        print(f"epoch {epoch:3d}: learned p = {p:.4f}, test accuracy {test_acc:.3f}")
    print(f"final: p = {concrete.p:.4f} (from {args.init_p}), train accuracy {history.train_acc[-1]:.3f}, "
          f"test accuracy {history.test_acc[-1]:.3f}")
    if args.plot:
        print(f"wrote {plot(log.rates, args.plot)}")


def plot(rates, directory):
    from fastdrop.demo.plots import pyplot, save
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(rates)), rates, marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("drop rate p = sigmoid(logit)")
    ax.set_title("ConcreteDropout: the learned rate")
    return save(fig, directory, "concrete_dropout_rate.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 epochs instead of 60")
    parser.add_argument("--init-p", type=_cli_args.real(0, 1, open_low=True, open_high=True), default=0.1,
                        help="the initial drop rate (ConcreteDropout learns it through its logit)")
    parser.add_argument("--plot", metavar="DIR", type=_cli_args.output_dir,
                        help="write concrete_dropout_rate.png into DIR (created if needed)")
    parser.add_argument("--seed", type=_cli_args.seed, default=0)
    sys.exit(run_script("concrete_dropout.py", run, parser.parse_args()))
