"The `wsss_nb` command as a user runs it: a tiny run, determinism, resuming, the real VOC sample, and bad input."
import json, os, re, shutil, platform, signal, subprocess, sys, time
from pathlib import Path
import numba, numpy as np, pytest, torch, torchvision
from PIL import Image
from wsss_nb.core import save_mask, load_json, save_json
from wsss_nb.data import write_scene, SceneConfig, find_voc_sample
from wsss_nb.pipeline import main

def tiny(device:str='cpu'): return ['--n-train', '48', '--n-val', '16', '--epochs', '2', '--no-progress', '--device', device]
TINY = tiny()  # on the CPU, where a seed gives the same figures bit for bit (tests/test_cuda.py runs them on a GPU)
KEYS = ('pseudo_mask_miou', 'best_threshold', 'seg_miou', 'threshold_curve', 'context_leakage', 'part_recall', 'body_recall',
        'threshold_spread', 'boundary_f', 'stage_seconds')

def wsss(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, '-m', 'wsss_nb.pipeline', *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=None if env is None else {**os.environ, **env})

def cli_error(capsys, *args):
    "Run the command in-process (fast) where it must fail: its exit code and stderr."
    with pytest.raises(SystemExit) as e: main(list(args))
    return e.value.code, capsys.readouterr().err

def png_info(path) -> tuple:
    "(mode, size) of a PNG, the file closed again"
    with Image.open(path) as im: return im.mode, im.size

def metrics(res): return {k: v for k, v in res.items() if 'seconds' not in k and k != 'environment'}  # the figures (not the times, nor what ran them)

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'run'
    p = wsss('run', '--out', str(out), '--seed', '1', '--crf', *TINY)
    assert p.returncode == 0, p.stderr
    return out, p

def test_run_writes_the_run_folder(tiny_run):
    out, p = tiny_run
    res = load_json(out/'results.json')
    for k in KEYS: assert k in res, k
    assert 0 < res['pseudo_mask_miou'] < 1 and 0 <= res['seg_miou'] <= 1
    assert len(list((out/'pseudo_mask').glob('*.png'))) == 48 and len(list((out/'cam/npz').glob('*.npz'))) == 48
    assert len(list((out/'seg/pred').glob('*.png'))) == 16
    for f in ('cams.png', 'threshold_curve.png'): assert (out/'figures'/f).stat().st_size > 0
    assert 'pseudo-mask mIoU' in p.stdout and '+CRF' in p.stdout  # the results table
    assert res['method'] == 'baseline+crf' and 0 < res['crf_pseudo_mask_miou'] < 1 and 0 <= res['crf_boundary_f'] <= 1
    env = res['environment']  # the command keeps the memory PyTorch frees (`keep_freed_memory`), but where your own threshold is set
    assert env['freed_memory_kept'] == (platform.libc_ver()[0] == 'glibc' and env['own_malloc_setting'] is None), env
    stages = [m.group(1) for m in re.finditer(r'^wsss_nb: (\w+): [0-9.]+ s', p.stderr, re.M)]  # the run's log: each stage as it ends, each epoch
    assert stages == ['data', 'train_cam', 'make_cam', 'eval_cam', 'pseudo_mask', 'train_seg', 'eval_seg', 'figures'], p.stderr
    assert f"wsss_nb: eval_cam: {res['stage_seconds']['eval_cam']:.1f} s, pseudo_mask_miou {res['pseudo_mask_miou']:.1%}\n" in p.stderr, p.stderr
    assert re.findall(r'^wsss_nb: (\w+): epoch (\d/\d): loss [0-9.]+ \(', p.stderr, re.M) == [('classifier', '1/2'), ('classifier', '2/2'), ('segmentation', '1/1')], p.stderr  # (--epochs 2: the segmentation's half)

def test_the_run_folder_is_as_the_readme_says(tiny_run):
    "The README's paragraph on a run folder (`A run folder holds ...`): each file it names is in a run's folder (this one ran with --crf), each figure it names in its results.json (but `cam` and `amn`, an AMN run's sections)."
    out, _ = tiny_run
    para = next(l for l in (Path(__file__).resolve().parent.parent/'README.md').read_text().splitlines() if l.startswith('A run folder holds'))
    named = re.findall(r'`([^`]+)`', para)
    files, keys = [n for n in named if '/' in n or n.endswith('.json')], [n for n in named if re.fullmatch(r'[a-z_]+', n) and n not in ('cam', 'amn')]
    assert len(files) >= 10 and len(keys) >= 14, named
    for f in files: assert list(out.glob(f.rstrip('/'))), f
    res = load_json(out/'results.json')
    assert not [k for k in keys if k not in res], [k for k in keys if k not in res]

def test_same_seed_same_metrics(tiny_run, tmp_path):
    "A seed's run on the CPU gives the same figures bit for bit; `--deterministic` (for CUDA) changes nothing there."
    out, _ = tiny_run
    p = wsss('run', '--out', str(tmp_path/'again'), '--seed', '1', '--crf', '--deterministic', *TINY)
    assert p.returncode == 0, p.stderr
    assert metrics(load_json(tmp_path/'again/results.json')) == metrics(load_json(out/'results.json'))

def test_resume_after_a_killed_stage(tiny_run, tmp_path):
    out, _ = tiny_run
    run = tmp_path/'run'; shutil.copytree(out, run)
    for stage in ('train_seg', 'eval_seg', 'figures'): (run/'stages'/f'{stage}.json').unlink()
    shutil.rmtree(run/'seg')
    (run/'results.json').unlink()
    p = wsss('run', '--out', str(run), '--seed', '1', '--crf', *[a for a in TINY if a != '--no-progress'])  # (stderr a pipe, not a terminal: no progress bars without being told)
    assert p.returncode == 0 and '\r' not in p.stderr and 'it/s' not in p.stderr, p.stderr
    res, ref = load_json(run/'results.json'), load_json(out/'results.json')
    assert metrics(res) == metrics(ref)
    assert res['stage_seconds']['train_cam'] == ref['stage_seconds']['train_cam']  # not re-run
    assert re.findall(r'^wsss_nb: (\w+): [0-9.]+ s', p.stderr, re.M) == ['train_seg', 'eval_seg', 'figures'], p.stderr  # the log names what was done again

