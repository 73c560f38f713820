"""The specs judge behaviour, not one way of writing it.

ALTERNATIVES: correct code written differently from the reference, each of which a spec once
rejected; the kata's specs must all pass on it. MUTANTS: wrong code that a spec once let
through; the named spec must now fail on it. Each is the reference solution with a few lines
rewritten, imported ahead of the reference in a fresh pytest run of the kata's spec file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import katas

ROOT = katas.ROOT
FIRST_ON_PATH = """\
import sys
import pytest

@pytest.hookimpl(trylast=True)  # after conftest.py has put the solutions on sys.path
def pytest_configure(config):
    sys.path.insert(0, {where!r})
"""


@dataclass(frozen=True)
class Rewrite:
    kata: str  # "04_mlp"
    module: str  # "mlp.py"
    why: str
    edits: tuple[tuple[str, str], ...]  # (reference text, its replacement)
    specs: str = ""  # pytest -k expression; "" runs every spec of the kata

    def __str__(self) -> str:
        return f"{self.kata}: {self.why}"


ALTERNATIVES = [
    Rewrite(
        "01_value",
        "value.py",
        "log's error prints 0.0 as 0; -a is its own node",
        (
            (
                'raise ValueError(f"log is only defined for positive numbers, got {self.data}")',
                'raise ValueError(f"log needs a positive number, got {self.data:g}")',
            ),
            ("return self * -1.0", "return Value(-self.data, (self,), (-1.0,))"),
        ),
    ),
    Rewrite(
        "04_mlp",
        "mlp.py",
        "linear's children are (*x, *w[i]), not (*w[i], *x)",
        (
            (
                "Value(total, (*row, *x), (*x_data, *w_data))",
                "Value(total, (*x, *row), (*w_data, *x_data))",
            ),
            (
                "Value(total + b[i].data, (*row, *x, b[i]), (*x_data, *w_data, 1.0))",
                "Value(total + b[i].data, (b[i], *x, *row), (1.0, *w_data, *x_data))",
            ),
        ),
    ),
    Rewrite(
        "09_gpt",
        "gpt.py",
        "sdpa imported by name from torch.nn.functional",
        (
            (
                "import torch.nn.functional as F\n",
                "import torch.nn.functional as F\n"
                "from torch.nn.functional import scaled_dot_product_attention\n",
            ),
            (
                "y = F.scaled_dot_product_attention(q, k, v, dropout_p",
                "y = scaled_dot_product_attention(q, k, v, dropout_p",
            ),
            (
                "y = F.scaled_dot_product_attention(q, k, v, attn_mask",
                "y = scaled_dot_product_attention(q, k, v, attn_mask",
            ),
        ),
        specs="attention or causal or cache",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "save into an open temporary file with fsync; rng states under other names",
        (
            (
                """    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object: a full disk surfaces as its OSError
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())  # on the disk before the rename, not just in a buffer
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)""",
                """    import tempfile
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as file:
        tmp = Path(file.name)
        try:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        except BaseException:
            file.close()
            tmp.unlink()
            raise
    os.replace(tmp, path)""",
            ),
            (
                'batches.set_state(checkpoint["rng"]["batches"])',
                'batches.set_state(checkpoint["rng"]["batch_generator"])',
            ),
            (
                'torch.set_rng_state(checkpoint["rng"]["torch"])',
                'torch.set_rng_state(checkpoint["rng"]["global"])',
            ),
            (
                'rng = {"torch": torch.get_rng_state(), "batches": batches.get_state(),',
                'rng = {"global": torch.get_rng_state(), "batch_generator": batches.get_state(),',
            ),
        ),
        specs="checkpoint or save or resume",
    ),
    Rewrite(
        "18_muon",
        "muon.py",
        "momentum as an average (torch.optim.Muon's form), eps by "
        "clamp, the Gram matrix on the right",
        (
            ("buf.mul_(mu).add_(grad)  # B <- mu B + G", "buf.lerp_(grad, 1 - mu)"),
            (
                'direction = grad + mu * buf if group["nesterov"] else buf',
                'direction = grad.lerp(buf, mu) if group["nesterov"] else buf',
            ),
            (
                "X = X / (torch.linalg.matrix_norm(X) + eps)",
                "X = X / torch.linalg.matrix_norm(X).clamp(min=eps)",
            ),
            ("    tall = G.shape[0] > G.shape[1]", "    tall = G.shape[0] < G.shape[1]  # wide"),
            (
                "        A = X @ X.T  # rows x rows, rows <= cols\n"
                "        X = a * X + (b * A + c * (A @ A)) @ X",
                "        A = X.T @ X  # cols x cols, cols <= rows\n"
                "        X = a * X + X @ (b * A + c * (A @ A))",
            ),
        ),
    ),
    Rewrite(
        "13_rope",
        "rope.py",
        "each pair turned by the real 2-D rotation, not as a complex number",
        (
            (
                "    turn = torch.complex(angles.cos(), angles.sin())  # broadcast over the leading dims\n"
                "    pairs = torch.view_as_complex(x.to(work).unflatten(-1, (head_dim // 2, 2)).contiguous())\n"
                "    return torch.view_as_real(pairs * turn).flatten(-2).to(x.dtype)\n",
                "    cos, sin = angles.cos(), angles.sin()\n"
                "    a, b = x.to(work).unflatten(-1, (head_dim // 2, 2)).unbind(-1)\n"
                "    rotated = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1)\n"
                "    return rotated.flatten(-2).to(x.dtype)\n",
            ),
        ),
    ),
    Rewrite(
        "14_swiglu",
        "swiglu.py",
        "the gate through the kata's own silu, not F.silu",
        (("self.w2(F.silu(self.w1(x)) * self.w3(x))", "self.w2(silu(self.w1(x)) * self.w3(x))"),),
    ),
    Rewrite(
        "15_gqa",
        "gqa.py",
        "keys and values copied per query head, and the causal mask made explicitly",
        (
            (
                "        if mask is None:  # no cache, no window shorter than T: sdpa's own causal mask\n"
                "            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True,\n"
                "                                               enable_gqa=True)\n"
                "        else:\n"
                "            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p,\n"
                "                                               enable_gqa=True)\n",
                "        k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)\n"
                "        if mask is None:\n"
                "            mask = sliding_window_mask(T, T, None, x.device)\n"
                "        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)\n",
            ),
        ),
    ),
]

CLIP = "        grad_norm = clip_grad_norm(model.parameters(), cfg.grad_clip).item()\n"
MUTANTS = [
    Rewrite(
        "04_mlp",
        "mlp.py",
        "weights of std 1 (initial loss near 60, not ln 27)",
        (
            ("(context * n_embd) ** -0.5, rng)", "1.0, rng)"),
            ("n_hidden**-0.5, rng)", "1.0, rng)"),
        ),
        specs="untrained",
    ),
    Rewrite(
        "07_adam",
        "adam.py",
        "linear decay goes negative past total_steps",
        (("lr * max(0.0, 1.0 - step / total_steps)", "lr * (1.0 - step / total_steps)"),),
        specs="past_the_last_step",
    ),
    Rewrite(
        "08_microgpt",
        "microgpt.py",
        "logits sharpened 1.5 times too much",
        (("logit * (1.0 / temperature)", "logit * (1.5 / temperature)"),),
        specs="temperature_divides",
    ),
    Rewrite(
        "08_microgpt",
        "microgpt.py",
        "lm_head drawn last, after the layer",
        (
            (
                '        "lm_head": matrix(VOCAB_SIZE, N_EMBD, INIT_STD, rng),'
                "  # its own matrix, not tied to wte\n",
                "",
            ),
            (
                "    return params\n",
                '    params["lm_head"] = matrix(VOCAB_SIZE, N_EMBD, INIT_STD, rng)\n    return params\n',
            ),
        ),
        specs="drawn or emma",
    ),
    Rewrite(
        "09_gpt",
        "gpt.py",
        "no dropout on the embeddings",
        (
            (
                "x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))",
                "x = self.transformer.wte(idx) + self.transformer.wpe(positions)",
            ),
        ),
        specs="embeddings_are_dropped",
    ),
    Rewrite(
        "11_sampling",
        "sampling.py",
        "top_p=1 cut like any other top_p (Hint 3 before)",
        (("if top_p is not None and top_p < 1:", "if top_p is not None:"),),
        specs="top_p_of_one",
    ),
    Rewrite(
        "11_sampling",
        "sampling.py",
        "greedy drawn from the one-hot distribution",
        (("    if temperature == 0:\n        return probs.argmax(dim=-1, keepdim=True)\n", ""),),
        specs="greedy_draws_nothing",
    ),
    Rewrite(
        "13_rope",
        "rope.py",
        "RMSNorm rounds to x's dtype before the gain",
        (
            (
                "return (normed * self.weight.to(work)).to(x.dtype)",
                "return normed.to(x.dtype) * self.weight.to(x.dtype)",
            ),
        ),
        specs="rounds_once",
    ),
    Rewrite(
        "13_rope",
        "rope.py",
        "positions checked by their last size only",
        (
            (
                "if positions.dim() != 1 or positions.shape[0] != T:",
                "if positions.shape[-1:] != (T,):",
            ),
        ),
        specs="not_T",
    ),
    Rewrite(
        "13_rope",
        "rope.py",
        "rope_attention attends in float32 whatever comes in",
        (
            (
                "return F.scaled_dot_product_attention(q, k, v, is_causal=True)",
                "return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)",
            ),
        ),
        specs="dtype_of_q",
    ),
    Rewrite(
        "14_swiglu",
        "swiglu.py",
        "a bool accepted as a size",
        (
            (
                "if isinstance(value, bool) or not isinstance(value, int) or value < 1:",
                "if not isinstance(value, int) or value < 1:",
            ),
        ),
        specs="rejects_bad_sizes",
    ),
    Rewrite(
        "15_gqa",
        "gqa.py",
        "default positions wrap at the window",
        (
            (
                "start = 0 if kv_cache is None else len(kv_cache)",
                "start = 0 if kv_cache is None else len(kv_cache) % kv_cache.capacity",
            ),
        ),
        specs="default_positions_counts_past",
    ),
    Rewrite(
        "15_gqa",
        "gqa.py",
        "len(cache) is the first layer's count",
        (("return min(self.written)", "return self.written[0]"),),
        specs="every_layer_has_written",
    ),
    Rewrite(
        "15_gqa",
        "gqa.py",
        "update does not check k's and v's shapes",
        (
            (
                "        if k.dim() != 4 or (k.shape[0], k.shape[1], k.shape[3]) != (B, KV, hd) \\\n"
                "                or v.shape != k.shape:\n",
                "        if False:\n",
            ),
        ),
        specs="shaped_unlike",
    ),
    Rewrite(
        "15_gqa",
        "gqa.py",
        "only a cache without a window is refused",
        (
            (
                "if kv_cache.window != self.window:",
                "if kv_cache.window is None and self.window is not None:",
            ),
        ),
        specs="another_window",
    ),
    Rewrite(
        "15_gqa",
        "gqa.py",
        "the rolling write goes through out=",
        (
            (
                "self.keys[layer].index_copy_(2, slots, k.to(self.keys.dtype))",
                "torch.index_copy(self.keys[layer], 2, slots, k.to(self.keys.dtype), "
                "out=self.keys[layer])",
            ),
        ),
        specs="require_grad",
    ),
    Rewrite(
        "16_modern",
        "modern.py",
        "the block_size guard checks only for a window",
        (
            (
                "if start + T > self.config.block_size and not self.config.rolling:",
                "if start + T > self.config.block_size and self.config.window is None:",
            ),
        ),
        specs="rolling_model",
    ),
    Rewrite(
        "16_modern",
        "modern.py",
        "num_params tells tensors apart by data_ptr()",
        (
            (
                "return sum(p.numel() for p in self.parameters())",
                "return sum({p.data_ptr(): p.numel() for p in self.parameters()}.values())",
            ),
        ),
        specs="meta_device",
    ),
    Rewrite(
        "17_bpe",
        "bpe.py",
        "the merged pair deleted again after the update",
        (
            ("pair_counts: Counter[tuple[int, int]] = Counter()", "pair_counts = defaultdict(int)"),
            (
                "                words[w] = new\n        return cls(merges, special_tokens)",
                "                words[w] = new\n            del pair_counts[best]\n"
                "        return cls(merges, special_tokens)",
            ),
        ),
        specs="break_incremental",
    ),
    Rewrite(
        "17_bpe",
        "bpe.py",
        "special tokens sorted before they get their ids",
        (
            (
                "        for token in special_tokens:\n            if token in self",
                "        for token in sorted(special_tokens):\n            if token in self",
            ),
        ),
        specs="order_given",
    ),
    Rewrite(
        "17_bpe",
        "bpe.py",
        "to_dict stores the special tokens' dict",
        (
            (
                '"special_tokens": list(self.special_tokens)}',
                '"special_tokens": dict(self.special_tokens)}',
            ),
        ),
        specs="format",
    ),
    Rewrite(
        "17_bpe",
        "bpe.py",
        "encode without a cache",
        (("if piece not in self._cache:", "if True:"),),
        specs="distinct_piece_once",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "clipping after optimizer.step()",
        (
            (CLIP, ""),
            ("        optimizer.step()\n", "        optimizer.step()\n" + CLIP),
            (
                "if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):",
                "if not math.isfinite(loss_value):",
            ),
        ),
        specs="clipping",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "train keeps the mode the model came in",
        (("    model.to(device).train()\n", "    model.to(device)\n"),),
        specs="handed_over_in_eval",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "no clipping",
        ((CLIP, "        grad_norm = 0.0\n"),),
        specs="clipping",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "best.pt written at every evaluation",
        (
            (
                '        save("last.pt")\n        log(',
                '        save("best.pt")\n        save("last.pt")\n        log(',
            ),
        ),
        specs="resume_keeps_the_best",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "no evaluation at max_steps off the interval",
        (
            (
                "at_eval = step % cfg.eval_interval == 0 or step == cfg.max_steps",
                "at_eval = step % cfg.eval_interval == 0",
            ),
        ),
        specs="last_step",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "'val' measured on the train split",
        (('{"train": train_data, "val": val_data}', '{"train": train_data, "val": train_data}'),),
        specs="own_data",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "training batches drawn from val",
        (
            (
                "get_batch(train_data, cfg.batch_size, block_size, batches, device)",
                "get_batch(val_data, cfg.batch_size, block_size, batches, device)",
            ),
        ),
        specs="own_data",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "resume restores the step only",
        (
            (
                '        state = checkpoint["state"]\n',
                '        state["step"] = checkpoint["state"]["step"]\n',
            ),
        ),
        specs="resume_keeps_the_best",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "resume repeats the evaluation at its step",
        (
            (
                'if at_eval and state["eval_step"] != step and evaluate():',
                "if at_eval and evaluate():",
            ),
        ),
        specs="resume_keeps_the_best",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "load_checkpoint unpickles anything",
        (("weights_only=True)", "weights_only=False)"),),
        specs="never_runs_code",
    ),
    Rewrite(
        "12_shakespeare",
        "shakespeare.py",
        "every process trains on the whole batch",
        (("step_model(x[mine], y[mine])", "step_model(x, y)"),),
        specs="two_processes",
    ),
]


def _run_specs(rewrite: Rewrite, tmp_path: Path) -> subprocess.CompletedProcess:
    source = (ROOT / "solutions" / rewrite.kata / rewrite.module).read_text()
    for old, new in rewrite.edits:
        assert source.count(old) == 1, (
            f"{rewrite}: the reference no longer contains exactly one {old!r}; update this "
            "rewrite to today's solution"
        )
        source = source.replace(old, new)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / rewrite.module).write_text(source)
    (tmp_path / "first_on_path.py").write_text(FIRST_ON_PATH.format(where=str(tmp_path / "code")))
    spec_files = [str(p) for p in katas.find_kata(rewrite.kata).specs()]
    command = [
        sys.executable,
        "-m",
        "pytest",
        *spec_files,
        "-q",
        "-p",
        "first_on_path",
        "--impl=solutions",
        "-x",
        *(("-k", rewrite.specs) if rewrite.specs else ()),
    ]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("rewrite", ALTERNATIVES, ids=lambda r: r.kata)
def test_specs_accept_a_correct_alternative(rewrite, tmp_path):
    run = _run_specs(rewrite, tmp_path)
    assert run.returncode == 0, f"{rewrite}: the specs rejected correct code\n{run.stdout[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("rewrite", MUTANTS, ids=str)
def test_specs_reject_a_known_mistake(rewrite, tmp_path):
    run = _run_specs(rewrite, tmp_path)
    assert run.returncode == 1, (
        f"{rewrite}: the specs ({rewrite.specs}) let this mistake pass\n{run.stdout[-3000:]}"
    )
