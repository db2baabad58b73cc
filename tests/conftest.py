"""The longest tests first, and the suite's temporary folders under pytest's own temporary root, removed when a worker's session ends."""
import shutil, tempfile
import pytest

LONGEST_FIRST = ('tests/test_notebooks.py', 'tests/test_browser.py')  # a notebook or JupyterLab takes up to 2.5 minutes; the others under one

def pytest_collection_modifyitems(config, items):
    "Under pytest-xdist the workers then end on short tests, together, not one waiting for another's long notebook."
    first = lambda item: next((i for i, f in enumerate(LONGEST_FIRST) if item.nodeid.startswith(f)), len(LONGEST_FIRST))
    items.sort(key=first)  # (stable: each file's own order kept)

@pytest.fixture(autouse=True, scope='session')
def _temporary_folders(tmp_path_factory):
    """`tempfile`'s folder (`core.scratch_dir`'s, where the notebooks write their runs), for this process and those it starts, is one
    under pytest's root, removed at the end of the session: pytest-xdist kills a worker whose exit takes over 10 s, before the
    removal at exit that `scratch_dir` registers runs, which left hundreds of MB in /tmp at each `make test`."""
    d = tmp_path_factory.mktemp('tmp')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, 'tempdir', str(d)); mp.setenv('TMPDIR', str(d))
        yield d
    shutil.rmtree(d, ignore_errors=True)