def test_resume_within_a_stage(tiny_run, tmp_path, monkeypatch, capsys):
    "Ctrl-C within a per-image stage keeps the images it finished: the same command makes only the others, with the uninterrupted run's figures; once an earlier stage is made again, they are made again too."
    import wsss_nb.pipeline as pl, wsss_nb.seg as sg
    out, _ = tiny_run
    run = tmp_path/'run'; shutil.copytree(out, run)
    for stage in ('pseudo_mask', 'train_seg', 'eval_seg', 'figures'): (run/'stages'/f'{stage}.json').unlink()
    for d in ('pseudo_mask', 'seg', 'figures'): shutil.rmtree(run/d)
    (run/'results.json').unlink()
    made, save = [], pl.save_mask
    def patch(f): monkeypatch.setattr(pl, 'save_mask', f); monkeypatch.setattr(sg, 'save_mask', f)  # the pipeline's stages and the held-out evaluation write with it
    def save_until(stop):
        def f(mask, path):
            if len(made) == stop: raise KeyboardInterrupt
            made.append(Path(path).name); save(mask, path)
        return f
    again = ['run', '--out', str(run), '--seed', '1', '--crf', *TINY]
    patch(save_until(5))
    with pytest.raises(SystemExit): main(again)
    kept = sorted(p.name for p in (run/'.pseudo_mask.partial').iterdir()); assert kept == sorted(made) and len(kept) == 5
    made.clear(); patch(save_until(None)); capsys.readouterr()
    main(again)
    assert 'stages done, and the kept work of an interrupted one)' in capsys.readouterr().err
    assert len(made) == 48 - 5 + 2 * 16 and not set(made) & set(kept)  # the other pseudo-masks, then the held-out predictions, with and without the CRF
    assert metrics(load_json(run/'results.json')) == metrics(load_json(out/'results.json'))  # its CRF figures count the kept masks too
    for stage in ('make_cam', 'pseudo_mask', 'train_seg', 'eval_seg', 'figures'): (run/'stages'/f'{stage}.json').unlink()
    shutil.rmtree(run/'pseudo_mask'); made.clear(); patch(save_until(5))
    with pytest.raises(SystemExit): main(again)
    (run/'stages/make_cam.json').unlink(); made.clear(); patch(save_until(None))
    main(again)
    assert len(made) == 48 + 2 * 16  # new CAMs: the kept pseudo-masks were made from the old ones, so all are made again
    for stage in ('eval_seg', 'figures'): (run/'stages'/f'{stage}.json').unlink()
    shutil.rmtree(run/'seg/pred'); made.clear(); patch(save_until(7))  # stopped within the held-out evaluation: 3 images done, the 4th's CRF prediction written alone
    with pytest.raises(SystemExit): main(again)
    made.clear(); patch(save_until(None)); main(again)
    assert len(made) == 2 * (16 - 3)  # the 4th image and the others, with and without the CRF
    assert metrics(load_json(run/'results.json')) == metrics(load_json(out/'results.json'))

def test_resume_within_training(tiny_run, tmp_path, monkeypatch, capsys):
    "A run killed between two epochs resumes its training after the last finished epoch, and ends as the uninterrupted run."
    from wsss_nb.cam import Learner
    out, _ = tiny_run
    run = tmp_path/'run'; shutil.copytree(out, run)
    for f in run.glob('stages/*.json'):
        if f.stem != 'data': f.unlink()
    for d in ('cam', 'pseudo_mask', 'seg', 'figures'): shutil.rmtree(run/d)
    (run/'results.json').unlink()
    save, saved = Learner._save, []
    def save_then_kill(self, scaler): save(self, scaler); raise KeyboardInterrupt
    monkeypatch.setattr(Learner, '_save', save_then_kill)
    again = ['run', '--out', str(run), '--seed', '1', '--crf', *TINY]
    with pytest.raises(SystemExit): main(again)
    assert (run/'cam/.classifier.pt.partial').exists() and not (run/'cam/classifier.pt').exists()
    monkeypatch.setattr(Learner, '_save', lambda self, scaler: (saved.append(self.desc), save(self, scaler)))
    capsys.readouterr(); main(again)
    assert re.findall(r'^wsss_nb: classifier: epoch (\d)/2', capsys.readouterr().err, re.M) == ['2']  # the log goes on from the killed training's last epoch
    assert metrics(load_json(run/'results.json')) == metrics(load_json(out/'results.json')) and not list(run.rglob('.*.partial'))
    assert 'classifier' not in saved  # it went on from its second (and last) epoch

def test_folder_older_than_an_option_resumes(tiny_run, tmp_path):
    "A run folder written before an option existed holds that option at its default: it is the same run."
    out, _ = tiny_run
    run = tmp_path/'run'; shutil.copytree(out, run)
    cfg = load_json(run/'config.json'); del cfg['scene']['location_bias']; (run/'config.json').write_text(json.dumps(cfg))
    p = wsss('run', '--out', str(run), '--seed', '1', '--crf', *TINY)
    assert p.returncode == 0, p.stderr
    assert load_json(run/'config.json')['scene']['location_bias'] == 0.0 and metrics(load_json(run/'results.json')) == metrics(load_json(out/'results.json'))
    p = wsss('run', '--out', str(run), '--seed', '1', '--crf', '--location-bias', '0.5', *TINY)
    assert p.returncode != 0 and 'scene' in p.stderr

def test_different_options_same_folder_refused(tiny_run):
    out, _ = tiny_run
    p = wsss('run', '--out', str(out), '--seed', '2', '--crf', *TINY)
    assert p.returncode != 0 and 'options differ: scene.seed, seed)' in p.stderr and 'resum' not in p.stderr and (out/'results.json').exists(), p.stderr  # (nor the note that the same command resumes: it cannot)
    p = wsss('run', '--out', str(out), '--seed', '1', '--crf', '--amn-fg', '0.4', *TINY)  # an option the run does not use: the same run
    assert p.returncode == 0 and '--amn-fg not used by this run' in p.stderr and load_json(out/'config.json')['amn']['fg_threshold'] == 0.3, p.stderr

