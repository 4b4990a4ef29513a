"""Training-epoch benchmark: hw3lib against PyTorch CPU, single-threaded, interleaved runs.

``python -m hw3lib bench`` times one epoch of LeNet5 (forward, loss, backward, Adam) on 1029
random images, batch 32, float32, for 1- and 4-channel input. Each repetition runs the
implementations back to back, so that the machine's slow and fast moments hit them alike;
the medians and their ratio are printed. PyTorch is optional.
"""
import argparse
import statistics
import time

import numpy as np

from .losses import CrossEntropyLoss
from .model import LeNet5
from .optim import AdamGD

TRAIN_SIZE, BATCH = 1029, 32


def epoch_data(channels, n=TRAIN_SIZE, seed=0):
    """Random images ``(n, channels, 32, 32)`` float32 and labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    return rng.random((n, channels, 32, 32), dtype=np.float32), rng.integers(0, 3, n)


def hw3lib_epoch(channels):
    """A function running one training epoch of a hw3lib LeNet5 (the report's loop)."""
    X, y = epoch_data(channels)
    model, cost = LeNet5(in_channels=channels, seed=0), CrossEntropyLoss()
    optimizer = AdamGD(5e-4, 0.9, 0.999, 1e-8, model.get_params())

    def run():
        for i in range(0, len(X), BATCH):
            y_pred = model.forward(X[i:i + BATCH])
            cost.get(y_pred, y[i:i + BATCH])
            model.set_params(optimizer.update_params(model.backward(y_pred, y[i:i + BATCH])))
    return run


def torch_epoch(channels):
    """The same epoch in PyTorch (same model, initial weights, data and optimizer)."""
    import torch

    from .oracle import torch_lenet5

    X, y = epoch_data(channels)
    net = torch_lenet5(LeNet5(in_channels=channels, seed=0))
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-4, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        for i in range(0, len(X), BATCH):
            optimizer.zero_grad()
            loss_fn(net(Xt[i:i + BATCH]), yt[i:i + BATCH]).backward()
            optimizer.step()
    return run


def interleaved_medians(runs, repeats, warmup=1):
    """Time each function of ``runs`` (name -> callable) ``repeats`` times, interleaved;
    return name -> median seconds."""
    times = {name: [] for name in runs}
    for rep in range(warmup + repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if rep >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def set_threads(n):
    """Limit BLAS (and PyTorch, when installed) to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    try:
        import torch
    except ImportError:
        return False
    torch.set_num_threads(n)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hw3lib bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs per implementation")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    has_torch = set_threads(1)
    print(f"LeNet5 training epoch: {TRAIN_SIZE} images, batch {BATCH}, float32, 1 thread, "
          f"median of {args.repeats} interleaved runs")
    if not has_torch:
        print("PyTorch is not installed: showing hw3lib alone (pip install torch==2.13.0 to compare)")
    print(f"{'input':>10} {'hw3lib s':>10} {'torch s':>10} {'ratio':>7}")
    for channels in (1, 4):
        runs = {"hw3lib": hw3lib_epoch(channels)}
        if has_torch:
            runs["torch"] = torch_epoch(channels)
        med = interleaved_medians(runs, args.repeats)
        torch_s = f"{med['torch']:10.3f} {med['hw3lib'] / med['torch']:7.2f}" if has_torch else ""
        print(f"{channels:>4}x32x32 {med['hw3lib']:10.3f} {torch_s}")
