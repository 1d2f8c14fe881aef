"""AttentionTracker: top-k follows attention, `always` kept, JSON round trip, corrupt state."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from edge_agent.focus import AttentionTracker


def attention(n_devices: int, weights: dict[int, float], n: int) -> np.ndarray:
    """[n_devices, n] attention; device 0 gets `weights` (normalized), others uniform."""
    att = np.full((n_devices, n), 1.0 / n, dtype=np.float32)
    row = np.full(n, 0.01, dtype=np.float32)
    for c, w in weights.items():
        row[c] = w
    att[0] = row / row.sum()
    return att


def test_default_before_any_update_is_always_then_lowest_indices():
    tr = AttentionTracker(10, always=[7, 9])
    assert tr.top_k(4) == [0, 1, 7, 9]
    assert tr.top_k(50) == list(range(10))
    assert tr.top_k(0) == []


def test_top_k_follows_attention():
    n = 12
    tr = AttentionTracker(n, alpha=0.1)
    ids = np.arange(n)
    for _ in range(100):
        tr.update(attention(3, {4: 5.0, 10: 3.0, 2: 2.0}, n), ids)
    assert tr.top_k(3) == [2, 4, 10]
    # attention moves: the set follows
    for _ in range(200):
        tr.update(attention(3, {6: 5.0, 8: 4.0, 11: 3.0}, n), ids)
    assert tr.top_k(3) == [6, 8, 11]


def test_max_over_devices_keeps_a_channel_one_device_needs():
    n, n_dev = 8, 10
    att = np.full((n_dev, n), 1.0 / n, dtype=np.float32)
    att[:, 1] += 0.05  # all devices like channel 1 a bit
    att[3] = 0.0
    att[3, 5] = 1.0  # device 3 depends only on channel 5
    att /= att.sum(axis=1, keepdims=True)
    tr = AttentionTracker(n, alpha=0.2)
    for _ in range(50):
        tr.update(att, np.arange(n))
    assert 5 in tr.top_k(2) and 1 in tr.top_k(2)


def test_always_channels_are_kept():
    n = 10
    tr = AttentionTracker(n, alpha=0.2, always=[0])
    for _ in range(50):
        tr.update(attention(2, {3: 5.0, 4: 5.0, 5: 5.0}, n), np.arange(n))
    top = tr.top_k(3)
    assert 0 in top and len(top) == 3
    assert top == sorted(top)


def test_only_fed_channels_update_and_subset_scores_are_scaled():
    n = 10
    tr = AttentionTracker(n, alpha=0.5)
    before = tr.mean.copy()
    fed = np.array([7, 2, 5])  # any order
    att = np.array([[0.2, 0.5, 0.3]], dtype=np.float32)
    tr.update(att, fed)
    assert np.array_equal(np.delete(tr.mean, fed), np.delete(before, fed))
    # scaled by 3/10: channel 2 got 0.5 * 0.3 = 0.15
    assert tr.mean[2] == pytest.approx(0.5 * 0.1 + 0.5 * 0.15)
    # a batch dimension of 1 is accepted
    tr.update(att[None], fed)
    assert tr.updates == 2


def test_stickiness_prevents_swapping_near_equal_channels():
    n = 4
    tr = AttentionTracker(n, alpha=1.0, stickiness=0.1)
    tr.update(np.array([[0.5, 0.3, 0.1, 0.1]]), np.arange(n))
    assert tr.top_k(1) == [0]
    tr.update(np.array([[0.31, 0.33, 0.18, 0.18]]), np.arange(n))  # 1 only slightly ahead: keep 0
    assert tr.top_k(1) == [0]
    tr.update(np.array([[0.1, 0.6, 0.15, 0.15]]), np.arange(n))  # clearly ahead: switch
    assert tr.top_k(1) == [1]


def test_bad_updates_are_ignored_with_one_warning(caplog):
    tr = AttentionTracker(5)
    before = tr.mean.copy()
    with caplog.at_level(logging.WARNING, logger="edge_agent.focus"):
        tr.update(np.ones((2, 3)), np.arange(4))  # shape mismatch
        tr.update(np.ones((2, 3)), np.array([0, 1, 9]))  # out of range
        tr.update(np.full((2, 3), np.nan), np.arange(3))  # NaN
    assert np.array_equal(tr.mean, before) and tr.updates == 0
    assert len(caplog.records) == 1


def test_json_round_trip():
    n = 6
    names = [f"c{i}" for i in range(n)]
    tr = AttentionTracker(n, alpha=0.3, always=[5], names=names)
    for _ in range(20):
        tr.update(attention(2, {1: 4.0, 3: 2.0}, n), np.arange(n))
    top = tr.top_k(3)
    back = AttentionTracker.from_json(tr.to_json(), n, alpha=0.3, always=[5], names=names)
    assert np.allclose(back.mean, tr.mean) and back.updates == tr.updates
    assert back.top_k(3) == top == [1, 3, 5]


@pytest.mark.parametrize(
    "state",
    [
        "not json{",
        "[]",
        json.dumps({"format": 99, "n_channels": 4, "mean": [0.25] * 4}),
        json.dumps({"format": 1, "n_channels": 5, "mean": [0.2] * 5}),  # other bundle size
        json.dumps({"format": 1, "n_channels": 4, "mean": [0.25] * 3}),
        json.dumps({"format": 1, "n_channels": 4, "mean": [0.25, "x", 0.25, 0.25]}),
        json.dumps({"format": 1, "n_channels": 4, "mean": [0.25, 7.0, 0.25, 0.25]}),
        json.dumps({"format": 1, "n_channels": 4, "mean": [0.25] * 4, "updates": -3}),
        json.dumps({"format": 1, "n_channels": 4, "mean": [0.25] * 4, "selected": [0, 12]}),
        json.dumps({"format": 1, "n_channels": 4, "names": ["a", "b", "c", "z"], "mean": [0.25] * 4}),
        '{"format": 1, "n_channels": 4, "mean": [NaN, 0.1, 0.1, 0.1]}',
    ],
)
def test_corrupt_or_mismatched_state_starts_fresh(state, caplog):
    with caplog.at_level(logging.WARNING, logger="edge_agent.focus"):
        tr = AttentionTracker.from_json(state, 4, names=["a", "b", "c", "d"], always=[3])
    assert len(caplog.records) == 1 and "starting fresh" in caplog.records[0].getMessage()
    assert tr.updates == 0 and np.allclose(tr.mean, 0.25)
    assert tr.top_k(2) == [0, 3]


def test_missing_state_starts_fresh_silently(caplog):
    with caplog.at_level(logging.WARNING, logger="edge_agent.focus"):
        tr = AttentionTracker.from_json(None, 3)
    assert caplog.records == [] and tr.top_k(2) == [0, 1]


def test_constructor_rejects_nonsense():
    with pytest.raises(ValueError):
        AttentionTracker(0)
    with pytest.raises(ValueError):
        AttentionTracker(4, always=[4])
    with pytest.raises(ValueError):
        AttentionTracker(4, alpha=0.0)
