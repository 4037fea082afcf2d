"""Semantic-role generation: a small transformer decoder that reads one event's feature and its
gold verb and writes "<Arg0> phrase <Arg1> phrase <AScn> phrase ..." greedily (as VidSitu's
TxD, whose decoder attends only to its own event's token)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from torch import nn

from hiermovie.heads.fit import fit

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
ROLE_TOKENS = ["<Arg0>", "<Arg1>", "<Arg2>", "<Arg3>", "<Arg4>", "<AScn>", "<ALoc>", "<AMnr>",
               "<APrp>", "<ADir>", "<AGol>"]


def target_text(roles: dict[str, str]) -> str:
    return " ".join(f"<{r}> {phrase}" for r, phrase in roles.items())


def parse_roles(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    role = None
    for word in text.split():
        if word in ROLE_TOKENS:
            role = word[1:-1]
            out.setdefault(role, "")
        elif role is not None:
            out[role] = f"{out[role]} {word}".strip()
    return out


def train_tokenizer(texts: list[str], verbs: list[str]) -> Tokenizer:
    """A word-level tokenizer over the training phrases, verbs and role markers (no downloads)."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL + ROLE_TOKENS + sorted(set(verbs)))
    tok.train_from_iterator(texts, trainer)
    return tok


class RoleDecoder(nn.Module):
    def __init__(self, feat_dim: int, vocab: int, width: int = 128, layers: int = 2,
                 heads: int = 4, max_len: int = 48) -> None:
        super().__init__()
        self.memory = nn.Sequential(nn.Linear(feat_dim, width), nn.ReLU(), nn.Linear(width, width))
        self.embed = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(max_len, width)
        layer = nn.TransformerDecoderLayer(width, heads, 2 * width, 0.1, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.out = nn.Linear(width, vocab)
        self.max_len = max_len

    def forward(self, feats: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """feats [B, F], tokens [B, T] -> logits [B, T, vocab] (causal)."""
        return self.out(self.decode(self.memory(feats)[:, None], tokens))

    def decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Decoder states [B, T, W] of `tokens` [B, T] given the events' memory [B, 1, W]."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos(torch.arange(t, device=tokens.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=tokens.device)
        return self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True)

    @torch.no_grad()
    def generate(self, feats: torch.Tensor, prefix: torch.Tensor, eos: int,
                 limit: int | None = None) -> list[list[int]]:
        """Greedy decoding from `prefix` [B, P] until EOS or `limit` (default max_len) tokens;
        finished rows leave the batch, so a step costs only the rows still writing."""
        self.eval()
        limit = min(self.max_len, limit or self.max_len)
        out: list[list[int]] = [[] for _ in range(len(feats))]
        active, tokens = torch.arange(len(feats)), prefix
        memory = self.memory(feats)[:, None]
        while tokens.shape[1] < limit and len(active):
            nxt = self.out(self.decode(memory[active], tokens)[:, -1]).argmax(-1)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            going = nxt != eos
            for i, row in zip(active[~going].tolist(), tokens[~going].tolist(), strict=True):
                out[i] = row[prefix.shape[1]:-1]
            active, tokens = active[going], tokens[going]
        for i, row in zip(active.tolist(), tokens.tolist(), strict=True):
            out[i] = row[prefix.shape[1]:]
        return out


class RoleGenerator:
    """Tokenizer + decoder, trained on (event feature, gold verb, roles) triples."""

    def __init__(self, feat_dim: int, texts: list[str], verbs: list[str], seed: int = 0,
                 width: int = 128) -> None:
        self.tok = train_tokenizer(texts, verbs)
        self.pad, self.bos, self.eos = (self.tok.token_to_id(t) for t in ("[PAD]", "[BOS]",
                                                                          "[EOS]"))
        vocab = max(self.tok.get_vocab().values()) + 1  # ids can skip numbers
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = RoleDecoder(feat_dim, vocab, width=width)
        self.seed = seed
        self.limit = self.model.max_len  # after fit: a little past the longest target

    def _encode(self, verbs: list[str], texts: list[str] | None = None) -> torch.Tensor:
        rows = []
        for i, verb in enumerate(verbs):
            ids = [self.bos, self.tok.token_to_id(verb) or self.tok.token_to_id("[UNK]")]
            if texts is not None:
                ids += self.tok.encode(texts[i]).ids + [self.eos]
            rows.append(ids[:self.model.max_len])
        n = max(len(r) for r in rows)
        return torch.tensor([r + [self.pad] * (n - len(r)) for r in rows])

    def fit(self, feats: torch.Tensor, verbs: list[str], texts: list[str], *, epochs: int = 30,
            lr: float = 2e-3, batch_size: int = 128, precision: str = "fp32") -> RoleGenerator:
        tokens = self._encode(verbs, texts)
        self.limit = min(self.model.max_len, tokens.shape[1] + 2)

        def loss(idx: torch.Tensor) -> torch.Tensor:
            inp, tgt = tokens[idx[0], :-1], tokens[idx[0], 1:].clone()
            tgt[:, 0] = self.pad  # the verb is given, not predicted
            logits = self.model(feats[idx[0]], inp)
            return nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(),
                                               ignore_index=self.pad)

        fit(self.model, loss, len(tokens), epochs=epochs, lr=lr, batch_size=batch_size,
            seeds=[self.seed], decoupled=True, precision=precision)
        return self

    def predict(self, feats: torch.Tensor, verbs: list[str]) -> list[dict[str, str]]:
        out = []
        for i in range(0, len(verbs), 256):
            ids = self.model.generate(feats[i:i + 256], self._encode(verbs[i:i + 256]), self.eos,
                                      self.limit)
            out += [parse_roles(self.tok.decode(r, skip_special_tokens=False)) for r in ids]
        return out
