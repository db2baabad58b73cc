"On a CUDA device (skipped without one): every method trains there in mixed precision, a killed CUDA training resumes, `--deterministic` runs repeat bit for bit, `predict` runs there, the CRF picks CuPy with Numba's labels, and torchrun runs a process per GPU (NCCL, where there are two or more)."
import signal, subprocess, sys, time
import numpy as np, pytest, torch
from wsss_nb.core import load_json
from test_cli import metrics, tiny, wsss

CUDA = tiny('cuda')

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='no usable CUDA device')

def test_every_method_in_float16_on_cuda(tmp_path):
    "CONTA, likelihood and AMN composed, float16 with the gradient scaler, data-loading workers, the CRF on the GPU; then `predict` on the GPU."
    out = tmp_path/'run'
    p = wsss('run', '--out', str(out), *CUDA, '--amp', 'float16', '--method', 'conta,likelihood,amn', '--rounds', '1', '--crf', '--workers', '2')
    assert p.returncode == 0, p.stderr[-3000:]
    res = load_json(out/'results.json')
    assert [r['round'] for r in res['rounds']] == [0, 1] and all(0 < r['pseudo_mask_miou'] < 1 for r in res['rounds'])
    assert 0 < res['amn']['pseudo_mask_miou'] < 1 and 0 <= res['seg_miou'] <= 1 and load_json(out/'config.json')['cam_train']['amp'] == 'float16'
    for f in ('cam/classifier.pt', 'seg/seg.pt', 'amn/amn.pt', 'rounds/1/cam/classifier.pt', 'rounds/1/seg/seg.pt'):  # networks saved on the CPU: the run opens on a machine without a GPU
        assert all(v.device.type == 'cpu' for v in torch.load(out/f, weights_only=True).values()), f
    image = out/'data/JPEGImages'/f"{(out/'ids/val.txt').read_text().split()[0]}.png"
    p = wsss('predict', str(out), str(image), '--device', 'cuda', '--crf', '--out', str(tmp_path/'pred'))
    assert p.returncode == 0 and (tmp_path/'pred'/image.name).exists(), p.stderr[-3000:]

def test_bfloat16_amn_on_cuda(tmp_path):
    p = wsss('run', '--out', str(tmp_path/'run'), *CUDA, '--amp', 'bfloat16', '--method', 'amn')
    assert p.returncode == 0, p.stderr[-3000:]
    res = load_json(tmp_path/'run/results.json')
    assert 0 < res['cam']['pseudo_mask_miou'] < 1 and 0 < res['amn']['pseudo_mask_miou'] < 1

def test_killed_cuda_training_resumes(tmp_path):
    "SIGTERM between two epochs of a CUDA training (its CUDA random state in the checkpoint): the same command goes on from the checkpoint and ends as the uninterrupted run, to CUDA's nondeterminism."
    six = [*CUDA, '--crf', '--epochs', '6']  # (five epochs after the first checkpoint: time for the signal to land before the training ends on a fast GPU)
    assert wsss('run', '--out', str(tmp_path/'ref'), *six).returncode == 0
    out, args = tmp_path/'run', [sys.executable, '-m', 'wsss_nb.pipeline', 'run', '--out', str(tmp_path/'run'), *six]
    p, ck = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), out/'cam/.classifier.pt.partial'
    t0 = time.time()
    while not ck.exists() and p.poll() is None and time.time() - t0 < 300: time.sleep(0.02)
    p.send_signal(signal.SIGTERM); _, err = p.communicate(timeout=300)
    assert p.returncode == 143 and ck.exists() and not (out/'cam/classifier.pt').exists(), err[-3000:]
    p = wsss('run', '--out', str(out), *six)
    assert p.returncode == 0, p.stderr[-3000:]
    res, ref = load_json(out/'results.json'), load_json(tmp_path/'ref/results.json')
    assert not list(out.rglob('.*.partial')) and 0 < res['pseudo_mask_miou'] < 1
    for k in ('pseudo_mask_miou', 'crf_pseudo_mask_miou', 'boundary_f', 'seg_miou'): assert abs(res[k] - ref[k]) < 1e-3, (k, res[k], ref[k])  # (on an H200 two CUDA runs of a seed differed by ~1e-5)

