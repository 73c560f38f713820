"""Specs for kata 20. Oracles: the chat template and its mask rebuilt here character by
character from the ids the lesson gives (chars first, in order, then the five specials);
x / y / padding built by plain Python loops; the loss as a float64 log-softmax summed over the
assistant positions by hand; one optimizer step done by hand with autograd; greedy decoding by
running the model on the whole sequence at every step (no cache); a model with planted
weights whose next token is known in advance."""

import copy
import json
import random

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from modern import ModernConfig, ModernGPT
from sft import (
    IGNORE_INDEX,
    ChatTokenizer,
    collate,
    generate_reply,
    prompt_for_reply,
    render_chat,
    sft_loss,
    sft_step,
)
from tasks import ALPHABET, make_task

from harness.checks import expect, expect_close

# The lesson's order, written out here so that a changed SPECIALS is caught too.
NAMES = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")
SYSTEM, USER, ASSISTANT, END, PAD = range(5)  # offsets past the last char id
ROLE = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
ODD = "<|>adeimnprstuy "  # every character of the specials' names is an ordinary one here
CHAT = [("system", "be brief"), ("user", "reverse ada"), ("assistant", "ada")]


def expected_render(chars, messages):
    """The template by hand: <|role|> text <|end|> per message; the mask marks the assistant's
    text and its <|end|>."""
    ids, mask = [], []
    for role, text in messages:
        body = [chars.index(c) for c in text] + [len(chars) + END]
        ids += [len(chars) + ROLE[role]] + body
        mask += [False] + [role == "assistant"] * len(body)
    return ids, mask


def expected_batch(chars, examples):
    """x and y by hand: inputs are ids[:-1], labels ids[1:] kept where the LABEL's own mask
    entry (mask[t + 1]) is True; padding: <|pad|> in x, IGNORE_INDEX in y."""
    T = max(len(ids) for ids, _ in examples) - 1
    x, y = [], []
    for ids, mask in examples:
        row_x = [ids[t] for t in range(len(ids) - 1)]
        row_y = [ids[t + 1] if mask[t + 1] else -100 for t in range(len(ids) - 1)]
        x.append(row_x + [len(chars) + PAD] * (T - len(row_x)))
        y.append(row_y + [-100] * (T - len(row_y)))
    return x, y


def is_int_list(value):
    return type(value) is list and all(type(i) is int for i in value)


def rendered(tok, messages):
    got = render_chat(tok, messages)
    expect(type(got) is tuple and len(got) == 2,
           f"render_chat returned {type(got).__name__}, expected a tuple (ids, mask)")
    ids, mask = got
    expect(is_int_list(ids) and type(mask) is list and all(type(m) is bool for m in mask),
           f"render_chat returned ids={ids!r}, mask={mask!r}: expected a list of int and a "
           "list of bool", hint="ids: plain Python ints; mask: True/False, not 0/1")
    return ids, mask


def batch(tok, examples, **kwargs):
    got = collate(tok, examples, **kwargs)
    expect(type(got) is tuple and len(got) == 2 and all(
        isinstance(t, torch.Tensor) and t.dtype == torch.long for t in got),
        f"collate returned {got!r}: expected a tuple (x, y) of torch.long tensors",
        hint="torch.full(..., dtype=torch.long); cross-entropy wants long labels")
    return got


def conversations(tok, chats):
    return [render_chat(tok, messages) for messages in chats]


# --- the tokenizer ---


