# Copyright 2026 demand_layering_ros maintainers. Licensed under the Apache License, Version 2.0.
"""``bench --streams`` without running it: the setups' nodes, memory sampling, comparison."""

import argparse
import os
from pathlib import Path

from demand_layering_ros.cli import bench_streams as bs
from demand_layering_ros.cli.main import build_parser


def args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(['bench', '--streams', '--json', 'out.json', *extra])


def test_the_flag_selects_the_stream_benchmark_and_its_options():
    a = args('--setups', 'one_node', '--rate', '0.2', '--input-size', '240', '320')
    assert a.streams and a.setups == ['one_node'] and a.rate == 0.2
    assert a.input_size == [240, 320] and a.scenarios == list(bs.SCENARIOS)
    plain = build_parser().parse_args(['bench', '--json', 'out.json'])
    assert not plain.streams


def test_one_node_serves_both_streams_and_the_others_one_each():
    models = {'front': 'ssdlite320_mobilenet_v3_large', 'rear': 'ssd300_vgg16'}
    stores = {s: Path(f'/stores/{s}.dls') for s in models}
    topics = {s: f'/{s}/image_raw' for s in models}
    (one,) = bs.setup_processes('one_node', models, stores, topics, args())
    text = ' '.join(one)
    assert 'streams:=[front, rear]' in text and 'memory_budget_mb:=0.0' in text
    assert 'rear.model:=ssd300_vgg16' in text and 'front/image:=/front/image_raw' in text
    assert 'use_sim_time:=true' in text and 'engines_take_turns:=false' in text
    (turns,) = bs.setup_processes('one_node_turns', models, stores, topics, args())
    assert 'engines_take_turns:=true' in turns
    separate = bs.setup_processes('separate', models, stores, topics, args())
    preloaded = bs.setup_processes('preloaded', models, stores, topics, args())
    assert len(separate) == len(preloaded) == 2
    assert '__ns:=/rear' in ' '.join(separate[1]) and 'image:=/rear/image_raw' in separate[1]
    assert 'execution_mode:=pipelined' in separate[0]
    assert 'execution_mode:=preload' in preloaded[0]
    # two nodes on every core's threads each, or on a share of them each (the fairer baseline)
    assert all('num_threads:=2' in node for node in [one, *separate, *preloaded])
    split = bs.setup_processes('separate_split', models, stores, topics, args('--threads', '2'))
    assert [node.count('num_threads:=1') for node in split] == [1, 1]
    assert 'execution_mode:=pipelined' in split[0] and '__ns:=/front' in ' '.join(split[0])


def test_memory_is_read_from_smaps_rollup():
    pss, rss = bs.rollup(os.getpid())
    assert 0 < pss <= rss
    assert bs.rollup(2 ** 22 + 1) == (0, 0)   # gone


def test_comparison_says_what_one_node_saves_and_how_fast_its_streams_are():
    def run(setup, pss, ms):
        streams = {s: {'inference_ms_p50': ms, 'deadline_missed': 0.0, 'lost': 0.0}
                   for s in ('front', 'rear')}
        return {'scenario': 'same', 'setup': setup, 'pss_steady_bytes': pss,
                'pss_peak_bytes': pss, 'rss_steady_bytes': 2 * pss,
                'weight_bytes_peak': pss // 100, 'streams': streams}
    runs = [run('one_node', 1000, 110.0), run('separate', 1500, 100.0)]
    got = bs.compare(runs)['same']['one_node']['vs_separate']
    assert got['pss_steady_saved_bytes'] == 500
    assert got['inference_p50_ratio'] == {'front': 1.1, 'rear': 1.1}
    assert 'same' in bs.table(runs) and 'front 110 ms' in bs.table(runs)


def test_rounds_are_pooled_per_setup_before_they_are_compared():
    def run(setup, rnd, pss, ms, missed):
        streams = {s: {'inference_ms_p50': ms, 'latency_ms_p50': ms / 10,
                       'deadline_missed': missed, 'processed': 100.0 - missed, 'lost': missed}
                   for s in ('front', 'rear')}
        return {'scenario': 'same', 'setup': setup, 'round': rnd, 'pss_steady_bytes': pss,
                'pss_peak_bytes': pss, 'rss_steady_bytes': 2 * pss,
                'weight_bytes_peak': 10 + rnd, 'streams': streams}
    # the machine drifts: round 1 is slow for both setups alike
    runs = [run('one_node', 0, 1000, 100.0, 0.0), run('separate_split', 0, 1500, 95.0, 1.0),
            run('one_node', 1, 1010, 150.0, 2.0), run('separate_split', 1, 1490, 140.0, 0.0),
            run('one_node', 2, 990, 104.0, 0.0), run('separate_split', 2, 1520, 100.0, 0.0)]
    pooled = {r['setup']: r for r in bs.pooled(runs)}
    one = pooled['one_node']
    assert one['rounds'] == 3 and one['pss_steady_bytes'] == 1000
    assert one['weight_bytes_peak'] == 12
    front = one['streams']['front']
    assert front['inference_ms_p50'] == 104.0 and front['inference_ms_p50_rounds'] == [
        100.0, 150.0, 104.0]
    assert front['deadline_missed'] == 2.0 and front['lost'] == 2.0
    assert front['processed'] == 298.0
    got = bs.compare(runs)['same']['one_node']['vs_separate_split']
    assert got['inference_p50_ratio']['rear'] == 104.0 / 100.0
    assert got['pss_steady_saved_bytes'] == 500
    # one round: the run as measured
    assert bs.pooled(runs[:2])[0] is runs[0]


def test_with_auto_tune_every_node_but_the_preloaded_tunes_and_counts_after_warm_up():
    models = {'front': 'ssdlite320_mobilenet_v3_large', 'rear': 'ssd300_vgg16'}
    stores = {s: Path(f'/stores/{s}.dls') for s in models}
    topics = {s: f'/{s}/image_raw' for s in models}
    a = args('--auto-tune-quantile', '0.99', '--warmup-frames', '40')
    (one,) = bs.setup_processes('one_node', models, stores, topics, a)
    split = bs.setup_processes('separate_split', models, stores, topics, a)
    preloaded = bs.setup_processes('preloaded', models, stores, topics, a)
    assert all('auto_tune:=true' in n and 'auto_tune_quantile:=0.99' in n for n in [one, *split])
    assert not any('auto_tune:=true' in n for n in preloaded)
    assert not any('auto_tune:=true' in n for n in bs.setup_processes(
        'one_node', models, stores, topics, args()))
    warm = {'received': '41', 'processed': '38', 'superseded': '2', 'deadline_missed': '3'}
    end = {'received': '340', 'processed': '336', 'deadline_missed': '5',
           'predicted_ms_p99': '412.5'}
    after = bs._after(end, warm, 340, infeasible=0.0)
    # 300 frames after the first 40 accounted for: 298 processed, 2 late, 2 never processed
    assert (after['frames'], after['processed'], after['late'], after['lost']) == (300, 298, 2, 2)
    assert after['late_or_lost_share'] == 4 / 300 and after['predicted_ms_p99'] == 412.5
    assert bs._after(end, None, 340, infeasible=None) is None   # never warmed up
    pooled = bs._pool_stream([{'deadline_missed': 1, 'processed': 1, 'lost': 0,
                               'inference_ms_p50': 1.0, 'latency_ms_p50': 1.0,
                               'after_warmup': after}] * 2)['after_warmup']
    assert pooled['frames'] == 600 and pooled['late_or_lost_share'] == 8 / 600