def test_second_run_in_a_live_folder_refused(tmp_path):
    "The same command started again while the first still runs (a requeued job, a second terminal): refused, the first going on undisturbed."
    out, args = tmp_path/'run', ['run', '--out', str(tmp_path/'run'), *TINY, '--epochs', '10000']  # (a training that outlasts the second command's start on a loaded machine)
    first = subprocess.Popen([sys.executable, '-m', 'wsss_nb.pipeline', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out/'stages/data.json').exists() and first.poll() is None and time.time() - t0 < 300: time.sleep(0.05)
    try: second = subprocess.run([sys.executable, '-m', 'wsss_nb.pipeline', *args], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired: first.kill(); pytest.fail('the second command went on in the live folder')
    assert second.returncode == 1 and f'{out} is in use by another process' in second.stderr and 'resum' not in second.stderr, second.stderr
    assert first.poll() is None, first.communicate()  # still training
    first.send_signal(signal.SIGTERM); _, err = first.communicate(timeout=120)
    assert first.returncode == 143 and 'interrupted (SIGTERM)' in err, err

def test_predict_segments_image_files(tiny_run, tmp_path):
    "`wsss_nb predict` labels image files and folders with a finished run's network: held-out images as its own evaluation did, any size, JPEG too."
    out, _ = tiny_run
    run = tmp_path/'run'; shutil.copytree(out, run)
    ids = (run/'data/ImageSets/Segmentation/val.txt').read_text().split()[:2]
    (tmp_path/'photos').mkdir(); Image.open(run/'data/JPEGImages'/f'{ids[0]}.png').resize((100, 80)).save(tmp_path/'photos/photo.jpg')
    p = wsss('predict', str(run), *(str(run/'data/JPEGImages'/f'{i}.png') for i in ids), str(tmp_path/'photos'), '--overlay', '--device', 'cpu')  # files and a folder (on the CPU, as the run's own evaluation)
    assert p.returncode == 0, p.stderr
    for i in ids:
        assert np.array_equal(np.array(Image.open(run/'predict'/f'{i}.png')), np.array(Image.open(run/'seg/pred'/f'{i}.png')))
        assert png_info(run/'predict'/f'{i}_overlay.png')[1] == (64, 64)
    assert png_info(run/'predict/photo.png') == ('P', (100, 80))
    lines, classes = p.stdout.splitlines(), load_json(run/'results.json')['classes']
    assert len(lines) == 3 and lines[2].startswith(f"{run/'predict/photo.png'}: ")
    shares = [x.rsplit(' ', 1) for x in lines[2].split(': ', 1)[1].split(', ')]  # "class share%" per class in the label map
    assert all(c in classes for c, _ in shares) and abs(sum(int(v[:-1]) for _, v in shares) - 100) <= len(shares)

def test_evaluate_scores_a_folder(tiny_run, tmp_path, capsys):
    "`wsss_nb evaluate` scores a folder of label maps: a run's predictions give the run's own figures; a missing one is named."
    out, _ = tiny_run
    res, classes = load_json(out/'results.json'), load_json(out/'results.json')['classes']
    p = wsss('evaluate', str(out/'seg/pred'), '--root', str(out/'data'), '--split', 'val')
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert [l.split()[0] for l in lines[:len(classes)]] == [c.split()[0] for c in classes]
    assert lines[-1] == f"mIoU {res['seg_miou']:.1%}, boundary F {res['seg_boundary_f']:.1%} over the 16 images of val"
    preds = tmp_path/'pred'; shutil.copytree(out/'seg/pred', preds); (preds/'scene_000050.png').unlink()
    code, err = cli_error(capsys, 'evaluate', str(preds), '--root', str(out/'data'))
    assert code != 0 and 'scene_000050.png' in err, err
    p = wsss('evaluate', str(out/'cam/npz'), '--root', str(out/'data'))  # class maps: their threshold curve, on the training images
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1].startswith(f"best threshold {res['best_threshold']:.2f}: mIoU {res['pseudo_mask_miou']:.1%}, boundary F {res['boundary_f']:.1%}")
    assert p.stdout.splitlines()[-1].endswith('(train)') and f"0.50 {res['threshold_curve']['0.5']:.1%}" in p.stdout
    cams = tmp_path/'cams'; shutil.copytree(out/'cam/npz', cams)
    for f in list(cams.glob('*.npz')): shutil.copy(out/'seg/pred/scene_000050.png', cams/f'{f.stem}.png')  # each map beside its picture: still class maps
    capsys.readouterr(); main(['evaluate', str(cams), '--root', str(out/'data')]); assert capsys.readouterr().out.splitlines()[-1] == p.stdout.splitlines()[-1]

def test_evaluate_against_chosen_ground_truth(tiny_run, tmp_path, capsys):
    "Where a dataset has SegmentationClassAug beside SegmentationClass, the first is the default ground truth, and `--gt-masks SegmentationClass` scores on VOC's own masks (as IRN does)."
    out, _ = tiny_run; res = load_json(out/'results.json')
    data = tmp_path/'data'; shutil.copytree(out/'data', data); (data/'SegmentationClassAug').mkdir()
    for f in (data/'SegmentationClass').glob('*.png'): save_mask(np.zeros((64, 64), np.uint8), data/'SegmentationClassAug'/f.name)  # another ground truth: all background
    last = lambda *gt: (capsys.readouterr(), main(['evaluate', str(out/'seg/pred'), '--root', str(data), '--split', 'val', *gt]), capsys.readouterr().out.splitlines()[-1])[-1]
    assert last('--gt-masks', 'SegmentationClass') == f"mIoU {res['seg_miou']:.1%}, boundary F {res['seg_boundary_f']:.1%} over the 16 images of val"
    assert last() != last('--gt-masks', 'SegmentationClass')
    code, err = cli_error(capsys, 'evaluate', str(out/'seg/pred'), '--root', str(data), '--gt-masks', 'Segmentation')
    assert code != 0 and '--gt-masks: no folder Segmentation in' in err, err

def test_table_of_finished_runs(tiny_run, tmp_path, capsys):
    "`wsss_nb table` prints a row per finished run with its figures, and names a folder that is not one."
    out, run_p = tiny_run
    p = wsss('table', str(out), str(out))
    assert p.returncode == 0, p.stderr
    head, *rows = p.stdout.splitlines()
    assert head.split()[:2] == ['run', 'method'] and len(rows) == 2
    assert rows[0].split()[:3] == [str(out), 'baseline+crf', f"{load_json(out/'results.json')['pseudo_mask_miou']:.1%}"]
    assert rows[0][len(str(out)):].strip() == run_p.stdout.splitlines()[1].strip()  # the row `wsss_nb run` printed
    code, err = cli_error(capsys, 'table', str(out), str(tmp_path))
    assert code != 0 and f'{tmp_path}: not a run folder' in err, err

def test_commands_that_train_nothing_start_light(tiny_run):
    "`--help`, `table` and `evaluate` import neither torchvision nor matplotlib (2 s of a 5 s start here): a network or a figure imports them where it is made."
    out, _ = tiny_run
    code = ("import sys; from wsss_nb.pipeline import main\n"
            f"for args in (['--help'], ['table', {str(out)!r}], ['evaluate', {str(out/'seg/pred')!r}, '--root', {str(out/'data')!r}, '--split', 'val']):\n"
            "    try: main(args)\n"
            "    except SystemExit as e: assert not e.code, (args, e.code)\n"
            "print('heavy:', sorted(m for m in ('torchvision', 'matplotlib') if m in sys.modules))")
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and 'mIoU' in p.stdout and p.stdout.splitlines()[-1] == 'heavy: []', p.stdout[-2000:] + p.stderr

def test_rerun_with_another_seed(tiny_run, tmp_path, capsys):
    "`wsss_nb rerun RUN --seed N` runs the same configuration with seed N; `table --mean` then gives the two one row. A config.json alone reruns as it was."
    out, _ = tiny_run
    again = tmp_path/'again'; shutil.copytree(out, again)  # (its default output goes beside it)
    p = wsss('rerun', str(again), '--seed', '2', '--no-progress', '--device', 'cpu')
    assert p.returncode == 0, p.stderr
    new, old = load_json(tmp_path/'again_s2/config.json'), load_json(out/'config.json')
    assert (new['seed'], new['scene']['seed']) == (2, 2) and {**new, 'seed': 1, 'scene': {**new['scene'], 'seed': 1}} == old
    assert metrics(load_json(tmp_path/'again_s2/results.json')) != metrics(load_json(out/'results.json'))
    p = wsss('table', '--mean', str(out), str(tmp_path/'again_s2'))
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2 and '(seeds 1, 2)' in p.stdout and ' ± ' in p.stdout, p.stdout + p.stderr
    p = wsss('rerun', str(again/'config.json'), '--seed', '2', '--no-progress', '--device', 'cpu')  # the run's own config.json: the same run beside it (finished: nothing to do), not one inside it
    assert p.returncode == 0 and f"the run in {tmp_path/'again_s2'} is finished (" in p.stderr and not (again/'config_s2').exists(), p.stderr
    p = wsss('rerun', 'config.json', '--seed', '2', '--no-progress', '--device', 'cpu', cwd=again)  # the same, given relative to the run folder
    assert p.returncode == 0 and f"the run in {tmp_path/'again_s2'} is finished (" in p.stderr and not list(again.glob('*_s2')), p.stderr
    code, err = cli_error(capsys, 'rerun', str(tmp_path), '--seed', '3')
    assert code != 0 and 'not a run folder' in err, err
    sent = tmp_path/'sent'; sent.mkdir(); shutil.copy(out/'config.json', sent/'theirs.json')  # only the configuration, as a colleague sends it
    p = wsss('rerun', str(sent/'theirs.json'), '--no-progress', '--device', 'cpu')
    assert p.returncode == 0, p.stderr
    assert metrics(load_json(sent/'theirs_s1/results.json')) == metrics(load_json(out/'results.json'))  # the run as it was: the same figures
    code, err = cli_error(capsys, 'rerun', str(sent/'other.json'))
    assert code != 0 and f"{sent/'other.json'}: no such file" in err, err

def test_pseudo_masks_made_elsewhere(tiny_run, tmp_path):
    "`--pseudo-masks DIR` of grey PNGs (as IRN's sem_seg step writes them): the run's segmentation network trains on them, here the tiny run's own, with its figures (its network finds nothing yet: the masks are compared too)."
    out, _ = tiny_run
    grey = tmp_path/'sem_seg'; grey.mkdir()
    for f in (out/'pseudo_mask').glob('*.png'): Image.fromarray(np.asarray(Image.open(f))).save(grey/f.name)  # palette indices as a grey image
    assert png_info(next(grey.glob('*.png')))[0] == 'L'
    p = wsss('run', '--pseudo-masks', str(grey), '--out', str(tmp_path/'run'), '--seed', '1', '--crf', *TINY)
    assert p.returncode == 0, p.stderr
    res, mine = load_json(out/'results.json'), load_json(tmp_path/'run/results.json')
    assert [mine[k] for k in ('pseudo_mask_miou', 'seg_miou', 'crf_seg_miou')] == [res[k] for k in ('crf_pseudo_mask_miou', 'seg_miou', 'crf_seg_miou')]
    assert 'given pseudo-masks+crf' in p.stdout
    for f in (out/'pseudo_mask').glob('*.png'): assert np.array_equal(np.asarray(Image.open(tmp_path/'run/pseudo_mask'/f.name)), np.asarray(Image.open(f)))  # what the network trained on
    first = sorted(grey.glob('*.png'))[0]; Image.fromarray(np.full_like(np.asarray(Image.open(first)), 1)).save(first)  # made again elsewhere: other masks at the same path
    p = wsss('run', '--pseudo-masks', str(grey), '--out', str(tmp_path/'run'), '--seed', '1', '--crf', *TINY)
    assert p.returncode != 0 and '--pseudo-masks changed since the run began' in p.stderr, p.stderr[-2000:]  # (not the old figures, resumed)

def test_segmentation_backbone_of_its_own(tmp_path):
    "`--seg-backbone resnet101 --seg-head v2`: DeepLab-v2 under the small classifier; `predict` rebuilds that network from the run folder."
    p = wsss('run', '--seg-backbone', 'resnet101', '--seg-head', 'v2', '--out', str(tmp_path/'run'), '--n-train', '16', '--n-val', '4', '--epochs', '2', '--no-progress')
    assert p.returncode == 0, p.stderr
    seg, cls = (torch.load(tmp_path/'run'/f, weights_only=True) for f in ('seg/seg.pt', 'cam/classifier.pt'))
    assert 'backbone.features.6.22.conv3.weight' in seg and 'backbone.features.6.0.conv1.weight' not in cls  # ResNet-101's 23rd block of its third stage; a small CNN
    assert seg['aspp.branches.3.weight'].shape == (7, 2048, 3, 3) and 'classifier.weight' not in seg  # DeepLab-v2's fourth dilated classifier, no 1x1 one after
    p = wsss('predict', str(tmp_path/'run'), str(tmp_path/'run/data/JPEGImages/scene_000000.png'), '--out', str(tmp_path/'pred'))
    assert p.returncode == 0 and (tmp_path/'pred/scene_000000.png').exists(), p.stderr

def test_imagenet_statistics_kept(tmp_path):
    "With ImageNet weights (a stand-in in a torch hub cache of our own) every ResNet of the run keeps their BatchNorm statistics, a CONTA round's classifier started from the segmentation network too; the classifiers' first two stages do not learn."
    sd = torchvision.models.resnet50().state_dict()
    for k in sd:
        if k.endswith(('running_mean', 'running_var')): sd[k] = torch.rand_like(sd[k]) + 0.5
    (tmp_path/'torch/hub/checkpoints').mkdir(parents=True); torch.save(sd, tmp_path/'torch/hub/checkpoints/resnet50-0676ba61.pth')
    p = wsss('run', '--backbone', 'resnet50', '--weights', 'IMAGENET1K_V1', '--method', 'conta', '--rounds', '1', '--n-train', '8', '--n-val', '4',
             '--epochs', '2', '--batch-size', '4', '--no-progress', '--out', str(tmp_path/'run'), env=dict(TORCH_HOME=str(tmp_path/'torch')))
    assert p.returncode == 0, p.stderr
    stats = lambda d: sorted(round(float(v.sum()), 2) for k, v in d.items() if k.endswith('running_var') and 'aspp' not in k)
    nets = {f: torch.load(tmp_path/'run'/f, weights_only=True) for f in ('cam/classifier.pt', 'seg/seg.pt', 'rounds/1/cam/classifier.pt', 'rounds/1/seg/seg.pt')}
    for f, net in nets.items(): assert stats(net) == stats(sd), f
    cls0, seg0, cls1 = nets['cam/classifier.pt'], nets['seg/seg.pt'], nets['rounds/1/cam/classifier.pt']
    assert torch.equal(cls0['backbone.features.5.3.conv2.weight'], sd['layer2.3.conv2.weight'])  # IRN's classifier: no gradient before layer3...
    assert not torch.equal(cls0['backbone.features.6.0.conv2.weight'], sd['layer3.0.conv2.weight'])  # ...which learns
    assert not torch.equal(seg0['backbone.features.5.3.conv2.weight'], sd['layer2.3.conv2.weight'])  # the segmentation network fine-tunes layer2
    assert torch.equal(cls1['backbone.pre.5.3.conv2.weight'], seg0['backbone.features.5.3.conv2.weight'])  # round 1's classifier starts from it, with layer2 frozen again

def test_dataset_of_other_classes(tmp_path):
    "A dataset in VOC layout with its own classes.txt runs; its run's network then segments images where that dataset is gone."
    root = write_scene(tmp_path/'mine', SceneConfig(n_train=48, n_val=16)); (root/'scene.json').unlink()
    names = ['background', *(f'thing {i}' for i in range(1, 7))]; (root/'classes.txt').write_text('\n'.join(names) + '\n')
    photo = tmp_path/'photo.png'; shutil.copy(root/'JPEGImages/scene_000050.png', photo)
    p = wsss('run', '--dataset', 'voc', '--root', str(root), '--backbone', 'small', '--crop', '64', '--quick', '--out', str(tmp_path/'run'), *TINY)
    assert p.returncode == 0, p.stderr
    assert load_json(tmp_path/'run/results.json')['classes'] == names
    shutil.rmtree(root)
    p = wsss('predict', str(tmp_path/'run'), str(photo))
    assert p.returncode == 0, p.stderr
    assert png_info(tmp_path/'run/predict/photo.png')[1] == (64, 64) and p.stdout.split(': ')[1].split(' ')[0] in ('background', 'thing')

@pytest.mark.parametrize('args,expect', [
    (['{run}/seg', 'x.png'], 'not a run folder'),
    (['{run}', '{run}/nowhere.png'], 'nowhere.png'),
    (['{run}', '{run}/data/JPEGImages/scene_000001.png', '--out', '{run}/data/JPEGImages'], 'overwrite'),
    (['{run}', '{run}/data/JPEGImages/scene_000001.png', '--max-side', '-1'], '--max-side: 0 (each image at its own size) or a side in pixels, got -1'),
])
def test_predict_bad_input(tiny_run, args, expect, capsys):
    out, _ = tiny_run
    code, err = cli_error(capsys, 'predict', *(a.format(run=out) for a in args))
    assert code != 0 and expect in err and err.startswith('wsss_nb: error:'), err

@pytest.mark.parametrize('args,expect', [
    (['--method', 'baseline,magic'], '--method'),
    (['--dataset', 'coco'], '--dataset'),
    (['--backbone', 'vgg'], '--backbone'),
    (['--threshold', '2'], '--threshold'),
    (['--location-bias', '1.5'], '--location-bias'),
    (['--device', 'tpu'], '--device'),
    (['--dataset', 'voc'], '--root'),
])
def test_bad_option(args, expect, tmp_path, capsys):
    code, err = cli_error(capsys, 'run', '--out', str(tmp_path/'run'), *TINY, *args)
    assert code != 0 and expect in err, err
    assert not (tmp_path/'run').exists()

@pytest.fixture
def voc_copy(tmp_path):
    root = write_scene(tmp_path/'voc', SceneConfig(n_train=12, n_val=4))
    return root

def _break_missing_split(r): (r/'ImageSets/Segmentation/val.txt').unlink(); return 'val.txt'
def _break_missing_mask(r): (r/'SegmentationClass/scene_000003.png').unlink(); return 'scene_000003'
def _break_size(r): save_mask(np.zeros((32, 64), np.uint8), r/'SegmentationClass/scene_000004.png'); return 'scene_000004'
def _break_value(r): save_mask(np.full((64, 64), 42, np.uint8), r/'SegmentationClass/scene_000005.png'); return 'scene_000005'
def _break_corrupt(r): (r/'JPEGImages/scene_000006.png').write_bytes(b'\x89PNG garbage'); return 'scene_000006.png'
def _break_root(r): shutil.rmtree(r); return str(r)

@pytest.mark.parametrize('breaker', [_break_missing_split, _break_missing_mask, _break_size, _break_value, _break_corrupt, _break_root])
def test_bad_dataset(voc_copy, breaker, tmp_path, capsys):
    name = breaker(voc_copy)
    code, err = cli_error(capsys, 'run', '--dataset', 'voc', '--root', str(voc_copy), '--backbone', 'small', '--out', str(tmp_path/'run'), '--epochs', '2', '--no-progress')
    assert code != 0 and name in err and err.startswith('wsss_nb: error:'), err
    assert not (tmp_path/'run').exists()  # no partial output

def test_images_and_labels_only(voc_copy, tmp_path, capsys):
    "A VOC-layout folder without masks runs from its labels file, at the threshold given (none given: one clear error, no folder)."
    from wsss_nb.data import VOCSegmentation
    save_json({n: ds.label_ids(i) for ds in (VOCSegmentation(voc_copy, 'train'), VOCSegmentation(voc_copy, 'val')) for i, n in enumerate(ds.ids)}, tmp_path/'labels.json')
    shutil.rmtree(voc_copy/'SegmentationClass')
    args = ['run', '--dataset', 'voc', '--root', str(voc_copy), '--labels', str(tmp_path/'labels.json'), '--backbone', 'small', *TINY]
    code, err = cli_error(capsys, *args, '--out', str(tmp_path/'refused'))
    assert code != 0 and 'give --threshold' in err and not (tmp_path/'refused').exists(), err
    p = wsss(*args, '--threshold', '0.4', '--out', str(tmp_path/'run'))
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path/'run/pseudo_mask').glob('*.png'))) == 12 and len(list((tmp_path/'run/seg/pred').glob('*.png'))) == 4
    res = load_json(tmp_path/'run/results.json'); assert res['threshold'] == 0.4 and 'pseudo_mask_miou' not in res and 'seg_miou' not in res
    code, err = cli_error(capsys, 'run', '--dataset', 'voc', '--root', str(voc_copy), '--threshold', '0.4', '--out', str(tmp_path/'nolabels'), *TINY)
    assert code != 0 and 'no ground-truth masks' in err and '--labels' in err, err