def test_char_ids_in_the_order_given_then_the_specials():
    tok = ChatTokenizer("cab")
    got = tok.encode("abcab")
    expect(is_int_list(got) and got == [1, 2, 0, 1, 2],
           f'ChatTokenizer("cab").encode("abcab"):\n  expected [1, 2, 0, 1, 2]\n  got      {got}',
           hint="char i of chars gets id i, in the order given (do not sort them)")
    want = {name: 3 + i for i, name in enumerate(NAMES)}
    expect(tok.special == want, f'ChatTokenizer("cab").special:\n  expected {want}\n  got      '
           f"{tok.special}", hint="the specials take the ids after the chars, in SPECIALS' "
           "order: their ids must never collide with a char id")
    got = (tok.vocab_size, tok.pad_id, tok.end_id, tok.assistant_id)
    expect(got == (8, 7, 6, 5), f'ChatTokenizer("cab"): (vocab_size, pad_id, end_id, '
           f"assistant_id) expected (8, 7, 6, 5), got {got}")
    default = ChatTokenizer()
    expect(default.vocab_size == len(ALPHABET) + 5 and default.encode("a z0") == [0, 36, 25, 26],
           f"ChatTokenizer() should use tasks.ALPHABET ({len(ALPHABET)} chars): vocab_size "
           f"{default.vocab_size}, encode('a z0') = {default.encode('a z0')}",
           hint="the default chars are ALPHABET")


@given(pieces=st.lists(st.one_of(st.text(alphabet=ODD, max_size=8), st.sampled_from(NAMES)),
                       max_size=6))
def test_ordinary_text_never_produces_a_special_id(pieces):
    text = "".join(pieces)  # often contains the literal text "<|end|>"
    tok = ChatTokenizer(ODD)
    got = tok.encode(text)
    want = [ODD.index(c) for c in text]
    hint = ("encode maps each character on its own; the seven characters '<|end|>' are text, "
            "the <|end|> token only ever comes from the template")
    expect(is_int_list(got) and got == want,
           f"ChatTokenizer({ODD!r}).encode({text!r}):\n  expected {want}\n  got      {got}",
           hint=hint)
    back = tok.decode(got)
    expect(back == text, f"decode(encode({text!r})) gave {back!r}")


@given(text=st.text(alphabet=ALPHABET, max_size=30))
def test_decode_inverts_encode(text):
    tok = ChatTokenizer()
    for ids in (tok.encode(text), torch.tensor(tok.encode(text), dtype=torch.long)):
        back = tok.decode(ids)
        expect(type(back) is str and back == text,
               f"decode(encode({text!r})) with the ids as a {type(ids).__name__}: got {back!r}",
               hint="decode takes a list of ints or a tensor of ids")


def test_special_ids_decode_to_their_names():
    tok = ChatTokenizer("ab")
    got = tok.decode([2, 3, 4, 5, 6, 0, 1])
    want = "".join(NAMES) + "ab"
    expect(got == want, f'ChatTokenizer("ab").decode([2, 3, 4, 5, 6, 0, 1]):\n  expected '
           f"{want!r}\n  got      {got!r}", hint="ids past the chars are the SPECIALS, in order")
    with pytest.raises(ValueError):
        tok.decode([7])


def test_encode_names_the_bad_character_and_its_position():
    tok = ChatTokenizer()
    with pytest.raises(ValueError) as info:
        tok.encode("reverse olivia#")
    message = str(info.value)
    expect("#" in message and "14" in message,
           f"encode('reverse olivia#') raised ValueError({message!r}), which does not name the "
           "character '#' and its position 14",
           hint="e.g. \"character '#' at position 14 is not in the tokenizer's characters\"")


@pytest.mark.parametrize("chars", ["", "abca"], ids=["empty", "repeated a"])
def test_tokenizer_rejects_empty_or_repeated_chars(chars):
    with pytest.raises(ValueError):
        ChatTokenizer(chars)


def test_to_dict_from_dict_round_trip():
    tok = ChatTokenizer("zyx <|>")
    saved = json.loads(json.dumps(tok.to_dict()))  # what a checkpoint stores
    back = ChatTokenizer.from_dict(saved)
    expect(type(back) is ChatTokenizer, f"from_dict returned {type(back).__name__}",
           hint="a classmethod: return cls(...)")
    text = "x<|>yz "
    got = (back.vocab_size, back.special, back.encode(text), back.decode(range(12)))
    want = (tok.vocab_size, tok.special, tok.encode(text), tok.decode(range(12)))
    expect(got == want, f"ChatTokenizer.from_dict(to_dict()) differs from the original:\n"
           f"  expected {want}\n  got      {got}",
           hint="to_dict must keep the chars in their order")


