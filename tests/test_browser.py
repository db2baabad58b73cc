"""The widgets in a real JupyterLab, driven in a real browser (Debian's Chromium through Playwright): open the widgets
notebook, run it, move the CAM explorer's threshold slider with the keyboard and see the mIoU it shows change, then upload
an image into the image explorer through the browser's file input and see it segmented.
Skipped where /usr/bin/chromium or Playwright is absent; never downloads a browser. Leaves no process behind."""
import importlib.util, os, re, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from PIL import Image

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
NOTEBOOK = Path(__file__).resolve().parent.parent/'nbs/09_widgets.ipynb'
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium; `make test` installs it where it can)"),
              pytest.mark.skipif(importlib.util.find_spec('playwright') is None, reason='playwright (pip, a dev requirement) is not installed')]

def _children():
    "ppid -> child pids, of every process now."
    kids = {}
    for d in Path('/proc').iterdir():
        try: ppid = int((d/'stat').read_text().rsplit(')', 1)[1].split()[1]) if d.name.isdigit() else None
        except (OSError, IndexError, ValueError): continue
        if ppid is not None: kids.setdefault(ppid, []).append(int(d.name))
    return kids

def _descendants(pid:int) -> set:
    "Every process below `pid`."
    kids, out, todo = _children(), set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out: out.add(k); todo.append(k)
    return out

def _mentioning(marker:str) -> set:
    "The processes whose command line mentions `marker` (a temporary folder of this test: what it started, orphans included)."
    out = set()
    for d in Path('/proc').iterdir():
        try:
            if d.name.isdigit() and int(d.name) != os.getpid() and marker.encode() in (d/'cmdline').read_bytes(): out.add(int(d.name))
        except OSError: pass
    return out

def _alive(pids) -> set:
    "Those of `pids` still running (zombies count as gone)."
    def running(p):
        try: return (Path('/proc')/str(p)/'stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
        except OSError: return False
    return {p for p in pids if running(p)}

def _kill(pids, sig):
    for p in pids:
        try: os.kill(p, sig)
        except ProcessLookupError: pass

@pytest.fixture
def leftovers(tmp_path):
    "At teardown, end every process this test started (below this process, or naming its temporary folder) and check none is left."
    before = _descendants(os.getpid())
    yield
    ours = lambda: (_descendants(os.getpid()) - before) | _mentioning(str(tmp_path))
    pids = ours()
    _kill(pids, signal.SIGTERM)
    deadline = time.time() + 10
    while _alive(pids | ours()) and time.time() < deadline: time.sleep(0.2)
    _kill(_alive(pids | ours()), signal.SIGKILL); time.sleep(0.5)
    assert not _alive(pids | ours()), f'processes left behind: {sorted(_alive(pids | ours()))}'

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture
def lab(tmp_path, leftovers):
    "JupyterLab on a free localhost port, with its own config, data, runtime and settings folders and a copy of the widgets notebook; yields its URL."
    work, port, token = tmp_path/'work', _free_port(), os.urandom(16).hex()
    work.mkdir(); shutil.copy(NOTEBOOK, work)
    for name, value in (('apputils-extension/notification', '{"fetchNews": "false"}'),  # no "news?" pop-up over the page
                        ('notebook-extension/tracker', '{"windowingMode": "none"}')):  # every cell stays in the page
        f = tmp_path/f'settings/@jupyterlab/{name}.jupyterlab-settings'; f.parent.mkdir(parents=True); f.write_text(value)
    # the kernel runs the notebook's tiny sizes (IN_TEST); its OpenMP threads (torch, Numba) wait passively, not spinning, which
    # keeps it several times faster on a machine shared with other jobs
    env = dict(os.environ, IN_TEST='1', OMP_WAIT_POLICY=os.environ.get('OMP_WAIT_POLICY', 'PASSIVE'), **{k: str(tmp_path/v) for k, v in (('JUPYTER_CONFIG_DIR', 'config'), ('JUPYTER_DATA_DIR', 'data'),
               ('JUPYTER_RUNTIME_DIR', 'runtime'), ('JUPYTERLAB_SETTINGS_DIR', 'settings'), ('JUPYTERLAB_WORKSPACES_DIR', 'workspaces'), ('IPYTHONDIR', 'ipython'))})
    log = open(tmp_path/'jupyterlab.log', 'w')
    server = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={port}', '--ServerApp.port_retries=0',
                               f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}', '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None',
                               '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                               '--LabApp.extension_manager=readonly', '--allow-root'],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 60
        while True:
            if server.poll() is not None: pytest.fail(f'JupyterLab exited ({server.returncode}):\n' + (tmp_path/'jupyterlab.log').read_text()[-3000:])
            try:
                with urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2): break
            except OSError:
                if time.time() > deadline: pytest.fail('JupyterLab did not answer in 60 s:\n' + (tmp_path/'jupyterlab.log').read_text()[-3000:])
                time.sleep(0.5)
        yield url, token
    finally:
        try: os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down; `leftovers` ends what remains
        except ProcessLookupError: pass
        try: server.wait(15)
        except subprocess.TimeoutExpired: os.killpg(server.pid, signal.SIGKILL); server.wait()
        log.close()

