"""Did a run learn? :func:`learning_warning` tells, from a run's history, whether its best
validation score is more than guessing would give (:func:`chance_of_score`), and if not, why
and what to change."""
import math

import numpy as np

# the evidence a run must give to count as learning (learning_warning)
LEARNING_LEVEL = 0.001  # the chance of a validation score as high by guessing
FEW_STEPS = 100  # fewer optimizer steps, the loss having moved: a run too short, train longer
# fewer optimizer steps: too few for the loss to move measurably even at a good rate. On the
# fruits, 20 full-batch Adam steps take the loss 31% below chance at lr 5e-4, 3% at 1e-4 and
# 0.3% at 1e-5 (99 steps of batch 32 at 1e-7: 0.0%), while an untrained model's loss lies up
# to ~0.3% off chance level
VERY_FEW_STEPS = 20
STILL = 0.98  # a lowest training loss above STILL x chance: the loss did not move (under 2%)
# a validation split with this share or more of one class: a score must beat always answering it
UNBALANCED = 0.9


def chance_of_score(correct, n, rate):
    """The chance that guessing right with probability ``rate`` on each of ``n`` images gets
    ``correct`` or more of them right: the one-sided binomial tail P(X >= correct), X ~
    Binomial(n, rate), summed in logarithms (any ``n``)."""
    if correct <= 0 or rate >= 1:
        return 1.0
    if correct > n or rate <= 0:
        return 0.0
    log_rate, log_miss = math.log(rate), math.log1p(-rate)
    log_n = math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_rate + (n - i) * log_miss
             for i in range(correct, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def _images_to_spare_one(rate):
    """The fewest validation images on which all but one right is unlikely enough by guessing
    right at ``rate`` (under ``LEARNING_LEVEL``), or None where no split up to 10**4 is."""
    return next((n for n in range(2, 10**4) if chance_of_score(n - 1, n, rate) < LEARNING_LEVEL),
                None)


def guessing_odds(accuracy, y_val):
    """``(correct, majority, odds)`` of a validation ``accuracy`` on labels ``y_val (N,)``: the
    images it gets right, the share of the largest class, and the chance that guessing right
    at that share gets as many (:func:`chance_of_score`)."""
    n = len(y_val)
    majority = np.bincount(y_val).max() / n
    correct = round(accuracy * n)
    return correct, majority, chance_of_score(correct, n, majority)


def beats_guessing(accuracy, y_val):
    """Whether a validation ``accuracy`` on labels ``y_val (N,)`` is more than guessing gives:
    as likely by guessing as under ``LEARNING_LEVEL`` (:func:`guessing_odds`), or, on a split
    of two or more classes too small for any score to be that unlikely, every image right.
    False on a split of one class, whatever the score: always answering that class gets every
    image right, so no score on it is more than guessing gives."""
    correct, majority, odds = guessing_odds(accuracy, y_val)
    return odds < LEARNING_LEVEL or (correct == len(y_val) and majority < 1)


def unvalidated_note(classes, y_val):
    """A note naming the ``classes`` that no label of ``y_val (N,)`` holds (each class keeps a
    training image, so a class of one image has no validation image), or None when each has one."""
    missing = [name for k, name in enumerate(classes) if not np.any(np.asarray(y_val) == k)]
    if missing:
        return (f"note: no validation images of class(es) {', '.join(missing)} (too few images to "
                "hold one out): validation accuracy, and the epoch it picks, do not measure them; "
                "add images to them")
    return None


def learning_warning(history, best_epoch, y_train, y_val, config):
    """A one-line warning (containing "chance") when a run did not learn, saying why and what to
    change, else None.

    A run learned when guessing right at the rate of always the validation split's largest
    class would get as many validation images right as its best epoch with a chance under
    ``LEARNING_LEVEL``, 0.001 (a one-sided binomial tail, :func:`chance_of_score`; on a split
    too small for any score to be that unlikely, when every image is right, unless all its
    images are of one class: :func:`beats_guessing`), and its training
    loss fell below chance level: the loss of always predicting the training split's class
    frequencies (their entropy: ln K for K balanced classes, where an untrained model starts,
    its outputs about uniform; less for unbalanced ones). (Chance level rather than the first
    epoch's loss: a good run can reach its lowest loss in epoch 1.) So 148 of 441 images right, against 147 for the largest class, is not
    learning: guessing does as well about half the time.

    The advice goes by the first cause that the training losses and ``config`` (a
    :class:`hw3lib.config.TrainConfig`: its ``batch_size`` and ``lr``) show, ``steps`` being
    the run's optimizer steps (epochs x batches per epoch):

    1. the validation images are all of one class (the others too small to hold one out), on
       which no score shows learning: more images for the others, or a larger validation fraction;
    2. the loss went up: above 1.05 x where an untrained model starts (ln K, or chance level
       where that is higher), or, still near chance (above 0.9 x), ending over 1% above its
       first epoch's, or, over ``VERY_FEW_STEPS`` steps or more, rising from any epoch to the
       next (a step too small lowers the loss every epoch, however little; a network that a
       step too large has thrown back to chance level moves it up and down there): a smaller
       learning rate (lr / 10);
    3. the loss fell well below chance (under 0.5 x, or under 0.9 x in ``FEW_STEPS`` steps or
       more) while validation did not follow: on a validation split too small for any score
       but a perfect one to count (even all but one right is as likely as ``LEARNING_LEVEL``
       by guessing), that the split is too small: more images; on one of ``UNBALANCED`` (0.9)
       or more of one class, that always answering it scores nearly as well: balanced classes;
       else the model fits training images it does not generalise from: more, or more varied,
       training images, or the classes may not be told apart from these images;
    4. fewer than ``VERY_FEW_STEPS`` (20) steps: train longer, with more epochs or a smaller
       batch size (so few steps move the loss too little, at any rate, to judge the rate by);
    5. the loss did not move: the lowest above ``STILL`` (0.98) x chance, whatever the number
       of steps (20 or more): a larger learning rate (lr x 10), as training longer at this one
       will not help; after one epoch, which cannot show whether the loss moves up and down
       (too large a rate) or falls however little (too small), train 2 or more epochs;
    6. fewer than ``FEW_STEPS`` (100) steps, the loss having fallen: train longer;
    7. else the loss hardly fell (not under 0.9 x chance) over many steps: a larger learning
       rate (lr x 10).

    ``history`` and ``best_epoch`` are :func:`fit`'s; ``y_*`` int labels ``(N,)``. None when
    no epoch completed.
    """
    if not best_epoch:
        return None
    n_val, n_train = len(y_val), len(y_train)
    freq = np.bincount(y_train) / n_train
    chance_loss = float(-(freq[freq > 0] * np.log(freq[freq > 0])).sum())
    best_acc, losses = history["val_acc"][best_epoch - 1], history["train_loss"]
    lowest = min(losses)
    correct, majority, odds = guessing_odds(best_acc, y_val)
    beats_chance = beats_guessing(best_acc, y_val)
    if beats_chance and lowest < chance_loss:
        return None
    steps = len(losses) * math.ceil(n_train / config.batch_size)
    found = f"best validation accuracy {best_acc:.3f} ({correct} of {n_val} images) "
    if beats_chance:
        found += (f"is above chance, but the training loss never fell below chance level (lowest "
                  f"{lowest:.4g} against {chance_loss:.4g})")
    else:
        found += (f"is not clearly above chance, {majority:.3f} for always the largest class "
                  f"(guessing does as well with probability {odds:.2g}, learning needs under "
                  f"{LEARNING_LEVEL:g}); lowest training loss {lowest:.4g} against {chance_loss:.4g} "
                  f"by chance")
    larger = f"learning rate {config.lr:g} is too small, try a larger one, e.g. {config.lr * 10:g}"
    untrained = max(chance_loss, math.log(len(freq)))  # about where a run's loss starts
    rose = losses[-1] > 1.01 * losses[0] or (
        steps >= VERY_FEW_STEPS and any(b > a for a, b in zip(losses, losses[1:])))
    if majority == 1:
        advice = ("the validation images are all of one class, so always answering it gets every one "
                  "right and no score on them shows learning: add images to the other classes, or hold "
                  f"out a larger fraction of each class than {config.val_fraction:g} (a class holds out "
                  "round(images x fraction) of its images, keeping one for training)")
    elif max(losses) > 1.05 * untrained or (lowest >= 0.9 * chance_loss and rose):
        advice = (f"the training loss went up (to {max(losses):.4g}): learning rate {config.lr:g} is "
                  f"too large, try a smaller one, e.g. {config.lr / 10:g}")
    elif lowest < 0.5 * chance_loss or (lowest < 0.9 * chance_loss and steps >= FEW_STEPS):
        if chance_of_score(n_val - 1, n_val, majority) >= LEARNING_LEVEL:
            enough = _images_to_spare_one(majority)
            advice = (f"the model fits its {n_train} training images, but the validation split of "
                      f"{n_val} images is too small to show learning unless every image is right: "
                      f"add images" + (f" (on {enough} or more validation images, one may be wrong)"
                                       if enough else ""))
        elif majority >= UNBALANCED:
            advice = (f"the model fits its {n_train} training images, but {majority:.1%} of the "
                      f"validation images are of one class, so always answering it scores "
                      f"{majority:.3f} and a model must beat that by more than these images show: "
                      f"give the other classes more images (or the largest fewer), and see each "
                      f"class's recall (hw3lib.metrics.metrics_table)")
        else:
            advice = (f"the model fits its {n_train} training images but does not generalise from "
                      f"them to the validation images: train on more, or more varied, images, or "
                      f"the classes may not be told apart from these images")
    elif steps < VERY_FEW_STEPS or (steps < FEW_STEPS and lowest <= STILL * chance_loss):
        per_epoch = steps // len(losses)
        batches = (f"{per_epoch} batch(es) of {config.batch_size}" if config.batch_size < n_train
                   else f"1 batch: all {n_train} training images, batch size {config.batch_size}")
        advice = (f"only {steps} optimizer step(s) ({len(losses)} epoch(s) of {batches}), too few to "
                  f"learn: train longer, with more epochs or a smaller batch size")
    elif lowest > STILL * chance_loss and len(losses) == 1:
        advice = (f"the training loss stayed within {1 - STILL:.0%} of chance level in its one epoch "
                  f"({steps} optimizer steps), which cannot tell a learning rate too small (the loss "
                  f"then falls every epoch, however little) from one too large (it moves up and down "
                  f"at chance level): train 2 or more epochs")
    elif lowest > STILL * chance_loss:
        advice = (f"the training loss stayed within {1 - STILL:.0%} of chance level in {steps} "
                  f"optimizer steps, so training longer will not help: {larger}")
    else:
        advice = f"the training loss hardly fell in {steps} optimizer steps: {larger}"
    return f"the model did not learn: {found}; {advice}"