# --- the template ---


def test_render_the_worked_example():
    tok = ChatTokenizer()
    ids, mask = rendered(tok, CHAT)
    want_ids, want_mask = expected_render(ALPHABET, CHAT)
    text = "<|system|>be brief<|end|><|user|>reverse ada<|end|><|assistant|>ada<|end|>"
    expect(tok.decode(ids) == text, f"decode(render_chat(CHAT) ids):\n  expected {text!r}\n"
           f"  got      {tok.decode(ids)!r}", hint="each message is <|role|> text <|end|>")
    expect(ids == want_ids, f"render_chat ids:\n  expected {want_ids}\n  got      {ids}")
    expect(mask == want_mask, f"render_chat mask for {CHAT}:\n  expected "
           f"{[int(m) for m in want_mask]}\n  got      {[int(m) for m in mask]}",
           hint="True on the 3 reply characters and the closing <|end|> only")


messages_strategy = st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]),
                                       st.text(alphabet=ALPHABET, max_size=6)), max_size=6)


@given(messages=messages_strategy)
def test_mask_covers_exactly_the_assistant_spans(messages):
    tok = ChatTokenizer()
    ids, mask = rendered(tok, messages)
    want_ids, want_mask = expected_render(ALPHABET, messages)
    text = "".join(f"<|{role}|>{body}<|end|>" for role, body in messages)
    expect(tok.decode(ids) == text, f"decode(render_chat({messages}) ids):\n  expected "
           f"{text!r}\n  got      {tok.decode(ids)!r}",
           hint="<|role|> text <|end|> for every message, in order")
    expect(ids == want_ids, f"render_chat({messages}) ids:\n  expected {want_ids}\n"
           f"  got      {ids}", hint="<|role|> text <|end|> for every message, in order")
    hint = "True on each assistant message's text and its <|end|>; False elsewhere"
    if len(mask) == len(want_mask):
        marker = [m for m, i in zip(mask, ids) if i == tok.assistant_id]
        user = [m for m, (role, _) in zip(mask, expanded(messages)) if role != "assistant"]
        if any(marker):
            hint = "the <|assistant|> marker is written by the template, not the model: False"
        elif any(user):
            hint = "system and user tokens are the prompt: the model must not learn them"
        elif mask != want_mask:
            hint = "the assistant's closing <|end|> is True: the model must learn to stop"
    expect(mask == want_mask, f"render_chat({messages}) mask:\n  expected "
           f"{[int(m) for m in want_mask]}\n  got      {[int(m) for m in mask]}", hint=hint)


def expanded(messages):
    """The role of every token of the rendered conversation."""
    return [(role, None) for role, text in messages for _ in range(len(text) + 2)]


def test_unknown_role_is_a_value_error_that_names_it():
    with pytest.raises(ValueError, match="bot"):
        render_chat(ChatTokenizer(), [("bot", "hello")])


def test_prompt_for_reply_ends_with_the_assistant_marker():
    tok = ChatTokenizer()
    messages = CHAT + [("user", "count a in ada")]
    got = prompt_for_reply(tok, messages)
    want = expected_render(ALPHABET, messages)[0] + [len(ALPHABET) + ASSISTANT]
    expect(is_int_list(got) and got == want,
           f"prompt_for_reply({messages}):\n  expected {want}\n  got      {got}",
           hint="render_chat's ids, then <|assistant|>: the model writes what follows")


# --- the batch ---

CHATS = [CHAT, [("user", "count a in ada"), ("assistant", "2")],
         [("user", "hi"), ("assistant", "hello"), ("user", "bye"), ("assistant", "ok")]]


