"""Concrete dropout: the drop rate is a parameter, learned by gradient descent with the weights.

    python examples/concrete_dropout.py [--quick] [--init-p 0.1] [--plot DIR] [--seed 0]

An MLP on 300 digits, Dense(64 -> 1024), ReLU, fastdrop ConcreteDropout, Dense(1024 -> 10).
ConcreteDropout (Gal, Hron and Kendall 2017) relaxes the Bernoulli mask so that the loss
is differentiable in the rate p = sigmoid(logit): its backward stores d loss / d logit,
and ``regularization()`` adds the variational penalty (weight decay scaled by 1/(1-p)
on the next layer's weights, minus the entropy of the rate) with Gal's settings for N
training images: weight_regularizer = l^2 / N (prior length-scale l = 0.1),
dropout_regularizer = 2 / N. The logit is trained by the same SGD as the weights; the
learned rate is printed after every epoch (and plotted with --plot DIR).

What to expect (measured, seed 0): the rate moves to about 0.5 within two epochs and
stays there, from init_p 0.1 (final p 0.500, test accuracy 0.960) and from init_p 0.8
(final p 0.500, test accuracy 0.958). With only 300 images and 1024 units the entropy
term (2 / N per unit) outweighs the data term once the training loss is small, and the
entropy is largest at p = 0.5: the prior decides. Training on 1500 images instead
changes little (final p 0.494): the digits are fitted so well that the data term
vanishes.
"""
import argparse
import os
import sys

import numpy as np

import fastdrop as fd
from fastdrop import _cli_args
from fastdrop.demo import run_script
from fastdrop.demo.data import load_digits_split
from fastdrop.demo.nn import SGD, Dense, ReLU, Sequential, softmax_cross_entropy
from fastdrop.demo.train import evaluate


def run(args):
    data = load_digits_split(train_size=300, seed=args.seed)
    n = len(data.y_train)
    rng = np.random.default_rng(args.seed)
    concrete = fd.ConcreteDropout(args.init_p, temperature=0.1, weight_regularizer=0.1 ** 2 / n,
                                  dropout_regularizer=2.0 / n, seed=args.seed)
    head = Dense(1024, 10, rng)
    model = Sequential(Dense(64, 1024, rng), ReLU(), concrete, head)
    # The logit as a 1-element parameter, so the optimizer's momentum covers it too.
    logit, grad_logit = np.array([concrete.logit]), np.zeros(1)
    optimizer = SGD(model.params() + [(logit, grad_logit)], lr=0.05, momentum=0.9)
    epochs = 8 if args.quick else 60
    print(f"{n} training / {len(data.y_test)} test digits, {epochs} epochs, "
          f"ConcreteDropout(init_p={args.init_p}, temperature=0.1)")
    rates = [concrete.p]
    for epoch in range(1, epochs + 1):
        model.train()
        order = rng.permutation(n)
        for batch in np.array_split(order, n // 32):
            _, grad = softmax_cross_entropy(model(data.X_train[batch]), data.y_train[batch])
            model.backward(grad)
            reg_logit, (reg_head,) = concrete.regularization_grad([head.W])
            head.dW += reg_head.astype(head.dW.dtype)
            grad_logit[0] = concrete.grad_logit + reg_logit
            optimizer.step()
            concrete.logit = float(logit[0])
        rates.append(concrete.p)
        _, test_acc = evaluate(model, data.X_test, data.y_test)
        print(f"epoch {epoch:3d}: learned p = {concrete.p:.4f}, test accuracy {test_acc:.3f}")
    _, train_acc = evaluate(model, data.X_train, data.y_train)
    print(f"final: p = {concrete.p:.4f} (from {args.init_p}), train accuracy {train_acc:.3f}, "
          f"test accuracy {test_acc:.3f}")
    if args.plot:
        print(f"wrote {plot(rates, args.plot)}")


def plot(rates, directory):
    from fastdrop.demo.plots import pyplot
    plt = pyplot()
    os.makedirs(directory, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(len(rates)), rates, marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("drop rate p = sigmoid(logit)")
    ax.set_title("ConcreteDropout: the learned rate")
    fig.tight_layout()
    path = os.path.join(directory, "concrete_dropout_rate.png")
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 epochs instead of 60")
    parser.add_argument("--init-p", type=_cli_args.real(0, 1, open_low=True, open_high=True), default=0.1,
                        help="the initial drop rate (ConcreteDropout learns it through its logit)")
    parser.add_argument("--plot", metavar="DIR", type=_cli_args.output_dir,
                        help="write concrete_dropout_rate.png into DIR (created if needed)")
    parser.add_argument("--seed", type=_cli_args.seed, default=0)
    sys.exit(run_script("concrete_dropout.py", run, parser.parse_args()))
