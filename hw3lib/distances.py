"""Distances between images: each image's nearest image in a reference set, exact duplicates,
the step between consecutive files of a class, and the distance from an image to its nearest
image in the other half of its folder.

Every distance is Euclidean, over all ``C*H*W`` pixel values, computed in float64 blocks of at
most :data:`BLOCK_BYTES`, so memory does not grow with the dataset (time grows as the number of
image pairs compared). :mod:`hw3lib.leakage` audits splits with them, :mod:`hw3lib.file_order`
tells whether a folder's files come in frame order.
"""
import hashlib

import numpy as np

# The most bytes of float64 pixels converted at once, per block of images (:func:`nearest`): a
# block of the images, a block of the reference images and their block of squared distances each
# stay within it, so memory does not grow with the dataset.
BLOCK_BYTES = 2**26


def _flat(X):
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


def _selected(mask, n):
    return np.arange(n) if mask is None else np.flatnonzero(mask)


def nearest_many(X, X_ref, col_masks, rows=None, chunk=1024, bar=None):
    """:func:`nearest` of the ``rows`` of ``X (N, C, H, W)`` (a boolean ``(N,)`` mask, None: all)
    to each of several subsets of ``X_ref (M, C, H, W)`` at once, ``col_masks`` boolean ``(M,)``
    masks (None: all): a list of ``(distances, indices)``, both ``(R,)`` for the ``R`` rows, one
    pair per mask, indices counted among the images it selects.
    One pass over the images of ``X_ref`` that any mask selects serves them all.

    Blocks of both arrays are converted to float64 one at a time (:data:`BLOCK_BYTES`). Rows go
    in blocks of ``chunk`` as a single :func:`nearest` call takes them (a BLAS product's rounding
    depends on where a row sits in its block, not on the columns), so the distances are the same
    bits as a call per subset. ``bar`` (a tqdm bar, or None) counts the image pairs compared."""
    rows = _selected(rows, len(X))
    cols = [_selected(c, len(X_ref)) for c in col_masks]
    union = cols[0] if len(cols) == 1 else np.flatnonzero(
        np.isin(np.arange(len(X_ref)), np.concatenate(cols)))
    features = int(np.prod(X.shape[1:]))
    per_block = max(1, BLOCK_BYTES // (8 * max(features, 1)))
    row_block = max(1, min(chunk, per_block))
    col_block = max(2, min(per_block, BLOCK_BYTES // (8 * row_block)))
    # equal blocks of columns, none of one column alone (a product with one column is a
    # matrix-vector product, rounded differently)
    col_blocks = np.array_split(np.arange(len(union)), -(-len(union) // col_block)) if len(union) else []
    ranks = []  # each mask's rank of each union column, -1 where it does not select it
    for c in cols:
        rank = np.full(len(union), -1)
        rank[np.searchsorted(union, c)] = np.arange(len(c))
        ranks.append(rank)
    best = [np.full(len(rows), np.inf) for _ in cols]
    best_index = [np.zeros(len(rows), dtype=np.int64) for _ in cols]
    for block in col_blocks:
        B = _flat(X_ref[union[block]])
        b2 = (B ** 2).sum(axis=1)
        block_ranks = [rank[block] for rank in ranks]
        selected = [rank >= 0 for rank in block_ranks]
        # for a mask that leaves out some of the block's columns, -inf on its own and inf on the
        # others (_masked_argmin); None for one that selects them all
        floors = [None if s.all() else np.where(s, -np.inf, np.inf) for s in selected]
        for start in range(0, len(rows), row_block):
            part = _flat(X[rows[start:start + row_block]])
            d2 = (part ** 2).sum(axis=1)[:, None] + b2[None, :] - 2 * part @ B.T
            if bar is not None:
                bar.update(d2.size)
            masked = np.empty_like(d2) if any(f is not None for f in floors) else None  # for every mask
            for q, (rank, s, floor) in enumerate(zip(block_ranks, selected, floors)):
                if not s.any():
                    continue
                arg = d2.argmin(axis=1) if floor is None else _masked_argmin(d2, floor, masked)
                value = d2[np.arange(len(d2)), arg]
                here = slice(start, start + len(part))
                better = value < best[q][here]  # strict: the first of equal minima wins, as argmin's
                best[q][here][better] = value[better]
                best_index[q][here][better] = rank[arg[better]]
    return [(np.sqrt(np.maximum(b, 0)), i) for b, i in zip(best, best_index)]


def _masked_argmin(d2, floor, out):
    """Each row's argmin of ``d2 (R, C)`` among the columns where ``floor (C,)`` is -inf (the
    others inf): the index that ``d2[:, columns].argmin(axis=1)`` gives, mapped back to ``d2``'s
    columns (a NaN among them too, which fmax makes -inf), by one pass into ``out`` (shaped as
    ``d2``); the gather through an index took over ten times as long as the product at 16x16
    pixels, once per mask."""
    return np.fmax(d2, floor, out=out).argmin(axis=1)


def nearest(X, X_ref, chunk=1024, bar=None):
    """``(distances, indices)``, both ``(N,)``: for each image of ``X (N, C, H, W)`` the
    Euclidean distance to its nearest image in ``X_ref (M, C, H, W)`` and that image's index.

    Computed in float64 from ``|a|^2 + |b|^2 - 2 a.b``, in blocks of at most ``chunk`` rows of
    ``X`` and of :data:`BLOCK_BYTES` of float64 from either array, so memory stays bounded
    however many images there are (time grows as N * M). ``bar`` (a tqdm bar, or None) counts
    the image pairs compared."""
    X, X_ref = check_shapes(X, X_ref)
    return nearest_many(X, X_ref, [None], chunk=chunk, bar=bar)[0]


def check_shapes(X, X_ref, names=("X", "X_ref")):
    """``X (N, ...)`` and ``X_ref (M, ...)`` as arrays; a ValueError, naming them as the caller's
    arguments ``names``, unless they hold images of one shape and ``X_ref`` holds at least one."""
    X, X_ref = np.asarray(X), np.asarray(X_ref)
    if X.ndim < 2 or X.shape[1:] != X_ref.shape[1:] or len(X_ref) == 0:
        raise ValueError(f"{names[0]} {X.shape} and {names[1]} {X_ref.shape} must be images of one "
                         f"shape, {names[1]} non-empty")
    return X, X_ref


def image_digests(X, dtype):
    """A list of ``N`` 16-byte BLAKE2b digests, one per image of ``X (N, ...)`` as ``dtype`` bytes (one
    image converted at a time): the key that finds candidate duplicates without holding every
    image's bytes."""
    return [hashlib.blake2b(np.ascontiguousarray(image, dtype=dtype), digest_size=16).digest()
            for image in X]


def duplicates_by_digest(X, X_ref, digests, ref_digests, rows=None, cols=None):
    """:func:`exact_duplicates` of the ``rows`` of ``X (N, ...)`` among the ``cols`` of
    ``X_ref (M, ...)`` (boolean ``(N,)`` and ``(M,)`` masks, None: all), a boolean ``(R,)`` for the
    ``R`` rows, from their :func:`image_digests` ``digests`` and ``ref_digests``; a digest match is
    confirmed byte for byte."""
    index = {}
    for j in _selected(cols, len(X_ref)):
        index.setdefault(ref_digests[j], []).append(j)
    found = []
    for i in _selected(rows, len(X)):
        matches = index.get(digests[i], ())
        row = np.ascontiguousarray(X[i]).tobytes() if matches else None
        found.append(any(np.ascontiguousarray(X_ref[j], dtype=X.dtype).tobytes() == row for j in matches))
    return np.array(found, dtype=bool)


def exact_duplicates(X, X_ref):
    """A boolean ``(N,)``: which images of ``X (N, ...)`` equal some image of ``X_ref``
    value for value (compared as bytes, so no rounding is involved). Holds a 16-byte digest per
    image, not the images' bytes."""
    X, X_ref = np.asarray(X), np.asarray(X_ref)
    return duplicates_by_digest(X, X_ref, image_digests(X, X.dtype), image_digests(X_ref, X.dtype))


def frame_step(X, y):
    """The median distance between consecutive images of each class of ``X (N, C, H, W)``
    (in the given order, by class ``y (N,)``): :func:`~hw3lib.leakage.leakage_audit`'s default
    ``near`` threshold."""
    return median_step(class_steps(np.asarray(X), np.asarray(y)))


def class_steps(X, y):
    """``{label: the distances between its consecutive images (n - 1,)}`` for each class of
    ``y (N,)`` in ``X (N, C, H, W)``."""
    return {c: _steps(X, np.flatnonzero(y == c)) for c in np.unique(y)}


def median_step(steps):
    """:func:`frame_step` (a float) of :func:`class_steps`'s ``steps``."""
    steps = np.concatenate([np.empty(0), *steps.values()])
    if len(steps) == 0:
        raise ValueError("frame_step needs at least two images of one class")
    return float(np.median(steps))


def _steps(X, idx):
    """The distances between consecutive images ``X[idx]`` ``(len(idx) - 1,)``, converted to
    float64 :data:`BLOCK_BYTES` at a time."""
    block = max(2, BLOCK_BYTES // (8 * max(int(np.prod(X.shape[1:])), 1)))
    return np.concatenate([np.empty(0)] + [  # blocks overlap by one image
        np.linalg.norm(np.diff(_flat(X[idx[start:start + block]]), axis=0), axis=1)
        for start in range(0, len(idx) - 1, block - 1)])


def neighbour_distance(X, sample=None, bar=None):
    """The median distance from an image of ``X (N, C, H, W)`` (N >= 2) to its nearest image in
    the other half of ``X`` (a seeded random half; each half's images looked up in the other; an
    exact copy at 0). ``sample``: look up at most this many images of each half (seeded), None:
    all of them. ``bar`` (a tqdm bar, or None) counts the image pairs compared."""
    return float(np.median(neighbour_distances(X, sample, bar)[1]))


def neighbour_pairs(n, sample=None):
    """How many image pairs :func:`neighbour_distances` compares among ``n`` images, looking up
    at most ``sample`` images of each half (None: all of them)."""
    half, other = n // 2, n - n // 2
    if sample is not None:  # each half's images looked up in the other
        return min(half, sample) * other + min(other, sample) * half
    return 2 * half * other


def neighbour_distances(X, sample=None, bar=None):
    """``(looked_up, distances)``: the indices of the images of ``X`` that
    :func:`neighbour_distance` looks up, and each one's distance to its nearest image in the
    other half, both ``(L,)``."""
    rng = np.random.default_rng(0)
    half = np.zeros(len(X), dtype=bool)
    half[rng.permutation(len(X))[:len(X) // 2]] = True
    indices, distances = [], []
    for rows in (half, ~half):
        looked_up = rows
        if sample is not None and rows.sum() > sample:
            looked_up = np.zeros(len(X), dtype=bool)
            looked_up[rng.choice(np.flatnonzero(rows), sample, replace=False)] = True
        distance, index = nearest_many(X, X, [~rows], rows=looked_up, bar=bar)[0]
        # an exact copy is at distance 0, which |a|^2 + |b|^2 - 2 a.b rounds to about 1e-7
        indices.append(np.flatnonzero(looked_up))
        pairs = zip(indices[-1], np.flatnonzero(~rows)[index])
        distance[[np.array_equal(X[i], X[j]) for i, j in pairs]] = 0
        distances.append(distance)
    return np.concatenate(indices), np.concatenate(distances)

