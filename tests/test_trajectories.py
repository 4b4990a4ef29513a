"""2-D test functions, optimizer paths and Adam's step sizes."""
import numpy as np
import pytest

from hw3lib import SGD, AdamGD, numerical_gradient
from hw3lib.trajectories import (check_bias_correction, correction_factor, path_table, quadratic,
                                 run_optimizer, step_sizes, torch_path)


def test_the_quadratics_gradient_matches_finite_differences_and_vanishes_at_the_minimum():
    objective = quadratic(7.0)
    for p in np.random.default_rng(0).uniform(-2, 2, size=(5, 2)):
        numeric = numerical_gradient(lambda: objective.f(*p), p)
        np.testing.assert_allclose(objective.grad(p), numeric, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(objective.grad(np.array(objective.minimum)), [0, 0])


def test_sgd_path_on_the_quadratic_is_the_closed_form():
    path = run_optimizer(lambda p: SGD(0.05, p), quadratic(10.0).grad, (3.0, -1.0), 20)
    t = np.arange(21)
    np.testing.assert_allclose(path, np.stack([3 * 0.95**t, -(0.5**t)], axis=1), rtol=1e-12)


def test_the_path_table_gives_each_paths_first_step_and_last_value():
    """Notebook 04's table of the optimizers' paths on the quadratic: SGD's first step from
    (3, -1) is lr * grad = 0.05 * (3, -10), and after 20 steps f is that of the closed form."""
    objective = quadratic(10.0)
    paths = {"SGD, lr 0.05": run_optimizer(lambda p: SGD(0.05, p), objective.grad, (3.0, -1.0), 20),
             "standing still": np.tile([3.0, -1.0], (21, 1))}
    lines = path_table(objective, paths).splitlines()
    assert lines[0] == "optimizer        first step  f after 20 steps"
    first, last = 0.05 * np.hypot(3, 10), objective.f(3 * 0.95**20, -(0.5**20))
    assert lines[1] == f"SGD, lr 0.05     {first:>10.3f} {last:>17.2e}" and f"{first:.3f}" == "0.522"
    assert lines[2] == f"standing still        0.000 {objective.f(3.0, -1.0):>17.2e}"
    assert lines[2].endswith(" 9.50e+00")
    with pytest.raises(ValueError, match=r"the same number of steps.*\{'a': 20, 'b': 3\}"):
        path_table(objective, {"a": paths["SGD, lr 0.05"], "b": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="at least 1"):
        path_table(objective, {"a": np.zeros((1, 2))})


def test_adam_step_sizes_under_a_constant_gradient():
    lr, b1, b2, grads = 0.01, 0.9, 0.999, np.full((200, 2), 3.0)
    t = np.arange(1, 201)[:, None]
    raw = step_sizes(lambda p: AdamGD(lr, b1, b2, 1e-8, p, bias_correction=False), grads)
    schedule = (1 - b1**t) / np.sqrt(1 - b2**t)
    np.testing.assert_allclose(raw, lr * schedule * np.ones((1, 2)), rtol=1e-6)
    corrected = step_sizes(lambda p: AdamGD(lr, b1, b2, 1e-8, p), grads)
    np.testing.assert_allclose(corrected, lr, rtol=1e-6)


def test_uncorrected_over_corrected_step_is_a_schedule_whatever_the_gradients():
    grads = np.random.default_rng(1).standard_normal((100, 3))
    t = np.arange(1, 101)[:, None]
    raw = step_sizes(lambda p: AdamGD(0.1, 0.9, 0.99, 1e-12, p, bias_correction=False), grads)
    corrected = step_sizes(lambda p: AdamGD(0.1, 0.9, 0.99, 1e-12, p), grads)
    schedule = (1 - 0.9**t) / np.sqrt(1 - 0.99**t)
    np.testing.assert_allclose(raw / corrected, schedule * np.ones((1, 3)), rtol=1e-8)


def test_torch_adam_follows_the_same_path():
    torch = pytest.importorskip("torch")
    objective = quadratic(20.0)
    start = (-1.0, 1.5)
    ours = run_optimizer(lambda p: AdamGD(0.05, 0.9, 0.999, 1e-8, p), objective.grad, start, 60)
    theirs = torch_path(objective.grad, start, 60, lambda ps: torch.optim.Adam(ps, lr=0.05))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    report = run_optimizer(lambda p: AdamGD(0.05, 0.9, 0.999, 1e-8, p, bias_correction=False),
                           objective.grad, start, 60)
    assert np.abs(report - theirs).max() > 1e-2


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="condition must be >= 1"):
        quadratic(0.5)
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got -1"):
        run_optimizer(lambda p: SGD(0.1, p), quadratic().grad, (0.0, 0.0), -1)
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got 5.0"):  # failed in range()
        run_optimizer(lambda p: SGD(0.1, p), quadratic().grad, (0.0, 0.0), 5.0)
    with pytest.raises(ValueError, match=r"make_optimizer must build the optimizer over the params "
                                         r"dict it is given, e.g. lambda p: SGD\(0.05, p\)"):
        run_optimizer(SGD(0.1, {"p": np.zeros(2)}), quadratic().grad, (0.0, 0.0), 5)  # not callable
    with pytest.raises(ValueError, match=r"shape \(T, d\)"):
        step_sizes(lambda p: SGD(0.1, p), np.ones(5))


def test_the_report_adams_step_over_adams_is_the_bias_correction_factor():
    """Notebook 04's claim: without bias correction the step is Adam's times
    (1 - b1^t) / sqrt(1 - b2^t), under a constant gradient and under random ones alike."""
    assert correction_factor(1) == pytest.approx(0.1 / np.sqrt(0.001))
    check = check_bias_correction(5e-4, 0.9, 0.999, 1e-8, 792, np.random.default_rng(0))
    assert check.uncorrected.shape == check.corrected.shape == (792,)
    assert check.corrected == pytest.approx(1, abs=1e-4)  # Adam steps lr under a constant gradient
    assert check.uncorrected.argmax() + 1 == 12 and check.uncorrected[11] == pytest.approx(6.57, abs=0.005)
    assert check.constant_deviation < 1e-5 and check.random_deviation < 1e-5
    lines = str(check.table([1, 12, 792])).splitlines()
    assert lines[0].split()[-3:] == ["1", "12", "792"]
    assert lines[1].split()[-3:] == ["3.16", "6.57", "1.35"] and lines[2].split()[-3:] == ["1.00"] * 3


def test_a_wrong_factor_shows_in_the_deviations():
    """The deviations measure something: the same check with another beta2 for the factor is far off."""
    t = np.arange(1, 101)
    check = check_bias_correction(1e-3, 0.9, 0.99, 1e-8, 100, np.random.default_rng(1))
    assert np.abs(check.uncorrected - correction_factor(t, 0.9, 0.99)).max() == pytest.approx(
        check.constant_deviation)
    assert np.abs(check.uncorrected - correction_factor(t, 0.9, 0.999)).max() > 0.1


def test_notebook_04s_check_with_fewer_steps_says_which_steps_it_lacks(recwarn):
    """Notebook 04's cell with steps = 100 asks for the row of step 250: an IndexError inside
    the table; steps = 0, NumPy's "zero-size array"; beta1 = 1 a divide-by-zero warning first."""
    check = check_bias_correction(5e-4, 0.9, 0.999, 1e-8, 100, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"step\(s\) \[250, 0\] lie outside the 100 steps checked \(1 to "
                                         r"100\): ask for those, or check more steps"):
        check.table([1, 250, 100, 0])
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        check_bias_correction(5e-4, 0.9, 0.999, 1e-8, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"beta1 must be a number in \[0, 1\), got 1"):
        check_bias_correction(5e-4, 1, 0.999, 1e-8, 10, np.random.default_rng(0))
    assert not recwarn.list