def test_collate_shifts_masks_and_pads():
    tok = ChatTokenizer()
    examples = conversations(tok, CHATS)
    x, y = batch(tok, examples)
    want_x, want_y = expected_batch(ALPHABET, examples)
    expect(x.tolist() == want_x, f"collate x (first row):\n  expected {want_x[0]}\n"
           f"  got      {x.tolist()[0] if x.dim() == 2 else x.tolist()}",
           hint="x[b] = ids[:-1], right-padded with pad_id to the longest example - 1")
    hint = "y[b, t] = ids[t + 1] where mask[t + 1], else IGNORE_INDEX (-100); padding -100"
    if y.shape == x.shape:
        got = y.tolist()
        shifted = [[ids[t + 1] if t + 1 < len(ids) and mask[t] else -100
                    for t in range(x.size(1))] for ids, mask in examples]
        if got == shifted:
            hint = ("you used mask[t], the mask of the INPUT token: a label is the next token, so "
                    "it takes that token's own mask, mask[t + 1]")
        elif any(v == tok.pad_id for row in got for v in row):
            hint = "padding labels must be IGNORE_INDEX, not pad_id: padding is never learned"
    expect(y.tolist() == want_y, f"collate y for {len(examples)} conversations:\n  expected "
           f"{want_y[1]}\n  got      {y.tolist()[1] if y.dim() == 2 else y.tolist()} "
           "(second row)", hint=hint)


def test_labels_start_at_the_reply_and_end_with_end():
    tok = ChatTokenizer()
    ids, mask = render_chat(tok, [("user", "hi"), ("assistant", "yo")])
    x, y = batch(tok, [(ids, mask)])
    # x = <|user|> h i <|end|> <|assistant|> y o ; y learns only what follows the marker.
    want = [-100, -100, -100, -100, tok.encode("y")[0], tok.encode("o")[0], tok.end_id]
    expect(y.tolist() == [want], f"collate y for user 'hi', assistant 'yo':\n  expected "
           f"{[want]}\n  got      {y.tolist()}", hint="at the <|assistant|> input the label is "
           "the first reply character; the last label is the reply's <|end|>")


def test_collate_checks_block_size_and_empty_batches():
    tok = ChatTokenizer()
    examples = conversations(tok, CHATS)
    longest = max(len(ids) for ids, _ in examples) - 1
    x, _ = batch(tok, examples, block_size=longest)
    expect(x.size(1) == longest, f"collate with block_size={longest} (exactly enough): x has "
           f"{x.size(1)} positions")
    with pytest.raises(ValueError, match="block_size"):
        collate(tok, examples, block_size=longest - 1)
    with pytest.raises(ValueError):
        collate(tok, [])


# --- the loss ---


class FixedLogits(nn.Module):
    """A stand-in model whose logits are one fixed float64 parameter, whatever the input:
    a change in the labels is then the only thing that can change the loss."""

    def __init__(self, B, T, V, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(B, T, V, generator=g, dtype=torch.float64))

    def forward(self, idx, targets=None, kv_cache=None):
        logits = self.table[: idx.size(0), : idx.size(1)]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def hand_loss(logits, examples):
    """Per token: -log softmax of the next token at every position whose NEXT token is an
    assistant token, summed over the whole batch and divided by their count (float64)."""
    logp = torch.log_softmax(logits.detach().double(), dim=-1)
    terms = [[-logp[b, t, ids[t + 1]].item() for t in range(len(ids) - 1) if mask[t + 1]]
             for b, (ids, mask) in enumerate(examples)]
    per_token = sum(map(sum, terms)) / sum(map(len, terms))
    per_sequence = sum(sum(t) / len(t) for t in terms) / len(terms)
    return per_token, per_sequence


def scalar_loss(model, x, y):
    loss = sft_loss(model, x, y)
    expect(isinstance(loss, torch.Tensor) and loss.dim() == 0,
           f"sft_loss returned {loss!r}: expected a 0-d tensor",
           hint="keep it a tensor, so that .backward() works")
    return loss


