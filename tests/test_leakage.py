"""hw3lib.leakage, hw3lib.distances and hw3lib.file_order: nearest distances, exact and near
duplicates, the order of a folder's files, the audit of both split methods."""
import numpy as np
import pytest
from conftest import peak_bytes

from hw3lib import data
from hw3lib.distances import exact_duplicates, frame_step, nearest, neighbour_distance
from hw3lib.file_order import ORDER_SAMPLE, file_order_note
from hw3lib.leakage import PAIRS, LeakageAudit, leakage_audit


def recorded_bars(monkeypatch, module):
    """The tqdm bars that ``module`` makes from now on, each shown at once (no PROGRESS_DELAY)."""
    bars = []

    class Recorded(module.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(module, "tqdm", Recorded)
    monkeypatch.setattr(module, "PROGRESS_DELAY", 0)
    return bars


def test_nearest_by_hand():
    X_ref = np.zeros((2, 1, 1, 2))
    X_ref[1, 0, 0] = [3, 4]
    X = np.array([[[[3.0, 4.0]]], [[[1.0, 0.0]]], [[[6.0, 8.0]]]])
    distances, indices = nearest(X, X_ref)
    np.testing.assert_allclose(distances, [0, 1, 5])
    assert indices.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="one shape"):
        nearest(X, np.zeros((2, 1, 2, 1)))


def test_nearest_in_chunks_equals_brute_force():
    rng = np.random.default_rng(0)
    X, X_ref = rng.random((37, 2, 3, 3)), rng.random((11, 2, 3, 3))
    brute = np.linalg.norm(X.reshape(37, 1, -1) - X_ref.reshape(1, 11, -1), axis=2)
    distances, indices = nearest(X, X_ref, chunk=5)
    np.testing.assert_allclose(distances, brute.min(axis=1), atol=1e-12)
    assert indices.tolist() == brute.argmin(axis=1).tolist()


def test_exact_duplicates_compare_values_not_distances():
    X_ref = np.arange(12, dtype=np.float32).reshape(3, 1, 2, 2) / 255
    X = np.stack([X_ref[2], X_ref[0] + np.float32(1e-7), X_ref[0]])
    assert exact_duplicates(X, X_ref).tolist() == [True, False, True]


def test_frame_step_is_the_median_step_within_each_class():
    X = np.array([0, 1, 3, 10, 10.5, 20], dtype=np.float64).reshape(-1, 1, 1, 1)
    y = np.array([0, 0, 0, 1, 1, 1])
    assert frame_step(X, y) == pytest.approx(np.median([1, 2, 0.5, 9.5]))  # never across classes
    with pytest.raises(ValueError, match="two images"):
        frame_step(X[:1], y[:1])


