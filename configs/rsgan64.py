"""RSGAN (Jolicoeur-Martineau 2018, 'The relativistic discriminator') on 64x64 cats.

    python main.py --config=configs/rsgan64.py --workdir=runs/rsgan64 \\
        --config.data.dir=../shared/data/cat_faces_64

Reproduces the paper's CAT 64x64 setting: DCGAN-64, Adam lr 2e-4, betas
(0.5, 0.999), batch 32, one D update per G update, 100k iterations; the
paper reports FID on 64x64 cats after 100k iterations.

Hardware: 1 GPU (~2-3 h). Expected: relativistic losses reach a lower FID
than the standard GAN (nsgan) with this architecture; on CPU use it only to
check that it runs.
"""

from configs import default


def get_config():
  """Returns the rsgan64 config."""
  return default.relativistic_config('rsgan')
