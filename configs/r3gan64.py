"""R3GAN (Huang et al. 2024, 'The GAN is dead; long live the GAN!') at 64x64.

    python main.py --config=configs/r3gan64.py --workdir=runs/r3gan64 \\
        --config.data.dir=/path/to/cat_faces_64

The reference's FFHQ-64 preset (github.com/brownvc/R3GAN, ``train.py``, with
``R3GAN/Networks.py`` and ``R3GAN/Trainer.py``) on 64x64 cat faces: widths
(768, 768, 768, 768, 384) from 4x4 up, 2 blocks per stage, 22.4M parameters
per network; RpGAN (loss rsgan) + gamma/2 (R1 + R2) with gamma 2 -> 0.2;
batch 256; Adam beta1 0, lr 2e-4 -> 5e-5, beta2 0.9 -> 0.99; the
reference's augment pipe (stylegan2-ada's AugmentPipe: x-flip, 90-degree
rotations, integer and fractional translation, scaling, rotation,
anisotropy at 1, brightness, contrast, luma flip, hue, saturation at 0.5,
cutout at 1; `data.augment='ada'`, `data.ada_pipe='r3gan'`) at p 0 -> 0.3;
EMA half-life 0 -> 0.5M images; all cosine ramps over 2e7 images (78,125
steps, the run's length). See `default.r3gan_config`.

Hardware: 1 large GPU (the paper trained FFHQ-64 on 8 GPUs); CPU only to
check that it runs. Expected: cat faces well beyond the DCGAN configs'
quality, with no mode collapse (the point of the R1 + R2 regularised
relativistic loss); not measured on a GPU yet. On 2 CPU cores at an eighth
of the width and batch 32 (`--config.model.g_width=8
--config.model.d_width=8 --config.batch_size=32`: widths 96 / 48) a step
takes about 10 s; with `--config.loss.reg_every=16` (lazy R1 + R2) 5.7 s,
and 40 minutes of training alone on the cores give 334 steps, iNat-bird
FID 117.0 and MobileNetV2 FID 792.8, coloured blobs without faces
(`docs/results.md`, where `dcgan_cpu64` reaches 42.6 and `cpu64` 13.4 on
the iNat-bird network).

Deliberate differences from the reference: float32 throughout (the
reference runs every stage but 4x4 in bfloat16, in G and D; that is
`--config.model.dtype=bfloat16`); the data set is 9,303 cat faces, not
FFHQ's 70,000. As the reference does, R1 and R2 are taken every step with
respect to the clean images through the augmentation, and the G update
draws its own z and real batch (`train.g_samples='fresh_z_and_reals'`).
`--config.loss.reg_every=16` takes R1 + R2 lazily, as StyleGAN2 does
(not the reference's recipe; `docs/performance.md` has its speed).
"""

from configs import default


def get_config():
  """Returns the r3gan64 config."""
  return default.r3gan_config(64, widths=(768, 768, 768, 768, 384), gamma=2.0)