def videos(frames=100, classes=3, seed=0):
    """Each class one "video": a random walk of 4x4 images with small steps, in file order."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.random((1, 1, 4, 4)) * 5 + np.cumsum(
        rng.normal(0, 0.05, (frames, 1, 4, 4)), axis=0) for _ in range(classes)])
    return X.astype(np.float32), np.repeat(np.arange(classes), frames)


def test_audit_finds_planted_duplicates_and_the_random_splits_leak():
    X, y = videos()
    X_test = np.concatenate([X[[0, 1, 2]], X[[50]] + np.float32(1e-3),  # 3 exact, 1 near copies
                             np.full((6, 1, 4, 4), 100, np.float32)])    # 6 far from everything
    audit = leakage_audit(X, y, X_test, seeds=(0, 1))
    assert audit.near == frame_step(X, y)
    assert set(audit.distances) == {(m, s, p) for m in ("blocked", "random") for s in (0, 1) for p in PAIRS}
    for method in ("blocked", "random"):
        for seed in (0, 1):
            X_train, _, X_val, _ = data.train_val_split(X, y, 0.3, seed, method)
            in_train = [any(np.array_equal(X[i], t) for t in X_train) for i in (0, 1, 2, 50)]
            exact = audit.exact[method, seed, "test -> training"]
            assert exact.tolist() == in_train[:3] + [False] * 7  # a planted copy counts when trained on
            near = audit.distances[method, seed, "test -> training"] <= audit.near
            brute = np.linalg.norm((X_test[3] - X_train).reshape(len(X_train), -1), axis=1).min()
            assert all(near[i] for i in range(3) if in_train[i])  # trained-on copies are near
            assert near[3] == (brute <= audit.near) and not near[4:].any()
            np.testing.assert_allclose(audit.distances[method, seed, "validation -> training"],
                                       nearest(X_val, X_train)[0])
    # On videos a random split puts a near-copy of most validation frames into training,
    # the blocked split only of the frames at the edges of its held-out runs.
    random_median, random_near = audit.summary("random", "validation -> training")
    blocked_median, blocked_near = audit.summary("blocked", "validation -> training")
    assert random_near > 0.5 and blocked_near < 0.25 and blocked_median > 1.5 * random_median
    lines = str(audit.table()).splitlines()
    assert lines[0].split()[:4] == ["split", "seed", "images", "->"] and len(lines) == 1 + 12
    key = ("random", 0, "test -> training")
    row = lines[1 + list(audit.distances).index(key)].split()
    near_count = int((audit.distances[key] <= audit.near).sum())
    assert row[:6] == ["random", "0", "test", "->", "training", "10"]
    assert row[-3:] == [str(int(audit.exact[key].sum())), str(near_count), f"{10 * near_count}%"]


def test_an_exact_duplicate_is_a_near_one_whatever_the_threshold():
    # a class of identical (constant) images makes the median frame step, the default "near", 0;
    # an exact copy's distance, rounded in |a|^2 + |b|^2 - 2 a.b, must still count as within it
    rng = np.random.default_rng(0)
    grey, noise = np.full((60, 1, 16, 16), 0.37, np.float32), rng.random((40, 1, 16, 16), np.float32)
    X, y = np.concatenate([grey, noise]), np.repeat([0, 1], [60, 40])
    X_test = np.concatenate([grey[:2], noise, rng.random((5, 1, 16, 16), np.float32)])
    audit = leakage_audit(X, y, X_test, seeds=(0, 1), progress=False)
    assert audit.near == 0
    for key, exact in audit.exact.items():
        near = audit.distances[key] <= audit.near
        assert exact.any() and near[exact].all(), key
        np.testing.assert_array_equal(audit.distances[key][exact], 0)
    row = str(audit.table()).splitlines()[2].split()  # blocked, seed 0, test -> training
    assert row[2:5] == ["test", "->", "training"] and row[-3] == row[-2]  # as many near as exact


def test_audit_takes_a_threshold_and_refuses_no_seeds():
    X, y = videos(frames=20)
    assert leakage_audit(X, y, X[:3], seeds=(0,), near=0.25).near == 0.25
    with pytest.raises(ValueError, match="seeds is empty"):
        leakage_audit(X, y, X[:3], seeds=())
    with pytest.raises(ValueError, match=rf"X_test \(3, {X.shape[1] + 1}, .* and X \({len(X)}, "):
        leakage_audit(X, y, np.concatenate([X[:3], X[:3, :1]], axis=1))  # names its own arguments
    with pytest.raises(ValueError, match=r"X_test \(0, 1, 4, 4\) holds no images"):
        leakage_audit(X, y, X[:0])  # not an IndexError from a median of nothing, in its table


def test_one_image_per_class_is_named_as_too_few_to_split_not_as_no_frame_step():
    X = np.random.default_rng(0).random((3, 1, 4, 4))
    with pytest.raises(ValueError, match="^one image per class leaves the validation split empty"):
        leakage_audit(X, [0, 1, 2], X[:1], progress=False)  # was: frame_step needs two images


def test_summary_table_and_figure_follow_the_audit():
    X, y = videos(frames=40)
    audit = leakage_audit(X, y, X[::7] + np.float32(0.5), seeds=(0, 1))
    lines = str(audit.summary_table()).splitlines()
    assert len(lines) == 1 + 2 * len(PAIRS)
    d = [audit.distances["random", s, "validation -> training"] for s in (0, 1)]
    medians = sorted(float(np.median(x)) for x in d)
    near = sorted(100 * float(np.mean(x <= audit.near)) for x in d)
    row = next(line for line in lines if line.startswith("random") and "validation" in line).split()
    assert row[-3:] == [f"{medians[0]:.2f}-{medians[1]:.2f}", "0", f"{near[0]:.0f}-{near[1]:.0f}%"]
    from hw3lib import plots
    fig = plots.plot_leakage(audit)
    hist, bars = fig.axes
    assert hist.lines[0].get_xdata()[0] == audit.near  # the threshold line
    shares = [patch.get_height() for patch in bars.patches]
    assert len(shares) == 2 * len(PAIRS) and max(shares) <= 100


def test_memory_stays_bounded_however_many_images(monkeypatch):
    # A dataset's own images: the whole of X_ref in float64 (and its square) would be 32 MB
    # here, the pairwise distances 600 x 2000 x 8 = 10 MB; blocks keep each to BLOCK_BYTES.
    from hw3lib import distances
    monkeypatch.setattr(distances, "BLOCK_BYTES", 2**20)
    rng = np.random.default_rng(0)
    X_ref = rng.random((2000, 1, 32, 32), dtype=np.float32)
    X = np.concatenate([X_ref[[5, 1999, 700]], rng.random((597, 1, 32, 32), dtype=np.float32)])
    (distances, indices), peak = peak_bytes(lambda: nearest(X, X_ref))
    assert peak < 8 * 2**20, f"nearest held {peak / 2**20:.0f} MiB"
    assert indices[:3].tolist() == [5, 1999, 700] and distances[:3].max() < 1e-3
    sample = slice(3, 40)
    brute = np.linalg.norm(X[sample].reshape(37, 1, -1) - X_ref.reshape(1, 2000, -1), axis=2)
    np.testing.assert_allclose(distances[sample], brute.min(axis=1), atol=1e-9)
    assert indices[sample].tolist() == brute.argmin(axis=1).tolist()
    y = np.zeros(2000, dtype=np.int64)
    step, peak = peak_bytes(lambda: frame_step(X_ref, y))
    assert peak < 8 * 2**20, f"frame_step held {peak / 2**20:.0f} MiB"
    assert step == np.median(np.linalg.norm(np.diff(X_ref.reshape(2000, -1).astype(np.float64), axis=0), axis=1))
    exact, peak = peak_bytes(lambda: exact_duplicates(X, X_ref))  # not every image's bytes
    assert peak < 2**20, f"exact_duplicates held {peak / 2**20:.0f} MiB"
    assert exact.tolist() == [True] * 3 + [False] * 597


def test_audit_compares_the_test_images_with_the_folder_once(monkeypatch):
    # 2 methods x 3 seeds: test -> training and test -> validation of every split come from one
    # pass over the folder's images (not 12), with the same distances as a call per pair; one
    # more pass compares each half of the folder with the other (the file-order check).
    from hw3lib import distances
    converted = []
    flat = distances._flat
    monkeypatch.setattr(distances, "_flat", lambda X: converted.append(len(X)) or flat(X))
    X, y = videos(frames=60)
    X_test = X[::5] + np.float32(0.01)
    audit = leakage_audit(X, y, X_test)
    converted = sum(converted) - len(X)  # less frame_step's
    splits = 6
    assert converted <= splits * len(X) + len(X) + len(X_test) + 2 * len(X)  # val -> train per split, test, halves
    monkeypatch.setattr(distances, "_flat", flat)
    for method in ("blocked", "random"):
        for seed in (0, 1, 2):
            X_train, _, X_val, _ = data.train_val_split(X, y, 0.3, seed, method)
            for pair, images, reference in zip(PAIRS, (X_val, X_test, X_test), (X_train, X_train, X_val)):
                assert np.array_equal(audit.distances[method, seed, pair], nearest(images, reference)[0])
                assert np.array_equal(audit.exact[method, seed, pair], exact_duplicates(images, reference))


def test_a_mask_s_nearest_is_found_by_a_pass_over_the_block_not_a_gather_of_its_columns():
    # nearest_many's masks of some of a block's columns (the audit's 12, test -> each split's
    # training and validation parts) took a copy of the block's distances through an index each,
    # over ten times the product's time at 16x16 pixels: the test -> folder pass took as long as
    # the 6 validation -> training ones with 6 times its pairs. Each is now one pass of fmax
    # against -inf/inf, whose argmin is the gathered columns' own, ties and NaN included.
    from hw3lib.distances import _masked_argmin
    rng = np.random.default_rng(0)
    d2 = rng.integers(0, 4, (50, 40)).astype(np.float64)  # many ties
    d2[rng.random(d2.shape) < 0.05] = np.nan
    d2[:, 7] = np.nan  # a column all NaN, outside some masks
    out = np.empty_like(d2)
    for share in (0.05, 0.3, 0.7, 0.95):
        mask = rng.random(40) < share
        mask[0] = True
        columns = np.flatnonzero(mask)
        found = _masked_argmin(d2, np.where(mask, -np.inf, np.inf), out)
        assert found.tolist() == columns[d2[:, columns].argmin(axis=1)].tolist()


def test_audit_counts_its_pairs_on_a_bar_that_waits_before_showing(monkeypatch, capsys):
    # The bar counts every image pair compared (validation x training of each split, test x the
    # folder once, each half of the folder x the other) and shows only once the audit has run
    # PROGRESS_DELAY seconds.
    from hw3lib import leakage
    X, y = videos(frames=40)
    X_test = X[::4] + np.float32(0.01)
    leakage_audit(X, y, X_test, seeds=(0, 1))
    assert capsys.readouterr().err == ""  # a fast audit: no bar
    bars = recorded_bars(monkeypatch, leakage)
    leakage_audit(X, y, X_test, seeds=(0, 1))
    pairs = sum(len(X_val) * len(X_train) for X_train, _, X_val, _ in
                (data.train_val_split(X, y, 0.3, seed, method) for method in ("blocked", "random")
                 for seed in (0, 1))) + len(X_test) * len(X) + 2 * (len(X) // 2) * (len(X) - len(X) // 2)
    assert [(bar.n, bar.total) for bar in bars] == [(pairs, pairs)]
    assert "leakage audit: 100%" in capsys.readouterr().err
    leakage_audit(X, y, X_test, seeds=(0, 1), progress=False)
    assert len(bars) == 2 and capsys.readouterr().err == ""


def test_the_summary_gives_the_exact_duplicates_range_over_the_seeds_not_their_sum():
    """7, 5 and 7 exact duplicates over three seeds read as 19, beside columns of ranges."""
    audit = LeakageAudit(near=0.5)
    for seed, (exact, other) in enumerate([(7, 0), (5, 0), (7, 0)]):
        for pair, count in zip(PAIRS, (other, exact, other)):
            found = np.arange(10) < count
            audit.exact["random", seed, pair], audit.distances["random", seed, pair] = found, np.where(found, 0.0, 2.0)
    rows = {line.split("  ")[1].strip(): line.split() for line in str(audit.summary_table()).splitlines()[1:]}
    assert rows["test -> training"][-2:] == ["5-7", "50-70%"]
    assert rows["validation -> training"][-2:] == ["0", "0-0%"]  # the same on every seed: one number


def test_findings_say_which_split_leaks_and_which_test_images_were_trained_on():
    X, y = videos()
    # test: a fourth "video" of each class, unlike the training ones, and two exact copies
    X_new, _ = videos(frames=30, seed=1)
    X_test = np.concatenate([X_new, X[[5, 250]]])
    audit = leakage_audit(X, y, X_test, seeds=(0, 1), progress=False)
    blocked, random_, copies = audit.findings()
    assert blocked.startswith("blocked split: ") and "validation is as new to the model as test" in blocked
    assert random_.startswith("random split: ") and "validation accuracy will read higher" in random_
    assert "--split blocked" in random_
    _, val_share = audit.summary("random", PAIRS[0])
    assert f"{val_share:.0%} of its validation images" in random_
    assert audit.test_copies().tolist() == [90, 91]
    assert copies.startswith("2 test image(s) have an exact copy in the training folder")
    # without the copies: said so; a blocked split that leaks gets its own advice
    audit = leakage_audit(X, y, X_new, methods=("blocked",), seeds=(0,), progress=False)
    audit.distances["blocked", 0, PAIRS[0]][:] = 0  # as if every validation image were a copy
    leaky, *_, none = audit.findings()
    assert "validation accuracy will read higher" in leaky and "file-name order" in leaky
    assert none == "no test image has an exact copy in the training folder"


def test_findings_say_when_the_test_images_are_near_copies_of_training_images():
    X, y = videos()
    X_test = X[::4] + np.float32(1e-3)  # every fourth training frame, barely changed
    audit = leakage_audit(X, y, X_test, methods=("blocked",), seeds=(0,), progress=False)
    blocked, _ = audit.findings()
    assert "test images are less new to the model than validation's" in blocked
    assert "test accuracy will read higher" in blocked and "as new" not in blocked


def test_findings_say_near_duplicates_mean_little_when_files_are_not_runs_of_near_copies():
    rng = np.random.default_rng(0)
    X, X_test = rng.random((90, 1, 8, 8), dtype=np.float32), rng.random((30, 1, 8, 8), dtype=np.float32)
    audit = leakage_audit(X, np.repeat(np.arange(3), 30), X_test, seeds=(0,), progress=False)
    assert audit.summary("blocked", PAIRS[1])[1] == 1  # every image a "near duplicate"
    *_, caveat, copies = audit.findings()
    assert caveat.startswith("consecutive files of a class are no nearer each other")
    assert "do not come in runs of near-identical images" in caveat
    X, y = videos()  # frames: said nothing of
    assert len(leakage_audit(X, y, X[::7] + 1, seeds=(0,), progress=False).findings()) == 3


def test_held_out_summary_sets_validation_beside_test_per_method_in_the_order_given():
    audit = LeakageAudit(near=1.0)
    for seed, (val, test) in enumerate([([0.5, 2.0, 3.0], [4.0, 5.0, 6.0]), ([0.5, 0.75, 4.0], [1.0, 5.0, 7.0])]):
        for method in ("blocked", "random"):
            audit.distances[method, seed, PAIRS[0]] = np.array(val) * (2 if method == "blocked" else 1)
            audit.distances[method, seed, PAIRS[1]] = np.array(test)
    assert audit.held_out_summary(("random", "blocked")).splitlines() == [
        "random split, median distance to the nearest training image (share of near duplicates):",
        "  validation 1.38 (50%), test 5.00 (17%)",  # medians 2.0 and 0.75, shares 1/3 and 2/3
        "blocked split, median distance to the nearest training image (share of near duplicates):",
        "  validation 2.75 (33%), test 5.00 (17%)"]  # twice as far: 1.0 still near


def test_findings_say_so_when_frames_are_not_in_file_name_order_instead_of_passing_validation():
    """Frames named at random (or videos interleaved) made the near threshold a step between
    unrelated frames: every image counted as near, and validation was passed "as new" as test
    while it sat far nearer to training."""
    X, y = videos()
    order = np.concatenate([np.random.default_rng(1).permutation(np.flatnonzero(y == c)) for c in range(3)])
    audit = leakage_audit(X[order], y, videos(frames=30, seed=1)[0], seeds=(0,), progress=False)
    assert audit.out_of_order() and audit.near_too_large()  # the near copies the audit lists, too
    blocked, random_, order_line, _ = audit.findings()
    assert not any("as new to the model as test" in line for line in (blocked, random_))
    assert "the median distance to the nearest training image is" in blocked
    assert order_line.startswith("consecutive files of a class sit") and "not neighbours in file-name order" in order_line
    assert "Fix: name each class's files so that they sort video by video" in order_line
    assert not leakage_audit(X, y, videos(frames=30, seed=1)[0], seeds=(0,), progress=False).out_of_order()


def test_findings_name_test_images_that_are_training_images_flipped():
    """A mirrored training image in the test folder went unnoticed, though training with flips
    (the default) shows the model that very image."""
    X, y = videos()
    X_new, _ = videos(frames=30, seed=1)
    X_test = np.concatenate([X_new, X[[7]][..., ::-1], X[[8]]])
    audit = leakage_audit(X, y, X_test, seeds=(0,), progress=False)
    assert audit.test_mirrors().tolist() == [90] and audit.test_copies().tolist() == [91]
    mirrors = audit.findings()[-1]
    assert mirrors.startswith("1 test image(s) are the mirror image") and "--no-hflip" in mirrors
    # each count's images beside its sentence, which the audit lists under it (it matched wording)
    (copy_line, copies), (mirror_line, mirrored) = audit.copy_findings()
    assert audit.findings()[-2:] == [copy_line, mirror_line]
    assert copies.tolist() == [91] and mirrored.tolist() == [90]
    assert not any("mirror" in line for line in leakage_audit(X, y, X_new, seeds=(0,), progress=False).findings())


def test_a_copied_image_that_is_its_own_mirror_image_is_named_a_copy_not_a_mirror_too():
    """A left-right symmetric training image in the test folder equals its own mirror image: it
    is one exact copy, and no mirror (test_mirrors leaves out the copies; counting it in both
    passed)."""
    X, y = videos()
    X[9] = (X[9] + X[9][..., ::-1]) / 2  # symmetric
    X_test = np.concatenate([videos(frames=30, seed=1)[0], X[[7]][..., ::-1], X[[9]]])
    audit = leakage_audit(X, y, X_test, seeds=(0,), progress=False)
    assert audit.test_mirrors().tolist() == [90] and audit.test_copies().tolist() == [91]
    assert audit.findings()[-1].startswith("1 test image(s) are the mirror image")


def test_findings_name_files_out_of_order_when_most_images_have_an_exact_copy_elsewhere():
    """Black-and-white images (0 and 1: every distance exact), each four times but never next
    to a copy: the nearest image is at 0, and the findings divided by it (ZeroDivisionError)."""
    base = (np.random.default_rng(1).random((10, 1, 8, 8)) > 0.5).astype(np.float32)
    X, y = np.concatenate([base[:5]] * 4 + [base[5:]] * 4), np.repeat([0, 1], 20)
    audit = leakage_audit(X, y, np.full((3, 1, 8, 8), 0.5, np.float32), seeds=(0,), progress=False)
    assert audit.neighbour == 0 and audit.out_of_order()
    order_line = audit.findings()[-2]
    assert order_line.startswith("most images of the training folder have an exact copy in it")
    assert "the copies are not neighbours in file-name order" in order_line
    assert "Fix: remove the extra copies (each image once), then name each class's files" in order_line


def test_a_near_threshold_given_is_kept_for_the_verdicts_when_files_are_out_of_order():
    """Out of frame order, the findings said the shares were counted "against a threshold that
    the file order makes too large" and gave no verdict, though the threshold was the one given
    (near=), not the step between files; and the caveat named that threshold as the distance
    between consecutive files."""
    X, y = videos()
    order = np.concatenate([np.random.default_rng(1).permutation(np.flatnonzero(y == c)) for c in range(3)])
    X_test = videos(frames=30, seed=1)[0]
    step = leakage_audit(X[order], y, X_test, seeds=(0,), progress=False)
    audit = leakage_audit(X[order], y, X_test, seeds=(0,), near=step.neighbour, progress=False)
    assert audit.out_of_order() and not audit.near_too_large()
    findings = audit.findings()
    assert not any("threshold that the file order makes too large" in line for line in findings)
    assert not any(line.startswith("consecutive files of a class") for line in findings)  # near is no step
    random_ = next(line for line in findings if line.startswith("random split"))
    assert "validation accuracy will read higher than test accuracy" in random_, findings


def shuffled_within_classes(X, y, seed=1):
    """``X, y`` with each class's images in a random order, as files named at random are read."""
    order = np.concatenate([np.random.default_rng(seed).permutation(np.flatnonzero(y == c))
                            for c in np.unique(y)])
    return X[order], y[order]


