"The suite leaves no scratch folder behind, even where pytest-xdist kills a worker whose exit is slow (`conftest._temporary_folders`)."
import os, shutil, subprocess, sys
from pathlib import Path

SLOW_EXIT = '''
import threading, time
from wsss_nb.core import scratch_dir
def test_scratch_then_a_slow_exit():
    assert scratch_dir().is_dir()
    threading.Thread(target=time.sleep, args=(15,)).start()  # the worker's exit waits for it: pytest-xdist kills the worker after 10 s
'''

def test_scratch_folders_removed_when_a_worker_is_killed(tmp_path):
    suite, tmp = tmp_path/'suite', tmp_path/'tmp'; suite.mkdir(); tmp.mkdir()
    shutil.copy(Path(__file__).with_name('conftest.py'), suite); (suite/'test_slow.py').write_text(SLOW_EXIT)
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-n', '1', '-p', 'no:cacheprovider', '--basetemp', str(tmp_path/'base'), str(suite)],
                       env=dict(os.environ, TMPDIR=str(tmp)), cwd=suite, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list(tmp_path.rglob('wsss_nb_*')), sorted(tmp_path.rglob('wsss_nb_*'))
