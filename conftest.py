"""Doctest namespace for every docstring and docs page: ``np`` and ``sg`` are imported."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import servegen as sg

    doctest_namespace["np"] = np
    doctest_namespace["sg"] = sg