def test_failure_keeps_the_finished_stages(tmp_path, capsys, monkeypatch):
    "A failed run keeps the stages it finished, says so, and the same command resumes from them once the cause is gone; one that failed before any stage but the data leaves no folder."
    from wsss_nb.pipeline import Run
    def boom(self): raise ValueError('stage failed on purpose')
    monkeypatch.setattr(Run, '_train_cam', boom)
    code, err = cli_error(capsys, 'run', '--out', str(tmp_path/'early'), *TINY)
    assert code != 0 and 'on purpose' in err and 'kept' not in err and not (tmp_path/'early').exists(), err
    monkeypatch.undo(); monkeypatch.setattr(Run, '_train_seg', boom)
    code, err = cli_error(capsys, 'run', '--out', str(tmp_path/'run'), *TINY)
    assert code == 1 and err.split('wsss_nb: pseudo_mask: ')[1].split('\n', 1)[1].startswith('wsss_nb: error: stage failed on purpose\nwsss_nb: the 5 finished stages of the run are kept in'), err  # (after the log of the stages it finished)
    assert (tmp_path/'run/cam/classifier.pt').exists() and not (tmp_path/'run/stages/train_seg.json').exists()
    monkeypatch.undo()
    p = wsss('run', '--out', str(tmp_path/'run'), *TINY)
    assert p.returncode == 0 and 'resuming the run' in p.stderr and '(5 stages done)' in p.stderr and (tmp_path/'run/results.json').exists(), p.stderr

