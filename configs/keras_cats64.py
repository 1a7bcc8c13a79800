"""The Keras cat-faces DCGAN (its architecture and settings) at 64x64.

    python main.py --config=configs/keras_cats64.py --workdir=runs/keras_cats64 \\
        --config.data.dir=/path/to/cat_faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

z=128 -> Dense 2048 -> 4x4x128 -> five 5x5 bias-free transposed convs with
BN+ReLU -> per-pixel Dense(3)+tanh; D four 4x4 stride-2 convs + Dense(1);
batch 128, Adam 2e-4 for both networks, random horizontal flips.

Reference: the Keras cat-faces DCGAN script (not in a public repository);
every setting above is that script's, `models/keras_dcgan.py` its networks.
The length, 30k steps, is a choice made here, not known from the script.

Hardware: 1 GPU. Expected: cat faces after ~10k steps, as in the source.
"""

from configs import default


def get_config():
  """Returns the keras_cats64 config."""
  config = default.get_config()
  config.data.source = 'folder'
  config.batch_size = 128
  config.num_train_steps = 30_000
  config.model.name = 'keras_dcgan'
  config.model.z_dim = 128
  config.model.kernel_size = 5
  config.data.flip = True
  return config
