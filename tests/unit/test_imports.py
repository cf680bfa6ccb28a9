"""Imports with the garbage collector paused (jobkit/imports.py): paused for the block,
restored after, also when the block raises; an application importing jobkit keeps its
collector as it was."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from jobkit.imports import no_collection


def test_the_collector_is_paused_for_the_block_and_restored_after() -> None:
    assert gc.isenabled()
    with no_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ImportError), no_collection():
        raise ImportError("a job module that fails to import")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with no_collection():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("setup", "module", "collecting"),
    [("", "jobkit", "True"), ("", "jobkit.cli", "True"), ("gc.disable()", "jobkit", "False")],
)
def test_importing_jobkit_leaves_the_collector_as_it_found_it(
    setup: str, module: str, collecting: str
) -> None:
    code = f"import gc; {setup or 'pass'}; import {module}; print(gc.isenabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == collecting