def test_loss_is_the_per_token_mean_over_the_whole_batch():
    tok = ChatTokenizer()
    # Replies of very different lengths: per-token and per-sequence means differ a lot.
    chats = [[("user", "reverse maximiliano"), ("assistant", "onailimixam")],
             [("user", "count a in ada"), ("assistant", "2")]]
    examples = conversations(tok, chats)
    x, y = batch(tok, examples)
    model = FixedLogits(*x.shape, tok.vocab_size)
    loss = scalar_loss(model, x, y)
    per_token, per_sequence = hand_loss(model.table[:, : x.size(1)], examples)
    hint = ("cross-entropy with ignore_index=-100 over ALL the batch's labels: "
            "the sum over assistant tokens / their number")
    if abs(loss.item() - per_sequence) < 1e-9:
        hint = ("that is the per-sequence mean (each conversation's mean, then their mean): "
                "the lesson's loss counts every assistant token once, per-token over the batch")
    expect_close(loss.item(), per_token, "sft_loss on two conversations (12 and 2 assistant "
                 "labels) against the float64 mean over the assistant tokens", rel=1e-10,
                 hint=hint)


def test_loss_of_a_real_model_matches_the_hand_computation():
    tok = ChatTokenizer()
    torch.manual_seed(0)
    model = ModernGPT(ModernConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1,
                                   n_head=2, n_embd=16)).double()
    examples = conversations(tok, CHATS)
    x, y = batch(tok, examples)
    with torch.no_grad():
        logits, _ = model(x)
    loss = scalar_loss(model, x, y)
    want, _ = hand_loss(logits, examples)
    expect_close(loss.item(), want, "sft_loss of a ModernGPT on 3 padded conversations",
                 rel=1e-9, hint="logits from model(x), then F.cross_entropy over (B*T, vocab) "
                 "with ignore_index=IGNORE_INDEX; padding and prompt labels are ignored")


def test_only_assistant_labels_get_a_gradient():
    tok = ChatTokenizer()
    examples = conversations(tok, CHATS)
    x, y = batch(tok, examples)
    model = FixedLogits(*x.shape, tok.vocab_size)
    scalar_loss(model, x, y).backward()
    grad = model.table.grad
    expect(grad is not None, "no gradient reached the logits", hint="stay in torch")
    for b, (ids, mask) in enumerate(examples):
        for t in range(x.size(1)):
            learned = t + 1 < len(ids) and mask[t + 1]
            norm = grad[b, t].abs().sum().item()
            label = tok.decode([ids[t + 1]]) if t + 1 < len(ids) else "padding"
            where = f"conversation {b}, position {t} (label {label})"
            if learned:
                expect(norm > 0, f"no gradient at {where}, an assistant label",
                       hint="the reply's tokens and its <|end|> are what the model learns")
            else:
                expect(norm == 0, f"a gradient of size {norm:.3g} at {where}, which is "
                       "not an assistant label", hint="its label must be IGNORE_INDEX: the "
                       "prompt, the markers and the padding carry no loss")


def test_changing_a_user_token_changes_nothing_an_assistant_token_does():
    tok = ChatTokenizer()

    def loss_of(chats):
        x, y = batch(tok, conversations(tok, chats))
        return scalar_loss(FixedLogits(*x.shape, tok.vocab_size), x, y).item()

    base = loss_of(CHATS)
    user = copy.deepcopy(CHATS)
    user[0][1] = ("user", "reverse adz")  # one user character, same length
    user[1][0] = ("user", "count b in ada")
    expect(loss_of(user) == base, f"changing user text changed sft_loss from {base} to "
           f"{loss_of(user)}", hint="the user's tokens are the prompt: their labels must be "
           "IGNORE_INDEX (the logits here do not depend on the input at all)")
    reply = copy.deepcopy(CHATS)
    reply[0][2] = ("assistant", "adz")
    expect(loss_of(reply) != base, f"changing the reply 'ada' to 'adz' left sft_loss at {base}",
           hint="the assistant's tokens are the labels the loss is computed on")


