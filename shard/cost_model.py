#!/usr/bin/env python3
"""Values exchanged per step by chandir::shard (Sobolev H1, every weight of ndim >= 2) against the
gradient's own reduce-scatter, for ResNet-50 and ViT-B/16 sharded over R ranks.

Layouts: 'flat' = each weight's flat buffer cut evenly into R ranges (DeepSpeed ZeRO-3; FSDP's
FlatParameter cuts a unit's concatenation, which is the same per weight up to where the cuts fall);
'rows' = each weight's output channels cut evenly (FSDP2's per-parameter dim-0 shards).
Per weight and rank, the algorithm all-gathers a 17-value descriptor and 3 values per slot, where a
slot holds the most columns one rank touches: k = max_q min(end_q - start_q, w).
Received per rank per step = R * sum(17 + 3k); the ring reduce-scatter of the gradient moves
(R - 1)/R * N values per rank; gathering the gradient to smooth it unsharded, the same again.
'scan' estimates the same algorithm on an exclusive prefix scan instead of all-gathers (not
implemented; MPI_Exscan with the composition of affine maps as the operator): forward (slope,
value) pairs, an all-reduce of acc, backward (slope, response, value) triples, about
(5*log2(R) + 2)*k values per rank, per weight.
Run: python3 shard/cost_model.py
"""

import math

def resnet50():
    shapes = [(64, 3, 7, 7)]
    in_ch = 64
    for width, blocks in [(64, 3), (128, 4), (256, 6), (512, 3)]:
        for b in range(blocks):
            shapes += [(width, in_ch, 1, 1), (width, width, 3, 3), (4 * width, width, 1, 1)]
            if b == 0:
                shapes.append((4 * width, in_ch, 1, 1))  # projection shortcut
            in_ch = 4 * width
    shapes.append((1000, 2048))
    return shapes

def vit_b16():
    d = 768
    shapes = [(d, 3, 16, 16)]
    for _ in range(12):
        shapes += [(3 * d, d), (d, d), (4 * d, d), (d, 4 * d)]
    shapes.append((1000, d))
    return shapes

def prod(s):
    p = 1
    for v in s:
        p *= v
    return p

def exchanged(shape, ranks, layout):
    n, w = shape[0], prod(shape[1:])
    total = n * w
    if layout == "flat":
        cuts = [total * r // ranks for r in range(ranks + 1)]
    else:
        cuts = [(n * r // ranks) * w for r in range(ranks + 1)]
    k = max(min(cuts[r + 1] - cuts[r], w) for r in range(ranks))
    return ranks * (17 + 3 * k), (5 * math.log2(ranks) + 2) * k


for name, model in [("ResNet-50", resnet50()), ("ViT-B/16", vit_b16())]:
    total = sum(prod(s) for s in model)
    print(f"{name}: {len(model)} weights, {total / 1e6:.1f} M values")
    for ranks in [8, 64, 1024]:
        rs = (ranks - 1) / ranks * total
        row = [f"R = {ranks:4}: reduce-scatter {rs / 1e6:6.1f} M values/rank"]
        for layout in ["flat", "rows"]:
            ex = sum(exchanged(s, ranks, layout)[0] for s in model)
            row.append(f"{layout} {ex / 1e6:7.2f} M ({100 * ex / rs:5.1f} %)")
        scan = sum(exchanged(s, ranks, "flat")[1] for s in model)
        row.append(f"flat, scan {scan / 1e6:5.2f} M ({100 * scan / rs:4.1f} %)")
        print("  " + ", ".join(row))
