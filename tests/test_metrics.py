"""hw3lib.metrics against examples computed by hand."""
import numpy as np
import pytest

from hw3lib.metrics import accuracy, confusion_matrix, metrics_table, per_class

# 10 samples of 3 classes. By hand:
#   true 0 (4 samples): predicted 0, 0, 1, 2    -> row [2, 1, 1]
#   true 1 (3 samples): predicted 1, 1, 0       -> row [1, 2, 0]
#   true 2 (3 samples): predicted 2, 2, 2       -> row [0, 0, 3]
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 2])
CM = np.array([[2, 1, 1], [1, 2, 0], [0, 0, 3]])


def test_accuracy_by_hand():
    assert accuracy(Y_TRUE, Y_PRED) == 7 / 10
    assert accuracy([1, 2], [1, 2]) == 1.0


def test_confusion_matrix_rows_true_columns_predicted():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    np.testing.assert_array_equal(cm, CM)
    assert cm.dtype == np.int64
    # a class that never occurs still gets its row and column
    np.testing.assert_array_equal(confusion_matrix([0, 0], [0, 1], 4),
                                  [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])



@pytest.mark.parametrize("dtype, k", [(np.uint8, 17), (np.int8, 12), (np.int16, 200)])
def test_confusion_matrix_of_narrow_integer_labels(dtype, k):
    # true * k + pred overflowed the labels' own dtype: uint8 labels 16 of 17 classes counted
    # in cell (1, 15), int8 ones of 12 classes gave bincount's "no negative elements"
    y_true, y_pred = np.array([k - 1, 0, k - 1], dtype), np.array([k - 1, 0, 0], dtype)
    expected = np.zeros((k, k), np.int64)
    expected[k - 1, k - 1] = expected[0, 0] = expected[k - 1, 0] = 1
    cm = confusion_matrix(y_true, y_pred, k)
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64

def test_per_class_by_hand():
    m = per_class(CM)
    # precision = diagonal / column sums (3, 3, 4); recall = diagonal / row sums (4, 3, 3)
    np.testing.assert_allclose(m["precision"], [2 / 3, 2 / 3, 3 / 4])
    np.testing.assert_allclose(m["recall"], [2 / 4, 2 / 3, 3 / 3])
    # F1 = 2 p r / (p + r): class 0: 2 (2/3)(1/2) / (7/6) = 4/7; class 2: 2 (3/4) / (7/4) = 6/7
    np.testing.assert_allclose(m["f1"], [4 / 7, 2 / 3, 6 / 7])
    np.testing.assert_array_equal(m["support"], [4, 3, 3])