def test_a_batch_without_labels_is_a_value_error():
    tok = ChatTokenizer()
    x, y = batch(tok, [render_chat(tok, [("user", "hi")])])
    with pytest.raises(ValueError):
        sft_loss(FixedLogits(*x.shape, tok.vocab_size), x, y)


# --- the step ---


def tiny_model(tok, seed=0, **sizes):
    torch.manual_seed(seed)
    config = dict(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16)
    return ModernGPT(ModernConfig(**(config | sizes))).double()


def test_sft_step_is_one_clean_optimizer_step():
    tok = ChatTokenizer()
    x, y = batch(tok, conversations(tok, CHATS))
    model = tiny_model(tok)
    oracle = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(2):
        # by hand: plain autograd on the masked cross-entropy, then p -= lr * grad
        logits, _ = oracle(x)
        want = F.cross_entropy(logits.view(-1, tok.vocab_size), y.view(-1), ignore_index=-100)
        grads = torch.autograd.grad(want, list(oracle.parameters()))
        with torch.no_grad():
            for p, g in zip(oracle.parameters(), grads):
                p -= 0.5 * g
        got = sft_step(model, opt, x, y, grad_clip=None)
        expect(type(got) is float, f"sft_step returned {got!r} ({type(got).__name__}), "
               "expected a float", hint="loss.item() gives a plain Python float")
        expect_close(got, want.item(), f"sft_step's returned loss at step {step}", rel=1e-9,
                     hint="return the loss of this batch before the update")
        for (name, p), q in zip(model.named_parameters(), oracle.parameters()):
            expect_close(p, q, f"{name} after {step + 1} sft_step(s) with SGD(lr=0.5), "
                         "no clipping", rel=1e-8, abs=1e-10,
                         hint="optimizer.zero_grad() before backward: gradients from the "
                         "previous step must not pile up")
    after = sft_loss(model, x, y).item()
    expect(after < got, f"the loss went from {got} to {after} after an SGD step",
           hint="loss.backward() then optimizer.step()")


def test_sft_step_clips_the_gradient_norm():
    tok = ChatTokenizer()
    x, y = batch(tok, conversations(tok, CHATS))
    model = tiny_model(tok)
    before = [p.detach().clone() for p in model.parameters()]
    sft_step(model, torch.optim.SGD(model.parameters(), lr=1.0), x, y, grad_clip=1e-3)
    moved = sum(((p.detach() - q) ** 2).sum() for p, q in zip(model.parameters(), before))
    expect_close(moved.sqrt().item(), 1e-3, "the size of one SGD(lr=1) update with "
                 "grad_clip=1e-3", rel=1e-4, hint="torch.nn.utils.clip_grad_norm_(model."
                 "parameters(), grad_clip) after backward, before optimizer.step()")


# --- generation ---


def planted_model(tok, successor, block_size=64):
    """A real ModernGPT whose next token after token t is successor[t], whatever came before:
    the blocks add nothing (zero output projections), wte is the identity, and lm_head (untied)
    scores token j from the one token whose successor it is."""
    V, d = tok.vocab_size, tok.vocab_size + 2
    model = ModernGPT(ModernConfig(vocab_size=V, block_size=block_size, n_layer=1, n_head=2,
                                   n_embd=d))
    model.lm_head = nn.Linear(d, V, bias=False)  # a new module: no longer tied to wte
    model.double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("c_proj.weight", "w2.weight")):
                p.zero_()
        model.transformer.wte.weight.copy_(torch.eye(V, d))
        model.lm_head.weight.zero_()
        for t, j in successor.items():
            model.lm_head.weight[j, t] = 10.0
    return model


def chain(tok, text, then):
    """<|assistant|> -> text[0] -> text[1] ... -> then, each step planted."""
    ids = [tok.assistant_id] + tok.encode(text) + [then]
    return dict(zip(ids, ids[1:]))


