"Every notebook in nbs/ is a test: run it with nbdev's test runner, honouring the `tst_flags` of settings.ini."
import os, warnings
from pathlib import Path
import pytest, torch
from nbdev.config import get_config
from nbdev import test as nbdev_test  # (not `import test_nb`: pytest would collect it)

NBS = Path(__file__).resolve().parent.parent/'nbs'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))

def _force_flags():
    "Flags to run although settings.ini skips them: `gpu` where a CUDA device is usable, plus WSSS_TEST_FLAGS (e.g. 'slow')."
    flags = os.environ.get('WSSS_TEST_FLAGS', '').split()
    return flags + (['gpu'] if torch.cuda.is_available() else [])

OURS = r'(__main__|wsss_nb(\..*)?)\Z'  # the module a warning is charged to: a notebook's cells run as __main__, the library as wsss_nb.*

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    "Run the notebook; a DeprecationWarning or FutureWarning from its cells or from wsss_nb is an error: what the next Python, PyTorch or NumPy removes fails here first."
    monkeypatch.chdir(NBS)
    with warnings.catch_warnings():
        for w in (DeprecationWarning, FutureWarning): warnings.filterwarnings('error', category=w, module=OURS)
        ok, _ = nbdev_test.test_nb(nb, skip_flags=get_config().tst_flags.split(), force_flags=_force_flags())
    assert ok, f'{nb.name} failed (its traceback is printed above)'

@pytest.mark.skipif(os.environ.get('WSSS_READER_MODE') != '1', reason="opt-in (15 minutes on 2 cores): WSSS_READER_MODE=1 make test")
@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_as_a_reader_runs_it(nb, monkeypatch):
    "Run All in JupyterLab: IN_TEST unset, so the full-size branches run too (reading and writing ../runs as a reader's would)."
    import nbformat
    from nbclient import NotebookClient
    monkeypatch.delenv('IN_TEST', raising=False)
    book = nbformat.read(nb, as_version=4)
    NotebookClient(book, timeout=1800, kernel_name='python3', resources={'metadata': {'path': str(NBS)}}).execute()

def test_every_module_comes_from_a_notebook():
    "No hand-written module hides in wsss_nb/: each is the default_exp of a notebook."
    import json
    exported = {src.split('default_exp')[1].strip() for nb in NOTEBOOKS for c in json.loads(nb.read_text())['cells']
                for src in [''.join(c['source'])] if c['cell_type'] == 'code' and src.startswith('#| default_exp')}
    lib = NBS.parent/'wsss_nb'
    mods = {str(p.relative_to(lib).with_suffix('')).replace('/', '.') for p in lib.rglob('*.py') if not p.name.startswith('_')}
    assert mods == exported, (mods, exported)