def test_diverged_training_is_one_error_line(tmp_path, capsys):
    "A training whose loss leaves the finite numbers stops with one line naming the network, the epoch and the cure, not a traceback."
    code, err = cli_error(capsys, 'run', '--out', str(tmp_path/'run'), *TINY, '--lr', '1e30')
    assert code == 1 and err.splitlines()[-1].startswith('wsss_nb: error: classifier: loss is nan in epoch 2/2') and 'a lower learning rate' in err and 'Traceback' not in err, err  # (after the log's epoch 1/2)

def test_interrupted_run_keeps_its_stages(tmp_path, monkeypatch, capsys):
    "Ctrl-C in a late stage keeps the stages already finished; the same command then resumes from them, and says so."
    from wsss_nb.pipeline import Run
    train_seg = Run._train_seg
    def interrupt(self): raise KeyboardInterrupt
    monkeypatch.setattr(Run, '_train_seg', interrupt)
    with pytest.raises(SystemExit) as e: main(['run', '--out', str(tmp_path/'run'), '--workers', '2', *TINY])  # (with data-loading workers)
    assert e.value.code == 130 and (tmp_path/'run/stages/train_cam.json').exists() and not (tmp_path/'run/stages/train_seg.json').exists()
    monkeypatch.setattr(Run, '_train_seg', train_seg); capsys.readouterr()
    main(['run', '--out', str(tmp_path/'run'), '--workers', '2', *TINY])
    assert f"resuming the run in {tmp_path/'run'} (5 stages done)" in capsys.readouterr().err
    assert 0 <= load_json(tmp_path/'run/results.json')['seg_miou'] <= 1

