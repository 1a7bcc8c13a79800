"""R3GAN (Huang et al. 2024) at 128x128 cat faces.

    python main.py --config=configs/r3gan128.py --workdir=runs/r3gan128 \\
        --config.data.dir=/path/to/cat_faces_128

Needs >=128px cat faces (e.g. the >=128 bucket of
`python -m catgan_jax.data.prepare_cat`). The reference
(github.com/brownvc/R3GAN, ``train.py``) has presets at 64 and 256 px but
not 128: this is its FFHQ-256 preset cut to 128 px, widths
(768, 768, 768, 768, 384, 192) from 4x4 up (its first six stages), with
everything else as `configs/r3gan64.py` (batch 256, RpGAN + R1 + R2, the
same cosine ramps over 2e7 images). gamma starts at 17 -> 1.7, the geometric
mean of the 64 px preset's 2 and the 256 px preset's 150 (the reference
gives no value for 128 px; ours is an interpolation, not a tuned value).

Hardware: 1 large GPU (days for the full 78,125 steps). Expected: 128px cat
faces; not measured here yet.

Deliberate differences from the reference: as in configs/r3gan64.py
(float32; the reference's bfloat16 stages, its four highest-resolution
ones, are `--config.model.dtype=bfloat16`), plus the interpolated gamma.
Augmentation: the reference's pipe, as in configs/r3gan64.py.
"""

from configs import default


def get_config():
  """Returns the r3gan128 config."""
  return default.r3gan_config(
      128, widths=(768, 768, 768, 768, 384, 192), gamma=17.0
  )
