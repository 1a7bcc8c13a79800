"""FastGAN (Liu et al., ICLR 2021) with its own discriminator, 64 px cat faces.

    python main.py --config=configs/fastgan64.py --workdir=runs/fastgan64 \\
        --config.data.dir=/path/to/cat_faces_64 \\
        --config.model.feature_path=/path/to/mobilenet_v2_1.0_224_quant.tflite

Reference: github.com/odegeasslbc/FastGAN-pytorch, ``train.py`` and
``models.py``: the self-supervised discriminator (``Discriminator``,
``DownBlockComp``, ``SimpleDecoder``; `catgan_jax/models/fastgan.py`), D's
hinge loss with margins drawn from U(0.8, 1) plus the reconstruction loss
on the real batch (``train_d``: the whole image decoded from the 8 px map
of each branch and a random quadrant from the 16 px map, loss name
``hinge_random_margin``), G's loss -mean D(G(z)), one forward pass of G
for both updates, Adam 2e-4 with betas (0.5, 0.999) for both networks,
batch 8, DiffAugment 'color,translation' on every pass of D, random
horizontal flips of the reals (``transforms.RandomHorizontalFlip``), an EMA
of G's parameters with rate 0.001 (``avg_param_G``; the live generator's
BatchNorm statistics, which the reference's ``load_params`` leaves in
place), 50,000 iterations (``--iter``), z of 256 (``nz``).

Differences:
  * The reconstruction loss: the reference's LPIPS (VGG, learned weights)
    cannot be had offline; here it is LPIPS's distance without learned
    weights through the frozen ImageNet MobileNetV2 (``model.feature_path``,
    the network the projected discriminator looks through), on
    reconstructions of the image's side (64 px) instead of 128. The
    reference adds no pixel term, and neither does this. D's features are
    trained to decode into images close in that network's feature space and
    G learns from them, so, as for `projected64`, scoring with that network
    is refused (score with ``eval.features='mobilenet_v2_inat'``).
  * The generator is FastGAN's as Projected GAN uses it (``fastgan``: two
    conv blocks with noise at every resolution, z normalised; see
    `catgan_jax/models/fastgan.py`), not models.py's own (which alternates
    one- and two-conv blocks and also gives D a 128 px image); D's small
    branch gets the fakes resized, as the reference does for the reals.
  * G's pass of D draws its own augmentation (the reference reuses the
    fakes' augmented batch of D's pass).
  * The reference's D is built for 256 px and up; at 64 px its blocks
    follow the map sides (see `fastgan.Discriminator`).
  * For 2 CPU cores the widths are cut: ngf (``model.g_width``) 16 and ndf
    (``model.d_width``) 16, not 64 and 64. The reference's, on an
    accelerator: ``--config.model.g_width=64 --config.model.d_width=64``.

Hardware: 2 CPU cores. A step at these widths is 34.8 GFLOP, 4.1 s on the
shared cores under a load average of 12-15 (compile 118 s; record
benchmarks/results/cpu_fastgan64.json, `benchmarks/step_throughput.py
--batch 8` with the feature path set in a config importing this one).
Expected result: not yet measured at the 40-minute CPU budget
(`benchmarks/time_to_quality.py`); docs/results.md lists what is.
"""

from configs import default


def get_config():
  """Returns the fastgan64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.data.image_size = 64
  config.data.flip = True
  config.data.diffaugment = 'color,translation'
  config.data.diffaugment_p = 1.0
  config.batch_size = 8
  config.num_train_steps = 50_000
  config.model.name = 'fastgan'
  config.model.discriminator = 'fastgan'
  config.model.z_dim = 256
  config.model.g_width = 16
  config.model.d_width = 16
  config.loss.name = 'hinge_random_margin'
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  config.train.g_samples = 'reuse'
  config.train.ema_decay = 0.999
  # The reference's EMA generator keeps the live generator's BatchNorm
  # statistics (load_params copies parameters only), not standing ones.
  config.eval.standing_stats_batches = 0
  config.eval.every_steps = 5_000
  return config
