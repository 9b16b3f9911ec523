# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Launch file and parameter file: what can be checked without the launch package."""

import importlib.util
import pathlib
import sys
import types

import pytest
import yaml

from demand_layering_ros.ros import dds_profile
from demand_layering_ros.ros.params import SPEC

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_config_documents_every_parameter_with_a_valid_default():
    params = yaml.safe_load((ROOT / 'config/demand_layering.yaml').read_text())
    # '/**': rclpy applies a file to a node only under this key or the node's full name, so
    # any other key is silently ignored once the node runs in a namespace
    assert list(params) == ['/**']
    values = params['/**']['ros__parameters']
    assert set(SPEC) <= set(values), set(SPEC) - set(values)
    for name, (default, *_r) in SPEC.items():
        assert type(values[name]) is type(default), name


class Recorded:
    """Stands in for a launch action: remembers how it was built."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def launch_file(monkeypatch, tmp_path):
    """The launch file imported against stand-ins for launch / launch_ros (not on PyPI)."""
    fake = {name: types.ModuleType(name) for name in (
        'launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions')}
    fake['launch'].LaunchDescription = lambda actions: actions
    for name in ('DeclareLaunchArgument', 'OpaqueFunction', 'SetEnvironmentVariable'):
        setattr(fake['launch.actions'], name, type(name, (Recorded,), {}))
    fake['launch_ros.actions'].Node = type('Node', (Recorded,), {})

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]
    fake['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    share = tmp_path / 'share'
    (share / 'config').mkdir(parents=True)
    (share / 'config' / 'demand_layering.yaml').write_text('{}')
    monkeypatch.setattr('ament_index_python.packages.get_package_share_directory',
                        lambda _pkg: str(share))
    spec = importlib.util.spec_from_file_location('launch_under_test',
                                                  ROOT / 'launch/demand_layering.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, share


def run(module, **given):
    actions = module.generate_launch_description()
    context = {a.args[0]: a.kwargs['default_value'] for a in actions
               if type(a).__name__ == 'DeclareLaunchArgument'}
    context.update(given)
    setup = next(a for a in actions if type(a).__name__ == 'OpaqueFunction')
    return context, setup.kwargs['function'](context)


def test_launch_arguments_and_defaults(launch_file):
    module, share = launch_file
    context, _ = run(module)
    assert set(context) == {'image', 'namespace', 'params_file', 'model', 'weights', 'device',
                            'use_sim_time', 'log_level', 'dds_profile'}
    assert context['params_file'] == str(share / 'config' / 'demand_layering.yaml')
    assert context['dds_profile'] == str(share / 'config' / dds_profile.FILENAME)


def test_launch_overrides_only_what_was_given_and_applies_the_dds_profile(
        launch_file, monkeypatch):
    module, share = launch_file
    for var in dds_profile.VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv('ROS_DISTRO', raising=False)
    _, actions = run(module, namespace='front', image='/camera/image_raw',
                     model='ssd300_vgg16', device='cuda:0')
    env, node = actions
    assert env.args == ('FASTDDS_DEFAULT_PROFILES_FILE',
                        str(share / 'config' / dds_profile.FILENAME))
    assert node.kwargs['namespace'] == 'front'
    assert node.kwargs['parameters'] == [str(share / 'config' / 'demand_layering.yaml'),
                                         {'model': 'ssd300_vgg16', 'device': 'cuda:0',
                                          'use_sim_time': False}]
    assert node.kwargs['remappings'] == [('image', '/camera/image_raw'),
                                         ('image/compressed', '/camera/image_raw/compressed')]
    monkeypatch.setenv('ROS_DISTRO', 'humble')  # Fast DDS 2 reads the older variable
    assert run(module)[1][0].args[0] == 'FASTRTPS_DEFAULT_PROFILES_FILE'
    monkeypatch.setenv('FASTRTPS_DEFAULT_PROFILES_FILE', '/my/profile.xml')  # the user's wins
    assert [type(a).__name__ for a in run(module)[1]] == ['Node']


def test_two_cameras_file_lists_streams_with_valid_parameters():
    from demand_layering_ros.perception.models import spec
    from demand_layering_ros.ros import streams as st
    from demand_layering_ros.ros.params import check
    params = yaml.safe_load((ROOT / 'config/two_cameras.yaml').read_text())
    assert list(params) == ['/**']
    given = params['/**']['ros__parameters']
    names = st.names(given['streams'])
    assert names == ('front', 'rear') and check('streams', given['streams']) is None
    # as the node declares them: node-wide values, then each stream's (file over default)
    values = {**{n: v[0] for n, v in SPEC.items()},
              **{k: v for k, v in given.items() if k not in names}}
    for s in names:
        assert set(given[s]) <= set(st.PER_STREAM), s
        for name in st.PER_STREAM:
            values[st.parameter(s, name)] = given[s].get(name, st.default(s, name, values))
    for s in names:
        model = values[st.parameter(s, 'model')]
        for name in st.PER_STREAM:
            value = values[st.parameter(s, name)]
            assert check(name, value, spec(model).categories()) is None, (s, name, value)
    assert [e.streams for e in st.engines(names, values)] == [('front',), ('rear',)]


def test_launch_remaps_each_streams_input(launch_file):
    module, _share = launch_file
    _, actions = run(module, image='front:=/cam_front/image_raw rear:=/cam_rear/image_raw/',
                     dds_profile='')
    assert actions[-1].kwargs['remappings'] == [
        ('front/image', '/cam_front/image_raw'),
        ('front/image/compressed', '/cam_front/image_raw/compressed'),
        ('rear/image', '/cam_rear/image_raw/'),
        ('rear/image/compressed', '/cam_rear/image_raw/compressed')]


@pytest.mark.parametrize('image', ['', '  ', 'front:=/a rear', '/a front:=/b', 'front:=',
                                   'front:=/a,rear:=/b', ':=/a', '/a /b'])
def test_a_malformed_image_argument_is_refused_saying_how_to_write_it(launch_file, image):
    # before: a bare ValueError from unpacking, or a remap to '' the node died parsing
    module, _share = launch_file
    with pytest.raises(ValueError, match='STREAM:=TOPIC'):
        run(module, image=image, dds_profile='')


def test_a_missing_params_file_is_named(launch_file, tmp_path):
    module, _share = launch_file
    with pytest.raises(ValueError, match='params_file:=.*no such file'):
        run(module, params_file=str(tmp_path / 'nope.yaml'), dds_profile='')