def test_crf_picks_cupy_and_gives_numbas_labels():
    "backend='auto' is CuPy here; on a scene image with a CAM-like unary it labels as the Numba backend does, the same on every run."
    from wsss_nb.data import SceneConfig, draw_scene
    from wsss_nb.kernels.crf import cuda_usable, dense_crf, resolve_backend, unary_from_softmax
    if not cuda_usable(): pytest.skip('CuPy, the [gpu] extra, is not installed or sees no CUDA device')
    assert resolve_backend() == 'cupy'
    scene = draw_scene(SceneConfig(size=192), 0); image, mask = scene['image'], scene['mask']
    rng = np.random.default_rng(1)
    prob = np.stack([mask == k for k in np.unique(mask)]).astype(np.float32) + rng.uniform(0, 1.5, (len(np.unique(mask)), *mask.shape)).astype(np.float32)
    U = unary_from_softmax(prob / prob.sum(0))
    Qg, Qn = dense_crf(image, U), dense_crf(image, U, backend='numba')
    assert (Qg.argmax(0) == Qn.argmax(0)).mean() > 0.999 and np.abs(Qg.sum(0) - 1).max() < 1e-4
    assert np.array_equal(dense_crf(image, U), Qg)

def test_deterministic_cuda_runs_are_the_same(tmp_path):
    "`--deterministic`: two CUDA runs of a seed, every method composed with the CRF and loader workers, give the same figures bit for bit."
    args = [*CUDA, '--deterministic', '--crf', '--method', 'conta,likelihood,amn', '--rounds', '1', '--workers', '2']
    for k in ('a', 'b'): assert (p := wsss('run', '--out', str(tmp_path/k), *args)).returncode == 0, p.stderr[-3000:]
    a, b = (metrics(load_json(tmp_path/k/'results.json')) for k in ('a', 'b'))
    assert a == b and 0 < a['pseudo_mask_miou'] < 1, [(k, a[k], b[k]) for k in a if a[k] != b[k]]
    env = load_json(tmp_path/'a/results.json')['environment']
    assert env['deterministic'] and env['device'].startswith('cuda') and env['gpu'], env

def torchrun(n:int, port:int, *args, tmp_path):
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', str(n), '--master_port', str(port), '-m', 'wsss_nb.pipeline', 'run', *args],
                          capture_output=True, text=True, timeout=600)

def test_torchrun_more_processes_than_gpus(tmp_path):
    "A process more than the machine's GPUs is refused with one line (not CUDA's 'invalid device ordinal' in one process while the others wait), and makes no run folder."
    n = torch.cuda.device_count()
    p = torchrun(n + 1, 29544, '--out', str(tmp_path/'run'), *CUDA, tmp_path=tmp_path)
    assert p.returncode != 0 and f'wsss_nb: error: torchrun started {n + 1} processes on this machine, which has {n} CUDA device(s)' in p.stderr, p.stderr[-3000:]
    assert 'invalid device ordinal' not in p.stderr and not (tmp_path/'run').exists()

@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='fewer than two CUDA devices')
def test_torchrun_on_two_gpus(tmp_path):
    "Two processes on two GPUs (NCCL): they train together, share the per-image stages with the CRF and sum their scores, as the CPU's gloo processes do in tests/test_cli.py."
    p = torchrun(2, 29545, '--out', str(tmp_path/'ddp'), *CUDA, '--crf', '--method', 'conta,amn', '--rounds', '1', '--dist-timeout', '5', tmp_path=tmp_path)  # (a process left waiting: NCCL's watchdog ends it in 5 minutes)
    assert p.returncode == 0, p.stderr[-3000:]
    assert 'using the device under current context' not in p.stderr, p.stderr[-3000:]  # (the group bound to each process's GPU: NCCL's barrier does not fall back to the current device)
    res = load_json(tmp_path/'ddp/results.json')
    assert res['environment']['processes'] == 2 and all(0 < r['pseudo_mask_miou'] < 1 for r in res['rounds']) and 0 < res['amn']['pseudo_mask_miou'] < 1
    assert len(list((tmp_path/'ddp/pseudo_mask').glob('*.png'))) == 48 and 0 <= res['seg_miou'] <= 1