def reply(*args, **kwargs):
    got = generate_reply(*args, **kwargs)
    expect(type(got) is str, f"generate_reply returned {got!r} ({type(got).__name__}), "
           "expected the reply as a str", hint="tok.decode(the new ids)")
    return got


def test_generation_stops_at_end_and_leaves_it_out():
    tok = ChatTokenizer()
    successor = chain(tok, "nadir", tok.end_id)
    successor[tok.end_id] = tok.encode("x")[0]  # a model that would go on after <|end|>
    model = planted_model(tok, successor)
    got = reply(model, tok, [("user", "reverse ridan")], max_new_tokens=20)
    hint = "stop when the sampled id is <|end|>, and do not add it to the reply"
    if "<|end|>" in got:
        hint = "the reply is the text BEFORE <|end|>: leave the marker out"
    elif got.startswith("nadir") and len(got) > 5:
        hint = "break out of the loop when <|end|> comes"
    elif "reverse" in got:
        hint = "decode only the new tokens, not the prompt"
    expect(got == "nadir", f"generate_reply with a model planted to say 'nadir' then <|end|> "
           f"then 'x...':\n  expected 'nadir'\n  got      {got!r}", hint=hint)


def test_generation_respects_max_new_tokens():
    tok = ChatTokenizer()
    model = planted_model(tok, chain(tok, "abcdefghij", tok.end_id))
    for n, want in [(3, "abc"), (0, ""), (10, "abcdefghij"), (11, "abcdefghij")]:
        got = reply(model, tok, [("user", "go")], max_new_tokens=n)
        expect(got == want, f"generate_reply(max_new_tokens={n}) with a model planted to say "
               f"'abcdefghij' then <|end|>:\n  expected {want!r}\n  got      {got!r}",
               hint="at most max_new_tokens new tokens; <|end|> ends the reply earlier")
    with pytest.raises(ValueError):
        generate_reply(model, tok, [("user", "go")], max_new_tokens=-1)


def test_generation_stops_at_any_other_special_too():
    tok = ChatTokenizer()
    model = planted_model(tok, chain(tok, "ok", tok.special["<|user|>"]))
    got = reply(model, tok, [("user", "go")], max_new_tokens=10)
    expect(got == "ok", f"a model planted to say 'ok' then <|user|>:\n  expected 'ok'\n"
           f"  got      {got!r}", hint="a reply holds ordinary characters only: any special id "
           "(past the chars) ends it")


def random_model(tok, seed=0, **sizes):
    """A random tiny ModernGPT with an untied lm_head whose rows for the specials are zero:
    the argmax is then an ordinary character (a random logit > 0), and greedy replies run on."""
    model = tiny_model(tok, seed, n_embd=32, **sizes)
    model.lm_head = nn.Linear(32, tok.vocab_size, bias=False).double()
    with torch.no_grad():
        model.lm_head.weight[len(ALPHABET):] = 0.0
    return model


def argmax_reply(model, tok, messages, max_new_tokens):
    """Greedy decoding without a cache: the whole sequence through the model at every step."""
    ids = expected_render(ALPHABET, messages)[0] + [len(ALPHABET) + ASSISTANT]
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits, _ = model(torch.tensor([ids + new]))
            nxt = int(logits[0, -1].argmax())
            if nxt >= len(ALPHABET):
                break
            new.append(nxt)
    return "".join(ALPHABET[i] for i in new)


@pytest.mark.parametrize("sizes", [dict(), dict(window=8, n_kv_head=1)],
                         ids=["full attention", "window 8, one kv head"])
def test_greedy_equals_argmax_decoding_without_a_cache(sizes):
    tok = ChatTokenizer()
    messages = [("user", "reverse ada"), ("assistant", "ada"), ("user", "count a in ada")]
    model = random_model(tok, **sizes)
    want = argmax_reply(model, tok, messages, 12)
    got = reply(model, tok, messages, max_new_tokens=12, temperature=0.0)
    expect(got == want, f"greedy generate_reply of a random tiny model ({sizes or 'full'}):\n"
           f"  expected {want!r}\n  got      {got!r}",
           hint="feed the prompt once into new_cache(model, 1), then only the newest token "
           "each step; temperature 0 is the argmax of the last position's logits")


