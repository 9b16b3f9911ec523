# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""A bad argument to ``demand-layering`` ends in one line and a non-zero exit, not a traceback."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from demand_layering_ros.cli import main as cli
from demand_layering_ros.engine import export as export_mod
from demand_layering_ros.engine.profile import Profile

MODEL = 'ssdlite320_mobilenet_v3_large'


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp('store') / 'ssdlite.dls'
    assert cli.main(['export', '--model', MODEL, '--out', str(path),
                     '--input-size', '64', '64']) == 0
    return path


@pytest.fixture
def no_exit(monkeypatch):
    """``run`` and ``profile`` end with os._exit on success: make that an ordinary exit here."""
    def fake_exit(code):
        raise SystemExit(code)
    monkeypatch.setattr(os, '_exit', fake_exit)


def one_line_error(capsys, command):
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'Traceback' not in err, err
    assert err.startswith(f'demand-layering {command}: '), err
    return err


@pytest.mark.parametrize('argv, option', [
    (['export', '--model', MODEL, '--out', 'x.dls', '--input-size', '0', '0'], '--input-size'),
    (['export', '--model', MODEL, '--out', 'x.dls', '--input-size', '-5', '10'], '--input-size'),
    (['run', '--model', MODEL, '--store', 's.dls', '--input-size', '0', '0'], '--input-size'),
    (['run', '--model', MODEL, '--store', 's.dls', '--threads', '-1'], '--threads'),
    (['run', '--model', MODEL, '--store', 's.dls', '--frames', '-3'], '--frames'),
    (['profile', '--model', MODEL, '--store', 's.dls', '--runs', '0'], '--runs'),
    (['profile', '--model', MODEL, '--store', 's.dls', '--runs', '-1'], '--runs'),
    (['export', '--model', MODEL, '--out', 'x.dls', '--slice-mb', '-1'], '--slice-mb'),
    (['export', '--model', MODEL, '--out', 'x.dls', '--slice-mb', 'nan'], '--slice-mb'),
])
def test_argparse_refuses_bad_values(capsys, argv, option):
    with pytest.raises(SystemExit) as ex:
        cli.main(argv)
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert f'argument {option}' in err and 'Traceback' not in err


def test_export_over_a_directory_is_refused(tmp_path, capsys):
    target = tmp_path / 'adir'
    target.mkdir()
    (target / 'keep').write_text('x')
    code = cli.main(['export', '--model', MODEL, '--out', str(target), '--overwrite'])
    assert code == 2
    assert 'is a directory' in one_line_error(capsys, 'export')
    assert (target / 'keep').read_text() == 'x'


def test_a_failing_cleanup_does_not_hide_the_write_error(tmp_path, capsys, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system', str(path))

    monkeypatch.setattr(export_mod, 'open', read_only, raising=False)
    monkeypatch.setattr(Path, 'unlink', read_only)
    code = cli.main(['export', '--model', MODEL, '--out', str(tmp_path / 'x.dls'),
                     '--input-size', '64', '64'])
    assert code == 2
    err = one_line_error(capsys, 'export')
    assert 'Read-only file system' in err and 'x.dls.partial' in err


def test_weights_holding_a_bare_tensor(tmp_path, capsys):
    weights = tmp_path / 'tensor.pt'
    torch.save(torch.zeros(3), weights)
    code = cli.main(['export', '--model', MODEL, '--weights', str(weights),
                     '--out', str(tmp_path / 'x.dls')])
    assert code == 2
    assert 'holds no state dict' in one_line_error(capsys, 'export')


def test_an_empty_weights_file_says_so(tmp_path, capsys):
    weights = tmp_path / 'empty.pt'
    weights.write_bytes(b'')
    code = cli.main(['export', '--model', MODEL, '--weights', str(weights),
                     '--out', str(tmp_path / 'x.dls')])
    assert code == 2
    assert 'cannot be read (empty file)' in one_line_error(capsys, 'export')


def test_an_unexpected_error_is_one_line_unless_debugging(capsys, monkeypatch):
    def boom(args):
        raise RuntimeError('boom\nsecond line')

    monkeypatch.setattr(cli, 'cmd_export', boom)
    monkeypatch.delenv('DEMAND_LAYERING_DEBUG', raising=False)
    argv = ['export', '--model', MODEL, '--out', 'x.dls']
    assert cli.main(argv) == 1
    err = one_line_error(capsys, 'export')
    assert 'RuntimeError: boom' in err and 'DEMAND_LAYERING_DEBUG=1' in err
    monkeypatch.setenv('DEMAND_LAYERING_DEBUG', '1')
    with pytest.raises(RuntimeError):
        cli.main(argv)


@pytest.mark.timeout(300)
def test_run_threads_zero_and_resident_by_name(store, capsys, no_exit):
    from demand_layering_ros.engine import LayerStore
    name = LayerStore.open(store).units[0].name
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as ex:
        cli.main(['run', '--model', MODEL, '--store', str(store), '--input-size', '64', '64',
                  '--frames', '1', '--threads', '0', '--json', '--resident', f'{name},3'])
    assert ex.value.code == 0
    assert torch.get_num_threads() == threads
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])['stats']
    assert stats['resident_units'] == 2


def test_run_with_an_unknown_resident_unit(store, capsys):
    code = cli.main(['run', '--model', MODEL, '--store', str(store), '--input-size', '64', '64',
                     '--frames', '1', '--resident', 'backbone'])
    assert code == 2
    assert "no unit 'backbone'" in one_line_error(capsys, 'run')


@pytest.mark.timeout(300)
def test_profile_on_a_read_only_store_is_printed_not_lost(store, capsys, monkeypatch, no_exit):
    def read_only(self, store_path):
        raise OSError(errno.EROFS, 'Read-only file system', str(store_path))

    monkeypatch.setattr(Profile, 'save', read_only)
    with pytest.raises(SystemExit) as ex:
        cli.main(['profile', '--model', MODEL, '--store', str(store), '--input-size', '64', '64',
                  '--runs', '1', '--force'])
    assert ex.value.code == 0
    out, err = capsys.readouterr()
    assert 'could not be saved' in err and 'Read-only file system' in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary['profile'] is None and summary['measured']['key']
