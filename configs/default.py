"""Every catgan_jax config field, with its default and what it does.

Experiment configs import this file and override a few lines. Any field can be
overridden on the command line, e.g. ``--config.loss.name=hinge``.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  """Returns the default configuration (a DCGAN-64 on the synthetic cats)."""
  config = ml_collections.ConfigDict()

  # One seed for everything: parameters, noise, data order, augmentation.
  config.seed = 0
  # Global batch size, summed over every device of every process. It must be
  # divisible by the number of devices (and therefore of processes).
  config.batch_size = 64
  # Training iterations. One iteration reads one global batch and performs one
  # discriminator update (unless skipped by train.d_every_k_steps); the
  # generator is updated every train.d_steps_per_g_step-th iteration.
  config.num_train_steps = 10_000
  config.log_every_steps = 50
  config.sample_every_steps = 500
  config.checkpoint_every_steps = 1_000
  # Number of most recent checkpoints kept in workdir/checkpoints.
  config.keep_checkpoints = 3
  # A workdir holding a run with a different config is refused unless True.
  config.allow_config_change = False

  # --- Data -----------------------------------------------------------------
  config.data = data = ml_collections.ConfigDict()
  # 'synthetic' (procedurally drawn cat faces, offline), 'folder' (any folder
  # tree of images), 'cat_dataset' (the CAT dataset prepared by
  # `python -m catgan_jax.data.prepare_cat`; data.dir = its output) or 'tfds'.
  data.source = 'synthetic'
  # Folder of images for source='folder' (searched recursively).
  data.dir = ''
  # Optional clean manifest written by `python -m catgan_jax.data.scan`.
  data.manifest = ''
  # Side of the square training images; the model is built for this size.
  data.image_size = 64
  # 'center' | 'random' crop to a square before resizing, or 'none' (squash).
  data.crop = 'center'
  # Images whose shorter side is below this are skipped.
  data.min_size = 32
  # RGB background that transparent images are composited on.
  data.background = (255, 255, 255)
  # Random horizontal flip of real images (in the input pipeline). Off: none
  # of the DCGAN-family references flips (pytorch/examples dcgan/main.py,
  # the Deep-learning-with-cats scripts, RelativisticGAN's
  # GAN_losses_iter.py); a recipe whose reference flips turns it on.
  data.flip = False
  # Random resized crop: scale range of the crop area (1.0, 1.0 = off).
  data.rrc_min_scale = 1.0
  # Number of images drawn for source='synthetic', and their seed (fixed, so
  # runs with different `seed`s train on and are scored against one set).
  data.num_synthetic = 2048
  data.synthetic_seed = 0
  # Classes of a class-conditional GAN (0: unconditional). Found from the
  # data and checked against this: folder sub-folders or its dataset.json,
  # the TFDS label feature (data.tfds_label_key), the synthetic faces' coat
  # colours (4). Needs model.g_cond and model.d_cond.
  data.num_classes = 0
  # Keep decoded images in memory (they are small at GAN resolutions).
  data.cache = True
  # TFDS source: dataset name, split, data_dir and labels to keep.
  data.tfds_name = ''
  data.tfds_split = 'train'
  data.tfds_data_dir = ''
  data.tfds_labels = ()
  # Feature keys of the TFDS examples (e.g. 'species' for oxford_iiit_pet).
  data.tfds_label_key = 'label'
  data.tfds_image_key = 'image'
  # Download and prepare the TFDS dataset when it is not in tfds_data_dir.
  data.tfds_download = False
  # DiffAugment policy applied on device to real and fake images alike, e.g.
  # 'color,translation,cutout' ('' = off), and its probability / strength.
  data.diffaugment = ''
  data.diffaugment_p = 1.0
  # Adaptive augmentation (ADA, Karras et al. 2020; stylegan2-ada-pytorch's
  # rule): p starts at 0 and, every ada_interval iterations, moves by
  # sign(r_t - ada_target) * batch_size * ada_interval / (ada_kimg * 1000),
  # clamped to [0, 1], where r_t is the mean of sign(D(real)) over those
  # iterations; p changes by 1 in ada_kimg thousand real images.
  # ada_target = 0 turns it off (stylegan2-ada uses 0.6).
  data.ada_target = 0.0
  data.ada_interval = 4
  data.ada_kimg = 500.0
  # D's differentiable augmentation: 'diffaugment' (the data.diffaugment
  # policy above; '' = none) or 'ada' (stylegan2-ada's AugmentPipe,
  # catgan_jax/ada.py: geometric ops through a wavelet-filtered affine
  # resampling, colour matrices, filtering, noise, cutout).
  data.augment = 'diffaugment'
  # data.augment='ada' only: the pipe, by stylegan2-ada's train.py --augpipe
  # names ('bgc' is its default; also 'bgcfnc' etc.) or 'r3gan' (R3GAN's
  # train.py: bg ops at 1, colour at 0.5, cutout at 1); and its fixed
  # strength p (the end of schedule.aug_p_ramp; with ada_target > 0, p
  # starts at 0 and adapts instead).
  data.ada_pipe = 'bgc'
  data.ada_p = 0.0

  # --- Model ----------------------------------------------------------------
  config.model = model = ml_collections.ConfigDict()
  # Architecture registered in catgan_jax.models.MODELS.
  model.name = 'dcgan'
  # Size of the latent vector z ~ N(0, I).
  model.z_dim = 100
  # Base channel widths (ngf, ndf in the DCGAN paper).
  model.g_width = 64
  model.d_width = 64
  model.kernel_size = 4
  # 'batch' | 'none' | 'selu' (SELU activations, no BN; LeCun-normal init
  # unless model.kernel_init says otherwise).
  model.norm = 'batch'
  # Normalisation of the discriminator; '' = same as model.norm. WGAN-GP
  # wants 'none' or 'layer' because its penalty is per sample.
  model.d_norm = ''
  # Weight initialiser of model.name='dcgan': '' = LeCun-normal for SELU,
  # N(0, 0.02) otherwise; 'dcgan_normal' (N(0, 0.02)) or 'lecun_normal'.
  model.kernel_init = ''
  # Biases in every layer of model.name='dcgan' (True/False); unset = only
  # where no BatchNorm follows.
  model.use_bias = config_dict.placeholder(bool)
  # Spectral normalisation of every discriminator layer (PyTorch's
  # spectral_norm: the raw weight is the parameter, one power iteration per
  # training call). A BatchNorm discriminator then drops its BatchNorm, which
  # would undo SN, as the relativistic-GAN code's --spectral does;
  # d_norm='layer' with SN is refused for the same reason.
  model.spectral_norm = False
  # Side of G's first and D's last feature map of model.name='dcgan': 4 (the
  # DCGAN recipe) or 2 (one more stage at the start of G and the end of D,
  # with twice the channels of the 4x4 stage).
  model.base_size = 4
  # Negative slope of the hidden activations of a model.name='dcgan' G: 0 is
  # ReLU (the DCGAN recipe), e.g. 0.2 LeakyReLU in every G layer (as in D).
  model.g_leak = 0.0
  # Class conditioning (data.num_classes > 0; models/conditioning.py), dcgan,
  # r3gan, fastgan and fastgan_lite: G by 'concat' (class embedding beside z;
  # dcgan, r3gan) or 'cbn' (BigGAN's conditional BatchNorm, shared embedding;
  # dcgan, fastgan*); D by 'projection' (Miyato and Koyama 2018; r3gan: its
  # reference's embedding projection; the projected D's conditional heads).
  # cond_dim: G's class embedding size (R3GAN's reference: z_dim, 64).
  model.g_cond = ''
  model.d_cond = ''
  model.cond_dim = 128
  # Compute dtype of both networks ('float32' or 'bfloat16'); params stay f32.
  model.dtype = 'float32'
  # model.name='r3gan' only (R3GAN, Huang et al. 2024; kernel_size and norm
  # do not apply). Channels per stage from the 4x4 stage up at
  # g_width = d_width = 64 (they scale by g_width / 64 in G, d_width / 64 in
  # D), shared by G and D (D runs them from the image size down); a smaller
  # data.image_size uses the first ones. These are the FFHQ-64 preset's.
  model.r3gan_widths = (768, 768, 768, 768, 384)
  # Residual blocks per stage.
  model.r3gan_blocks = 2
  # Hidden width of a residual block, as a multiple of its channels.
  model.r3gan_expansion = 2
  # Channels per group of the blocks' 3x3 grouped convolutions (the
  # reference's cardinality is hidden width / this).
  model.r3gan_group_channels = 16
  # model.name='fastgan' | 'fastgan_lite' only (FastGAN's generator as
  # Projected GAN uses it; g_width is its ngf, 128 in the reference).
  # Their discriminator: 'projected' (Projected GAN's, through a frozen
  # pretrained feature network) or 'fastgan' (FastGAN's own, self-supervised
  # by reconstruction; d_width is its ndf, 64 in the reference).
  model.discriminator = 'projected'
  # The projected discriminator's feature network, and the network of the
  # 'fastgan' discriminator's reconstruction loss: the ImageNet MobileNetV2
  # TFLite file (mobilenet_v2_1.0_224_quant.tflite); required.
  model.feature_path = ''
  # Tests only: a randomly initialised feature network instead of
  # feature_path's (a discriminator that sees nothing pretrained).
  model.feature_random_init = False
  # Side the images are resized to before the feature network when they
  # are smaller (the reference's 224); a multiple of 32.
  model.interp_size = 224
  # Random projections of the features: 0 = none, 1 = cross-channel (CCM),
  # 2 = CCM and cross-scale mixing (CSM); their channels, and whether they
  # grow with depth (cout, 2, 4, 8 cout).
  model.proj_type = 2
  model.proj_cout = 64
  model.proj_expand = True
  # Mini-discriminators, on the finest num_discs of the four feature maps.
  model.num_discs = 4

  # --- Loss -----------------------------------------------------------------
  config.loss = loss = ml_collections.ConfigDict()
  # Loss registered in catgan_jax.losses.LOSSES.
  loss.name = 'nsgan'
  # Targets of the BCE losses (label smoothing: real_label=0.9).
  loss.real_label = 1.0
  loss.fake_label = 0.0
  # LSGAN targets: D pushes fake->a and real->b; G pushes fake->c.
  loss.a = 0.0
  loss.b = 1.0
  loss.c = 1.0
  # WGAN weight clipping of every critic parameter (0 = off), applied after
  # each critic update ('after_update') or, as the WGAN reference code does,
  # at the start of each critic update ('before_update': the critic computes
  # with clipped weights; G sees the critic's last update unclipped).
  loss.clip = 0.0
  loss.clip_mode = 'after_update'
  # Gradient penalty on random interpolates (WGAN-GP); 0 = off.
  loss.gp_weight = 0.0
  # R1 penalty on real images, (r1_weight / 2) * E ||grad D(real)||^2; 0 = off.
  loss.r1_weight = 0.0
  # R2 penalty on generated images, (r2_weight / 2) * E ||grad D(fake)||^2;
  # 0 = off. R3GAN's gamma / 2 * (R1 + R2) is r1_weight = r2_weight = gamma.
  loss.r2_weight = 0.0
  # Std of Gaussian instance noise added to D's inputs, annealed linearly to
  # zero over the run; 0 = off.
  loss.instance_noise = 0.0
  # Lazy regularisation (StyleGAN2's D_reg_interval): with k > 1 the
  # penalties (gp, r1, r2) are left out of D's loss and taken every k-th D
  # update as their own optimiser step with the weights times k; D's Adam
  # then runs at lr * k/(k+1) and betas ** (k/(k+1)) (stylegan2-ada's
  # training_loop.py). 1 = every update, in D's loss.
  loss.reg_every = 1

  # --- Optimisers -----------------------------------------------------------
  config.optim = optim = ml_collections.ConfigDict()
  # 'adam' or 'rmsprop', per network.
  optim.g_name = 'adam'
  optim.d_name = 'adam'
  optim.g_lr = 2e-4
  optim.d_lr = 2e-4
  optim.b1 = 0.5
  optim.b2 = 0.999
  # Per-network betas; unset = optim.b1 / optim.b2.
  optim.g_b1 = config_dict.placeholder(float)
  optim.g_b2 = config_dict.placeholder(float)
  optim.d_b1 = config_dict.placeholder(float)
  optim.d_b2 = config_dict.placeholder(float)

  # --- Training balance and safety -------------------------------------------
  config.train = train = ml_collections.ConfigDict()
  # n_critic: the generator is updated once every this many iterations.
  train.d_steps_per_g_step = 1
  # The discriminator is updated only on every k-th iteration.
  train.d_every_k_steps = 1
  # Critic warm-up (the WGAN code's trick): G updates number < warmup_g_steps
  # and every warmup_every_g_steps-th get warmup_d_steps_per_g_step
  # iterations instead of d_steps_per_g_step (WGAN.py: 100, 25, 500);
  # warmup_d_steps_per_g_step = 0 is off.
  train.warmup_d_steps_per_g_step = 0
  train.warmup_g_steps = 0
  train.warmup_every_g_steps = 0
  # Samples of the generator update: 'reuse' (D's z, fake batch and reals:
  # one forward pass of G per iteration, as the DCGAN references), 'fresh_z'
  # (a new z and forward pass of G, as the WGAN references) or
  # 'fresh_z_and_reals' (also new reals for relativistic G losses, as the
  # RelativisticGAN code; the input pipeline then reads 2 * batch_size
  # images per iteration, half for D, half for G).
  train.g_samples = 'reuse'
  # EMA of generator parameters (0 = off); used for samples and FID when on.
  train.ema_decay = 0.0
  # A loss above this bound counts as divergence (0 = no bound).
  train.max_loss = 0.0
  # On divergence: restore the last good checkpoint, multiply both learning
  # rates by this factor and continue; give up after max_rollbacks in a row.
  train.rollback_lr_factor = 0.5
  train.max_rollbacks = 3

  # --- Schedules (R3GAN) -----------------------------------------------------
  # Cosine ramps over the first decay_nimg training images (images = step x
  # batch_size); each value then stays at its end. Every ramp is off by
  # default, and one that is on needs decay_nimg > 0.
  config.schedule = schedule = ml_collections.ConfigDict()
  schedule.decay_nimg = 0
  # End learning rates as a fraction of optim.g_lr / optim.d_lr (1 = constant).
  schedule.lr_end_factor = 1.0
  # End Adam beta2 of both networks, from optim.b2 (or g_b2 / d_b2); unset =
  # constant.
  schedule.b2_end = config_dict.placeholder(float)
  # End R1/R2 weights as a fraction of loss.r1_weight / r2_weight (1 = constant).
  schedule.gamma_end_factor = 1.0
  # Ramp the augmentation probability from 0 up to data.diffaugment_p
  # (data.augment='diffaugment') or data.ada_p ('ada').
  schedule.aug_p_ramp = False
  # EMA of the generator by half-life in images, ramped from 0 up to this
  # (constant if decay_nimg = 0); the decay of a step is
  # 0.5 ** (batch_size / half-life). 0 = off (train.ema_decay applies).
  schedule.ema_half_life_nimg = 0

  # --- Evaluation -----------------------------------------------------------
  config.eval = ev = ml_collections.ConfigDict()
  # FID/KID every this many steps and at the end (0 = only at the end,
  # -1 = never).
  ev.every_steps = 0
  ev.num_samples = 10_000
  ev.batch_size = 100
  # Feature network: 'inception_v3' (the standard FID; its weights are
  # downloaded once into ~/.cache/catgan_jax, SHA-256 checked) or
  # 'mobilenet_v2' (offline; needs features_path).
  ev.features = 'inception_v3'
  # Weights file of the feature network ('' = inception_v3's cache; required
  # for mobilenet_v2: mobilenet_v2_1.0_224_quant.tflite).
  ev.features_path = ''
  # Where reference statistics of datasets are cached ('' = ~/.cache).
  ev.cache_dir = ''
  # Number of real images for the reference statistics (0 = all).
  ev.num_reference = 0
  # KID: number of random subsets and rows per subset (clean-fid's
  # defaults, 100 x 1000); a subset holds all of the smaller feature set
  # when it has fewer rows than kid_subset_size. FID and KID score the
  # samples quantised to uint8, as saved images are.
  ev.kid_subsets = 100
  ev.kid_subset_size = 1000
  # Inception Score (Salimans et al. 2016) of the generated images, from the
  # feature network's class probabilities (same forward pass as the FID
  # features): exp(E_x KL(p(y|x) || p(y))) in this many consecutive splits,
  # mean and std over splits (10, as openai/improved-gan's inception_score).
  ev.is_splits = 10
  # Improved precision and recall (Kynkaanniemi et al. 2019) of the same
  # features against all reference images: k nearest neighbours define each
  # set's manifold (3, as stylegan2-ada's pr50k3); 0 = off.
  ev.pr_k = 3
  # Class-conditional runs (data.num_classes > 0) are scored on labels drawn
  # from the real images' class frequencies. True adds intra-FID (the mean
  # of per-class FIDs, as the projection-discriminator and BigGAN papers
  # report): num_samples // num_classes more images of each class, each
  # against its own real images (evaluation/intra_fid.py).
  ev.per_class = False
  # With an EMA of G (train.ema_decay or schedule.ema_half_life_nimg) and
  # BatchNorm in G: samples and scores use BatchNorm statistics of the EMA
  # weights, averaged over this many training-mode passes of batch_size
  # latents (BigGAN's standing statistics; 16 as BigGAN-PyTorch's
  # num_standing_accumulations); 0 = the live generator's statistics.
  ev.standing_stats_batches = 16
  # A run whose discriminator looks through the scoring network (a
  # projected discriminator and eval.features='mobilenet_v2') is refused:
  # its generator can lower that FID without better images. True allows it.
  ev.allow_same_network = False

  # --- Multi-host runtime ---------------------------------------------------
  config.distributed = ml_collections.ConfigDict()
  # Call jax.distributed.initialize(); automatic on TPU pods and under SLURM.
  config.distributed.enabled = False
  # Explicit coordinator (host:port), process count and id, for clusters
  # where JAX cannot discover them ('' / -1 = discover).
  config.distributed.coordinator_address = ''
  config.distributed.num_processes = -1
  config.distributed.process_id = -1

  return config


def r3gan_config(
    image_size: int, widths: tuple[int, ...], gamma: float
) -> ml_collections.ConfigDict:
  """The R3GAN recipe (Huang et al. 2024) on a folder of cat faces.

  The FFHQ presets of the reference's ``train.py`` (github.com/brownvc/R3GAN):
  RpGAN (rsgan) + gamma/2 (R1 + R2), z_dim 64, two blocks per stage,
  expansion 2, 16 channels per group, batch 256, Adam beta1 0, and cosine
  ramps over 2e7 images of the learning rate (2e-4 -> 5e-5, both networks),
  beta2 (0.9 -> 0.99), gamma (down 10x), the augmentation probability
  (0 -> 0.3) of its augment pipe (stylegan2-ada's ``AugmentPipe`` with
  xflip, rotate90, xint, scale, rotate, aniso, xfrac at 1, brightness,
  contrast, lumaflip, hue, saturation at 0.5 and cutout at 1: data.ada_pipe
  'r3gan') and the EMA half-life (0 -> 0.5M images); x-flips on; R1 and R2
  every step (no lazy regularisation). Runs for one ramp (2e7 images,
  78,125 steps).

  Args:
    image_size: side of the training images.
    widths: channels per stage from 4x4 up.
    gamma: the R1/R2 weight at the start.

  Returns:
    The experiment config.
  """
  config = get_config()
  config.data.source = 'folder'
  config.data.image_size = image_size
  config.data.flip = True
  # The reference's augment pipe (stylegan2-ada's, with its own multipliers)
  # at p ramped from 0 to 0.3.
  config.data.augment = 'ada'
  config.data.ada_pipe = 'r3gan'
  config.data.ada_p = 0.3
  config.batch_size = 256
  decay_nimg = 20_000_000
  config.num_train_steps = decay_nimg // config.batch_size
  config.eval.every_steps = 5_000
  config.model.name = 'r3gan'
  config.model.z_dim = 64
  # r3gan_widths are the channels at these widths (the scale's unit).
  config.model.g_width = 64
  config.model.d_width = 64
  config.model.r3gan_widths = widths
  config.model.r3gan_blocks = 2
  config.model.r3gan_expansion = 2
  config.model.r3gan_group_channels = 16
  config.loss.name = 'rsgan'
  config.loss.r1_weight = gamma
  config.loss.r2_weight = gamma
  config.optim.g_lr = 2e-4
  config.optim.d_lr = 2e-4
  config.optim.b1 = 0.0
  config.optim.b2 = 0.9
  schedule = config.schedule
  schedule.decay_nimg = decay_nimg
  schedule.lr_end_factor = 0.25
  schedule.b2_end = 0.99
  schedule.gamma_end_factor = 0.1
  schedule.aug_p_ramp = True
  schedule.ema_half_life_nimg = 500_000
  # The reference's training loop draws a new z and a new real batch for
  # the G phase (training/training_loop.py).
  config.train.g_samples = 'fresh_z_and_reals'
  return config
