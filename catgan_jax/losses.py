"""GAN losses picked by name, and the penalties and metrics around them.

A loss variant is one entry of ``LOSSES``: a pair of pure functions of the
discriminator's raw logits (never probabilities) plus a flag telling the
training step whether the generator loss needs ``D(real)`` as well. The step
looks the variant up with ``get_loss(config.loss.name)``; adding a loss means
adding one entry here, not an ``if`` in the trainer.

Every loss takes ``(real_logits, fake_logits, loss_cfg)`` where ``loss_cfg`` is
``config.loss`` and returns a float32 scalar. Logits of any floating dtype are
accepted and promoted to float32 first, so bfloat16 networks still get their
losses (and the log-sigmoids inside them) in full precision.

Label smoothing (``loss.real_label`` / ``loss.fake_label``) applies to the
discriminator terms of the binary cross-entropy losses only (nsgan, minimax,
rsgan, rasgan): a term whose hard target is 1 uses ``real_label``, one whose
hard target is 0 uses ``fake_label``. Generator losses always use hard
targets, since smoothing is a regulariser of the discriminator's confidence.

The relativistic losses follow Jolicoeur-Martineau, "The relativistic
discriminator: a key element missing from standard GAN" (ICLR 2019,
arXiv:1807.00734). The relativistic *average* losses (rasgan, ralsgan,
rahinge) are halved, as in the author's reference code
(github.com/AlexiaJM/RelativisticGAN, ``code/GAN_losses_iter.py``), whose
published cat-face results they reproduce; the paper's equations omit the
factor 1/2, which only rescales the gradients.
"""

from collections.abc import Callable
import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

LossCfg = ml_collections.ConfigDict
DLossFn = Callable[[jax.Array, jax.Array, LossCfg], jax.Array]
GLossFn = Callable[[jax.Array | None, jax.Array, LossCfg], jax.Array]
CriticFn = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class GANLoss:
  """A GAN loss variant.

  Attributes:
    d_loss: ``(real_logits, fake_logits, loss_cfg) -> scalar``, minimised by
      the discriminator.
    g_loss: ``(real_logits or None, fake_logits, loss_cfg) -> scalar``,
      minimised by the generator.
    g_uses_real: whether ``g_loss`` needs the real logits (the relativistic
      losses); the step then computes ``D(real)`` in the generator update too.
  """

  d_loss: DLossFn
  g_loss: GLossFn
  g_uses_real: bool
  # Whether d_loss draws random numbers: it then takes a PRNG key as its
  # fourth argument (see `d_value`).
  d_uses_key: bool = False

  def d_value(
      self,
      real_logits: jax.Array,
      fake_logits: jax.Array,
      cfg: LossCfg,
      key: jax.Array,
  ) -> jax.Array:
    """d_loss of the logits; `key` feeds a loss that draws (d_uses_key)."""
    if self.d_uses_key:
      return self.d_loss(real_logits, fake_logits, cfg, key)
    return self.d_loss(real_logits, fake_logits, cfg)


# --- Elementary terms ---------------------------------------------------------


def _f32(x: jax.Array) -> jax.Array:
  return jnp.asarray(x, jnp.float32)


def _bce(logits: jax.Array, target: float) -> jax.Array:
  """Mean binary cross-entropy of raw logits against a constant target."""
  return jnp.mean(
      optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target))
  )


def _mse(x: jax.Array, target: float) -> jax.Array:
  """Mean squared distance of ``x`` to a constant target."""
  return jnp.mean(optax.squared_error(x, jnp.full_like(x, target)))


def _hinge(x: jax.Array, sign: float) -> jax.Array:
  """Mean of ``relu(1 - sign * x)``."""
  return jnp.mean(optax.hinge_loss(x, sign))


def _labels(cfg: LossCfg) -> tuple[float, float]:
  return cfg.get('real_label', 1.0), cfg.get('fake_label', 0.0)


def _require_real(real_logits: jax.Array | None, name: str) -> jax.Array:
  if real_logits is None:
    raise ValueError(f'The generator loss of {name!r} needs the real logits.')
  return _f32(real_logits)


