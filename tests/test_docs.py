"The README and the notebooks' text say what the library does: the README is the index notebook, its Python example runs, the commands they give parse, the names they give exist, the chapters they list are the notebooks."
import importlib, json, re, shlex
from pathlib import Path
import numpy as np
from PIL import Image
from nbdev.config import get_config
from wsss_nb.bench import _bench_parser
from wsss_nb.cam import TrainConfig
from wsss_nb.data import SceneConfig
from wsss_nb.pipeline import _parser, config_from_args, unused_options

REPO = Path(__file__).resolve().parent.parent
NBS = REPO/'nbs'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))

def texts() -> list:
    "(where, text) of the README and of each notebook's markdown cells."
    return [('README.md', (REPO/'README.md').read_text())] + [(nb.name, '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'markdown')) for nb in NOTEBOOKS]

def default_exp(nb:Path) -> str|None:
    "The module a notebook exports (its `#| default_exp`; None for the index)."
    return next((src.split('default_exp')[1].split('\n')[0].strip() for c in json.loads(nb.read_text())['cells'] if (src := ''.join(c['source'])).startswith('#| default_exp')), None)

def _as_markdown(cell:dict) -> str:
    "A cell of index.ipynb as the README shows it: markdown as it is, code as a Python block without its `#|` directives."
    src = ''.join(cell['source'])
    if cell['cell_type'] == 'markdown': return src
    return '```python\n' + ''.join(l for l in src.splitlines(keepends=True) if not l.startswith('#|')) + '\n```'

def test_readme_is_the_index_notebook():
    "README.md is index.ipynb (settings.ini's readme_nb) as Markdown, its links and pictures (relative to nbs/ there) relative to the repository's folder: the front page on GitHub and in JupyterLab says the same, neither edited alone."
    index = json.loads((NBS/get_config(path=REPO).readme_nb).read_text())
    want = re.sub(r'\]\(\.\./', '](', '\n\n'.join(map(_as_markdown, index['cells']))) + '\n'
    got = (REPO/'README.md').read_text()
    if want != got:
        at = next(i for i, (a, b) in enumerate(zip(want + '\0', got + '\0')) if a != b)  # the first character that differs
        line, around = want.count('\n', 0, at) + 1, slice(max(0, at - 80), at + 80)
        raise AssertionError(f"README.md and nbs/index.ipynb differ from line {line} on (edit both alike):\n  index.ipynb: ...{want[around]!r}...\n  README.md:   ...{got[around]!r}...")

def test_readme_python_example_runs(tmp_path, monkeypatch):
    "The README's Python example (In Python), as a reader copies it, on a tiny scene in place of the full `RunConfig()`: it trains, segments its photo, gives the CAM of the class it names, and opens the run again."
    blocks = re.findall(r'```python\n(.*?)```', (REPO/'README.md').read_text(), re.S)
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
    "Every name of the library that the README and the notebooks' text give in code (`wsss_nb.cam.Plugin`, `conta.context_share`, `kernels.threshold.seed_labels`), and every chapter (`07c_amn`), is there: a renamed function or notebook leaves no reader looking for the old name."
    mods, docs = '|'.join(sorted((re.escape(m) for nb in NOTEBOOKS if (m := default_exp(nb))), key=len, reverse=True)), texts()
    names = {(where, m[1]) for where, text in docs for m in re.finditer(rf'`(?:wsss_nb\.)?((?:{mods})(?:\.\w+)+)', text) if not re.search(r'\.(json|png|npz|txt|py)$', m[1])}
    names |= {(where, f'{m[1]}.{n.strip()}') for where, text in docs for m in re.finditer(rf'`from wsss_nb\.((?:{mods})) import ([\w, ]+)`', text) for n in m[2].split(',')}  # `from wsss_nb.widgets import scene_explorer, ...`
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
    chapters = {(where, m[1]) for where, text in docs for m in re.finditer(r'`(?:nbs/)?(\d\d[a-z]?_[\w.]+?)(?:\.ipynb)?`', text)}  # `07c_amn`, `nbs/09_widgets.ipynb`
    missing += [f'{where}: `{name}`: no such notebook' for where, name in sorted(chapters) if not (NBS/f'{name}.ipynb').exists()]
    assert not missing, '\n'.join(missing)
    assert len(names) > 20 and len(chapters) > 40, (names, chapters)

def test_readme_lists_every_chapter():
    "The README's table of chapters: every notebook but the index, in order, each with the module it exports (its default_exp)."
    rows = re.findall(r'^\| `([\w.]+)` \| `wsss_nb\.([\w.]+)` \|', (REPO/'README.md').read_text(), re.M)
    chapters = [(nb.stem, m) for nb in NOTEBOOKS if (m := default_exp(nb))]
    assert rows == chapters, f'the README table: {rows}\nthe notebooks: {chapters}'

DOCUMENTED = re.compile(r'(?:\.venv/bin/)?(?:wsss_nb (?:run|demo|rerun|predict|evaluate|table|export-irn)\b|python -m wsss_nb\.bench \w+|torchrun [^`\n#]*?-m wsss_nb\.pipeline \w+)[^`\n#]*')

def documented_commands() -> list:
    "(where, command) of every `wsss_nb` / `python -m wsss_nb.bench` / `torchrun ... -m wsss_nb.pipeline` command in the README and the notebooks' text, as a reader would copy it (up to its code span's end or a `#` comment)."
    return [(where, m.group(0).strip()) for where, text in texts() for m in DOCUMENTED.finditer(text)]

def test_documented_commands_parse(capsys):
    "Each command the README and the notebooks give runs as written: its options exist and take the values shown, and a `run`'s make a valid configuration that uses every one of them (a renamed option or a value no longer accepted fails here, not in a reader's shell). A command named only (`wsss_nb predict`, `wsss_nb table --mean`: no value given) or with placeholders (`RUN`, `N`, `...`) is not a command to run."
    cmds, checked, failed = documented_commands(), 0, []
    for where, cmd in cmds:
        words = shlex.split(cmd.replace('.venv/bin/', ''))
        if any(re.fullmatch(r'[A-Z]+|\.\.\.', w) for w in words): continue  # placeholders
        bench = words[0] == 'python'
        args = words[3:] if bench else words[words.index('wsss_nb.pipeline') + 1:] if words[0] == 'torchrun' else words[1:]
        named_only = all(w.startswith('--') for w in args[1:])
        try:
            a = (_bench_parser() if bench else _parser()).parse_args(args)
            if not bench and a.command in ('run', 'demo'):
                config_from_args(a)
                if unused := unused_options(args): failed.append(f'{where}: `{cmd}`: {", ".join(unused)} not used by this run')
            checked += 1
        except SystemExit:
            err = capsys.readouterr().err.strip().splitlines()[-1]
            if not (named_only and 'arguments are required' in err): failed.append(f'{where}: `{cmd}`: {err}')
        except ValueError as e: failed.append(f'{where}: `{cmd}`: {e}')
    assert not failed, '\n'.join(failed)
    assert checked > 100, (checked, len(cmds))  # (the README's Use section alone gives 20)

def test_links_resolve():
    "Every picture and link to a file of this repository in the text is there, relative to the file that gives it (a notebook's to nbs/), and inside the repository: JupyterLab, started at its folder as the README says, serves nothing above it."
    links = [(where, m[1]) for where, text in texts() for m in re.finditer(r'!?\[[^\]]*\]\(([^)#\s]+)', text) if not re.match(r'[a-z]+:', m[1])]
    bad = [f'{where}: {target}' for where, target in links
           if not ((base := REPO if where == 'README.md' else NBS)/target).exists() or REPO.resolve() not in (base/target).resolve().parents]
    assert not bad, bad
    assert len(links) >= 5, links
