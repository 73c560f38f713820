"""Kata 04: neural-network building blocks on `Value`, and a next-character MLP on names."""

from __future__ import annotations

import math
import random

from value import Value

# --- layers ---


def linear(x: list[Value], w: list[list[Value]], b: list[Value] | None = None) -> list[Value]:
    """y[i] = sum_j w[i][j] * x[j] (+ b[i]); w has one row per output (n_out x n_in).

    Each output is ONE Value whose children are the row's weights, then the inputs (then the
    bias; another order works as well, as long as each child keeps its own local gradient).
    Its local gradients are the other factor of each product: d y / d w[i][j] = x[j]
    and d y / d x[j] = w[i][j] (and 1 for the bias).
    """
    if b is not None and len(b) != len(w):
        raise ValueError(f"linear: w has {len(w)} rows (outputs) but b has {len(b)} entries; "
                         "give one bias per output")
    x_data = [xi.data for xi in x]
    out = []
    for i, row in enumerate(w):
        if len(row) != len(x):
            raise ValueError(f"linear: row {i} of w has {len(row)} weights but x has {len(x)} "
                             "numbers; w is (n_out x n_in), one row per output")
        w_data = [wij.data for wij in row]
        total = sum(wij * xj for wij, xj in zip(w_data, x_data, strict=True))
        if b is None:
            out.append(Value(total, (*row, *x), (*x_data, *w_data)))
        else:
            out.append(Value(total + b[i].data, (*row, *x, b[i]), (*x_data, *w_data, 1.0)))
    return out


def relu(x: list[Value]) -> list[Value]:
    """max(v, 0) for each v."""
    return [v.relu() for v in x]


def softmax(logits: list[Value]) -> list[Value]:
    """exp(z_i) / sum_j exp(z_j), computed as exp(z_i - max) / sum_j exp(z_j - max).

    Shifting every logit by the same number leaves the result unchanged, and after the
    shift the largest exponent is exp(0) = 1: nothing overflows, whatever the logits.
    """
    shift = max(v.data for v in logits)  # a plain number, so no gradient flows through it
    exps = [(v - shift).exp() for v in logits]
    inverse_total = sum(exps) ** -1  # one division shared by every output
    return [e * inverse_total for e in exps]


def cross_entropy(logits: list[Value], target: int) -> Value:
    """-log softmax(logits)[target] as ONE Value node.

    loss = logsumexp(z) - z[target], with logsumexp(z) = m + log(sum_j exp(z_j - m)) for
    m = max(z); its gradient with respect to z_j is softmax(z)_j - (1 if j == target else 0).
    """
    if not 0 <= target < len(logits):
        raise IndexError(f"cross_entropy: target {target} is not a valid index for "
                         f"{len(logits)} logits (0..{len(logits) - 1})")
    shift = max(v.data for v in logits)
    exps = [math.exp(v.data - shift) for v in logits]
    total = sum(exps)
    loss = shift + math.log(total) - logits[target].data
    grads = [e / total - (j == target) for j, e in enumerate(exps)]
    return Value(loss, tuple(logits), tuple(grads))


# --- parameters and plain SGD ---


def matrix(n_out: int, n_in: int, std: float, rng: random.Random) -> list[list[Value]]:
    """An n_out x n_in matrix of Values drawn rng.gauss(0, std), row by row."""
    if n_out < 1 or n_in < 1:
        raise ValueError(f"matrix: shape ({n_out}, {n_in}) must have at least one row and column")
    if std < 0:
        raise ValueError(f"matrix: std must be >= 0, got {std}")
    return [[Value(rng.gauss(0.0, std)) for _ in range(n_in)] for _ in range(n_out)]


def sgd_step(params: list[Value], lr: float) -> None:
    """Move every parameter a step of size lr against its gradient."""
    for p in params:
        p.data -= lr * p.grad


def zero_grad(params: list[Value]) -> None:
    """Set every parameter's grad to 0 (backward() adds to it, so clear it before each step)."""
    for p in params:
        p.grad = 0.0


# --- a next-character MLP language model ---

Example = tuple[tuple[int, ...], int]  # (the previous `context` token ids, the next id)


def make_examples(names: list[list[int]], context: int, bos_id: int) -> list[Example]:
    """(previous `context` ids, next id) pairs: each name is read as [BOS]*context + name + [BOS].

    "emma" as ids, context 3: (B,B,B)->e, (B,B,e)->m, (B,e,m)->m, (e,m,m)->a, (m,m,a)->B.
    """
    if context < 1:
        raise ValueError(f"make_examples: context must be at least 1, got {context}")
    examples = []
    for ids in names:
        window = [bos_id] * context
        for target in [*ids, bos_id]:
            examples.append((tuple(window), target))
            window = window[1:] + [target]
    return examples


def num_params(vocab_size: int, context: int, n_embd: int, n_hidden: int) -> int:
    """Parameters of MLP(vocab_size, context, n_embd, n_hidden): embedding + 2 biased layers."""
    embedding = vocab_size * n_embd
    hidden = n_hidden * (context * n_embd) + n_hidden
    output = vocab_size * n_hidden + vocab_size
    return embedding + hidden + output


class MLP:
    """Embed the previous `context` tokens, concatenate, one ReLU hidden layer, then logits.

    wte: vocab_size x n_embd (row t is token t's vector), w1: n_hidden x context*n_embd,
    b1: n_hidden, w2: vocab_size x n_hidden, b2: vocab_size. wte is gaussian with std 1,
    w1 and w2 with std 1/sqrt(fan_in) (so the layers keep their inputs' scale), biases 0.
    """

    def __init__(self, vocab_size: int, context: int, n_embd: int, n_hidden: int,
                 rng: random.Random):
        self.context = context
        self.wte = matrix(vocab_size, n_embd, 1.0, rng)
        self.w1 = matrix(n_hidden, context * n_embd, (context * n_embd) ** -0.5, rng)
        self.b1 = [Value(0.0) for _ in range(n_hidden)]
        self.w2 = matrix(vocab_size, n_hidden, n_hidden**-0.5, rng)
        self.b2 = [Value(0.0) for _ in range(vocab_size)]

    def parameters(self) -> list[Value]:
        matrices = [*self.wte, *self.w1, *self.w2]
        return [p for row in matrices for p in row] + self.b1 + self.b2

    def __call__(self, context_ids: tuple[int, ...]) -> list[Value]:
        """Logits for the token that follows context_ids (exactly `context` ids)."""
        if len(context_ids) != self.context:
            raise ValueError(f"MLP: expected {self.context} context ids, got {len(context_ids)}")
        x = [v for t in context_ids for v in self.wte[t]]  # concatenated embeddings
        hidden = relu(linear(x, self.w1, self.b1))
        return linear(hidden, self.w2, self.b2)


def mean_loss(model: MLP, examples: list[Example]) -> Value:
    """Average cross-entropy of the model's next-token prediction over the examples."""
    if not examples:
        raise ValueError("mean_loss: got no examples to average over")
    losses = [cross_entropy(model(context), target) for context, target in examples]
    return sum(losses) * (1.0 / len(losses))


def train_step(model: MLP, examples: list[Example], lr: float) -> float:
    """One step of SGD on the mean loss over examples; returns that loss (before the step)."""
    params = model.parameters()
    zero_grad(params)
    loss = mean_loss(model, examples)
    loss.backward()
    sgd_step(params, lr)
    return loss.data