def test_per_class_zero_denominators_give_zero():
    # class 1 is never predicted (precision 0/0) and never true (recall 0/0); class 2 neither
    m = per_class([[2, 1, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(m["precision"], [1, 0, 0])
    np.testing.assert_allclose(m["recall"], [2 / 3, 0, 0])
    np.testing.assert_allclose(m["f1"], [0.8, 0, 0])


def test_metrics_table_text():
    text = str(metrics_table(CM, ["apple", "kiwi", "plum"]))
    assert text.splitlines() == [
        "class       precision  recall     F1  support",
        "apple           0.667   0.500  0.571        4",
        "kiwi            0.667   0.667  0.667        3",
        "plum            0.750   1.000  0.857        3",
        "macro mean      0.694   0.722  0.698       10",
        "accuracy            -       -  0.700       10",
    ]


@pytest.mark.parametrize("call, message", [
    (lambda: accuracy([0, 1], [0]), "same number"),
    (lambda: accuracy([], []), "integer"),
    (lambda: accuracy([0.0, 1.0], [0, 1]), "integer class indices"),
    (lambda: confusion_matrix([[0, 1]], [[0, 1]], 2), r"1-D"),
    (lambda: confusion_matrix([0, 3], [0, 1], 3), r"y_true holds labels from 0 to 3, outside \[0, 3\)"),
    (lambda: confusion_matrix([0, 1], [-1, 1], 3), "y_pred holds labels from -1"),
    (lambda: per_class([[1, 2, 3]]), "square"),
    (lambda: metrics_table(CM, ["a", "b"]), "one class name per row"),
    (lambda: metrics_table(np.zeros((2, 2), int), ["a", "b"]), "0 samples"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bootstrap_interval_brackets_the_mean_and_follows_the_images():
    from hw3lib.metrics import bootstrap_interval

    rng = np.random.default_rng(1)
    correct = rng.random((3, 400)) < 0.9
    low, high = bootstrap_interval(correct)
    mean = correct.mean()
    # the normal approximation of the same resampling: the per-image mean's spread over sqrt(N)
    normal = 2 * 1.96 * correct.mean(axis=0).std() / np.sqrt(400)
    assert low < mean < high and high - low == pytest.approx(normal, rel=0.2)
    assert bootstrap_interval(correct) == (low, high)  # seeded
    assert bootstrap_interval(np.ones((2, 50), bool)) == (1.0, 1.0)  # no error left to resample
    narrow = bootstrap_interval(correct, level=0.5)
    assert low < narrow[0] < narrow[1] < high
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(correct, level=1.0)
    with pytest.raises(ValueError, match="S runs, N images"):
        bootstrap_interval(np.ones(5, bool))
    with pytest.raises(ValueError, match=r"resamples must be an integer >= 1 \(the bootstrap's rounds"):
        bootstrap_interval(correct, resamples=0)  # was numpy's IndexError of an empty percentile


def test_bootstrap_interval_resamples_blocks_of_neighbouring_frames():
    """Errors on runs of near-identical frames come together: resampling single images treats
    14 neighbouring misses as 14 independent draws and gives an interval far too narrow."""
    from hw3lib.data import frame_runs
    from hw3lib.metrics import bootstrap_interval

    y = np.repeat([0, 1, 2], 166)
    correct = np.ones((5, len(y)), bool)
    correct[:2, 358:372] = False  # two seeds miss one stretch of 14 frames of class 2
    blocks = frame_runs(y)
    assert len(np.unique(blocks)) == 30 and (np.diff(blocks) >= 0).all()
    assert [len(np.unique(blocks[y == c])) for c in range(3)] == [10, 10, 10]
    iid, blocked = bootstrap_interval(correct), bootstrap_interval(correct, blocks=blocks)
    assert blocked[0] < correct.mean() <= blocked[1]
    assert blocked[1] - blocked[0] > 2 * (iid[1] - iid[0]) and blocked[1] == 1.0
    assert bootstrap_interval(correct, blocks=np.arange(len(y))) == iid  # one image, one block
    with pytest.raises(ValueError, match="one label per image"):
        bootstrap_interval(correct, blocks=blocks[:-1])


def test_bootstrap_interval_draws_every_image_and_weighs_blocks_by_their_images():
    from hw3lib.data import frame_runs
    from hw3lib.metrics import bootstrap_interval

    for wrong in range(5):  # an error on any one of 5 images, the first and last too, is drawn
        correct = np.ones((2, 5), bool)
        correct[:, wrong] = False
        assert bootstrap_interval(correct)[0] < 1
    # one image, one wrong: each round's mean is 0, 0.5 or 1 (a quarter, half, a quarter)
    assert bootstrap_interval([[True, False]], level=0.4) == (0.5, 0.5)
    assert bootstrap_interval([[True, False]], level=0.6) == (0.0, 1.0)
    # a wrong block of 1 image and a right one of 9: rounds of both blocks score 9/10, not 1/2
    blocks = np.repeat([0, 1], [1, 9])
    correct = (blocks == 1)[None]
    assert bootstrap_interval(correct, level=0.4, blocks=blocks) == pytest.approx((0.9, 0.9))
    # the labels only group the images: any values (as seeded, in the same order)
    y = np.repeat([0, 1, 2], 30)
    correct = np.random.default_rng(0).random((2, 90)) < 0.8
    runs = frame_runs(y)
    expected = bootstrap_interval(correct, blocks=runs)
    assert bootstrap_interval(correct, blocks=3 + 7 * runs) == expected
    assert bootstrap_interval(correct, blocks=[f"run {r:02d}" for r in runs]) == expected


def test_frame_runs_of_a_class_smaller_than_the_runs_give_each_sample_its_own():
    from hw3lib.data import frame_runs

    y = np.repeat([0, 1], [3, 12])
    assert frame_runs(y).tolist() == [0, 1, 2, 3, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert frame_runs(y, runs=2).tolist() == [0, 0, 1] + [2] * 6 + [3] * 6