def _relative_to_mean(
    real: jax.Array, fake: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Returns ``C(x_r) - E C(x_f)`` and ``C(x_f) - E C(x_r)``."""
  return real - jnp.mean(fake), fake - jnp.mean(real)


# --- Absolute losses ----------------------------------------------------------


def _bce_d_loss(real_logits, fake_logits, cfg):
  """Standard GAN discriminator (sum of the two means, as PyTorch DCGAN)."""
  real_label, fake_label = _labels(cfg)
  return _bce(_f32(real_logits), real_label) + _bce(
      _f32(fake_logits), fake_label
  )


def _nsgan_g_loss(real_logits, fake_logits, cfg):
  """Non-saturating generator: -E log D(G(z))."""
  del real_logits, cfg
  return _bce(_f32(fake_logits), 1.0)


def _minimax_g_loss(real_logits, fake_logits, cfg):
  """Saturating generator: E log(1 - D(G(z))), minimised."""
  del real_logits, cfg
  return -_bce(_f32(fake_logits), 0.0)


def _lsgan_d_loss(real_logits, fake_logits, cfg):
  """Least squares (Mao et al. 2017): D pushes real to b and fake to a."""
  a, b = cfg.get('a', 0.0), cfg.get('b', 1.0)
  return 0.5 * _mse(_f32(real_logits), b) + 0.5 * _mse(_f32(fake_logits), a)


def _lsgan_g_loss(real_logits, fake_logits, cfg):
  """G pushes fake to c (c = (a + b) / 2 is the boundary-seeking variant)."""
  del real_logits
  return 0.5 * _mse(_f32(fake_logits), cfg.get('c', 1.0))


def _wgan_d_loss(real_logits, fake_logits, cfg):
  """Critic maximises E C(real) - E C(fake); the Lipschitz constraint (clip or
  gradient penalty) is applied by the training step."""
  del cfg
  return jnp.mean(_f32(fake_logits)) - jnp.mean(_f32(real_logits))


def _wgan_g_loss(real_logits, fake_logits, cfg):
  """-E C(G(z)); shared by wgan, wgan_gp and hinge."""
  del real_logits, cfg
  return -jnp.mean(_f32(fake_logits))


def _hinge_d_loss(real_logits, fake_logits, cfg):
  """E relu(1 - C(real)) + E relu(1 + C(fake))."""
  del cfg
  return _hinge(_f32(real_logits), 1.0) + _hinge(_f32(fake_logits), -1.0)


def _random_margin_hinge_d_loss(real_logits, fake_logits, cfg, key):
  """E relu(m - D(real)) + E relu(m + D(fake)), m ~ U(0.8, 1) per logit.

  FastGAN's train_d (github.com/odegeasslbc/FastGAN-pytorch, train.py):
  ``F.relu(torch.rand_like(pred) * 0.2 + 0.8 - pred).mean()`` on the reals'
  logits, with ``+ pred`` on the fakes'.
  """
  del cfg
  real, fake = _f32(real_logits), _f32(fake_logits)
  key_real, key_fake = jax.random.split(key)
  margin = lambda k, x: 0.8 + 0.2 * jax.random.uniform(k, x.shape)
  return jnp.mean(jax.nn.relu(margin(key_real, real) - real)) + jnp.mean(
      jax.nn.relu(margin(key_fake, fake) + fake)
  )


# --- Relativistic losses ------------------------------------------------------


def _check_paired(real: jax.Array, fake: jax.Array) -> None:
  # Shapes are static under jit, so this costs nothing at run time and stops
  # a silent broadcast of mismatched batches into a B x B comparison.
  if real.shape != fake.shape:
    raise ValueError(
        'rsgan compares real and fake samples in pairs; got '
        f'logits of shapes {real.shape} and {fake.shape}.'
    )


def _rsgan_d_loss(real_logits, fake_logits, cfg):
  """-E log sigmoid(C(x_r) - C(x_f)), over pairs (x_r, x_f) of the batch."""
  real, fake = _f32(real_logits), _f32(fake_logits)
  _check_paired(real, fake)
  return _bce(real - fake, _labels(cfg)[0])


def _rsgan_g_loss(real_logits, fake_logits, cfg):
  """-E log sigmoid(C(x_f) - C(x_r))."""
  del cfg
  real, fake = _require_real(real_logits, 'rsgan'), _f32(fake_logits)
  _check_paired(real, fake)
  return _bce(fake - real, 1.0)


def _rasgan_d_loss(real_logits, fake_logits, cfg):
  """(-E log sigmoid(r~) - E log(1 - sigmoid(f~))) / 2, with
  r~ = C(x_r) - E C(x_f) and f~ = C(x_f) - E C(x_r)."""
  real_label, fake_label = _labels(cfg)
  rel_real, rel_fake = _relative_to_mean(_f32(real_logits), _f32(fake_logits))
  return (_bce(rel_real, real_label) + _bce(rel_fake, fake_label)) / 2


def _rasgan_g_loss(real_logits, fake_logits, cfg):
  """(-E log sigmoid(f~) - E log(1 - sigmoid(r~))) / 2."""
  del cfg
  rel_real, rel_fake = _relative_to_mean(
      _require_real(real_logits, 'rasgan'), _f32(fake_logits)
  )
  return (_bce(rel_fake, 1.0) + _bce(rel_real, 0.0)) / 2


def _ralsgan_d_loss(real_logits, fake_logits, cfg):
  """(E (r~ - 1)^2 + E (f~ + 1)^2) / 2."""
  del cfg
  rel_real, rel_fake = _relative_to_mean(_f32(real_logits), _f32(fake_logits))
  return (_mse(rel_real, 1.0) + _mse(rel_fake, -1.0)) / 2


def _ralsgan_g_loss(real_logits, fake_logits, cfg):
  """(E (f~ - 1)^2 + E (r~ + 1)^2) / 2."""
  del cfg
  rel_real, rel_fake = _relative_to_mean(
      _require_real(real_logits, 'ralsgan'), _f32(fake_logits)
  )
  return (_mse(rel_fake, 1.0) + _mse(rel_real, -1.0)) / 2


def _rahinge_d_loss(real_logits, fake_logits, cfg):
  """(E relu(1 - r~) + E relu(1 + f~)) / 2."""
  del cfg
  rel_real, rel_fake = _relative_to_mean(_f32(real_logits), _f32(fake_logits))
  return (_hinge(rel_real, 1.0) + _hinge(rel_fake, -1.0)) / 2


def _rahinge_g_loss(real_logits, fake_logits, cfg):
  """(E relu(1 - f~) + E relu(1 + r~)) / 2."""
  del cfg
  rel_real, rel_fake = _relative_to_mean(
      _require_real(real_logits, 'rahinge'), _f32(fake_logits)
  )
  return (_hinge(rel_fake, 1.0) + _hinge(rel_real, -1.0)) / 2


LOSSES: dict[str, GANLoss] = {
    'nsgan': GANLoss(_bce_d_loss, _nsgan_g_loss, g_uses_real=False),
    'minimax': GANLoss(_bce_d_loss, _minimax_g_loss, g_uses_real=False),
    'lsgan': GANLoss(_lsgan_d_loss, _lsgan_g_loss, g_uses_real=False),
    'wgan': GANLoss(_wgan_d_loss, _wgan_g_loss, g_uses_real=False),
    # The penalty is added by the step when loss.gp_weight > 0.
    'wgan_gp': GANLoss(_wgan_d_loss, _wgan_g_loss, g_uses_real=False),
    'hinge': GANLoss(_hinge_d_loss, _wgan_g_loss, g_uses_real=False),
    'hinge_random_margin': GANLoss(
        _random_margin_hinge_d_loss,
        _wgan_g_loss,
        g_uses_real=False,
        d_uses_key=True,
    ),
    'rsgan': GANLoss(_rsgan_d_loss, _rsgan_g_loss, g_uses_real=True),
    'rasgan': GANLoss(_rasgan_d_loss, _rasgan_g_loss, g_uses_real=True),
    'ralsgan': GANLoss(_ralsgan_d_loss, _ralsgan_g_loss, g_uses_real=True),
    'rahinge': GANLoss(_rahinge_d_loss, _rahinge_g_loss, g_uses_real=True),
}


def get_loss(name: str) -> GANLoss:
  """Returns the registered loss called ``name``.

  Args:
    name: a key of ``LOSSES`` (``config.loss.name``).

  Returns:
    The ``GANLoss``.

  Raises:
    ValueError: if no loss of that name is registered.
  """
  try:
    return LOSSES[name]
  except KeyError:
    raise ValueError(
        f'loss.name={name!r} is unknown; valid: ' f'{", ".join(sorted(LOSSES))}'
    ) from None


# --- Penalties ----------------------------------------------------------------
#
# With augmentation (data.diffaugment), the step takes both penalties with
# respect to the images *before* augmentation, and `critic_fn` contains the
# augmentation: critic_fn(x) = D(augment(x)), with the random draw the loss
# used for the real batch. This is stylegan2-ada-pytorch's R1
# (training/loss.py: the gradient is taken w.r.t. real_img while
# augment_pipe runs inside run_D), so the penalty constrains D's gradient on
# the data distribution rather than on the augmented one. The WGAN-GP
# interpolates are likewise formed from un-augmented reals and fakes and
# passed through the reals' augmentation draw (the WGAN-GP references have
# no augmentation; this keeps an interpolate at eps=1 exactly the augmented
# real the loss saw).


def _per_sample_input_grads(critic_fn: CriticFn, x: jax.Array) -> jax.Array:
  # The gradient of the summed logits is each sample's own input gradient as
  # long as the critic treats samples independently (no batch statistics),
  # which is why WGAN-GP critics use no or layer normalisation.
  return jax.grad(lambda v: jnp.sum(_f32(critic_fn(v))))(x)


def _sum_sq_per_sample(g: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(_f32(g)), axis=tuple(range(1, g.ndim)))


def gradient_penalty(
    critic_fn: CriticFn,
    real: jax.Array,
    fake: jax.Array,
    key: jax.Array,
    target: float = 1.0,
) -> jax.Array:
  """WGAN-GP penalty (Gulrajani et al. 2017), unweighted.

  Args:
    critic_fn: images ``[B, ...]`` -> logits ``[B]``, with the critic's
      parameters (and any augmentation, see the note above) closed over;
      differentiate through it for the D update.
    real: real images ``[B, H, W, C]``, before augmentation.
    fake: generated images, same shape, before augmentation.
    key: PRNG key for the interpolation weights.
    target: the gradient norm the critic is pushed to.

  Returns:
    ``mean_i (||grad_x C(x_i)||_2 - target)^2`` at
    ``x_i = eps_i * real_i + (1 - eps_i) * fake_i``, ``eps_i ~ U[0, 1]``, the
    norm taken over all of a sample's pixels and channels.
  """
  eps_shape = (real.shape[0],) + (1,) * (real.ndim - 1)
  eps = jax.random.uniform(key, eps_shape, dtype=real.dtype)
  x_hat = eps * real + (1.0 - eps) * fake
  grads = _per_sample_input_grads(critic_fn, x_hat)
  sq = _sum_sq_per_sample(grads)
  # The exact norm, as the reference's torch norm: an epsilon under the root
  # (1e-12 here before) shifts the penalty's gradient by eps / (2 ||g||^2),
  # 3.5e-4 at the ||g|| ~ 4e-5 of a narrow critic at initialisation. The
  # inner where keeps d sqrt finite where a gradient vanishes; the norm and
  # its gradient are 0 there (torch's subgradient).
  nonzero = sq > 0
  norms = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)
  return jnp.mean(jnp.square(norms - target))


def _zero_centered_penalty(critic_fn: CriticFn, x: jax.Array) -> jax.Array:
  grads = _per_sample_input_grads(critic_fn, x)
  return jnp.mean(_sum_sq_per_sample(grads))


def r1_penalty(critic_fn: CriticFn, real: jax.Array) -> jax.Array:
  """R1 penalty (Mescheder et al. 2018), without its ``gamma / 2`` weight.

  Args:
    critic_fn: images ``[B, ...]`` -> logits ``[B]``, including any
      augmentation (see the note above).
    real: real images ``[B, H, W, C]``, before augmentation.

  Returns:
    ``mean_i ||grad_x D(real_i)||_2^2``; the caller multiplies it by
    ``loss.r1_weight / 2``.
  """
  return _zero_centered_penalty(critic_fn, real)


def r2_penalty(critic_fn: CriticFn, fake: jax.Array) -> jax.Array:
  """R2 penalty: R1's zero-centred gradient penalty on generated images.

  R3GAN (Huang et al. 2024, ``R3GAN/Trainer.py``) adds
  ``gamma / 2 * (R1 + R2)`` to its relativistic (rsgan) D loss, i.e.
  ``loss.r1_weight = loss.r2_weight = gamma``.

  Args:
    critic_fn: images ``[B, ...]`` -> logits ``[B]``.
    fake: generated images ``[B, H, W, C]`` (constants for the D update).

  Returns:
    ``mean_i ||grad_x D(fake_i)||_2^2``; the caller multiplies it by
    ``loss.r2_weight / 2``.
  """
  return _zero_centered_penalty(critic_fn, fake)


# --- Metrics ------------------------------------------------------------------


def d_accuracy(
    real_logits: jax.Array, fake_logits: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Fractions of real and fake samples the discriminator gets right.

  Args:
    real_logits: ``D(real)`` raw logits.
    fake_logits: ``D(fake)`` raw logits.

  Returns:
    ``(mean(real_logits > 0), mean(fake_logits < 0))`` as float32 scalars.
  """
  return (
      jnp.mean(real_logits > 0, dtype=jnp.float32),
      jnp.mean(fake_logits < 0, dtype=jnp.float32),
  )
