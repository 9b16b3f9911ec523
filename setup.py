# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""ament_python build of demand_layering_ros."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'demand_layering_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml', 'LICENSE']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='demand_layering_ros maintainers',
    maintainer_email='maintainers@demand-layering-ros.dev',
    description='Demand-layered object detection for ROS 2 within a live memory budget.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'demand_layering_node = demand_layering_ros.ros.node:main',
            'demand-layering = demand_layering_ros.cli.main:main',
        ],
    },
)
