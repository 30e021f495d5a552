#!/usr/bin/env python3
"""Cut the small embedded data subsets in this folder from the full data sets.

Usage (from the repository root):

    python3 data/make_subsets.py [--src DIR]

DIR defaults to $FINETUNE_DATA, else ../shared/data next to the repository.
Only the Python 3 standard library is used, and every choice below is a fixed
rule (no randomness), so running the script again on the same source files
reproduces the same subset contents. Compressed files are written with
gzip level 9 and modification time 0; their bytes depend only on the zlib
version, while the decompressed contents (see SHA256SUMS.content) never change.

The rules (also documented in data/README.md):

* MNIST train: the first 600 images of each class, in file order (6000).
  MNIST test: the first 100 images of each class, in file order (1000).
* Fashion-MNIST train: the first 300 images of each class (3000);
  test: the first 100 of each class (1000).
* Selected images keep their original relative order.
* Sentiment: from movieReviewSnippets_GroundTruth.txt, 1000 lines with a
  positive and 1000 with a negative mean rating, each picked evenly spaced
  among the lines of that sign (the k-th pick is the floor(k * count / 1000)-th
  line of that sign), written in original file order with the original CRLF
  line endings and no final newline. The source file lists positives first,
  so taking the first 1000 of each sign would cluster on a few reviews.
* Shakespeare: tempest_gut.txt, whole, gzip-compressed.
* digits, the census name files and pretrained/mnist-cnn/mnist_cnn.safetensors:
  copied byte for byte.
"""

import argparse
import gzip
import hashlib
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def default_src():
    env = os.environ.get("FINETUNE_DATA")
    if env:
        return env
    return os.path.join(os.path.dirname(REPO), "shared", "data")


def read_idx(path):
    """Returns (dims, payload bytes) of a gzip-compressed IDX file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    if magic >> 8 != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file (magic {magic:#010x})")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    payload = data[4 + 4 * ndim :]
    count = 1
    for d in dims:
        count *= d
    if len(payload) != count:
        sys.exit(f"{path}: header says {count} bytes, found {len(payload)}")
    return dims, payload


def write_gz(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))


def idx_bytes(dims, payload):
    magic = 0x00000800 | len(dims)
    return struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims) + payload


def first_per_class(labels, per_class):
    """Indices of the first `per_class` examples of each class, in file order."""
    taken = {}
    picked = []
    for i, label in enumerate(labels):
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            picked.append(i)
    short = {c: n for c, n in taken.items() if n < per_class}
    if short:
        sys.exit(f"classes with fewer than {per_class} examples: {short}")
    return picked


def cut_idx(src, dst, prefix, per_class, report):
    dims_l, labels = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"))
    dims_i, images = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"))
    n, h, w = dims_i
    assert dims_l[0] == n
    picked = first_per_class(labels, per_class)
    size = h * w
    new_images = b"".join(images[i * size : (i + 1) * size] for i in picked)
    new_labels = bytes(labels[i] for i in picked)
    write_gz(os.path.join(dst, f"{prefix}-images-idx3-ubyte.gz"),
             idx_bytes((len(picked), h, w), new_images))
    write_gz(os.path.join(dst, f"{prefix}-labels-idx1-ubyte.gz"),
             idx_bytes((len(picked),), new_labels))
    last = {}
    for i in picked:
        last[labels[i]] = i
    report.append(
        f"{os.path.basename(dst)}/{prefix}: {len(picked)} images, {per_class} per class; "
        f"last source index per class: "
        + " ".join(f"{c}:{last[c]}" for c in sorted(last))
        + f"; pixel sum {sum(new_images)}"
    )


def cut_sentiment(src, dst, per_sign, report):
    name = "movieReviewSnippets_GroundTruth.txt"
    with open(os.path.join(src, name), "rb") as f:
        lines = f.read().split(b"\r\n")
    pos = [i for i, l in enumerate(lines) if float(l.split(b"\t")[1]) > 0]
    neg = [i for i, l in enumerate(lines) if float(l.split(b"\t")[1]) < 0]
    picked = []
    for group in (pos, neg):
        picked += [group[k * len(group) // per_sign] for k in range(per_sign)]
    picked.sort()
    out = b"\r\n".join(lines[i] for i in picked)
    write_gz(os.path.join(dst, name + ".gz"), out)
    report.append(
        f"sentiment-vader/{name}.gz: {len(picked)} lines ({per_sign} positive, {per_sign} "
        f"negative) of {len(lines)}; first source lines {picked[:5]}, last {picked[-1]}"
    )


def copy(src, dst, rel):
    os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
    shutil.copyfile(os.path.join(src, rel), os.path.join(dst, rel))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def content_sha256(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    return sha256(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", default=default_src(), help="full data folder")
    args = parser.parse_args()
    src = args.src
    if not os.path.isdir(src):
        sys.exit(f"source data folder not found: {src}")

    report = []
    cut_idx(os.path.join(src, "mnist"), os.path.join(HERE, "mnist"), "train", 600, report)
    cut_idx(os.path.join(src, "mnist"), os.path.join(HERE, "mnist"), "t10k", 100, report)
    fashion_src = os.path.join(src, "fashion-mnist")
    fashion_dst = os.path.join(HERE, "fashion-mnist")
    cut_idx(fashion_src, fashion_dst, "train", 300, report)
    cut_idx(fashion_src, fashion_dst, "t10k", 100, report)
    cut_sentiment(os.path.join(src, "sentiment-vader"),
                  os.path.join(HERE, "sentiment-vader"), 1000, report)
    with open(os.path.join(src, "shakespeare", "tempest_gut.txt"), "rb") as f:
        write_gz(os.path.join(HERE, "shakespeare", "tempest_gut.txt.gz"), f.read())
    for rel in ("digits/digits.csv.gz",
                "names-census1990/dist.male.first",
                "names-census1990/dist.female.first",
                "pretrained/mnist-cnn/mnist_cnn.safetensors"):
        copy(src, HERE, rel)

    files = []
    for root, _, names in os.walk(HERE):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), HERE)
            if rel in ("README.md", "make_subsets.py") or rel.startswith("SHA256SUMS"):
                continue
            files.append(rel)
    files.sort()
    with open(os.path.join(HERE, "SHA256SUMS"), "w") as f:
        for rel in files:
            f.write(f"{sha256(os.path.join(HERE, rel))}  {rel}\n")
    with open(os.path.join(HERE, "SHA256SUMS.content"), "w") as f:
        for rel in files:
            f.write(f"{content_sha256(os.path.join(HERE, rel))}  {rel}\n")
    total = 0
    for rel in files:
        size = os.path.getsize(os.path.join(HERE, rel))
        total += size
        print(f"{size:>10,}  {rel}")
    print(f"{total:>10,}  total")
    for line in report:
        print(line)


if __name__ == "__main__":
    main()
