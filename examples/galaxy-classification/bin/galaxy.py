#!/usr/bin/env python3
"""A tiny, deterministic galaxy-classification workload (plain Python, stdlib only, seeded),
shaped like the Pegasus galaxy-classification workflow: fetch labelled galaxy images -> split
them into train/val/test -> preprocess each split (in parallel) -> augment the training split ->
a hyper-parameter search of parallel trials -> train with the best trial -> classify the test
split -> an accuracy and confusion-matrix report.

Images are 8-bit grayscale tiles, a set of them one PGM (P5) strip side by side, with a CSV of
labels beside it. The classes are elliptical (a smooth blob), spiral (a bulge with two arms) and
edge-on (a thin disk at any angle). The classifier is softmax regression on 22 features (4x4
pooled pixels, a 4-ring radial profile, the axis ratio of the second moments, a bias), trained
by seeded SGD. Every random choice comes from a seed in config.json, so a re-run writes
byte-identical files. The script is self-contained: a run's recorded code is this one file.

usage: galaxy.py fetch CONFIG OUT_PGM OUT_CSV
       galaxy.py split CONFIG PGM CSV (OUT_PGM OUT_CSV){3}     (train, val, test)
       galaxy.py preprocess PGM OUT_PGM
       galaxy.py augment CONFIG PGM CSV OUT_PGM OUT_CSV
       galaxy.py hpo CONFIG TRIAL TRAIN_PGM TRAIN_CSV VAL_PGM VAL_CSV OUT_JSON
       galaxy.py train CONFIG TRAIN_PGM TRAIN_CSV OUT_MODEL HPO_JSON...
       galaxy.py inference MODEL PGM OUT_CSV
       galaxy.py evaluate CONFIG PREDICTIONS_CSV TRUTH_CSV MODEL OUT_REPORT
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


def read_tiles(path):
    """The square tiles of a PGM strip, each a flat list of size*size pixels."""
    w, h, px = read_pgm(path)
    return [[px[y * w + t * h + x] for y in range(h) for x in range(h)] for t in range(w // h)]


def write_tiles(path, tiles):
    s = int(math.isqrt(len(tiles[0])))
    px = [tiles[t][y * s + x] for y in range(s) for t in range(len(tiles)) for x in range(s)]
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (s * len(tiles), s))
        f.write(bytes(max(0, min(255, int(round(p)))) for p in px))


def read_labels(path):
    with open(path) as f:
        next(f)
        return [line.strip().split(",")[1] for line in f if line.strip()]


def write_labels(path, labels):
    with open(path, "w") as f:
        f.write("index,label\n")
        for i, label in enumerate(labels):
            f.write(f"{i},{label}\n")


def galaxy(rng, cls, s, noise):
    """One galaxy of class `cls` on an s*s tile, at a random angle, with sky noise."""
    c = (s - 1) / 2
    cx, cy = c + rng.uniform(-0.8, 0.8), c + rng.uniform(-0.8, 0.8)
    angle = rng.uniform(0, math.pi)
    ca, sa = math.cos(angle), math.sin(angle)
    peak = rng.uniform(170, 230)
    phase = rng.uniform(0, 2 * math.pi)
    sigma = s * rng.uniform(0.11, 0.16)
    q = rng.uniform(0.75, 1.0) if cls == "elliptical" else rng.uniform(0.15, 0.28)
    tile = []
    for y in range(s):
        for x in range(s):
            dx, dy = x - cx, y - cy
            u, v = dx * ca + dy * sa, -dx * sa + dy * ca
            if cls == "elliptical":
                val = peak * math.exp(-(u * u + (v / q) ** 2) / (2 * sigma * sigma))
            elif cls == "edge_on":
                val = peak * math.exp(-(u * u / (1.8 * sigma) ** 2 + (v / (q * 1.8 * sigma)) ** 2) / 2)
            else:
                r, theta = math.hypot(dx, dy), math.atan2(dy, dx)
                bulge = peak * math.exp(-r * r / (2 * (0.45 * sigma) ** 2))
                arms = 0.5 * (1 + math.cos(2 * (theta - 1.6 * math.log(r + 1) - phase)))
                val = bulge + 0.8 * peak * math.exp(-r / (1.2 * sigma)) * arms ** 2
            tile.append(12 + val + rng.gauss(0, noise))
    return [max(0, min(255, round(p))) for p in tile]


def preprocess(tile):
    """Subtract the sky (median of the border), scale the peak to 255, recentre on the light."""
    s = int(math.isqrt(len(tile)))
    border = sorted(tile[i] for i in range(len(tile)) if i < s or i >= s * (s - 1) or i % s in (0, s - 1))
    sky = border[len(border) // 2]
    flux = [max(0, p - sky) for p in tile]
    total = sum(flux) or 1
    mx = round(sum(f * (i % s) for i, f in enumerate(flux)) / total - (s - 1) / 2)
    my = round(sum(f * (i // s) for i, f in enumerate(flux)) / total - (s - 1) / 2)
    clamp = lambda v: max(0, min(s - 1, v))
    moved = [flux[clamp(y + my) * s + clamp(x + mx)] for y in range(s) for x in range(s)]
    top = max(moved) or 1
    return [round(p * 255 / top) for p in moved]


def rot90(tile):
    s = int(math.isqrt(len(tile)))
    return [tile[(s - 1 - x) * s + y] for y in range(s) for x in range(s)]


def hflip(tile):
    s = int(math.isqrt(len(tile)))
    return [tile[y * s + (s - 1 - x)] for y in range(s) for x in range(s)]


def features(tile):
    s = int(math.isqrt(len(tile)))
    b = s // 4
    f = [1.0]
    for by in range(4):
        for bx in range(4):
            f.append(sum(tile[(by * b + y) * s + bx * b + x] for y in range(b) for x in range(b)) / (b * b * 255))
    c = (s - 1) / 2
    rings = [[0.0, 0] for _ in range(4)]
    total = sum(tile) or 1
    mxx = myy = mxy = 0.0
    for i, p in enumerate(tile):
        dx, dy = i % s - c, i // s - c
        ring = min(3, int(math.hypot(dx, dy) / (s / 8)))
        rings[ring][0] += p
        rings[ring][1] += 1
        mxx, myy, mxy = mxx + p * dx * dx / total, myy + p * dy * dy / total, mxy + p * dx * dy / total
    f.extend(t / (n * 255) for t, n in rings)
    root = math.sqrt(((mxx - myy) / 2) ** 2 + mxy * mxy)
    major, minor = (mxx + myy) / 2 + root, max(0.0, (mxx + myy) / 2 - root)
    f.append(math.sqrt(minor / major) if major > 0 else 1.0)
    return f


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    t = sum(e)
    return [v / t for v in e]


def scores(w, f):
    return [sum(a * b for a, b in zip(row, f)) for row in w]


def fit(data, classes, params, seed):
    """Softmax regression by SGD, one seeded shuffle per epoch."""
    rng = random.Random(seed)
    w = [[0.0] * len(data[0][0]) for _ in classes]
    lr, l2 = params["lr"], params["l2"]
    for _ in range(params["epochs"]):
        for f, y in rng.sample(data, len(data)):
            p = softmax(scores(w, f))
            for k in range(len(classes)):
                g = p[k] - (1 if k == y else 0)
                w[k] = [wi - lr * (g * fi + l2 * wi) for wi, fi in zip(w[k], f)]
    return [[round(x, 12) for x in row] for row in w]


def predict(w, classes, tile):
    s = scores(w, features(tile))
    return classes[max(range(len(classes)), key=lambda k: (s[k], -k))]


def dataset(cfg, pgm, csv):
    labels = read_labels(csv)
    return [(features(t), cfg["classes"].index(lab)) for t, lab in zip(read_tiles(pgm), labels)]


def accuracy(w, cfg, pgm, csv):
    pred = [predict(w, cfg["classes"], t) for t in read_tiles(pgm)]
    truth = read_labels(csv)
    return sum(p == t for p, t in zip(pred, truth)) / len(truth)


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "fetch":
    cfg = load(args[0])
    rng = random.Random(cfg["seed"])
    labels = [c for c in cfg["classes"] for _ in range(cfg["per_class"])]
    rng.shuffle(labels)
    write_tiles(args[1], [galaxy(rng, c, cfg["size"], cfg["noise"]) for c in labels])
    write_labels(args[2], labels)
elif cmd == "split":
    cfg, tiles, labels = load(args[0]), read_tiles(args[1]), read_labels(args[2])
    rng = random.Random(cfg["seed"] * 7919)
    parts = [[], [], []]
    for c in cfg["classes"]:  # stratified: each split gets its share of every class
        idx = [i for i, lab in enumerate(labels) if lab == c]
        rng.shuffle(idx)
        n_train = round(len(idx) * cfg["split"][0])
        n_val = round(len(idx) * cfg["split"][1])
        parts[0] += idx[:n_train]
        parts[1] += idx[n_train:n_train + n_val]
        parts[2] += idx[n_train + n_val:]
    for part, (out_pgm, out_csv) in zip(parts, zip(args[3::2], args[4::2])):
        part.sort()
        write_tiles(out_pgm, [tiles[i] for i in part])
        write_labels(out_csv, [labels[i] for i in part])
elif cmd == "preprocess":
    write_tiles(args[1], [preprocess(t) for t in read_tiles(args[0])])
elif cmd == "augment":
    cfg, tiles, labels = load(args[0]), read_tiles(args[1]), read_labels(args[2])
    out_t, out_l = [], []
    for t, lab in zip(tiles, labels):  # galaxies look alike at any rotation and mirrored
        r1 = rot90(t)
        r2 = rot90(r1)
        for v in [t, r1, r2, rot90(r2), hflip(t)][:cfg["augment_copies"]]:
            out_t.append(v)
            out_l.append(lab)
    write_tiles(args[3], out_t)
    write_labels(args[4], out_l)
elif cmd == "hpo":
    cfg, trial = load(args[0]), int(args[1])
    params = dict(cfg["defaults"], **cfg["search"][trial % len(cfg["search"])])
    w = fit(dataset(cfg, args[2], args[3]), cfg["classes"], params, cfg["seed"] * 31 + trial)
    save(args[6], {"trial": trial, "params": params,
                   "val_accuracy": round(accuracy(w, cfg, args[4], args[5]), 12)})
elif cmd == "train":
    cfg = load(args[0])
    trials = sorted((load(p) for p in args[4:]), key=lambda t: t["trial"])
    best = max(trials, key=lambda t: (t["val_accuracy"], -t["trial"]))
    w = fit(dataset(cfg, args[1], args[2]), cfg["classes"], best["params"], cfg["seed"] * 31 + 1000)
    save(args[3], {"classes": cfg["classes"], "weights": w, "params": best["params"],
                   "best_trial": best["trial"],
                   "trials": [{"trial": t["trial"], "val_accuracy": t["val_accuracy"]} for t in trials]})
elif cmd == "inference":
    model = load(args[0])
    write_labels(args[2], [predict(model["weights"], model["classes"], t) for t in read_tiles(args[1])])
elif cmd == "evaluate":
    cfg, pred, truth, model = load(args[0]), read_labels(args[1]), read_labels(args[2]), load(args[3])
    classes = cfg["classes"]
    matrix = [[0] * len(classes) for _ in classes]  # rows: true class, columns: predicted
    for p, t in zip(pred, truth):
        matrix[classes.index(t)][classes.index(p)] += 1
    save(args[4], {"accuracy": round(sum(p == t for p, t in zip(pred, truth)) / len(truth), 12),
                   "classes": classes, "confusion_matrix": matrix, "images": len(truth),
                   "model": {k: model[k] for k in ("params", "best_trial", "trials")}})
else:
    sys.exit(f"unknown step {cmd}")
