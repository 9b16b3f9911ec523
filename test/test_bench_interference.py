# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""The bench's reader beside compute: a real ``dd`` with O_DIRECT, counted and stopped."""

import os
from pathlib import Path
import time

import pytest

from demand_layering_ros.cli import bench


def _file(tmp_path: Path, mib: int = 8) -> Path:
    path = tmp_path / 'store.bin'
    path.write_bytes(os.urandom(mib << 20))
    return path


def _argv(proc: Path) -> list[str]:
    try:
        return (proc / 'cmdline').read_bytes().decode().split('\0')
    except OSError:
        return []


def test_work_runs_while_dd_reads_and_dd_is_gone_after(tmp_path):
    path = _file(Path(os.environ.get('DL_TEST_DISK_DIR', tmp_path)))
    result, bps = bench.beside_reader(path, lambda: (time.sleep(1.0), 'done')[1])
    assert result == 'done'
    assert bps > 8 << 20     # at least one 8 MiB pass in the second
    assert not [p for p in Path('/proc').glob('[0-9]*') if _argv(p)[:2] == ['dd', f'if={path}']]


def test_a_reader_that_cannot_read_is_an_error_not_a_figure(tmp_path):
    missing = tmp_path / 'missing.bin'
    missing.write_bytes(b'')
    missing.unlink()
    with pytest.raises((RuntimeError, FileNotFoundError)):
        bench.beside_reader(missing, lambda: time.sleep(0.3))


def test_interference_reports_both_runs_and_their_ratio(tmp_path):
    path = _file(tmp_path)
    runs = iter([[{'latency_ms': 100.0}, {'latency_ms': 110.0}],
                 [{'latency_ms': 150.0}, {'latency_ms': 140.0}]])

    def run():
        time.sleep(0.5)
        return next(runs)
    row = bench.interference(path, run)
    assert row['alone_ms_p50'] == pytest.approx(105.0)
    assert row['latency_ms_p50'] == pytest.approx(145.0)
    assert row['slowdown'] == pytest.approx(145.0 / 105.0)
    assert row['reader_bps'] > 0
