"""Fixtures: a small cluster on real directories (see ``objstore_cluster``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from objstore_cluster import Cluster, make_cluster


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Callable[..., Cluster]:
    def factory(devices: int = 3, power: int = 4) -> Cluster:
        return make_cluster(tmp_path / f"node{devices}-{power}", devices, power)

    return factory


@pytest.fixture
def cluster(cluster_factory: Callable[..., Cluster]) -> Cluster:
    return cluster_factory()
