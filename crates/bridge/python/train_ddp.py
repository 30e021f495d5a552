"""Continue training a finetune model with PyTorch's DistributedDataParallel.

Written by `finetune export --format pytorch`. One machine, N processes:

    torchrun --nproc_per_node=N train_ddp.py --data DATA [options]

several machines: the same on each, with torchrun's --nnodes, --node_rank and
--rdzv_endpoint. Processes talk over gloo on CPUs and nccl on GPUs; each reads
its own share of the data (DistributedSampler). Without torchrun it runs as
one process.

DATA is what `finetune` reads: an image folder (one subfolder per class, or
train/ and test/ holding them; needs Pillow), a CSV table (columns `text` and
`label`, or --text-column/--label-column), or a safetensors file of tensors
`input` (f32 images, or i64 token ids with i64 `lengths`) and i64 `labels`.

The flags mirror finetune's: --optimizer, --lr, --weight-decay, --momentum,
--schedule, --epochs, --batch-size, --seed, --freeze GLOB... / --unfreeze
(default, as finetune's: everything frozen but the head).
"""
import argparse, csv, fnmatch, json, math, os, sys

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from model import build_model

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = json.load(open(os.path.join(HERE, "config.json")))


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--weights", default=os.path.join(HERE, "model.safetensors"))
    p.add_argument("--out", default="model.trained.safetensors")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=["constant", "cosine", "one-cycle"], default="constant")
    p.add_argument("--freeze", nargs="+", metavar="GLOB", help="freeze the parameters these globs name")
    p.add_argument("--unfreeze", action="store_true", help="train everything")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="stop each epoch early (smoke tests)")
    return p.parse_args()


# ---------------------------------------------------------------------------- data

class Tensors(Dataset):
    def __init__(self, x, y, lengths=None):
        self.x, self.y, self.lengths = x, y, lengths

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        l = self.lengths[i] if self.lengths is not None else torch.tensor(-1)
        return self.x[i], l, self.y[i]


def class_index(label):
    classes = CONFIG.get("classes")
    if classes is None:
        raise SystemExit("config.json names no classes: the model's labels are unknown")
    if label not in classes:
        raise SystemExit(f"label {label!r} is not one of the model's classes {classes}")
    return classes.index(label)


def encode(text, max_len):
    v = CONFIG["vocab"]
    chars, unk = v["chars"], v.get("unk")
    ids = [chars.get(c, unk) for c in text[:max_len]]
    ids = [i for i in ids if i is not None] or [v.get("pad") or 0]
    return ids


def load_csv(path, args):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seqs = [encode(r[args.text_column], args.max_len) for r in rows]
    t = max(len(s) for s in seqs)
    pad = CONFIG["vocab"].get("pad") or 0
    x = torch.full((len(seqs), t), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in seqs])
    y = torch.tensor([class_index(r[args.label_column]) for r in rows])
    return Tensors(x, y, lengths)


def load_images(path):
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("image folders need Pillow: pip install pillow")
    if os.path.isdir(os.path.join(path, "train")):
        path = os.path.join(path, "train")
    c, h, w = CONFIG["input"]
    norm = CONFIG.get("normalize") or {}
    mean = torch.tensor(norm.get("mean", [0.0] * c)).view(c, 1, 1)
    std = torch.tensor(norm.get("std", [1.0] * c)).view(c, 1, 1)
    xs, ys = [], []
    for label in sorted(os.listdir(path)):
        folder = os.path.join(path, label)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            img = Image.open(os.path.join(folder, name)).convert("L" if c == 1 else "RGB").resize((w, h))
            t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).float().view(h, w, c)
            xs.append((t.permute(2, 0, 1) / 255.0 - mean) / std)
            ys.append(class_index(label))
    return Tensors(torch.stack(xs), torch.tensor(ys))


def load_safetensors(path):
    from safetensors.torch import load_file
    t = load_file(path)
    return Tensors(t["input"], t["labels"].long(), t.get("lengths"))


def load(args):
    if args.data.endswith(".safetensors"):
        return load_safetensors(args.data)
    if args.data.endswith(".csv"):
        return load_csv(args.data, args)
    if os.path.isdir(args.data) and os.path.isfile(os.path.join(args.data, "train.csv")):
        return load_csv(os.path.join(args.data, "train.csv"), args)
    return load_images(args.data)


# ---------------------------------------------------------------------------- training

def freeze(model, args):
    names = [n for n, _ in model.named_parameters()]
    if args.unfreeze:
        frozen = set()
    elif args.freeze:
        frozen = {n for n in names if any(fnmatch.fnmatch(n, g) for g in args.freeze)}
    else:
        head = set(CONFIG.get("head", []))
        frozen = {n for n in names if n not in head}
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    return len(frozen)


def main():
    args = parse()
    distributed = "RANK" in os.environ
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    model = build_model()
    from safetensors.torch import load_file
    model.load_state_dict(load_file(args.weights), strict=True)
    frozen = freeze(model, args)
    model.to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    data = load(args)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed) if distributed else None
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(trainable, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    elif args.optimizer == "adamw":
        opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.Adam(trainable, lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * (args.steps_per_epoch or len(loader))
    if args.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    elif args.schedule == "one-cycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(steps, 1))
    else:
        sched = None
    if rank == 0:
        print(f"train_ddp: {world} process(es), {len(data)} examples, {sum(p.numel() for p in trainable)} trainable "
              f"parameters ({frozen} tensors frozen), {args.optimizer} lr {args.lr}", flush=True)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        total, seen, correct = 0.0, 0, 0
        for step, (x, lengths, y) in enumerate(loader):
            if args.steps_per_epoch is not None and step >= args.steps_per_epoch:
                break
            x, y = x.to(device), y.to(device)
            lengths = None if (lengths < 0).any() else lengths
            logits = model(x, lengths)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(y)
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
        stats = torch.tensor([total, seen, correct], dtype=torch.float64)
        if distributed:
            dist.all_reduce(stats)
        if rank == 0:
            print(f"epoch {epoch}: loss {stats[0] / stats[1]:.4f}  accuracy {stats[2] / stats[1]:.4f}", flush=True)
    if rank == 0:
        from safetensors.torch import save_file
        state = (model.module if distributed else model).state_dict()
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, args.out)
        print(f"wrote {args.out} (load it back with finetune import --weights {args.out} --spec spec.json)", flush=True)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