def test_sampling_uses_temperature_top_k_and_the_generator():
    tok = ChatTokenizer()
    model = random_model(tok)
    messages = [("user", "reverse ada")]
    first = reply(model, tok, messages, temperature=1.0, generator=torch.Generator().manual_seed(1))
    again = reply(model, tok, messages, temperature=1.0, generator=torch.Generator().manual_seed(1))
    expect(first == again, f"two samples with generators seeded alike differ: {first!r}, "
           f"{again!r}", hint="pass generator to sample_next")
    draws = {reply(model, tok, messages, temperature=2.0, max_new_tokens=6,
                   generator=torch.Generator().manual_seed(s)) for s in range(8)}
    expect(len(draws) > 1, f"8 samples at temperature 2 with different seeds all gave {draws}",
           hint="temperature > 0 samples (torch.multinomial via sample_next), it is not greedy")
    greedy = argmax_reply(model, tok, messages, 32)
    got = reply(model, tok, messages, temperature=1.0, top_k=1,
                generator=torch.Generator().manual_seed(0))
    expect(got == greedy, f"top_k=1 keeps only the best token, so it must equal greedy "
           f"{greedy!r}; got {got!r}", hint="pass top_k to sample_next")
    with pytest.raises(ValueError):
        generate_reply(model, tok, messages, temperature=-1.0)


def test_generation_runs_in_eval_mode_without_gradients_and_restores_the_mode():
    tok = ChatTokenizer()
    model = random_model(tok)
    seen = []
    model.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, torch.is_grad_enabled())))
    for mode in (True, False):
        model.train(mode)
        seen.clear()
        reply(model, tok, [("user", "hi")], max_new_tokens=4)
        expect(seen and all(s == (False, False) for s in seen),
               f"(training, grad enabled) during generation: {seen}",
               hint="model.eval() and torch.no_grad() while generating")
        expect(model.training is mode, f"the model was in train({mode}) mode before "
               f"generate_reply and in train({model.training}) after",
               hint="remember model.training and call model.train(was_training) at the end")


def test_generation_stops_at_the_end_of_the_context():
    tok = ChatTokenizer()
    model = planted_model(tok, chain(tok, "abcdefghijklmnopqrst", tok.end_id), block_size=12)
    messages = [("user", "abc")]  # 6 tokens with <|assistant|>: room for 6 or 7 more
    got = reply(model, tok, messages, max_new_tokens=20)
    expect(got in ("abcdef", "abcdefg"), f"with block_size 12 and a 6-token prompt the reply "
           f"must stop when the context is full; got {got!r}",
           hint="stop before feeding more than block_size positions into the cache")
    with pytest.raises(ValueError):
        generate_reply(model, tok, [("user", "a much longer prompt")], max_new_tokens=2)


# --- all together ---


def test_sft_overfits_a_handful_of_training_prompts():
    tok = ChatTokenizer()
    rng = random.Random(0)
    tasks = [make_task(kind, name, rng) for kind, name in
             [("reverse", "ada"), ("count", "olivia"), ("reverse", "emma"), ("count", "noah")]]
    examples = [render_chat(tok, [("user", t.prompt), ("assistant", t.answer)]) for t in tasks]
    x, y = batch(tok, examples)
    model = tiny_model(tok, n_embd=32).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = [sft_step(model, opt, x, y) for _ in range(STEPS)]
    got = [reply(model, tok, [("user", t.prompt)], max_new_tokens=12) for t in tasks]
    want = [t.answer for t in tasks]
    expect(got == want, f"after {STEPS} sft_steps on these 4 prompts (loss {losses[0]:.3f} -> "
           f"{losses[-1]:.4f}) the greedy replies:\n  expected {want}\n  got      {got}",
           hint="a tiny model must learn 4 answers by heart; check the mask and the labels")


STEPS = 80
