"""An embedding-bag sentiment classifier with dropout, on a generated corpus with a learnable rule.

    python examples/text_sentiment.py [--quick] [--p 0.5] [--seed 0]

The corpus: a vocabulary of 400 made-up words, 30 of them positive, 30 negative, the
rest neutral. A review is 8 to 30 words drawn at random; its label is "positive" when it
has more positive than negative words, "negative" when fewer (ties are not generated).
The model must discover each word's polarity from 600 labelled reviews: the mean of
the word embeddings (EmbeddingBag, 32 dimensions), Dense(32 -> 64), ReLU, fastdrop
Dropout, Dense(64 -> 2). Chance is 50%. Needs only NumPy and fastdrop.
"""
import argparse
import sys

import numpy as np

import fastdrop as fd
from fastdrop import _cli_args
from fastdrop.demo import run_script
from fastdrop.demo.data import Split
from fastdrop.demo.nn import SGD, Dense, EmbeddingBag, ReLU, Sequential
from fastdrop.demo.train import fit

VOCAB, N_POSITIVE, N_NEGATIVE = 400, 30, 30
PAD = -1


def make_vocabulary(rng):
    """Pronounceable made-up words; the first N_POSITIVE are positive, the next N_NEGATIVE negative."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    words = set()
    while len(words) < VOCAB:
        words.add("".join(rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(3)))
    words = sorted(words)                # set order varies between interpreters: fix it first
    return [words[i] for i in rng.permutation(VOCAB)]


def make_corpus(n, rng, max_len=30):
    """(token ids (n, max_len) padded with PAD, labels (n,)): label 1 when positive words outnumber negative."""
    polarity = np.zeros(VOCAB, dtype=np.int64)
    polarity[:N_POSITIVE], polarity[N_POSITIVE:N_POSITIVE + N_NEGATIVE] = 1, -1
    ids = np.full((n, max_len), PAD, dtype=np.int64)
    labels = np.empty(n, dtype=np.int64)
    made = 0
    while made < n:
        length = rng.integers(8, max_len + 1)
        tokens = rng.integers(0, VOCAB, length)
        score = polarity[tokens].sum()
        if score == 0:
            continue                     # no ties: every review has a definite label
        ids[made, :length], labels[made] = tokens, int(score > 0)
        made += 1
    return ids, labels


def run(args):
    rng = np.random.default_rng(args.seed)
    words = make_vocabulary(rng)
    X_train, y_train = make_corpus(600, rng)
    X_test, y_test = make_corpus(2000, rng)
    data = Split(X_train, y_train, X_test, y_test)
    example = " ".join(words[t] for t in X_train[0] if t != PAD)
    print(f"{len(y_train)} training / {len(y_test)} test reviews over {VOCAB} words "
          f"({N_POSITIVE} positive, {N_NEGATIVE} negative); "
          f"{100 * y_test.mean():.0f}% of test reviews are positive")
    print(f'e.g. "{example}" -> {"positive" if y_train[0] else "negative"}')
    epochs = 15 if args.quick else 80
    for p in (0.0, args.p):
        init = np.random.default_rng(args.seed + 1)
        model = Sequential(EmbeddingBag(VOCAB, 32, init, padding=PAD), Dense(32, 64, init), ReLU(),
                           fd.Dropout(p, seed=args.seed), Dense(64, 2, init))
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
        history = fit(model, optimizer, data, epochs=epochs, batch_size=32, rng=np.random.default_rng(args.seed + 2))
        print(f"dropout p={p:.2f}: {epochs} epochs, {history.summary()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 epochs instead of 80")
    parser.add_argument("--p", type=_cli_args.rate, default=0.5, help="the dropout rate compared with no dropout")
    parser.add_argument("--seed", type=_cli_args.seed, default=0)
    sys.exit(run_script("text_sentiment.py", run, parser.parse_args()))