def test_voc_without_weights_says_so(tmp_path, capsys):
    "A VOC run of ResNets without --weights says they start from random weights, and an option the run does not use is named (the run itself fails here: no such folder)."
    code, err = cli_error(capsys, 'run', '--dataset', 'voc', '--root', str(tmp_path/'nowhere'), '--out', str(tmp_path/'run'))
    assert code != 0 and 'start from random weights' in err and 'nowhere' in err, err
    code, err = cli_error(capsys, 'run', '--root', str(tmp_path), '--out', str(tmp_path/'run'))  # a VOC folder without --dataset voc: not silently a scene run
    assert code != 0 and 'a VOC folder is read with --dataset voc' in err, err
    code, err = cli_error(capsys, 'run', '--dataset', 'voc', '--root', str(tmp_path/'nowhere'), '--backbone', 'small', '--rounds', '3', '--out', str(tmp_path/'run'))  # (3: CONTA's default, still not used by a baseline run)
    assert 'random weights' not in err and 'note: --rounds not used by this run (--method baseline' in err, err
    code, err = cli_error(capsys, 'run', '--dataset', 'voc', '--root', str(tmp_path/'nowhere'), '--backbone', 'small', '--method', 'conta', '--no-context', '--conta-attention', 'uniform', '--out', str(tmp_path/'run'))
    assert code != 0 and 'note: --conta-attention not used by this run (--method conta, --dataset voc, --no-context)' in err, err  # plain self-training rounds: no M to attend

def test_warnings_are_one_line(monkeypatch, capsys, tmp_path):
    "A warning during a command is one `wsss_nb: warning:` line, not Python's file, line and source; Python's own display comes back afterwards, and the `wsss_nb` logger as it was (a notebook calling `main` twice gets each line once)."
    import warnings
    from wsss_nb.pipeline import Run, logger
    def warn(self): warnings.warn('confounder set: class(es) [1] have no pixel'); raise ValueError('stopped here')
    monkeypatch.setattr(Run, 'run', warn); shown, handlers, level = warnings.showwarning, list(logger.handlers), logger.level
    with pytest.raises(SystemExit): main(['run', '--out', str(tmp_path/'run'), *TINY])
    err = capsys.readouterr().err
    assert 'wsss_nb: warning: confounder set: class(es) [1] have no pixel\n' in err and 'UserWarning' not in err and 'warnings.warn' not in err, err
    assert warnings.showwarning is shown and logger.handlers == handlers and logger.level == level

def test_version(capsys):
    import wsss_nb
    with pytest.raises(SystemExit): main(['--version'])
    assert capsys.readouterr().out.strip() == f'wsss_nb {wsss_nb.__version__}'

def test_signal_inside_a_numba_kernel_keeps_the_run(tmp_path, monkeypatch):
    "SIGTERM or Ctrl-C landing inside a Numba kernel (the CRF, thresholds) comes out as a SystemError caused by it: still an interruption, the finished stages kept."
    from wsss_nb.pipeline import Run
    def kernel_interrupted(self): raise SystemError('CPUDispatcher(<function _blur>) returned a result with an exception set') from KeyboardInterrupt('SIGTERM')
    monkeypatch.setattr(Run, '_train_seg', kernel_interrupted)
    with pytest.raises(SystemExit) as e: main(['run', '--out', str(tmp_path/'run'), *TINY])
    assert e.value.code == 143 and (tmp_path/'run/stages/train_cam.json').exists()

def test_out_that_is_a_file(tmp_path, capsys):
    "--out naming an existing file: a one-line error, no traceback."
    (tmp_path/'afile').touch()
    with pytest.raises(SystemExit) as e: main(['run', '--out', str(tmp_path/'afile'), *TINY])
    assert e.value.code == 1 and 'wsss_nb: error:' in capsys.readouterr().err

def test_terminated_run_cleans_up_and_resumes(tmp_path):
    "SIGTERM (a job's time limit) in any stage: a short message, no half-written folder left, and the same command finishes the run."
    out, args = tmp_path/'run', [sys.executable, '-m', 'wsss_nb.pipeline', 'run', '--out', str(tmp_path/'run'), *TINY]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while not (out/'stages/train_cam.json').exists() and p.poll() is None and time.time() - t0 < 300: time.sleep(0.05)
    p.send_signal(signal.SIGTERM); _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and 'interrupted (SIGTERM)' in err and 'resumes' in err and 'Traceback' not in err, (p.returncode, err)
    assert not [f for f in out.rglob('.*') if f.suffix != '.partial'], sorted(out.rglob('.*'))  # no atomic_dir/atomic_path leftovers but a stage's finished images
    assert wsss('run', '--out', str(out), *TINY).returncode == 0 and (out/'results.json').exists()

