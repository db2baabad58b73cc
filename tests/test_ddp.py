"The shared training loop under DDP, two gloo processes on the CPU: plug-ins with parameters of their own, and the loss history."
import datetime, json, sys
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

def _train(rank, store, out, skip):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))  # (a process left waiting fails, not hangs)
    torch.manual_seed(0); model, plugin = _Line(), _Offset(skip)
    learn = Learner(model, make_loader(_Points(), 2, True), lambda o, b: ((o['y'] - b['target']) ** 2).mean(), TrainConfig(epochs=2, lr=0.1), (plugin,), progress=False)
    hist = learn.fit()
    out.with_name(f'{out.name}{rank}.json').write_text(json.dumps(dict(hist=hist, w=plugin.w.item(), fc=model.fc.weight.flatten().tolist())))
    dist.destroy_process_group()

@pytest.mark.parametrize('skip', [None, 1])
def test_plugin_parameters_and_history_over_processes(tmp_path, skip):
    "Both processes end with the same plug-in parameter and model (its gradient averaged even where one process's plug-in gave no loss: that hung before), and the same history: the mean over both shards."
    torch.multiprocessing.spawn(_train, (tmp_path/'store', tmp_path/'rank', skip), nprocs=2)
    r = [json.loads((tmp_path/f'rank{i}.json').read_text()) for i in (0, 1)]
    assert r[0]['w'] == r[1]['w'] != 0 and r[0]['fc'] == r[1]['fc']
    assert r[0]['hist'] == r[1]['hist'] and list(r[0]['hist'][0]) == ['loss', 'offset']
