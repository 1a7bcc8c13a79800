"""Class-conditional DCGAN-64 on Oxford-IIIT Pet: 37 breeds, or 12 cat breeds.

    tfds build oxford_iiit_pet --data_dir=/path/to/tfds    # once, online
    python main.py --config=configs/pets64_cond.py --workdir=runs/pets64_cond \\
        --config.data.tfds_data_dir=/path/to/tfds
    python main.py --config=configs/pets64_cond.py:cats ...   # 12 cat breeds
    python -m catgan_jax.generate --workdir=runs/pets64_cond --out=out \\
        --class=Siamese --grid --num=16

Recipe: the PyTorch DCGAN example's (pytorch/examples `dcgan/main.py`, as
`dcgan64.py`: z = 100, widths 64, BN, Adam 2e-4 (0.5, 0.999), BCE, 25
epochs) with class conditioning: G's BatchNorms conditional on a shared
class embedding (BigGAN, Brock et al. 2019; BigGAN-PyTorch layers.ccbn) and
a projection discriminator (Miyato and Koyama 2018;
pfnet-research/sngan_projection); see `catgan_jax/models/conditioning.py`.
The fakes of each step take the real batch's labels.

Data: TFDS `oxford_iiit_pet` (7,349 photos, 37 breeds), both splits
(`train+test`), its `label` feature as the class; whole photos centre-cropped
to a square at 64x64. `:cats` keeps the 12 cat breeds (TFDS labels 0, 5, 6,
7, 9, 11, 20, 23, 26, 27, 32, 33: Abyssinian ... Sphynx), renumbered 0-11.
Read offline from `data.tfds_data_dir` once prepared; without the prepared
data (and `--config.data.tfds_download=True` to prepare it) the run stops
before writing anything, with one line saying how to prepare it.

Hardware: 1 GPU. Expected: not measured here; FID every 5,000 steps, on
labels drawn from the breeds' frequencies in the data
(`--config.eval.per_class=True` adds intra-FID, the mean of per-breed FIDs).
"""

import math

from configs import dcgan64

# TFDS oxford_iiit_pet labels of the cat breeds (the capitalised names of
# its label feature, tests/conditional_test.py checks them).
CAT_BREEDS = (0, 5, 6, 7, 9, 11, 20, 23, 26, 27, 32, 33)
VARIANTS = ('breeds', 'cats')


def get_config(variant: str = 'breeds'):
  """Returns the config of all 37 breeds ('breeds'), or the 12 cats ('cats')."""
  variant = variant or 'breeds'
  if variant not in VARIANTS:
    raise ValueError(
        f'configs/pets64_cond.py:{variant}: unknown variant; valid: '
        f'{", ".join(VARIANTS)}'
    )
  config = dcgan64.get_config()
  config.data.source = 'tfds'
  config.data.tfds_name = 'oxford_iiit_pet'
  config.data.tfds_split = 'train+test'
  config.data.tfds_label_key = 'label'
  config.data.crop = 'center'
  config.data.num_classes = 37
  config.model.g_cond = 'cbn'
  config.model.d_cond = 'projection'
  images = 7_349
  if variant == 'cats':
    config.data.tfds_labels = CAT_BREEDS
    config.data.num_classes = len(CAT_BREEDS)
    images = 2_371  # The cat photos of both splits.
  config.num_train_steps = 25 * math.ceil(images / config.batch_size)
  return config
