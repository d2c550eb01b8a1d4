#!/usr/bin/env python3
"""A tiny, deterministic lung-segmentation workload (plain Python, stdlib only, seeded), shaped
like the Pegasus lung-instance-segmentation workflow: acquire chest scans with ground-truth
masks -> preprocess and augment them -> a hyper-parameter search of parallel trials -> train
with the best trial -> segment the held-out scans -> a Dice report.

Scans are 8-bit grayscale PGM (P5) images; a shard of several scans is one PGM strip of square
tiles side by side. The "model" is a per-pixel logistic regression on four features (intensity,
3x3 mean intensity, squared distance from the image centre, bias), trained by seeded SGD. Every
random choice comes from a seed in config.json, so a re-run writes byte-identical files. The
script is self-contained (no sibling modules): a run's recorded code is this one file.

usage: lung.py acquire CONFIG SHARD OUT_SCAN OUT_MASK
       lung.py preprocess CONFIG SHARD augment|plain SCAN MASK OUT_SCAN OUT_MASK
       lung.py hpo CONFIG TRIAL OUT_JSON VAL_SCAN VAL_MASK TRAIN_SCAN TRAIN_MASK...
       lung.py train CONFIG OUT_MODEL HPO_JSON... -- TRAIN_SCAN TRAIN_MASK...
       lung.py inference MODEL SCAN OUT_MASK
       lung.py evaluate MODEL PRED_MASK TRUE_MASK OUT_REPORT
"""
import json
import math
import random
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def read_pgm(path):
    """(width, height, pixels) of a binary PGM (P5, maxval 255)."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P5" or int(fields[3]) != 255:
        sys.exit(f"{path}: not an 8-bit binary PGM")
    w, h = int(fields[1]), int(fields[2])
    return w, h, list(data[pos + 1:pos + 1 + w * h])


def write_pgm(path, w, h, pixels):
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (w, h))
        f.write(bytes(max(0, min(255, int(round(p)))) for p in pixels))


def read_tiles(path):
    """The square tiles of a PGM strip, each a flat list of size*size pixels."""
    w, h, px = read_pgm(path)
    return [[px[y * w + t * h + x] for y in range(h) for x in range(h)] for t in range(w // h)]


def write_tiles(path, tiles):
    s = int(math.isqrt(len(tiles[0])))
    px = [tiles[t][y * s + x] for y in range(s) for t in range(len(tiles)) for x in range(s)]
    write_pgm(path, s * len(tiles), s, px)


def size_of(tile):
    return int(math.isqrt(len(tile)))


def hflip(tile):
    s = size_of(tile)
    return [tile[y * s + (s - 1 - x)] for y in range(s) for x in range(s)]


def shift(tile, dx, dy):
    """Translate by (dx, dy), repeating the edge pixels."""
    s = size_of(tile)
    c = lambda v: max(0, min(s - 1, v))
    return [tile[c(y - dy) * s + c(x - dx)] for y in range(s) for x in range(s)]


def normalize(tile):
    """Stretch the 2nd..98th percentile of intensities to 0..255."""
    order = sorted(tile)
    lo, hi = order[len(order) * 2 // 100], order[len(order) * 98 // 100]
    span = max(1, hi - lo)
    return [max(0, min(255, round((p - lo) * 255 / span))) for p in tile]


def features(tile):
    """Per pixel: [bias, intensity, 3x3 mean, squared distance from the centre], scaled to ~1."""
    s = size_of(tile)
    half = (s - 1) / 2
    out = []
    for y in range(s):
        for x in range(s):
            total = n = 0
            for yy in range(max(0, y - 1), min(s, y + 2)):
                for xx in range(max(0, x - 1), min(s, x + 2)):
                    total += tile[yy * s + xx]
                    n += 1
            r2 = ((x - half) / half) ** 2 + ((y - half) / half) ** 2
            out.append((1.0, tile[y * s + x] / 255, total / n / 255, r2))
    return out


def pixels(scan_mask_pairs):
    """(features, label) of every pixel of every tile of the given (scan, mask) strips."""
    data = []
    for scan, mask in scan_mask_pairs:
        for st, mt in zip(read_tiles(scan), read_tiles(mask)):
            data.extend(zip(features(st), (1 if m > 127 else 0 for m in mt)))
    return data


def sigmoid(z):
    return 1 / (1 + math.exp(-z)) if z > -60 else 0.0


def fit(data, params, seed):
    """Logistic regression by SGD over a seeded sample of pixels per epoch."""
    rng = random.Random(seed)
    w = [0.0, 0.0, 0.0, 0.0]
    lr, l2 = params["lr"], params["l2"]
    for _ in range(params["epochs"]):
        for f, y in rng.sample(data, min(len(data), params["pixels_per_epoch"])):
            g = sigmoid(sum(a * b for a, b in zip(w, f))) - y
            w = [wi - lr * (g * fi + l2 * wi) for wi, fi in zip(w, f)]
    return [round(x, 12) for x in w]


def predict(w, tile, threshold):
    return [255 if sigmoid(sum(a * b for a, b in zip(w, f))) >= threshold else 0 for f in features(tile)]


def dice(pred, truth):
    a = sum(1 for p in pred if p > 127)
    b = sum(1 for t in truth if t > 127)
    both = sum(1 for p, t in zip(pred, truth) if p > 127 and t > 127)
    return 1.0 if a + b == 0 else 2 * both / (a + b)


def mean_dice(w, pairs, threshold):
    scores = []
    for scan, mask in pairs:
        for st, mt in zip(read_tiles(scan), read_tiles(mask)):
            scores.append(dice(predict(w, st, threshold), mt))
    return sum(scores) / len(scores)


def synthesize(rng, cfg):
    """One chest slice: air, a body ellipse, two dark lungs, a bright spine; with noise."""
    s = cfg["size"]
    c = (s - 1) / 2
    bx, by = c + rng.uniform(-1, 1), c + rng.uniform(-1, 1)
    ba, bb = s * rng.uniform(0.40, 0.45), s * rng.uniform(0.33, 0.38)
    gap = s * rng.uniform(0.15, 0.19)
    la, lb = s * rng.uniform(0.10, 0.13), s * rng.uniform(0.19, 0.24)
    lungs = [(bx - gap, by - 0.5, la, lb), (bx + gap, by - 0.5, la * rng.uniform(0.9, 1.1), lb)]
    inside = lambda x, y, ex, ey, a, b: ((x - ex) / a) ** 2 + ((y - ey) / b) ** 2 <= 1
    scan, mask = [], []
    for y in range(s):
        for x in range(s):
            lung = any(inside(x, y, *l) for l in lungs)
            if lung:
                v = 55
            elif inside(x, y, bx, by + bb * 0.7, s * 0.06, s * 0.08):
                v = 230
            elif inside(x, y, bx, by, ba, bb):
                v = 150
            else:
                v = 15
            scan.append(v + rng.gauss(0, cfg["noise"]))
            mask.append(255 if lung else 0)
    return [max(0, min(255, round(v))) for v in scan], mask


def split_args(args):
    """HPO_JSON... -- PAIRS...: the two lists around the `--`."""
    i = args.index("--")
    return args[:i], args[i + 1:]


def pairs_of(flat):
    return list(zip(flat[0::2], flat[1::2]))


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "acquire":
    cfg, shard, out_scan, out_mask = load(args[0]), int(args[1]), args[2], args[3]
    rng = random.Random(cfg["seed"] * 1000 + shard)
    scans, masks = zip(*(synthesize(rng, cfg) for _ in range(cfg["scans_per_shard"])))
    write_tiles(out_scan, scans)
    write_tiles(out_mask, masks)
elif cmd == "preprocess":
    cfg, shard, mode = load(args[0]), int(args[1]), args[2]
    scans, masks = read_tiles(args[3]), read_tiles(args[4])
    out_s, out_m = [], []
    rng = random.Random(cfg["seed"] * 7919 + shard)
    for st, mt in zip(scans, masks):
        variants = [(st, mt)]
        if mode == "augment":
            dx, dy = rng.randint(-2, 2), rng.randint(-2, 2)
            gain = rng.uniform(0.8, 1.2)
            variants.append((hflip(st), hflip(mt)))
            variants.append(([p * gain for p in shift(st, dx, dy)], shift(mt, dx, dy)))
        for s_, m_ in variants:
            out_s.append(normalize(s_))
            out_m.append(m_)
    write_tiles(args[5], out_s)
    write_tiles(args[6], out_m)
elif cmd == "hpo":
    cfg, trial, out = load(args[0]), int(args[1]), args[2]
    val, train = [(args[3], args[4])], pairs_of(args[5:])
    params = dict(cfg["defaults"], **cfg["search"][trial % len(cfg["search"])])
    w = fit(pixels(train), params, cfg["seed"] * 31 + trial)
    save(out, {"trial": trial, "params": params, "weights": w,
               "val_dice": round(mean_dice(w, val, params["threshold"]), 12)})
elif cmd == "train":
    cfg, out = load(args[0]), args[1]
    hpo_files, flat = split_args(args[2:])
    trials = sorted((load(p) for p in hpo_files), key=lambda t: t["trial"])
    best = max(trials, key=lambda t: (t["val_dice"], -t["trial"]))
    w = fit(pixels(pairs_of(flat)), best["params"], cfg["seed"] * 31 + 1000)
    save(out, {"weights": w, "params": best["params"], "best_trial": best["trial"],
               "trials": [{"trial": t["trial"], "val_dice": t["val_dice"]} for t in trials]})
elif cmd == "inference":
    model, tiles = load(args[0]), read_tiles(args[1])
    write_tiles(args[2], [predict(model["weights"], t, model["params"]["threshold"]) for t in tiles])
elif cmd == "evaluate":
    model, pred, truth = load(args[0]), read_tiles(args[1]), read_tiles(args[2])
    scores = [round(dice(p, t), 12) for p, t in zip(pred, truth)]
    save(args[3], {"dice": scores, "mean_dice": round(sum(scores) / len(scores), 12),
                   "images": len(scores), "model": {k: model[k] for k in ("params", "best_trial", "trials")}})
else:
    sys.exit(f"unknown step {cmd}")
