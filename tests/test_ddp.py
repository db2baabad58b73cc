"The shared training loop under DDP, two gloo processes on the CPU: plug-ins with parameters of their own, the loss history, and the wait for a stuck process (at a barrier, and in a training)."
import datetime, json, os, subprocess, sys, time
import pytest, torch, torch.nn as nn, torch.distributed as dist
from wsss_nb.cam import Learner, Plugin, make_loader
from wsss_nb.core import TrainConfig

class _Line(nn.Module):
    def __init__(self): super().__init__(); self.fc = nn.Linear(2, 1)
    def forward(self, x): return dict(y=self.fc(x))
    def param_groups(self): return [[], list(self.parameters())]

class _Points(torch.utils.data.Dataset):
    def __len__(self): return 8
    def __getitem__(self, i): return dict(image=torch.tensor([float(i), 1.]), target=torch.tensor([float(i % 3)]))

class _Offset(Plugin):
    "A plug-in with a parameter of its own, whose loss the process of rank `skip` leaves out (a batch with nothing for its term, say)."
    name = 'offset'
    def __init__(self, skip): self.w, self.skip = torch.zeros(1, requires_grad=True), skip
    def parameters(self): return [self.w]
    def loss(self, learn): return None if dist.get_rank() == self.skip else ((learn.out['y'] - self.w) ** 2).mean()

def _end():
    "Leave the process group, then end the process without Python's finalization. Gloo's worker threads release a collective's tensors after it returns; one still releasing all_gather_object's (`Learner.fit`'s last epoch, just before) takes the GIL while the interpreter finalizes, and the process aborts (SIGABRT, its results written: PyTorch's race, described in pytorch/pytorch#179291; seen here in 4 of 11 runs of this file after test_browser and test_cuda). A process whose DDP all-reduce timed out can abort so too, in its finalization (\"terminate called without an active exception\": once in a CI run of 2026-12-03)."
    dist.destroy_process_group(); os._exit(0)

def _train(rank, store, out, skip):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))  # (a process left waiting fails, not hangs)
    torch.manual_seed(0); model, plugin = _Line(), _Offset(skip)
    learn = Learner(model, make_loader(_Points(), 2, True), lambda o, b: ((o['y'] - b['target']) ** 2).mean(), TrainConfig(epochs=2, lr=0.1), (plugin,), progress=False)
    hist = learn.fit()
    out.with_name(f'{out.name}{rank}.json').write_text(json.dumps(dict(hist=hist, w=plugin.w.item(), fc=model.fc.weight.flatten().tolist())))
    _end()

@pytest.mark.parametrize('skip', [None, 1])
def test_plugin_parameters_and_history_over_processes(tmp_path, skip):
    "Both processes end with the same plug-in parameter and model (its gradient averaged even where one process's plug-in gave no loss: that hung before), and the same history: the mean over both shards."
    torch.multiprocessing.spawn(_train, (tmp_path/'store', tmp_path/'rank', skip), nprocs=2)
    r = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in (0, 1)]
    assert r[0]['w'] == r[1]['w'] != 0 and r[0]['fc'] == r[1]['fc']
    assert r[0]['hist'] == r[1]['hist'] and list(r[0]['hist'][0]) == ['loss', 'offset']

class _Rank0Loss(Plugin):
    "A loss only process 0 has, on a parameter of the plug-in's own; records the images of each step."
    name = 'rank0'
    def __init__(self): self.w, self.seen = torch.zeros(2, requires_grad=True), []
    def parameters(self): return [self.w]
    def before_batch(self, learn): self.seen.append(learn.batch['index'].tolist())
    def loss(self, learn): return ((self.w - 1) ** 2).sum() if dist.get_rank() == 0 else None

class _Indexed(_Points):
    def __getitem__(self, i): return dict(super().__getitem__(i), index=i)

def _train_rank0(rank, store, out):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))
    torch.manual_seed(0); plugin = _Rank0Loss()
    cfg = TrainConfig(epochs=2, lr=0.1, momentum=0, weight_decay=0, schedule='constant')
    hist = Learner(_Line(), make_loader(_Indexed(), 4, True), lambda o, b: ((o['y'] - b['target']) ** 2).mean(), cfg, (plugin,), progress=False).fit()
    out.with_name(f'{out.name}{rank}.json').write_text(json.dumps(dict(hist=[e['rank0'] for e in hist], w=plugin.w.tolist(), seen=plugin.seen)))
    _end()

