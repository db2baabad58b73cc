"No dead code: pyflakes on the library, the tests and every notebook's code cells (unused imports and variables, f-strings without a field, ...)."
import ast, bisect, json
from pathlib import Path
from pyflakes import messages
from pyflakes.checker import Checker

REPO = Path(__file__).resolve().parent.parent
ALLOWED = (messages.ImportStarUsed, messages.ImportStarUsage,  # nbdev's `from wsss_nb.core import *`
           messages.RedefinedWhileUnused)  # fastcore's @patch methods share a name; a notebook redefines a function as it teaches

def flakes(src:str, name:str, where=lambda line: f'line {line}') -> list:
    "pyflakes' findings on `src`, but those ALLOWED, in the order of their lines."
    return [f'{name}, {where(m.lineno)}: {m.message % m.message_args}' for m in sorted(Checker(ast.parse(src, name), filename=name).messages, key=lambda m: m.lineno)
            if not isinstance(m, ALLOWED)]

def notebook_flakes(nb:Path) -> list:
    "A notebook's code cells checked as the one script a reader runs (IPython's %magics and !shell lines left out); each finding names its cell."
    cells = [(i, ''.join(c['source'])) for i, c in enumerate(json.loads(nb.read_text())['cells']) if c['cell_type'] == 'code']
    parts, starts, line = [], [], 1
    for _, s in cells:
        s = '\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in s.split('\n'))
        parts.append(s); starts.append(line); line += s.count('\n') + 2
    return flakes('\n\n'.join(parts), nb.name, lambda l: f'cell {cells[bisect.bisect_right(starts, l) - 1][0]}')

def test_the_check_finds(tmp_path):
    assert flakes('import os\nprint(f"no field")\n', 'probe') == ["probe, line 1: 'os' imported but unused", 'probe, line 2: f-string is missing placeholders']
    nb = {'cells': [{'cell_type': 'code', 'source': ['%matplotlib inline\n', 'import json']}, {'cell_type': 'markdown', 'source': ['x']},
                    {'cell_type': 'code', 'source': ['!ls\n', 'def f():\n', '    y = 1']}]}
    (probe := tmp_path/'probe.ipynb').write_text(json.dumps(nb))
    assert notebook_flakes(probe) == ["probe.ipynb, cell 0: 'json' imported but unused", "probe.ipynb, cell 2: local variable 'y' is assigned to but never used"]

def test_library_and_tests():
    files = [p for p in sorted((REPO/'wsss_nb').rglob('*.py')) + sorted((REPO/'tests').glob('*.py')) if p.name != '_modidx.py']
    assert len(files) > 20
    found = [f for p in files for f in flakes(p.read_text(), str(p.relative_to(REPO)))]
    assert not found, '\n'.join(found)

def test_notebooks():
    nbs = sorted(p for p in (REPO/'nbs').glob('*.ipynb') if not p.name.startswith('_'))  # the notebooks tests/test_notebooks.py runs (nbdev leaves `_` ones out)
    assert len(nbs) > 10
    found = [f for nb in nbs for f in notebook_flakes(nb)]
    assert not found, '\n'.join(found)
