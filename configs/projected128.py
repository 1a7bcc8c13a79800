"""Projected GAN (FastGAN-lite G, projected D) on 128 px cat faces.

    python main.py --config=configs/projected128.py --workdir=runs/projected128 \\
        --config.data.dir=/path/to/cat_faces_128 \\
        --config.model.feature_path=/path/to/mobilenet_v2_1.0_224_quant.tflite

`projected64`'s recipe (the ``fastgan_lite`` cfg of Projected GAN's
``train.py``, github.com/autonomousvision/projected-gan; see there for the
scorer flags, the x-flips and every deliberate difference) at 128 px: the
generator adds its 128 px stage (SLE-gated from 8 px), and the images reach
the feature network at their own size (``model.interp_size`` = 128; the
reference's 224 with ``--config.model.interp_size=224``).

Hardware: an accelerator (on 2 CPU cores a step is several times
projected64's). Result: not measured (no 128 px cat-face folder is at hand
here, and the CPU time went to projected64).
"""

from configs import projected64


def get_config():
  """Returns the projected128 config."""
  config = projected64.get_config()
  config.data.image_size = 128
  config.model.interp_size = 128
  return config
