"""Projected GAN (FastGAN-lite G, projected D) on 64 px cat faces.

    python main.py --config=configs/projected64.py --workdir=runs/projected64 \\
        --config.data.dir=/path/to/cat_faces_64 \\
        --config.model.feature_path=/path/to/mobilenet_v2_1.0_224_quant.tflite

Class-conditional (Projected GAN's ``--cond=1``), e.g. on the synthetic
cats' four coat colours: add ``--config.data.source=synthetic
--config.data.num_classes=4 --config.model.g_cond=cbn
--config.model.d_cond=projection``.

Scored by default with the standard Inception FID (downloaded once). Offline,
score with the iNaturalist-birds MobileNetV2, which the discriminator does
not see: add ``--config.eval.features=mobilenet_v2_inat
--config.eval.features_path=/path/to/mobilenet_v2_1.0_224_inat_bird_quant.tflite``.
Scoring with the ImageNet MobileNetV2 the discriminator looks through is
refused (its FID can be lowered without better images).

Reference: the ``fastgan_lite`` cfg of Projected GAN's ``train.py``
(github.com/autonomousvision/projected-gan): FastGAN-lite generator (z 64),
projected discriminator (``pg_modules/discriminator.py``: CCM + CSM with
cout 64 and expand, four mini-discriminators, DiffAugment colour,
translation, cutout on every pass), hinge loss (``training/loss.py``
``ProjectedGANLoss``), Adam 2e-4 for both networks with betas (0, 0.99) and
eps 1e-8, batch 64, an EMA of the generator with a half-life of batch x 10 /
32 = 20 kimg, ramped up over the first 400 kimg (the reference ramps it
linearly as 0.05 x the images seen; here the cosine ramp of
`schedule.decay_nimg`) and sampled with the live generator's BatchNorm
statistics (the reference copies them), random x-flips of the reals (the
README's training command passes ``--mirror=1``; train.py's default is
off), and, as its training loop, a fresh z for the generator's phase.

Differences: the feature network is the ImageNet MobileNetV2 (the
reference's EfficientNet-lite0 cannot be had offline; see
`catgan_jax/models/projected.py`). For a 2-core CPU, the images reach it
at ``model.interp_size`` = 96 px instead of 224 (its cost grows with the
square of that side; step times in docs/performance.md), the generator's
ngf (``model.g_width``) is 16, not 128, and the mini-discriminators' widths
are halved (``model.d_width`` 32). The reference's sizes, on an
accelerator: ``--config.model.interp_size=224 --config.model.g_width=128
--config.model.d_width=64``.

Hardware: 2 CPU cores. A step at these widths is 262 GFLOP, 3.1-3.3 s
(20 images/s) on the 2 cores with nothing else running (docs/performance.md).
Measured with
`benchmarks/time_to_quality.py` alone on the 2 cores (docs/results.md):
847 steps in 40.7 minutes of training, iNat-bird FID 13.4 (26.4 after
20.8 minutes) and MobileNetV2 FID 73.2 (2,000 samples against 9,303
faces; the MobileNetV2 score is the D's own network and is not the one to
compare), with cat faces (eyes, nose, ears in place, varied coats) and a
fine grid texture in some. `cpu64` is this recipe for those 850 steps.
"""

from configs import default


def get_config():
  """Returns the projected64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.data.image_size = 64
  config.data.flip = True
  config.data.diffaugment = 'color,translation,cutout'
  config.data.diffaugment_p = 1.0
  config.batch_size = 64
  config.num_train_steps = 50_000
  config.model.name = 'fastgan_lite'
  config.model.discriminator = 'projected'
  config.model.z_dim = 64
  config.model.g_width = 16
  config.model.d_width = 32
  config.model.interp_size = 96
  config.model.proj_type = 2
  config.model.proj_cout = 64
  config.model.proj_expand = True
  config.model.num_discs = 4
  config.loss.name = 'hinge'
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.99
  config.train.g_samples = 'fresh_z'
  config.schedule.decay_nimg = 400_000
  config.schedule.ema_half_life_nimg = config.batch_size * 10 // 32 * 1000
  # The reference's EMA generator keeps the live generator's BatchNorm
  # statistics (training_loop.py copies its buffers), not standing ones.
  config.eval.standing_stats_batches = 0
  config.eval.every_steps = 5_000
  return config
