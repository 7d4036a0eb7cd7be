"""Producers place every key where aiokafka's default partitioner (and the Java client) would: the remembered
partitioner only saves the hash, it never moves a key."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from shared.broker import remembered_partition


@given(key=st.binary(max_size=64), partitions=st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_default_partitioner(key: bytes, partitions: int) -> None:
    all_partitions = list(range(partitions))
    expected = DefaultPartitioner()(key, all_partitions, all_partitions)
    assert remembered_partition(key, all_partitions, all_partitions) == expected
    assert remembered_partition(key, all_partitions, all_partitions) == expected  # from the cache, the same


def test_no_key_goes_to_an_available_partition() -> None:
    assert {remembered_partition(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {remembered_partition(None, [0, 1], []) for _ in range(50)} <= {0, 1}
