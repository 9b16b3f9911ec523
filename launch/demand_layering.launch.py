# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Launch demand_layering_node with a parameter file, an image remap and a namespace.

``ros2 launch demand_layering_ros demand_layering.launch.py image:=/camera/image_raw
namespace:=front model:=ssd300_vgg16`` - model, weights and device, when given, override the
parameter file; the file (keyed ``/**``) applies under any namespace. Several cameras: a
parameter file with ``streams`` (``config/two_cameras.yaml``) and ``image:='front:=/cam_front/
image_raw rear:=/cam_rear/image_raw'`` (each stream's input remapped). The Fast DDS profile for
camera-sized frames is set for every process this launch starts (see the profile's comment):
start the camera from here too, or export the variable in the camera's shell.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from demand_layering_ros.ros import dds_profile

OVERRIDES = ('model', 'weights', 'device')  # launch arguments that override the file


def generate_launch_description():
    """Arguments: image, namespace, params_file, model, weights, device, use_sim_time, ..."""
    config = os.path.join(get_package_share_directory('demand_layering_ros'), 'config')
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='image',
                              description='camera topic to subscribe to; with streams, '
                              "STREAM:=TOPIC pairs ('front:=/cam_front/image_raw rear:=...')"),
        DeclareLaunchArgument('namespace', default_value='', description='node namespace'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(config, 'demand_layering.yaml'),
                              description='parameter file (keys /** apply in any namespace)'),
        DeclareLaunchArgument('model', default_value='',
                              description='detector (overrides the file when given)'),
        DeclareLaunchArgument('weights', default_value='',
                              description='none | DEFAULT | path (overrides the file)'),
        DeclareLaunchArgument('device', default_value='',
                              description='cpu | cuda | cuda:N (overrides the file)'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('log_level', default_value='info'),
        DeclareLaunchArgument('dds_profile',
                              default_value=os.path.join(config, dds_profile.FILENAME),
                              description='Fast DDS profile for camera-sized best-effort frames;'
                              ' empty, or a profile variable already set, leaves Fast DDS as is'),
        OpaqueFunction(function=launch_setup),
    ])


def launch_setup(context):
    """The node, with overrides only for the arguments that were given."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)
    actions = []
    profile = arg('dds_profile')
    if profile and not any(os.environ.get(v) for v in dds_profile.VARIABLES):
        actions.append(SetEnvironmentVariable(dds_profile.variable(), profile))
    params = arg('params_file')
    if params and not os.path.isfile(params):
        raise ValueError(f'params_file:={params}: no such file')
    overrides = {name: arg(name) for name in OVERRIDES if arg(name)}
    overrides['use_sim_time'] = arg('use_sim_time').lower() in ('true', '1')
    actions.append(Node(
        package='demand_layering_ros',
        executable='demand_layering_node',
        name='demand_layering_node',
        namespace=arg('namespace'),
        parameters=[*([params] if params else []), overrides],
        remappings=remappings(arg('image')),
        arguments=['--ros-args', '--log-level', arg('log_level')],
        output='screen',
    ))
    return actions


def remappings(image):
    """The input remappings: one topic for the single stream, or STREAM:=TOPIC pairs.

    ValueError (launch shows it) for anything else: an empty topic would reach the node as a
    remap rule it cannot parse, and a pair without its separator as a topic name.
    """
    words = image.split()
    usage = 'one topic, or STREAM:=TOPIC pairs separated by spaces'
    if not words:
        raise ValueError(f'image:= is empty: {usage}')
    if ':=' not in image:
        if len(words) > 1:
            raise ValueError(f'image:={image!r}: {usage}')
        pairs = [('', words[0])]
    else:
        pairs = [w.partition(':=')[::2] for w in words]
        bad = [w for w, (stream, topic) in zip(words, pairs)
               if ':=' not in w or not stream or not topic or ',' in w or ':=' in topic]
        if bad:
            raise ValueError(f'image:={image!r}: {bad[0]!r} is not STREAM:=TOPIC ({usage})')
    out = []
    for stream, topic in pairs:
        under = f'{stream}/' if stream else ''
        compressed = topic.rstrip('/') + '/compressed'
        out += [(f'{under}image', topic), (f'{under}image/compressed', compressed)]
    return out
