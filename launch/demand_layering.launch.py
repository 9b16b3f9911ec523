# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""Launch demand_layering_node with a parameter file, an image remap and a namespace."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    """Arguments: image, namespace, params_file, use_sim_time, log_level."""
    default_params = os.path.join(get_package_share_directory('demand_layering_ros'), 'config',
                                  'demand_layering.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('image', default_value='image',
                              description='camera topic to subscribe to'),
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('params_file', default_value=default_params),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('log_level', default_value='info'),
        Node(
            package='demand_layering_ros',
            executable='demand_layering_node',
            name='demand_layering_node',
            namespace=LaunchConfiguration('namespace'),
            parameters=[LaunchConfiguration('params_file'),
                        {'use_sim_time': LaunchConfiguration('use_sim_time')}],
            remappings=[('image', LaunchConfiguration('image')),
                        ('image/compressed', [LaunchConfiguration('image'), '/compressed'])],
            arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
            output='screen',
        ),
    ])