def test_plugin_gradient_mean_history_and_order(tmp_path):
    "The plug-in's gradient is the mean over the processes (process 1's zero), each epoch's term the mean over both shards (process 1's count 0), and each epoch a new order of each process's half of the images."
    torch.multiprocessing.spawn(_train_rank0, (tmp_path/'store', tmp_path/'rank'), nprocs=2)
    r = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in (0, 1)]
    assert r[0]['w'] == r[1]['w'] and r[0]['w'] == pytest.approx([0.19, 0.19])  # 2 steps of lr 0.1 from 0, gradients (-2 + 0) / 2 then (-1.8 + 0) / 2
    assert r[0]['hist'] == r[1]['hist'] and r[0]['hist'] == pytest.approx([1.0, 0.81])  # (2 + 0) / 2, (1.62 + 0) / 2
    assert sorted(r[0]['seen'][0] + r[1]['seen'][0]) == list(range(8)) and r[0]['seen'][0] != r[0]['seen'][1]

def _wait(rank, port, out, timeout):
    import os
    from wsss_nb.core import ProcessFailed, barrier
    from wsss_nb.pipeline import init_distributed
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), WORLD_SIZE='2', RANK=str(rank), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE='2')
    torch.set_num_threads(1); init_distributed('cpu', timeout)
    if rank == 1: time.sleep(timeout.total_seconds() + 4)  # (stuck: it comes to no barrier in time)
    else:
        t = time.monotonic()
        try: barrier(); said = None
        except ProcessFailed as e: said = str(e)
        out.write_text(json.dumps(dict(said=said, waited=time.monotonic() - t)))
    dist.destroy_process_group()

def test_dist_timeout_finds_a_stuck_process(tmp_path):
    "`init_distributed`'s timeout (`--dist-timeout`) is how long a process waits at a barrier for one that does not come: then it fails, saying so."
    torch.multiprocessing.spawn(_wait, (29561, tmp_path/'rank0.json', datetime.timedelta(seconds=4)), nprocs=2)
    r = json.loads((tmp_path/'rank0.json').read_text())
    assert r['said'] and r['said'].startswith("another process did not come within the processes' timeout"), r
    assert 4 <= r['waited'] < 10, r

class _Stuck(Plugin):
    "No loss of its own; process 1 is stuck for `secs` in its third step (a slow file system, a bug that loops), so process 0 waits for it in DDP's all-reduce."
    name = 'stuck'
    def __init__(self, secs): self.secs, self.n = secs, 0
    def loss(self, learn):
        self.n += 1
        if dist.get_rank() == 1 and self.n == 3: time.sleep(self.secs)

def _train_stuck(rank, store, out, timeout):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2, timeout=timeout)
    learn = Learner(_Line(), make_loader(_Points(), 2, True), lambda o, b: ((o['y'] - b['target']) ** 2).mean(), TrainConfig(epochs=3, lr=0.1), (_Stuck(timeout.total_seconds() + 4),), progress=False)
    t = time.monotonic()
    try: learn.fit(); said = None
    except Exception as e: said = f'{type(e).__name__}: {e}'
    out.with_name(f'{out.name}{rank}.json').write_text(json.dumps(dict(said=said, waited=time.monotonic() - t)))
    _end()

def test_dist_timeout_in_a_training(tmp_path):
    "A process stuck in a training: the other, waiting in DDP's all-reduce, fails after the processes' timeout, saying so in one line (`collective_failures`), not with gloo's traceback."
    torch.multiprocessing.spawn(_train_stuck, (tmp_path/'store', tmp_path/'rank', datetime.timedelta(seconds=4)), nprocs=2)
    r = json.loads((tmp_path/'rank0.json').read_text())
    assert r['said'] and r['said'].startswith("ProcessFailed: another process did not come within the processes' timeout"), r
    assert 4 <= r['waited'] < 15, r
    assert json.loads((tmp_path/'rank1.json').read_text())['said'], 'the stuck process fails too, where it comes back to a closed group'

_SCRIPT = """import atexit, torch, torch.distributed as dist
atexit.register(lambda: print('in the group at its end' if dist.is_initialized() else 'left the group', flush=True))  # (registered first: runs last)
from wsss_nb.pipeline import init_distributed
torch.set_num_threads(1); init_distributed('cpu')
t = torch.ones(1); dist.all_reduce(t); print(f'sum {t.item():g}', flush=True)
"""

def test_a_script_leaves_the_group_at_its_end(tmp_path):
    "A script of its own under torchrun, ending just after a collective: `init_distributed` leaves the group before Python finalizes, where gloo's threads otherwise abort about one script in two."
    (tmp_path/'mine.py').write_text(_SCRIPT)
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', '29562', str(tmp_path/'mine.py')], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count('sum 2') == 2 and p.stdout.count('left the group') == 2 and 'in the group' not in p.stdout, p.stdout
