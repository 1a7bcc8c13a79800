"""The relativistic GANs (Jolicoeur-Martineau 2018) on the CAT faces.

    python main.py --config=configs/relativistic.py:ralsgan \\
        --workdir=runs/ralsgan64 --config.data.dir=/path/to/cat_faces
    python main.py --config=configs/relativistic.py:ralsgan,128 \\
        --workdir=runs/ralsgan128 --config.data.dir=/path/to/cat_faces_128

The argument after the colon is `loss[,image_size]`, the image size 64 (the
default) or 128. The paper's cat experiments (`EXPERIMENTS`):

    --config=configs/relativistic.py:rsgan        RSGAN    (--loss_D 5)
    --config=configs/relativistic.py:rasgan       RaSGAN   (--loss_D 6)
    --config=configs/relativistic.py:ralsgan      RaLSGAN  (--loss_D 7)
    --config=configs/relativistic.py:rahinge      RaHinge  (--loss_D 8)
    --config=configs/relativistic.py:ralsgan,128  RaLSGAN on 128 px faces

`/path/to/cat_faces` is any folder of cat images; make one from the CAT
dataset with `python -m catgan_jax.data.prepare_cat CAT_DIR OUT` (then
use `OUT/64`, or `OUT/128` for 128 px) and check it with
`python -m catgan_jax.data.scan DIR`.

Follows RelativisticGAN `code/GAN_losses_iter.py` as its `code/unstable.sh`
runs it on the 64 and 128 px cats ("Meow tests": `--lr_D .0002 --lr_G
.0002 --batch_size 32 --Diters 1 --arch 0 --beta1 .50 --beta2 .999
--n_iter 100000 --G_h_size 64 --D_h_size 64`, z_size left at its default
128): DCGAN (arch 0) with BatchNorm, ngf = ndf = 64, z = 128, Adam lr 2e-4
with betas (0.5, 0.999) for both networks, batch 32, one D update per G
update, 100k iterations, and a new z and a new real batch for each G
update (`train.g_samples='fresh_z_and_reals'`: 64 images read per
iteration), and no random flips (the code has none). At 128 px the paper trained on the faces of at least 128 px
only (`data.min_size=128`). The paper reports FID on the cats after 100k
iterations. Differs only in drawing real batches from per-epoch
permutations (the reference draws every batch independently at random).

Hardware: 1 GPU (~2-3 h at 64 px, several hours at 128 px). Expected:
relativistic losses reach a lower FID than the standard GAN (nsgan) with
this architecture, and RaLSGAN is the paper's only loss that produced good
128 px cats with it. On 2 CPU cores, `ralsgan` after 40 minutes of
training (3,539 steps) is at MobileNetV2 FID 669
(`benchmarks/results/ttq_ralsgan64_cpu.json`, measured with random flips,
`--config.data.flip=True`; `dcgan_cpu64.py` reaches 206): on a CPU, use it to
check that it runs.
"""

import ml_collections

from configs import default

LOSSES = ('rsgan', 'rasgan', 'ralsgan', 'rahinge')
IMAGE_SIZES = (64, 128)
# The paper's cat experiments, as `--config` arguments (the tests run each).
EXPERIMENTS = ('rsgan', 'rasgan', 'ralsgan', 'rahinge', 'ralsgan,128')


def _parse(arg: str) -> tuple[str, int]:
  """'loss[,image_size]' -> (loss, image_size)."""
  loss, _, size = (arg or 'ralsgan').partition(',')
  if loss not in LOSSES or (size and size not in map(str, IMAGE_SIZES)):
    raise ValueError(
        f'configs/relativistic.py:{arg}: expected loss[,image_size] with '
        f'loss in {", ".join(LOSSES)} and image_size in '
        f'{", ".join(map(str, IMAGE_SIZES))}'
    )
  return loss, int(size or 64)


def get_config(arg: str = 'ralsgan') -> ml_collections.ConfigDict:
  """Returns the relativistic config of `arg` ('loss[,image_size]')."""
  loss, image_size = _parse(arg)
  config = default.get_config()
  config.data.source = 'folder'
  config.data.image_size = image_size
  config.data.min_size = image_size if image_size >= 128 else 32
  config.batch_size = 32
  config.num_train_steps = 100_000
  config.model.z_dim = 128
  config.model.g_width = 64
  config.model.d_width = 64
  config.loss.name = loss
  config.train.g_samples = 'fresh_z_and_reals'
  return config
