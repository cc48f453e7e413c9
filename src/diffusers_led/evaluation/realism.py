"""Stage 5 of :func:`~diffusers_led.evaluation.evaluate`: realism. Inception features of the real crops, the inputs
and the generated crops, and per region FID / KID of each (mode, strength) against the real crops of the same
targets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .inputs import EvalInputs, ReferenceCrop
from .metrics import frechet_distance, kernel_inception_distance
from .state import _Face, _Run


def _measure_realism(
    run: _Run,
    inputs: EvalInputs,
    faces: Sequence[_Face],
    references: Sequence[ReferenceCrop],
    realism_pairs: set,
    generated: dict[tuple[str, float, str], list[tuple[str, np.ndarray]]],
) -> dict[str, Any]:
    """Inception features of the references, the inputs and the generated crops; FID / KID per region (see
    :func:`_realism`). Empty when realism is off or there are no real crops (the report's notes say so)."""
    from tqdm.auto import tqdm

    from .judges import InceptionFeatures

    if not run.realism:
        return {}
    if not references:
        inputs.notes.append("No labelled real crops to compare against: FID/KID not computed.")
        return {}
    cache_dir = run.cache_dir
    if cache_dir == "default":
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache_dir = os.path.join(base, "diffusers_led", "eval_features")
    inception = InceptionFeatures(cache_dir=cache_dir or None, device=run.pipe.device)
    input_photos = sorted({i for i, _ in realism_pairs})
    n_crops = len(references) + len(input_photos) * len(run.regions) + sum(len(v) for v in generated.values())
    with tqdm(total=n_crops, desc="Inception features", unit="crop", disable=not run.progress) as feature_bar:
        ref_feats = inception([r.crop for r in references], progress=feature_bar)
        input_feats = {
            region: inception([faces[i].regions.crops[region] for i in input_photos], progress=feature_bar)
            for region in run.regions
        }
        gen_feats = {
            key: inception([crop for _, crop in items], progress=feature_bar) for key, items in generated.items()
        }
    return _realism(
        references, ref_feats, input_feats, gen_feats, generated, faces, run.regions, run.targets, run.seed
    )


def _reference_counts(references: Sequence[ReferenceCrop], regions: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per region and expression, how many real crops there are."""
    return {
        region: {
            e: sum(1 for r in references if r.region == region and r.expression == e)
            for e in sorted({r.expression for r in references})
        }
        for region in regions
    }


def _realism_pairs(n_photos: int, targets: Sequence[str], cap: int | None, seed: int) -> set:
    """``(photo index, target)`` pairs for FID/KID: all of them, or ``cap`` drawn round-robin over the targets in a
    seeded order (each target's photos shuffled), so every target is equally represented."""
    pairs = [(i, t) for i in range(n_photos) for t in targets]
    if cap is None or len(pairs) <= cap:
        return set(pairs)
    rng = np.random.default_rng(seed)
    queues = [[(int(i), t) for i in rng.permutation(n_photos)] for t in targets]
    chosen: list[tuple[int, str]] = []
    while len(chosen) < cap:
        for queue in queues:
            if queue and len(chosen) < cap:
                chosen.append(queue.pop(0))
    return set(chosen)


def _distances(ref: np.ndarray, gen: np.ndarray, seed: int) -> dict[str, Any]:
    row: dict[str, Any] = {"n_generated": int(len(gen)), "n_reference": int(len(ref))}
    if len(gen) >= 2 and len(ref) >= 2:
        row["fid"] = frechet_distance(ref, gen)
        row["kid"], row["kid_std"] = kernel_inception_distance(ref, gen, seed=seed)
    else:
        row["fid"] = row["kid"] = row["kid_std"] = None
    return row


def _realism(
    references, ref_feats, input_feats, gen_feats, generated, faces, regions, targets, seed
) -> dict[str, Any]:
    """Per region: the unedited inputs and each (mode, strength)'s generated crops against the real crops of the
    same targets (pooled over targets), plus per-target KID."""
    labels = np.array([r.expression for r in references])
    ref_regions = np.array([r.region for r in references])
    with_refs = [t for t in targets if any((labels == t) & (ref_regions == regions[0]))]
    out: dict[str, Any] = {"targets_with_references": with_refs, "unedited": {}, "configs": []}
    for region in regions:
        pool = (ref_regions == region) & np.isin(labels, with_refs)
        out["unedited"][region] = _distances(ref_feats[pool], input_feats[region], seed)
    for (mode, strength, region), items in sorted(generated.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        feats = gen_feats[(mode, strength, region)]
        item_targets = np.array([t for t, _ in items])
        keep = np.isin(item_targets, with_refs)
        pool = (ref_regions == region) & np.isin(labels, with_refs)
        row = {"mode": mode, "strength": strength, "region": region, **_distances(ref_feats[pool], feats[keep], seed)}
        per_target = {}
        for target in with_refs:
            ref = ref_feats[(ref_regions == region) & (labels == target)]
            gen = feats[item_targets == target]
            if len(ref) >= 2 and len(gen) >= 2:
                per_target[target] = kernel_inception_distance(ref, gen, seed=seed)[0]
        row["kid_per_target"] = per_target
        out["configs"].append(row)
    return out
