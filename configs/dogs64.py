"""The dog experiment: DCGAN-64 on Stanford Dogs, scored by FID and IS.

    tfds build stanford_dogs --data_dir=/path/to/tfds    # once, online
    python main.py --config=configs/dogs64.py --workdir=runs/dogs64 \\
        --config.data.tfds_data_dir=/path/to/tfds

Variants, alone or together (comma-separated):

    python main.py --config=configs/dogs64.py:dcgan2,leaky,batch32 ...

* ``dcgan2`` ("DCGAN 2"): an extra 2x2 stage at the start of G and the end
  of D (`model.base_size=2`: G's Dense goes to 2x2 and one more stride-2 up
  layer follows; D has one more stride-2 layer and a 2x2 head), with twice
  the channels of the 4x4 stage (16 x 64 = 1024 at width 64).
* ``leaky`` ("Leaky"): LeakyReLU(0.2) in every G layer instead of ReLU
  (`model.g_leak=0.2`, the slope of D's LeakyReLU).
* ``batch32``: batch 32 instead of 64.
* ``cond``: class-conditional on the 120 breeds (`data.num_classes=120`
  from the TFDS label): G's BatchNorms conditional on a shared class
  embedding (BigGAN) and a projection discriminator (Miyato and Koyama
  2018), as `pets64_cond.py`; the fakes take the real batch's labels.
  `python -m catgan_jax.generate ... --class=all` draws a row per breed.

Reference: the experiment's own code is not available. This config sets it
up as described (a DCGAN on Stanford Dogs, the variants above, scored with
FID and the Inception Score), and follows a standard reference for each
piece: the network and training recipe are the PyTorch DCGAN example's
(pytorch/examples `dcgan/main.py`, as `dcgan64.py`: z = 100,
ngf = ndf = 64, BN, Adam 2e-4 with betas (0.5, 0.999), non-saturating BCE,
G's update reusing D's fakes, no random flips, and its 25 epochs, here
25 x 322 = 8,050 iterations of batch 64 over the 20,580 photos, or 16,100
of batch 32); FID is pytorch-fid's and the Inception Score
openai/improved-gan's `inception_score/model.py` (10 splits; see
`catgan_jax/evaluation/inception_score.py`), both on the standard FID
InceptionV3 (`eval.features='inception_v3'`) and from one forward pass of
it. The slope 0.2 and the channels of the 2x2 stage are choices made here,
not read from the experiment's code.

Data: TFDS `stanford_dogs` (20,580 photos of 120 breeds), both of its splits
(`train+test`: a GAN has no use for held-out images), read offline from
`data.tfds_data_dir` once prepared; whole photos, centre-cropped to a square
and resized to 64x64 (the dataset's bounding boxes are not used). Without the
prepared data (and `--config.data.tfds_download=True` to prepare it) the run
stops before writing anything, with one line saying how to prepare it.

Hardware: 1 GPU. Expected: no number from the experiment is reproduced
here; the FID and IS of each variant are logged every 5,000 steps.
"""

import math

from configs import dcgan64

# Variant name -> the fields it sets.
VARIANTS = {
    'dcgan2': {'model.base_size': 2},
    'leaky': {'model.g_leak': 0.2},
    'batch32': {'batch_size': 32},
    'cond': {
        'data.num_classes': 120,
        'model.g_cond': 'cbn',
        'model.d_cond': 'projection',
    },
}


def get_config(variants: str = ''):
  """Returns the dogs64 config with the comma-separated `variants` on.

  Args:
    variants: e.g. 'dcgan2,leaky' (names of VARIANTS); '' = the base DCGAN.

  Returns:
    The experiment config.

  Raises:
    ValueError: for an unknown variant name.
  """
  config = dcgan64.get_config()  # The PyTorch DCGAN example's recipe.
  config.data.source = 'tfds'
  config.data.tfds_name = 'stanford_dogs'
  config.data.tfds_split = 'train+test'
  config.data.crop = 'center'
  config.eval.features = 'inception_v3'
  config.eval.is_splits = 10
  for name in filter(None, (v.strip() for v in variants.split(','))):
    if name not in VARIANTS:
      raise ValueError(
          f'configs/dogs64.py:{variants}: unknown variant '
          f'{name!r}; valid: {", ".join(VARIANTS)}'
      )
    config.update_from_flattened_dict(VARIANTS[name])
  # The example's 25 epochs (--niter) of the 20,580 photos.
  config.num_train_steps = 25 * math.ceil(20_580 / config.batch_size)
  return config
