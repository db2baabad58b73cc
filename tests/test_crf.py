"The dense CRF against pydensecrf's marginals stored in tests/fixtures/crf (made by tests/make_crf_fixtures.py; no pydensecrf needed here)."
import json
from pathlib import Path
import numpy as np
import pytest
from wsss_nb.kernels.crf import DenseCRF, dense_crf

FIXTURES = sorted((Path(__file__).resolve().parent/'fixtures'/'crf').glob('*.npz'))

def load(path):
    with np.load(path) as f:
        return f['image'], f['unary'], f['q'], int(f['iterations']), str(f['preset']), json.loads(str(f['params']))

def test_fixtures_present():
    assert len(FIXTURES) >= 15, "run `python tests/make_crf_fixtures.py` where pydensecrf2 is installed"

@pytest.mark.parametrize('path', FIXTURES, ids=[p.stem for p in FIXTURES])
def test_matches_pydensecrf(path):
    image, unary, ref, iterations, preset, params = load(path)
    q = dense_crf(image, unary, preset, iterations, backend='numba', **params)
    assert q.dtype == np.float32 and q.shape == ref.shape
    # where a pixel's unary ties at the top ('unsure' fixtures), mean field grows float32 rounding, pydensecrf's as ours: a looser bound,
    # and the argmax compared where the reference's top two marginals are apart (filtering M-1 labels there ended 0.98 and 0.08 away)
    unsure = path.stem.startswith('unsure')
    tol = 1e-2 if unsure else 1e-4 if iterations > 1 else 1e-5
    assert np.abs(q - ref).max() <= tol
    top2 = np.sort(ref, 0)[-2:] if len(ref) > 1 else np.float32([np.zeros_like(ref[0]), np.ones_like(ref[0])])
    apart = top2[1] - top2[0] > 2 * tol
    assert apart.mean() > 0.5 and (q.argmax(0) == ref.argmax(0))[apart].mean() >= 0.9999

def test_lattice_reused_across_unaries():
    "One DenseCRF, two unaries (IRN's foreground and background runs): the same marginals as two separate calls."
    image, unary, *_ = load(next(p for p in FIXTURES if p.stem.startswith('photo') or p.stem.startswith('regions_31x45')))
    crf = DenseCRF(image, 'irn', backend='numba')
    for U in (unary, np.ascontiguousarray(unary[::-1])):
        np.testing.assert_array_equal(crf.inference(U, 10), dense_crf(image, U, 'irn', 10, backend='numba'))