def test_file_order_note_names_frames_out_of_order_and_not_frames_in_order_or_independent_images():
    """train held out the blocked split of frames named at random without a word (only audit
    told): near-copies of each validation frame trained, and validation read too high."""
    X, y = videos(frames=300)
    X_test = videos(frames=30, seed=1)[0]  # other videos
    note = file_order_note(*shuffled_within_classes(X, y), X_test)
    assert note.startswith("note: consecutive files of class 0 (and of 1, 2) sit ") and "not neighbours in file-name order" in note
    assert "validation accuracy, and the epoch and settings chosen on it, will read higher" in note
    assert "Fix: name each class's files so that they sort video by video" in note
    assert file_order_note(X, y, X_test) is None  # frames in order
    independent = np.random.default_rng(2).random((600, 1, 4, 4)).astype(np.float32)
    assert file_order_note(independent, np.repeat([0, 1], 300), independent[:30] + 0.01) is None
    assert file_order_note(X[:3], np.arange(3), X_test) is None  # no class of two images: nothing to tell


def test_file_order_note_counts_its_pairs_on_a_bar_that_waits_before_showing(monkeypatch, capsys):
    """train checked the file order of 16,000 RGB 64x64 images for 4 s with nothing on the
    screen: a bar counts the image pairs compared (the images looked up in each half of the
    folder x the other half, the test images looked up x the folder), shown once the check has
    run PROGRESS_DELAY seconds, and cleared at its end; the note is the same."""
    from hw3lib import file_order
    X, y = shuffled_within_classes(*videos(frames=300))
    X_test = videos(frames=30, seed=1)[0]
    note = file_order_note(X, y, X_test, progress=True)
    assert note and capsys.readouterr().err == ""  # a fast check: no bar
    bars = recorded_bars(monkeypatch, file_order)
    assert file_order_note(X, y, X_test, progress=True) == note
    assert len(X) % 2 == 0 and len(X) // 2 > ORDER_SAMPLE > len(X_test)
    pairs = 2 * ORDER_SAMPLE * (len(X) // 2) + len(X_test) * len(X)
    assert [(bar.n, bar.total) for bar in bars] == [(pairs, pairs)]
    assert "checking file order:" in capsys.readouterr().err
    file_order_note(X, y, X_test)
    assert len(bars) == 2 and capsys.readouterr().err == ""


def test_neighbour_distance_is_the_audits_and_a_sample_of_it_comes_close():
    X, y = shuffled_within_classes(*videos(frames=300))
    audit = leakage_audit(X, y, X[:5], seeds=(0,), progress=False)
    assert neighbour_distance(X) == audit.neighbour
    assert len(X) // 2 > ORDER_SAMPLE  # the sample is a part of each half
    assert neighbour_distance(X, ORDER_SAMPLE) == pytest.approx(audit.neighbour, rel=0.1)
    assert neighbour_distance(X, ORDER_SAMPLE) != audit.neighbour


def test_exact_copies_are_at_distance_0_and_the_note_says_to_remove_them():
    """Random images each saved twice, the copies sorted apart ("Copy of ..."): the nearest
    image's distance rounded to 1.2e-07, not 0, and the note read "26908476.1 times farther
    apart (3.21) than ... (1.19e-07)" and said only to rename the files."""
    X = np.random.default_rng(0).random((100, 1, 8, 8)).astype(np.float32)
    X, y = np.concatenate([X[:50], X[:50], X[50:], X[50:]]), np.repeat([0, 1], 100)
    assert neighbour_distance(X) == neighbour_distance(X, ORDER_SAMPLE) == 0
    note = file_order_note(X, y, np.random.default_rng(1).random((10, 1, 8, 8)))
    assert note.startswith("note: most images of the training folder have an exact copy in it"), note
    assert "times" not in note and "e-0" not in note
    assert "Fix: remove the extra copies (each image once), then name each class's files" in note
    assert neighbour_distance(X[np.r_[:50, 100:150]]) > 0  # each image once


def test_file_order_note_names_the_one_class_of_several_whose_files_are_out_of_order():
    """One class of three named at random: the median step over all classes was the two
    others', in frame order, so train said nothing while the blocked split held out that class's
    frames beside their trained neighbours (the audit: 51% of them near duplicates)."""
    X, y = videos(frames=300)
    order = np.concatenate([np.random.default_rng(1).permutation(300), np.arange(300, 900)])
    X_test = videos(frames=30, seed=1)[0]
    note = file_order_note(X[order], y, X_test, ["Carambula", "Lychee", "Pear"])
    assert note.startswith("note: consecutive files of class Carambula sit "), note
    shuffled = file_order_note(*shuffled_within_classes(X, y), X_test, ["Carambula", "Lychee", "Pear"])
    assert shuffled.startswith("note: consecutive files of class Carambula (and of Lychee, Pear) sit ")
    # many small classes of independent images: too few of a class looked up to judge it alone
    many = np.random.default_rng(3).random((2000, 1, 4, 4)).astype(np.float32)
    assert file_order_note(many, np.repeat(np.arange(200), 10), many[:30] + 0.01) is None


def test_independent_images_dense_enough_that_each_has_a_close_one_are_not_out_of_order():
    """Plain images of random colours, as independent renders: each has a nearer image in the
    folder than its next file (4 times), which read as frames out of order, though the test
    images, drawn alike, have images as near: the note and the audit said to rename videos there
    are none of."""
    rng = np.random.default_rng(0)
    X, X_test = (np.broadcast_to(rng.random((n, 3, 1, 1)), (n, 3, 4, 4)).astype(np.float32) for n in (600, 60))
    y = np.repeat([0, 1], 300)
    step, neighbour = frame_step(X, y), neighbour_distance(X)
    assert step > 3 * neighbour  # by the step alone, out of order
    assert file_order_note(X, y, X_test) is None
    audit = leakage_audit(X, y, X_test, seeds=(0,), progress=False)
    assert not audit.out_of_order() and audit.test_neighbour < 1.5 * audit.neighbour
    assert any("the files do not come in runs of near-identical images" in line for line in audit.findings())
    far = X_test + np.float32(1)  # test images unlike any of the folder's: its close pairs leak
    assert file_order_note(X, y, far).startswith("note: consecutive files of class 0 (and of 1) sit ")


def test_a_test_folder_of_the_same_videos_passes_no_split_that_is_as_leaky_as_it():
    """Every fourth frame of the training videos in the test folder: the random split's
    validation images (52-62% near duplicates) were said to be "as new to the model as test, so
    it can choose the epoch and the settings", or only the test images were said to be too near,
    though the blocked split's validation (1%) showed both near-copies of training frames."""
    X, y = videos(frames=120)
    test = np.arange(len(y)) % 4 == 3
    audit = leakage_audit(X[~test], y[~test], X[test], seeds=(0, 1), progress=False)
    blocked, random_, _ = audit.findings()
    assert "the test images are less new to the model than validation's" in blocked
    assert "validation and test accuracy will both read higher than accuracy on new images" in random_
    assert "77% of the test images, against 1% of the blocked split's validation images" in random_
    assert "--split blocked" in random_ and "give the test folder images of its own" in random_
    assert "can choose" not in random_
    # the test images as near as the random split's validation: not "as new, so it can choose"
    audit = LeakageAudit(near=1.0)
    near, far = [0.5] * 6 + [2.0] * 4, [2.0] * 10  # 60% and 0% near duplicates
    for method, val, test in (("blocked", far, near), ("random", near, near)):
        for pair, d in zip(PAIRS, (val, test, test)):
            audit.distances[method, 0, pair], audit.exact[method, 0, pair] = np.array(d), np.zeros(10, bool)
    random_ = audit.findings()[1]
    assert "60% of the test images, against 0% of the blocked split's validation images" in random_
    assert "can choose" not in random_ and "will both read higher" in random_, random_


def test_a_validation_as_near_as_test_but_nearer_than_another_split_s_is_not_said_to_beat_test():
    """Test 20%, the blocked split's validation 10%, the random split's 30% near duplicates:
    within the margin of test, the random split's validation was said to "read higher than test
    accuracy"; it reads higher than the newer validation, which is what the sentence says now."""
    audit = LeakageAudit(near=1.0)
    for method, val_near, test_near in (("blocked", 1, 2), ("random", 3, 2)):
        val, test = [0.5] * val_near + [2.0] * (10 - val_near), [0.5] * test_near + [2.0] * (10 - test_near)
        for pair, d in zip(PAIRS, (val, test, test)):
            audit.distances[method, 0, pair], audit.exact[method, 0, pair] = np.array(d), np.zeros(10, bool)
    blocked, random_ = audit.findings()[:2]
    assert "can choose" in blocked
    assert ("validation accuracy will read higher than accuracy on new images (10% of the blocked "
            "split's validation images are near duplicates)") in random_, random_
    assert "than test accuracy" not in random_


def test_the_audit_names_one_class_out_of_frame_order_as_train_notes_it():
    """A large class of slow frames in order beside a small one named at random: train noted the
    small class out of order ("`python -m hw3lib audit` measures it"), while the audit, judging
    the folder as a whole against the large class's step, passed the blocked split as "as new
    to the model as test, so it can choose the epoch and the settings"."""
    def walk(rng, frames, step):
        return (rng.random((1, 1, 4, 4)) * 5 + np.cumsum(rng.normal(0, step, (frames, 1, 4, 4)), axis=0)).astype(np.float32)
    rng = np.random.default_rng(0)
    X = np.concatenate([walk(rng, 600, 0.02), walk(rng, 100, 0.1)[rng.permutation(100)]])
    y, X_test = np.repeat([0, 1], [600, 100]), np.concatenate([walk(rng, 60, 0.02), walk(rng, 20, 0.1)])
    audit = leakage_audit(X, y, X_test, seeds=(0,), classes=["Apple", "Banana"], progress=False)
    assert not audit.out_of_order()  # the folder as a whole: in order
    blocked, random_, order_line, _ = audit.findings()
    assert "can choose" not in blocked and "the files of class Banana are out of frame order" in blocked
    assert "validation accuracy will read higher" in random_  # its verdict stands
    assert order_line.startswith("consecutive files of class Banana sit ")
    assert "will read higher than on new images" in order_line and order_line.endswith("and audit again")
    X_in_order = np.concatenate([X[:600], walk(rng, 100, 0.1)])
    assert leakage_audit(X_in_order, y, X_test, seeds=(0,), progress=False).disordered is None


def test_near_copies_name_each_test_images_nearest_in_the_whole_training_folder():
    """The test images within ``near`` of a training-folder image, the nearest first, each with
    that image's index in the folder, whichever split's training or validation part holds it."""
    X, y = videos()
    X_far, _ = videos(frames=5, seed=1)
    X_test = np.concatenate([X_far + np.float32(50), X[[250]] + np.float32(1e-3), X[[5]] + np.float32(2e-3),
                             X[[120]]])
    audit = leakage_audit(X, y, X_test, seeds=(0, 1), progress=False)
    brute = np.linalg.norm((X_test[:, None] - X[None]).reshape(len(X_test), len(X), -1), axis=2)
    np.testing.assert_allclose(audit.test_nearest[0][:-1], brute.min(axis=1)[:-1], atol=1e-4)
    assert audit.test_nearest[1].tolist() == brute.argmin(axis=1).tolist()
    tests, trains, distances = audit.test_near_copies()
    assert tests.tolist() == [17, 15, 16] and trains.tolist() == [120, 250, 5]  # the exact copy first
    assert distances[0] == 0 and 0 < distances[1] <= distances[2] <= audit.near
    in_val = data.validation_mask(y, 0.3, 0, "blocked")
    assert in_val[[250, 5, 120]].any() and not in_val[[250, 5, 120]].all()  # found in both parts
