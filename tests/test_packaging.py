"The source distribution installs: it carries every file setup.py reads, and the wheel built from it holds the library and the `wsss_nb` command."
import shutil, subprocess, sys, tarfile, zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = ['setup.py', 'settings.ini', 'pyproject.toml', 'README.md', 'MANIFEST.in', 'wsss_nb']  # what `python -m build` reads of this repository

def test_sdist_builds_a_wheel(tmp_path):
    src = tmp_path/'src'; src.mkdir()
    for f in SOURCES:
        if (REPO/f).is_dir(): shutil.copytree(REPO/f, src/f, ignore=shutil.ignore_patterns('__pycache__'))
        else: shutil.copy(REPO/f, src/f)
    run = lambda *a, cwd: subprocess.run([sys.executable, *a], cwd=cwd, check=True, capture_output=True, text=True)
    run('setup.py', '-q', 'sdist', '-d', str(tmp_path/'dist'), cwd=src)  # (the venv's setuptools: no network)
    sdist, = (tmp_path/'dist').glob('wsss_nb-*.tar.gz')
    with tarfile.open(sdist) as t: t.extractall(tmp_path/'unpacked', filter='data')
    unpacked, = (tmp_path/'unpacked').iterdir()
    assert (unpacked/'settings.ini').exists(), sorted(p.name for p in unpacked.iterdir())
    run('-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', str(tmp_path/'wheel'), str(unpacked), cwd=tmp_path)
    wheel, = (tmp_path/'wheel').glob('wsss_nb-*.whl')
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry = next(z.read(n).decode() for n in names if n.endswith('entry_points.txt'))
        meta = next(z.read(n).decode() for n in names if n.endswith('METADATA'))
    assert {'wsss_nb/pipeline.py', 'wsss_nb/kernels/crf.py'} <= names
    assert 'wsss_nb = wsss_nb.pipeline:main' in entry
    assert 'License-Expression: Apache-2.0' in meta and 'Requires-Dist: torch>=2.11' in meta and 'Requires-Dist: torchvision>=0.26' in meta
