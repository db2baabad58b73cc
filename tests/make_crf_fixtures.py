"""Golden fixtures for `wsss_nb.kernels.crf`: pydensecrf's marginals on small cases, written to tests/fixtures/crf/*.npz.

Run `python tests/make_crf_fixtures.py` where pydensecrf2 is installed (`pip install pydensecrf2`); tests/test_crf.py
then checks our CRF against the files without needing pydensecrf. Each file holds the image, the unary energies,
pydensecrf's marginals `q`, the iteration count and the CRF parameters (preset values with overrides applied).
The 'photo' cases crop a real VOC photo from ../shared/data/voc2012-sample and are left out where it is absent.
"""
import json
from pathlib import Path
import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels, unary_from_softmax
from PIL import Image

ROOT = Path(__file__).resolve().parent
OUT = ROOT/'fixtures'/'crf'
VOC_PHOTO = ROOT.parent.parent/'shared/data/voc2012-sample/JPEGImages/2007_000032.jpg'
PRESETS = { # as wsss_nb.kernels.crf.PRESETS (IRN; PSA/SEAM; DeepLab-v2's VOC post-processing)
    'irn': dict(gauss_sxy=3, gauss_compat=3, bilateral_sxy=50, bilateral_srgb=5, bilateral_compat=10),
    'psa': dict(gauss_sxy=3, gauss_compat=3, bilateral_sxy=80, bilateral_srgb=13, bilateral_compat=10),
    'deeplab': dict(gauss_sxy=1, gauss_compat=3, bilateral_sxy=67, bilateral_srgb=3, bilateral_compat=4),
}

def image(kind, h, w, rng):
    "A uint8 (h, w, 3) test image: a crop of a VOC photo, smooth colour regions with noise, a colour gradient with noise, flat colour or pure noise."
    if kind == 'photo': return np.ascontiguousarray(np.array(Image.open(VOC_PHOTO).convert('RGB'))[100:100 + h, 200:200 + w])
    if kind == 'uniform': return np.full((h, w, 3), (120, 80, 200), np.uint8)
    if kind == 'noise': return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, x = np.mgrid[:h, :w]
    if kind == 'gradient': return np.clip(np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 97 * 2], -1) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    regions = (x * 3 // max(w, 1) + 2 * (y * 2 // max(h, 1)))[..., None] * np.array([40, 90, 25]) % 256
    return np.clip(regions + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)

def smooth_field(m, h, w, rng, cell=6):
    "(m, h, w) blocky random logits: what upsampled CAMs look like."
    coarse = rng.normal(0, 2, (m, -(-h // cell), -(-w // cell)))
    return np.kron(coarse, np.ones((cell, cell)))[:, :h, :w] + rng.normal(0, 0.5, (m, h, w))

def unary(preset, m, h, w, rng, unsure=False):
    "IRN-style energies from a label map (gt_prob 0.7) or PSA-style energies from class probabilities; `unsure`: labels on the left fifth only, the rest 0 (unsure)."
    logits = smooth_field(m, h, w, rng)
    if unsure:
        labels = logits.argmax(0) + 1; labels[:, w // 5:] = 0
        return unary_from_labels(labels, m, gt_prob=0.7, zero_unsure=True).reshape(m, h, w)
    if preset == 'irn': return unary_from_labels(logits.argmax(0), m, gt_prob=0.7, zero_unsure=False).reshape(m, h, w)
    prob = np.exp(logits - logits.max(0)); prob /= prob.sum(0)
    return unary_from_softmax(prob).reshape(m, h, w)

def marginals(img, U, it, p):
    m, h, w = U.shape
    d = dcrf.DenseCRF2D(w, h, m)
    d.setUnaryEnergy(np.ascontiguousarray(U.reshape(m, -1)))
    d.addPairwiseGaussian(sxy=p['gauss_sxy'], compat=p['gauss_compat'])
    d.addPairwiseBilateral(sxy=p['bilateral_sxy'], srgb=p['bilateral_srgb'], rgbim=img, compat=p['bilateral_compat'])
    return np.array(d.inference(it), np.float32).reshape(m, h, w)

CASES = [ # (image kind, height, width, preset, labels, iterations, overrides)
    ('photo', 60, 80, 'irn', 2, 10, {}), ('photo', 60, 80, 'irn', 21, 10, {}), ('photo', 60, 80, 'psa', 3, 10, {}),
    ('photo', 60, 80, 'psa', 4, 1, {}), ('photo', 60, 80, 'irn', 4, 10, dict(bilateral_sxy=30, bilateral_srgb=8)),
    ('regions', 13, 17, 'irn', 4, 10, {}), ('regions', 13, 17, 'psa', 21, 10, {}), ('regions', 13, 17, 'psa', 7, 0, {}),
    ('regions', 1, 37, 'irn', 2, 10, {}), ('regions', 1, 37, 'psa', 7, 1, {}), ('regions', 29, 1, 'psa', 3, 10, {}),
    ('uniform', 11, 9, 'irn', 3, 10, {}), ('uniform', 11, 9, 'psa', 21, 1, {}),
    ('noise', 40, 50, 'irn', 7, 10, {}), ('noise', 40, 50, 'psa', 2, 10, {}), ('noise', 40, 50, 'irn', 21, 0, {}),
    ('noise', 33, 47, 'psa', 3, 10, dict(gauss_sxy=5, gauss_compat=2, bilateral_sxy=20, bilateral_srgb=30, bilateral_compat=4)),
    ('regions', 31, 45, 'irn', 3, 10, {}), ('regions', 31, 45, 'psa', 21, 10, {}),
    ('unsure', 60, 80, 'irn', 2, 10, {}), ('unsure', 60, 80, 'irn', 3, 10, {}), ('unsure', 60, 80, 'psa', 4, 10, {}), # a gradient labelled on its left fifth: ties at the top
    ('photo', 60, 80, 'deeplab', 21, 10, {}), ('regions', 31, 45, 'deeplab', 4, 10, {}), ('noise', 40, 50, 'deeplab', 3, 10, {}),
]

def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for f in OUT.glob('*.npz'): f.unlink()
    rng = np.random.default_rng(2011)
    for kind, h, w, preset, m, it, over in CASES:
        if kind == 'photo' and not VOC_PHOTO.exists():
            print(f'skipped (no {VOC_PHOTO}):', kind, h, w, preset, m, it); continue
        img, U = image('gradient' if kind == 'unsure' else kind, h, w, rng), unary(preset, m, h, w, rng, unsure=kind == 'unsure')
        p = {**PRESETS[preset], **over}
        name = f"{kind}_{h}x{w}_{preset}_m{m}_it{it}{'_custom' if over else ''}"
        np.savez_compressed(OUT/f'{name}.npz', image=img, unary=U, q=marginals(img, U, it, p), iterations=it,
                            preset=preset, params=json.dumps(over))
        print('wrote', name)

if __name__ == '__main__': main()
