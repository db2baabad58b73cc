"Every notebook in nbs/ is a test: run it with nbdev's test runner, honouring the `tst_flags` of settings.ini."
import os
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

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, monkeypatch):
    monkeypatch.chdir(NBS)
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

def _as_markdown(cell:dict) -> str:
    "A cell of index.ipynb as the README shows it: markdown as it is, code as a Python block without its `#|` directives."
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': return src
    return '```python\n' + ''.join(l for l in src.splitlines(keepends=True) if not l.startswith('#|')) + '\n```'

def test_readme_is_the_index_notebook():
    "README.md is index.ipynb (settings.ini's readme_nb) as Markdown: the front page on GitHub and in JupyterLab says the same, neither edited alone."
    import json
    index = json.loads((NBS/get_config().readme_nb).read_text())
    want = '\n\n'.join(map(_as_markdown, index['cells'])) + '\n'
    got = (NBS.parent/'README.md').read_text()
    if want != got:
        at = next(i for i, (a, b) in enumerate(zip(want + '\0', got + '\0')) if a != b)  # the first character that differs
        line, around = want.count('\n', 0, at) + 1, slice(max(0, at - 80), at + 80)
        raise AssertionError(f"README.md and nbs/index.ipynb differ from line {line} on (edit both alike):\n  index.ipynb: ...{want[around]!r}...\n  README.md:   ...{got[around]!r}...")

def test_readme_python_example_runs(tmp_path, monkeypatch):
    "The README's Python example (In Python), as a reader copies it, on a tiny scene in place of the full `RunConfig()`: it trains, segments its photo, gives the CAM of the class it names, and opens the run again."
    import re
    import numpy as np
    from PIL import Image
    from wsss_nb.data import SceneConfig
    from wsss_nb.cam import TrainConfig
    blocks = re.findall(r'```python\n(.*?)```', (NBS.parent/'README.md').read_text(), re.S)
    assert len(blocks) == 1 and blocks[0].count('RunConfig()') == 1, blocks
    tiny = "RunConfig(scene=SceneConfig(n_train=24, n_val=8), cam_train=TrainConfig(epochs=1, batch_size=8), seg_train=TrainConfig(epochs=1, batch_size=8))"
    monkeypatch.chdir(tmp_path)
    ns = dict(SceneConfig=SceneConfig, TrainConfig=TrainConfig)
    exec(blocks[0].replace('RunConfig()', tiny), ns)
    assert 0 <= ns['res']['pseudo_mask_miou'] <= 1 and 0 <= ns['res']['seg_miou'] <= 1
    img = np.asarray(Image.open(ns['photo']))
    assert len(ns['masks']) == 1 and ns['masks'][0].shape == img.shape[:2]
    assert ns['maps'].shape == (1, *img.shape[:2]) and list(ns['ids']) == [ns['run'].classes.index('disc-red')]
    assert ns['run'].dir.resolve() == tmp_path/'runs/mine' and (tmp_path/'runs/mine/results.json').exists()

def test_names_in_the_text_exist():
    "Every name of the library that the README and the notebooks' text give in code (`wsss_nb.cam.Plugin`, `conta.context_share`, `kernels.threshold.seed_labels`) is there: a renamed function leaves no reader looking for the old name."
    import importlib, json, re
    mods = '|'.join(sorted((str(p.relative_to(NBS.parent/'wsss_nb').with_suffix('')).replace('/', r'\.') for p in (NBS.parent/'wsss_nb').rglob('*.py') if not p.name.startswith('_')), key=len, reverse=True))
    texts = [('README.md', (NBS.parent/'README.md').read_text())] + [(nb.name, '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown')) for nb in NOTEBOOKS]
    names = {(where, m[1]) for where, text in texts for m in re.finditer(rf'`(?:wsss_nb\.)?((?:{mods})(?:\.\w+)+)', text) if not re.search(r'\.(json|png|npz|txt|py)$', m[1])}
    def resolve(name):
        parts = f'wsss_nb.{name}'.split('.')
        for n in range(len(parts), 1, -1):  # the longest prefix that is a module, then its attributes
            try: obj = importlib.import_module('.'.join(parts[:n])); break
            except ModuleNotFoundError: continue
        for p in parts[n:]: obj = getattr(obj, p)
    missing = []
    for where, name in sorted(names):
        try: resolve(name)
        except AttributeError as e: missing.append(f'{where}: `{name}`: {e}')
    assert not missing, '\n'.join(missing)
    assert len(names) > 20, names

def test_readme_lists_every_chapter():
    "The README's table of chapters: every notebook but the index, in order, each with the module it exports (its default_exp)."
    import json, re
    rows = re.findall(r'^\| `([\w.]+)` \| `wsss_nb\.([\w.]+)` \|', (NBS.parent/'README.md').read_text(), re.M)
    exp = lambda nb: next(''.join(c['source']).split('default_exp')[1].split('\n')[0].strip() for c in json.loads(nb.read_text())['cells'] if ''.join(c['source']).startswith('#| default_exp'))
    chapters = [(nb.stem, exp(nb)) for nb in NOTEBOOKS if nb.stem != 'index']
    assert rows == chapters, f'the README table: {rows}\nthe notebooks: {chapters}'
