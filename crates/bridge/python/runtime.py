import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def step_mask(x, lengths):
    """[N, T] booleans: step t is inside sequence n."""
    t = x.shape[1]
    return torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None]


def run_recurrent(rnn, x, lengths, last):
    """A batch-first nn.LSTM/GRU/RNN over right-padded sequences read with their
    lengths (packed, as finetune reads them); every step, or the state after
    each sequence's last real step ([forward, reverse] for bidirectional)."""
    n, t = x.shape[0], x.shape[1]
    if lengths is None:
        out, h = rnn(x)
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h = rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
    if not last:
        return out
    if isinstance(h, tuple):
        h = h[0]
    d = 2 if rnn.bidirectional else 1
    return h[-d:].transpose(0, 1).reshape(n, -1)


class AttentionPool(nn.Module):
    """s_t = x_t . w, a = softmax over the real steps, sum_t a_t x_t (textgenrnn's AttentionWeightedAverage)."""

    def __init__(self, features):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(features))

    def forward(self, x, lengths=None):
        s = x @ self.weight
        if lengths is not None:
            s = s.masked_fill(~step_mask(x, lengths), float("-inf"))
        a = torch.softmax(s, dim=1)
        return (x * a.unsqueeze(-1)).sum(dim=1)


class ConcatPool(nn.Module):
    """ULMFiT's concat pooling: [last real step, max, mean] over the real steps."""

    def __init__(self, features):
        super().__init__()
        self.features = features

    def forward(self, x, lengths=None):
        n, t = x.shape[0], x.shape[1]
        if lengths is None:
            lengths = torch.full((n,), t, dtype=torch.long, device=x.device)
        lengths = lengths.to(x.device)
        mask = step_mask(x, lengths).unsqueeze(-1)
        last = x[torch.arange(n, device=x.device), lengths - 1]
        top = x.masked_fill(~mask, float("-inf")).max(dim=1).values
        mean = (x * mask).sum(dim=1) / lengths[:, None].to(x.dtype)
        return torch.cat([last, top, mean], dim=1)


class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d with padding PyTorch's own cannot say: `pad` is
    (left, right, top, bottom) zeros added first (nn.ZeroPad2d's order), or
    'same' for TensorFlow's SAME from the input size (the output is
    ceil(input / stride); the smaller half of an odd total on the top and
    left). The parameters are nn.Conv2d's, so state_dict names are unchanged."""

    def __init__(self, *args, pad=(0, 0, 0, 0), **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.pad = pad

    def forward(self, x):
        pad = self.pad
        if pad == 'same':
            sides = []
            for a in (1, 0):  # width first, as F.pad wants
                size, k, s, d = x.shape[2 + a], self.kernel_size[a], self.stride[a], self.dilation[a]
                span = d * (k - 1) + 1
                total = max((-(-size // s) - 1) * s + span - size, 0)
                sides += [total // 2, total - total // 2]
            pad = tuple(sides)
        return super().forward(nn.functional.pad(x, pad))
