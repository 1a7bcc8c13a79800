"""The best 64 px cats this codebase makes in 40 minutes on 2 CPU cores.

    python main.py --config=configs/cpu64.py --workdir=runs/cpu64 \\
        --config.data.dir=/path/to/cat_faces_64 \\
        --config.model.feature_path=/path/to/mobilenet_v2_1.0_224_quant.tflite \\
        --config.eval.features=mobilenet_v2_inat \\
        --config.eval.features_path=/path/to/mobilenet_v2_1.0_224_inat_bird_quant.tflite

`/path/to/cat_faces_64` is any folder of 64 px cat faces; make one from the
CAT dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`) and check it with `python -m catgan_jax.data.scan DIR`. The
discriminator looks at the images through the ImageNet MobileNetV2
(`model.feature_path`); the run is scored, once at the end, by a network it
does not see: the iNaturalist-birds MobileNetV2 above, or the standard
Inception FID when `eval.features` is left at its default.

Recipe: `projected64` as it is (Projected GAN's ``fastgan_lite`` cfg,
github.com/autonomousvision/projected-gan ``train.py``, at CPU widths: see
`configs/projected64.py` for the reference and every deliberate
difference), for the 850 steps that 40 minutes of training give on 2
cores (2.9 s a step). It replaced the DCGAN recipe, now `dcgan_cpu64`,
when both were trained for 40 minutes on the same quiet machine and scored
by the iNat-bird network (docs/results.md, "Projected GAN against the
DCGAN recipe").

Hardware: 2 CPU cores, about 40 minutes. Expected, as measured with
`benchmarks/time_to_quality.py` alone on the 2 cores (2,000 samples against
9,303 faces): after 40.7 minutes of training (847 steps), iNat-bird FID
13.4 (KID x 100 0.48, precision 0.56, recall 0.22), where `dcgan_cpu64`
reaches 42.6 after 40 minutes and this recipe reaches that in about 12;
cat faces with eyes, nose and ears in place, tabby, ginger, Siamese,
black-and-white and white coats, a fine grid texture in places
(`docs/cpu64_40min.jpg`). Its MobileNetV2 FID, 73.2, is the
discriminator's own network and is not comparable.
"""

from configs import projected64


def get_config():
  """Returns the cpu64 config."""
  config = projected64.get_config()
  config.num_train_steps = 850
  config.eval.every_steps = 0
  config.eval.num_samples = 2_000
  return config