def test_installs_from_a_built_wheel(tiny_run, tmp_path):
    "`pip wheel` of the checkout holds every module and the `wsss_nb` command; installed on its own and run outside the checkout, it gives the checkout's figures (without the CRF: Numba compiles its kernels anew for a new place, a minute here)."
    repo, src, site = Path(__file__).resolve().parent.parent, tmp_path/'src', tmp_path/'site'
    shutil.copytree(repo/'wsss_nb', src/'wsss_nb', ignore=shutil.ignore_patterns('__pycache__'))
    for f in ('setup.py', 'settings.ini', 'pyproject.toml', 'README.md'): shutil.copy(repo/f, src/f)
    pip = [sys.executable, '-m', 'pip', '-q', '--disable-pip-version-check']
    subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-w', str(tmp_path/'dist'), str(src)], check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path/'dist').glob('wsss_nb-*.whl')
    subprocess.run([*pip, 'install', '--no-deps', '--target', str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    modules = sorted('.'.join(p.relative_to(repo).with_suffix('').parts) for p in (repo/'wsss_nb').rglob('*.py') if p.name != '__init__.py')
    assert len(modules) >= 14 and all((site/(m.replace('.', '/') + '.py')).exists() for m in modules), modules
    assert 'wsss_nb = wsss_nb.pipeline:main' in next(site.glob('wsss_nb-*.dist-info')).joinpath('entry_points.txt').read_text()
    env, away = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, (str(site), os.environ.get('PYTHONPATH'))))}, tmp_path/'away'; away.mkdir()  # (the wheel's wsss_nb before any other)
    code = f"import importlib, wsss_nb; [importlib.import_module(m) for m in {modules!r}]; print(wsss_nb.__file__)"
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=away, env=env, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == str(site/'wsss_nb/__init__.py'), p.stderr + p.stdout
    p = subprocess.run([sys.executable, '-m', 'wsss_nb.pipeline', 'run', '--out', 'run', '--seed', '1', *TINY],
                       capture_output=True, text=True, cwd=away, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    res, ref = metrics(load_json(away/'run/results.json')), metrics(load_json(tiny_run[0]/'results.json'))  # the tiny run's CAM figures: its CRF refined only what followed them
    cam = lambda r: {k: v for k, v in r.items() if not k.startswith(('crf_', 'seg_')) and k != 'method'}
    assert res['method'] == 'baseline' and len(cam(res)) >= 15 and cam(res) == cam(ref), (cam(res), cam(ref))

VOC = find_voc_sample()

@pytest.mark.skipif(VOC is None, reason='../shared/data/voc2012-sample is absent')
def test_real_voc_sample_smoke(tmp_path):
    "The real-data path end to end on PASCAL VOC photos (small backbone, one epoch: a smoke run, not a benchmark), training on an ids file outside the dataset folder."
    ids = (VOC/'ImageSets/Segmentation/demo20.txt').read_text().split()[:16]; (tmp_path/'ids.txt').write_text('\n'.join(ids) + '\n')
    p = wsss('run', '--dataset', 'voc', '--root', str(VOC), '--train-split', str(tmp_path/'ids.txt'), '--val-split', 'demo20', '--backbone', 'small',
             '--epochs', '1', '--crop', '192', '--quick', '--n-val', '8', '--out', str(tmp_path/'voc'), '--no-progress')
    assert p.returncode == 0, p.stderr
    res = load_json(tmp_path/'voc/results.json')
    assert res['dataset'] == 'voc' and len(res['classes']) == 21 and 0 <= res['seg_miou'] <= 1
    assert (res['n_train'], res['n_val'], len(list((tmp_path/'voc/seg/pred').glob('*.png')))) == (16, 8, 8)  # --quick's 256 and 64 of a split hold all 16; --n-val takes 8 of demo20's 20
    assert 'context_leakage' not in res  # a scene-only diagnostic
    masks = sorted((tmp_path/'voc/pseudo_mask').glob('*.png'))
    assert [m.stem for m in masks] == sorted(ids) and png_info(masks[0])[0] == 'P'
    assert (tmp_path/'voc/ids/train.txt').read_text().split() == ids and len((tmp_path/'voc/ids/val.txt').read_text().split()) == 8
    p = wsss('evaluate', str(tmp_path/'voc/seg/pred'), '--root', str(VOC), '--split', 'demo20')  # 8 of demo20's 20 images: the run's own ids file says which
    assert p.returncode == 1 and '12 of split demo20' in p.stderr and 'ids/train.txt and val.txt: give that file as --split' in p.stderr, p.stderr
    p = wsss('evaluate', str(tmp_path/'voc/seg/pred'), '--root', str(VOC), '--split', str(tmp_path/'voc/ids/val.txt'))
    assert p.returncode == 0 and p.stdout.splitlines()[-1].startswith(f"mIoU {res['seg_miou']:.1%}, boundary F {res['seg_boundary_f']:.1%} over the 8 images"), p.stdout + p.stderr
    photo = VOC/'JPEGImages'/f'{masks[0].stem}.jpg'
    p = wsss('predict', str(tmp_path/'voc'), str(photo), '--out', str(tmp_path/'pred'), '--crf')  # its network on a photo, refined by the CRF
    assert p.returncode == 0, p.stderr
    assert png_info(tmp_path/'pred'/masks[0].name)[1] == png_info(photo)[1]
    from wsss_nb.data import VOCSegmentation
    from wsss_nb.widgets import image_explorer
    ie = image_explorer(tmp_path/'voc')  # no image given: the run's first held-out photo, its true classes ticked
    first = VOCSegmentation(VOC, str(tmp_path/'voc/ids/val.txt'))
    assert ie.name == first.ids[0] and np.array_equal(ie.image, first.image(0)) and list(ie.controls['classes'].value) == first.label_ids(0)

def test_torchrun_two_processes(tmp_path):
    "DDP on the CPU (gloo): two processes train and share the per-image stages (rank 0 alone writes the records); each keeps torchrun's one PyTorch thread, and the CRF's Numba threads are halved."
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', '29533', '-m', 'wsss_nb.pipeline',
                        'run', '--out', str(tmp_path/'ddp'), '--crf', '--dist-timeout', '5', *TINY], capture_output=True, text=True, timeout=600)  # (a process left waiting fails in 5 minutes, saying so)
    assert p.returncode == 0, p.stderr[-3000:]
    res = load_json(tmp_path/'ddp/results.json')
    assert 0 < res['pseudo_mask_miou'] < 1 and len(list((tmp_path/'ddp/pseudo_mask').glob('*.png'))) == 48
    t, n = int(os.environ.get('OMP_NUM_THREADS', '1')), numba.config.NUMBA_NUM_THREADS  # (torchrun's default OMP_NUM_THREADS: 1)
    assert res['environment']['processes'] == 2 and res['environment']['threads'] == {'torch': t, 'numba': min(n, max(t, n // 2))}  # PyTorch's kept after Numba's start; the CRF's threads halved
    assert p.stderr.count('wsss_nb: make_cam: ') == 1 and p.stderr.count('wsss_nb: classifier: epoch 2/2: ') == 1, p.stderr  # the log: one line for the two processes

def test_torchrun_mixed_precision_with_plugins(tmp_path):
    "DDP with --amp float16 (the gradient scaler) and plug-ins with parameters of their own (CONTA's attention, averaged by the loop) and losses (likelihood)."
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', '29534', '-m', 'wsss_nb.pipeline',
                        'run', '--out', str(tmp_path/'ddp'), '--amp', 'float16', '--method', 'conta,likelihood', '--rounds', '1', *TINY,
                        '--n-train', '8', '--n-val', '4', '--epochs', '1'],  # (smaller than TINY: float16 on the CPU is many times slower)
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = load_json(tmp_path/'ddp/results.json')
    assert [r['round'] for r in res['rounds']] == [0, 1] and all(0 <= r['pseudo_mask_miou'] <= 1 for r in res['rounds'])
    assert load_json(tmp_path/'ddp/config.json')['cam_train']['amp'] == 'float16'
    assert "wsss_nb: warning: amp='float16' on the CPU: autocast runs there, but many times slower" in p.stderr  # (bfloat16 is the CPU's)

def test_torchrun_resumes_a_killed_training(tmp_path):
    "DDP killed by SIGTERM between two epochs (a job's time limit): the same command goes on after the last finished epoch, every process with its own random state, and ends as the uninterrupted run."
    run = lambda out, port: [sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', str(port), '-m', 'wsss_nb.pipeline',
                             'run', '--out', str(tmp_path/out), *TINY]
    assert subprocess.run(run('ref', 29535), capture_output=True, timeout=600).returncode == 0
    p, ck = subprocess.Popen(run('ddp', 29536), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), tmp_path/'ddp/cam/.classifier.pt.partial'
    t0 = time.time()
    while not ck.exists() and p.poll() is None and time.time() - t0 < 300: time.sleep(0.02)
    p.send_signal(signal.SIGTERM); p.wait(timeout=300)
    assert ck.exists() and not (tmp_path/'ddp/cam/classifier.pt').exists()
    p = subprocess.run(run('ddp', 29537), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert metrics(load_json(tmp_path/'ddp/results.json')) == metrics(load_json(tmp_path/'ref/results.json'))
    assert load_json(tmp_path/'ddp/results.json')['environment']['processes'] == 2

def test_torchrun_processes_share_the_data_check(voc_copy, tmp_path):
    "Under torchrun each process checks its share of a VOC folder's images; a bad image in rank 1's share fails both processes, each with one line, and leaves no run folder."
    image = voc_copy/'JPEGImages'/f"{(voc_copy/'ImageSets/Segmentation/train.txt').read_text().split()[1]}.png"  # the second training image: rank 1's share
    image.write_bytes(b'not a png')
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', '29543', '-m', 'wsss_nb.pipeline',
                        'run', '--dataset', 'voc', '--root', str(voc_copy), '--backbone', 'small', '--out', str(tmp_path/'run'), '--epochs', '1', '--no-progress', '--device', 'cpu'], capture_output=True, text=True, timeout=600)
    assert p.returncode != 0 and f'wsss_nb: error: not a readable image file: {image}' in p.stderr, p.stderr[-3000:]  # rank 1's own
    assert f'wsss_nb: error: process 1 failed: ValueError: not a readable image file: {image}' in p.stderr, p.stderr[-3000:]  # rank 0, which did not read it
    assert p.stderr.count('wsss_nb: error:') == 2 and not (tmp_path/'run').exists()  # (torchrun's own traceback follows: a process failed)

def test_torchrun_failure_in_another_process_keeps_the_stages(tmp_path):
    "A process other than rank 0 fails in a shared stage (an unreadable image in its share of the CAMs): it says the finished stages are kept, and once the image is mended the same command ends as the run that never failed."
    run, args = tmp_path/'ddp', ['run', '--out', str(tmp_path/'ddp'), *TINY, '--n-train', '8', '--n-val', '4', '--epochs', '1']
    torchrun = lambda port, *opts: subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', str(port),
                                                   *opts, '-m', 'wsss_nb.pipeline', *args], capture_output=True, text=True, timeout=600)
    assert (p := torchrun(29539)).returncode == 0, p.stderr[-3000:]
    ref = load_json(run/'results.json'); (run/'results.json').unlink()
    for n in ('make_cam', 'eval_cam', 'pseudo_mask', 'eval_seg', 'figures'): (run/'stages'/f'{n}.json').unlink()
    for f in ('cam/npz', 'pseudo_mask', 'seg/pred', 'figures'): shutil.rmtree(run/f)
    image = run/'data/JPEGImages'/f"{(run/'ids/train.txt').read_text().split()[1]}.png"  # the second training image: rank 1's share
    good = image.read_bytes(); image.write_bytes(b'not a png')
    p = torchrun(29540, '--monitor-interval', '5')  # (torchrun's agent looks at its processes every 5 s, not 0.1: rank 0 meets rank 1's end at the barrier before the agent's SIGTERM, also on a busy machine)
    assert p.returncode != 0 and re.search(r"wsss_nb: error: not a readable image file: .*\nwsss_nb: the 3 finished stages of the run are kept in", p.stderr), p.stderr[-3000:]  # (said by rank 1, the process that failed)
    assert 'wsss_nb: error: another process stopped while this one waited for it' in p.stderr and '[rank0]: Traceback' not in p.stderr, p.stderr[-3000:]  # rank 0, left at the stage's barrier: one line too
    image.write_bytes(good)
    assert (p := torchrun(29541)).returncode == 0, p.stderr[-3000:]
    assert metrics(load_json(run/'results.json')) == metrics(ref)

