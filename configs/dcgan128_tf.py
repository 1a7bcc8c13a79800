"""The TF1 DCGAN at 128x128 with label smoothing.

    python main.py --config=configs/dcgan128_tf.py --workdir=runs/dcgan128_tf \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

G: Dense -> 8x8x1024, LeakyReLU, four 5x5 stride-2 transposed convs
(512, 256, 128, 64) with BN+LeakyReLU, a 5x5 conv to RGB, tanh; D: 5x5 convs
(64, 128, 256 stride 2; 512 stride 1; 1024 stride 2) with BN+LeakyReLU;
real labels smoothed to 0.9, Adam 2e-4, beta1 0.5.

Reference: the TF1 128 px DCGAN script (not in a public repository); every
setting above is that script's, `models/dcgan128_tf.py` its networks.
Random flips are off (the default) and the length, 30k steps, is a choice
made here: neither is known from the script.

Hardware: 1 GPU. Expected: 128px cats, noisier than the SELU recipe.
"""

from configs import default


def get_config():
  """Returns the dcgan128_tf config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.num_train_steps = 30_000
  config.data.image_size = 128
  # The seed recipes trained only on faces of at least 128 px; smaller ones
  # are skipped, not upscaled.
  config.data.min_size = 128
  config.model.name = 'dcgan128_tf'
  config.model.kernel_size = 5
  config.loss.real_label = 0.9
  return config
