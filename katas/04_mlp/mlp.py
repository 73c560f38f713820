"""Kata 04: neural-network building blocks on `Value`, and a next-character MLP on names.

Read katas/04_mlp/README.md first. Replace every `raise NotImplementedError` below;
run `make kata K=04` to check your work.
"""

from __future__ import annotations

import math  # noqa: F401  (you will need it)
import random

from value import Value

LESSON = "see katas/04_mlp/README.md"

# --- layers ---


def linear(x: list[Value], w: list[list[Value]], b: list[Value] | None = None) -> list[Value]:
    """y[i] = sum_j w[i][j] * x[j] (+ b[i]); w has one row per output (n_out x n_in).

    Build each output as ONE Value: children (*w[i], *x) (then b[i]), local grads
    (*x data, *w[i] data) (then 1.0); another order is fine if each child keeps its own
    local grad. A ValueError that gives both lengths when a row of w
    and x differ in length, or when b does not have one entry per row of w.
    """
    raise NotImplementedError(f"linear: one fused Value per row of w; {LESSON}")


def relu(x: list[Value]) -> list[Value]:
    """max(v, 0) for each v."""
    raise NotImplementedError(f"relu: apply Value.relu to each element; {LESSON}")


def softmax(logits: list[Value]) -> list[Value]:
    """exp(z_i) / sum_j exp(z_j), stable for any logits (logits of 1000 must not overflow)."""
    raise NotImplementedError(f"softmax: subtract the max logit (a plain number) first; {LESSON}")


def cross_entropy(logits: list[Value], target: int) -> Value:
    """-log softmax(logits)[target], stable for any logits; best as ONE Value node.

    An IndexError that names the target when it is not in 0..len(logits)-1.
    """
    raise NotImplementedError(f"cross_entropy: logsumexp(z) - z[target]; gradient "
                              f"softmax(z) - onehot(target); {LESSON}")


# --- parameters and plain SGD ---


def matrix(n_out: int, n_in: int, std: float, rng: random.Random) -> list[list[Value]]:
    """An n_out x n_in matrix of fresh Values drawn rng.gauss(0.0, std), row by row.

    A ValueError for a shape with no rows or columns, or a negative std.
    """
    raise NotImplementedError(f"matrix: a list of n_out rows of n_in Values; {LESSON}")


def sgd_step(params: list[Value], lr: float) -> None:
    """Move every parameter a step of size lr against its gradient (data only)."""
    raise NotImplementedError(f"sgd_step: p.data -= lr * p.grad; {LESSON}")


def zero_grad(params: list[Value]) -> None:
    """Set every parameter's grad to 0."""
    raise NotImplementedError(f"zero_grad: p.grad = 0 for every p; {LESSON}")


# --- a next-character MLP language model ---

Example = tuple[tuple[int, ...], int]  # (the previous `context` token ids, the next id)


def make_examples(names: list[list[int]], context: int, bos_id: int) -> list[Example]:
    """(previous `context` ids, next id) pairs: each name is read as [BOS]*context + name + [BOS].

    "emma" as ids, context 3: (B,B,B)->e, (B,B,e)->m, (B,e,m)->m, (e,m,m)->a, (m,m,a)->B.
    """
    raise NotImplementedError(f"make_examples: slide a window of `context` ids; {LESSON}")


def num_params(vocab_size: int, context: int, n_embd: int, n_hidden: int) -> int:
    """Parameters of MLP(vocab_size, context, n_embd, n_hidden): embedding + 2 biased layers."""
    raise NotImplementedError(f"num_params: count wte, w1, b1, w2, b2; {LESSON}")


class MLP:
    """Embed the previous `context` tokens, concatenate, one ReLU hidden layer, then logits.

    wte: vocab_size x n_embd (row t is token t's vector), w1: n_hidden x context*n_embd,
    b1: n_hidden, w2: vocab_size x n_hidden, b2: vocab_size. Suggested init: wte gaussian
    std 1, w1 and w2 gaussian std 1/sqrt(fan_in) (use `matrix`), biases 0.
    """

    def __init__(self, vocab_size: int, context: int, n_embd: int, n_hidden: int,
                 rng: random.Random):
        raise NotImplementedError(f"MLP.__init__: create wte, w1, b1, w2, b2; {LESSON}")

    def parameters(self) -> list[Value]:
        """Every weight and bias, each exactly once."""
        raise NotImplementedError(f"MLP.parameters: flatten wte, w1, b1, w2, b2; {LESSON}")

    def __call__(self, context_ids: tuple[int, ...]) -> list[Value]:
        """Logits for the token after context_ids; a ValueError unless there are `context` ids."""
        raise NotImplementedError(f"MLP.__call__: embed, concatenate, linear, relu, linear; "
                                  f"{LESSON}")


def mean_loss(model: MLP, examples: list[Example]) -> Value:
    """Average cross-entropy of the model's next-token prediction over the examples;
    no examples is a ValueError that says so."""
    raise NotImplementedError(f"mean_loss: average cross_entropy(model(context), target); {LESSON}")


def train_step(model: MLP, examples: list[Example], lr: float) -> float:
    """One step of SGD on mean_loss over examples; returns that loss (before the step)."""
    raise NotImplementedError(f"train_step: zero_grad, loss, backward, sgd_step; {LESSON}")