# the notebook panel's progress: code cells, how many ran, the kernel's status, and the first error
_PROGRESS = """() => {
  const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
  if (!k || !p.content || !p.content.model) return null;
  let n = 0, ran = 0, error = null;
  for (const c of p.content.model.cells) {
    if (c.type !== 'code') continue;
    n++; if (c.executionCount) ran++;
    for (const o of c.outputs.toJSON()) if (o.output_type === 'error' && !error) error = o.ename + ': ' + o.evalue + '\\n' + o.traceback.join('\\n');
  }
  return {n, ran, status: k.status, error};
}"""

def _miou_numbers(text): return re.findall(r'mIoU [\d.]+%', text)

def test_threshold_slider_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import sync_playwright, expect
    from wsss_nb.data import draw_scene, SceneConfig
    url, token = lab
    photo = tmp_path/'photo.png'; Image.fromarray(draw_scene(SceneConfig(), 10**6 + 7)['image']).save(photo)
    t0 = time.time()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1600, 'height': 1000})
            page.goto(f'{url}/lab/tree/{NOTEBOOK.name}?token={token}')
            page.wait_for_function(f'() => {{ const s = ({_PROGRESS})(); return s && s.status === "idle"; }}', timeout=90_000)
            t_open = time.time()
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            deadline, s = time.time() + 400, None
            while time.time() < deadline:
                s = page.evaluate(_PROGRESS)
                if s['error']: pytest.fail('a cell failed in JupyterLab:\n' + re.sub(r'\x1b\[[0-9;]*m', '', s['error']))
                if s['ran'] == s['n'] and s['status'] == 'idle': break
                time.sleep(1)
            else: pytest.fail(f'the notebook did not finish in time: {s}')
            t_ran = time.time()
            explorer = page.locator('.wsss-cam-explorer').last
            explorer.scroll_into_view_if_needed()
            text = explorer.locator('.widget-html-content').first
            expect(text).to_contain_text('mIoU', timeout=30_000)
            before, picture = text.inner_text(), explorer.locator('img').first
            shown = picture.get_attribute('src')
            handle = explorer.locator('.widget-slider .noUi-handle').first
            start = float(re.search(r'threshold ([\d.]+)', before)[1])
            key, step = ('ArrowLeft', -0.05) if start > 0.5 else ('ArrowRight', 0.05)
            for n in (1, 2):  # focus the slider's handle and press an arrow key; again once the explorer has answered
                handle.press(key)
                expect(text).to_contain_text(f'threshold {start + n * step:.2f}', timeout=30_000)
            after = text.inner_text()
            expect(picture).not_to_have_attribute('src', shown, timeout=30_000)  # the figure redrawn too
            page.screenshot(path=tmp_path/'jupyterlab.png')
            explorer.screenshot(path=tmp_path/'cam_explorer.png')
            t_slider = time.time()
            mine = page.locator('.wsss-image-explorer').last  # upload an image through the browser's file input
            mine.scroll_into_view_if_needed()
            utext, upicture = mine.locator('.widget-html-content').first, mine.locator('img').first
            expect(utext).to_contain_text('a new scene', timeout=30_000)
            shown = upicture.get_attribute('src')
            with page.expect_file_chooser() as chooser: mine.locator('.widget-upload').first.click()
            chooser.value.set_files(str(photo))
            expect(utext).to_contain_text('photo.png', timeout=30_000)
            expect(upicture).not_to_have_attribute('src', shown, timeout=30_000)
            mine.screenshot(path=tmp_path/'image_explorer.png')
        finally:
            browser.close()
    assert _miou_numbers(after) != _miou_numbers(before), (before, after)
    assert (tmp_path/'jupyterlab.png').stat().st_size > 10_000
    print(f'{before}\n{after}\nJupyterLab opened the notebook in {t_open - t0:.0f} s, ran it in {t_ran - t_open:.0f} s, the slider took {t_slider - t_ran:.0f} s, the upload {time.time() - t_slider:.0f} s; screenshots in {tmp_path}')
