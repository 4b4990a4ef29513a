"""The cores a process may use: its affinity, and its control group's CPU quota (a container's)."""
import os

import pytest

from hw3lib import cores


def _groups(tmp_path, lines, files):
    """A /proc/self/cgroup of ``lines`` and a cgroup mount of ``files`` (path -> text)."""
    root = tmp_path / "cgroup"
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (tmp_path / "self_cgroup").write_text("".join(line + "\n" for line in lines))
    return tmp_path / "self_cgroup", root


V1 = ["9:name=systemd:/", "4:memory:/x", "2:cpu,cpuacct:/kubepods/pod1", "0::/"]


@pytest.mark.parametrize("lines, files, quota", [
    (["0::/docker/abc"], {"docker/abc/cpu.max": "150000 100000\n"}, 2),  # rounded up
    (["0::/"], {"cpu.max": "50000 100000\n"}, 1),  # a container's own group at the root
    (["0::/host/path"], {"cpu.max": "300000 100000\n"}, 3),  # the host's path, not mounted here
    (["0::/"], {"cpu.max": "max 100000\n"}, None),
    (V1, {"cpu/kubepods/pod1/cpu.cfs_quota_us": "200000\n",
          "cpu/kubepods/pod1/cpu.cfs_period_us": "100000\n"}, 2),
    (V1, {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    (V1, {}, None),  # nothing readable
])
def test_cpu_quota_reads_either_version_of_control_groups(tmp_path, lines, files, quota):
    assert cores.cpu_quota(*_groups(tmp_path, lines, files)) == quota


def test_cpu_quota_is_none_without_control_groups(tmp_path):
    assert cores.cpu_quota(tmp_path / "absent", tmp_path) is None


def test_usable_cores_are_the_fewer_of_affinity_and_quota(monkeypatch):
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(cores, "cpu_quota", lambda: 1)
    assert cores.usable_cores() == 1  # a container of one CPU on a machine of more
    monkeypatch.setattr(cores, "cpu_quota", lambda: affinity + 5)
    assert cores.usable_cores() == affinity
    monkeypatch.setattr(cores, "cpu_quota", lambda: None)
    assert cores.usable_cores() == affinity