def test_torchrun_shares_given_pseudo_masks(tiny_run, tmp_path):
    "Given pseudo-masks (--pseudo-masks) are checked, copied and scored by the processes' shares: one process's files and scores."
    out, _ = tiny_run
    given = ['--pseudo-masks', str(out/'pseudo_mask'), '--seed', '1', *TINY]
    assert (p := wsss('run', '--out', str(tmp_path/'one'), *given)).returncode == 0, p.stderr
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', '29542', '-m', 'wsss_nb.pipeline',
                        'run', '--out', str(tmp_path/'two'), *given], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    one, two = (load_json(tmp_path/k/'stages/given_masks.json')['results'] for k in ('one', 'two'))
    assert one == two and one['pseudo_mask_miou'] == load_json(out/'results.json')['crf_pseudo_mask_miou']  # (the tiny run's own CRF pseudo-masks)
    masks = sorted((tmp_path/'two/pseudo_mask').glob('*.png'))
    assert len(masks) == 48 and all(f.read_bytes() == (tmp_path/'one/pseudo_mask'/f.name).read_bytes() == (out/'pseudo_mask'/f.name).read_bytes() for f in masks)

def same_figures(a, b, key=''):
    "The same figures bit for bit, but the context leakage: a ratio of float sums, summed over the processes in another order."
    if isinstance(a, dict): assert a.keys() == b.keys(), key; [same_figures(a[k], b[k], k) for k in a]
    elif isinstance(a, list): assert len(a) == len(b), key; [same_figures(x, y, key) for x, y in zip(a, b)]
    elif key == 'context_leakage' and a is not None: assert abs(a - b) <= 1e-12 * abs(b), (key, a, b)
    else: assert a == b, (key, a, b)

def test_torchrun_shares_the_per_image_stages(tmp_path):
    "Under torchrun the processes share the per-image stages (CAMs and their scores, AMN's seeds and maps, CRF pseudo-masks, predictions), their scores summed: from one process's networks they give that process's files and figures."
    args = ['--crf', '--method', 'conta,amn', '--rounds', '1', *TINY, '--n-train', '24', '--n-val', '8']
    ref, run = tmp_path/'ref', tmp_path/'ddp'
    assert (p := wsss('run', '--out', str(ref), *args, env=dict(OMP_NUM_THREADS='1'))).returncode == 0, p.stderr  # (torchrun's one thread per process)
    shutil.copytree(ref, run); (run/'results.json').unlink()
    for d in (run, run/'rounds/1'):  # the networks kept, the rest made again
        for n in ('make_cam', 'eval_cam', 'amn_seed', 'make_amn', 'eval_amn', 'pseudo_mask', 'eval_seg', 'train_pred', 'figures'): (d/'stages'/f'{n}.json').unlink(missing_ok=True)
        for f in ('cam/npz', 'amn/seed', 'amn/npz', 'pseudo_mask', 'seg/pred', 'seg/train_pred', 'figures'): shutil.rmtree(d/f, ignore_errors=True)
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--log-dir', str(tmp_path/'torchrun'), '--nproc_per_node', '2', '--master_port', '29538', '-m', 'wsss_nb.pipeline',
                        'run', '--out', str(run), *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    same_figures(metrics(load_json(run/'results.json')), metrics(load_json(ref/'results.json')))
    masks = sorted(f.relative_to(ref) for f in ref.rglob('*.png') if 'figures' not in f.parts and 'data' not in f.parts)
    assert len(masks) == 2 * (24 + 24 + 2 * 8) + 24 and masks == sorted(f.relative_to(run) for f in run.rglob('*.png') if 'figures' not in f.parts and 'data' not in f.parts)
    assert all((ref/f).read_bytes() == (run/f).read_bytes() for f in masks)
    maps = sorted(f.relative_to(ref) for f in ref.rglob('*.npz'))
    assert len(maps) == 2 * 2 * 24 and all(np.array_equal(a, b) for f in maps for a, b in zip(np.load(ref/f).values(), np.load(run/f).values()))

def test_bench_runs_as_a_script():
    "`python -m wsss_nb.bench` reaches its `main` (the notebook's `__main__` cell runs it only as a script)."
    p = subprocess.run([sys.executable, '-m', 'wsss_nb.bench', '--help'], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and 'pipeline,crf,conta,likelihood,amn' in p.stdout, p.stderr
