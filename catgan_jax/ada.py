"""ADA's augmentation pipeline (Karras et al. 2020), on device and differentiable.

A JAX port of ``AugmentPipe`` in stylegan2-ada-pytorch's
``training/augment.py`` (github.com/NVlabs/stylegan2-ada-pytorch; R3GAN,
github.com/brownvc/R3GAN, ships the same file): every op with its
probability multiplier and default strength, applied to each image
independently, in the reference's order.

  1. Pixel blitting and general geometric transforms (xflip, rotate90, xint;
     scale, rotate, aniso, xfrac), composed into one inverse 2D homogeneous
     matrix per image and executed once: reflection padding, 2x upsampling
     with the sym6 wavelet low-pass filter, a bilinear grid sample (zeros
     outside, ``align_corners=False``), 2x downsampling with the same filter.
  2. Colour transforms (brightness, contrast, lumaflip, hue, saturation),
     composed into one 4x4 colour matrix per image.
  3. Image-space filtering (imgfilter): a per-image gain of four frequency
     bands of a sym2 filter bank, applied as one separable filter with
     reflection padding.
  4. Corruptions: additive RGB noise and cutout.

Each op's parameter is drawn for every image and kept with probability
``multiplier * p`` (otherwise the op's identity), as the reference does;
``p`` is the overall strength (`hp.aug_p` of the train step: fixed, ramped
or adapted by ADA's rule, `diffaugment.ada_update`). Every op is linear in
the images, so gradients (and the second-order ones of R1/R2) flow to them.

Images are NHWC in [-1, 1] here (NCHW in the reference); the pixel
coordinates and matrices are the reference's.

Deliberate differences:
  * Padding. The reference pads by the margin the batch's transforms need
    (the largest over its images, at most the image size minus one) so that
    the sampled footprint stays inside reflected pixels. Under jit a padding
    must be static, so this pads by that maximum, image size minus one, on
    every side; a reflection padding is the same image whatever its width,
    so the result equals the reference's wherever its margin covers the
    sampled footprint (by its construction, everywhere but in transforms
    that hit the margin's clamp, where both read zeros beyond it).
  * Random numbers are JAX's (one key per op), not torch's.

The fixed padding, upsampling and downsampling are applied as one matrix
per axis (`resampling_matrices`, built once from upfirdn2d's reference
implementation): on XLA:CPU two small matmuls per axis are several times
faster, in the backward passes above all, than 12-tap filters over the
padded image.

Not exact, as in the reference: x-flips and 90-degree rotations pass
through the sym6 resampling, which sym6's near (not exact) symmetry makes
a slight low-pass along a flipped axis; the identity and whole-pixel
translations are exact.
"""

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

Array = jax.Array

# Low-pass filters of the wavelet decompositions the reference uses.
_WAVELETS = {
    'sym2': [
        -0.12940952255092145,
        0.22414386804185735,
        0.836516303737469,
        0.48296291314469025,
    ],
    'sym6': [
        0.015404109327027373,
        0.0034907120842174702,
        -0.11799011114819057,
        -0.048311742585633,
        0.4910559419267466,
        0.787641141030194,
        0.3379294217276218,
        -0.07263752278646252,
        -0.021060292512300564,
        0.04472490177066578,
        0.0017677118642428036,
        -0.007800708325034148,
    ],
}


def _normalized(taps) -> np.ndarray:
  """upfirdn2d.setup_filter: a separable filter normalised to unit DC gain."""
  f = np.asarray(taps, np.float64)
  return (f / f.sum()).astype(np.float32)


# The geometric ops' orthogonal low-pass filter, and the padding it needs.
HZ_GEOM = _normalized(_WAVELETS['sym6'])
_HZ_PAD = HZ_GEOM.shape[0] // 4


def _filter_bank() -> np.ndarray:
  """The reference's [4, taps] bank: band i of the sym2 decomposition."""
  hz_lo = np.asarray(_WAVELETS['sym2'])
  hz_hi = hz_lo * ((-1) ** np.arange(hz_lo.size))
  hz_lo2 = np.convolve(hz_lo, hz_lo[::-1]) / 2
  hz_hi2 = np.convolve(hz_hi, hz_hi[::-1]) / 2
  bank = np.eye(4, 1)
  for i in range(1, bank.shape[0]):
    bank = np.dstack([bank, np.zeros_like(bank)]).reshape(bank.shape[0], -1)
    bank = scipy.signal.convolve(bank[:, :-1], [hz_lo2])
    lo = (bank.shape[1] - hz_hi2.size) // 2
    hi = (bank.shape[1] + hz_hi2.size) // 2
    bank[i, lo:hi] += hz_hi2
  return bank.astype(np.float32)


HZ_FBANK = _filter_bank()
# The expected power spectrum of the four bands (1/f), as in the reference.
_EXPECTED_POWER = np.array([10, 1, 1, 1], np.float32) / 13


@dataclasses.dataclass(frozen=True)
class Pipe:
  """The probability multipliers and strengths of an `AugmentPipe`.

  The defaults are the reference's: every multiplier 0 (off), every
  strength its default. Comments are the reference's.
  """

  # Pixel blitting.
  xflip: float = 0.0  # Probability multiplier for x-flip.
  rotate90: float = 0.0  # ... for 90 degree rotations.
  xint: float = 0.0  # ... for integer translation.
  xint_max: float = 0.125  # Range of integer translation, relative to size.
  # General geometric transformations.
  scale: float = 0.0  # Probability multiplier for isotropic scaling.
  rotate: float = 0.0  # ... for arbitrary rotation.
  aniso: float = 0.0  # ... for anisotropic scaling.
  xfrac: float = 0.0  # ... for fractional translation.
  scale_std: float = 0.2  # Log2 standard deviation of isotropic scaling.
  rotate_max: float = 1.0  # Range of arbitrary rotation, 1 = full circle.
  aniso_std: float = 0.2  # Log2 standard deviation of anisotropic scaling.
  xfrac_std: float = 0.125  # Std of fractional translation, relative to size.
  # Colour transformations.
  brightness: float = 0.0  # Probability multiplier for brightness.
  contrast: float = 0.0  # ... for contrast.
  lumaflip: float = 0.0  # ... for luma flip.
  hue: float = 0.0  # ... for hue rotation.
  saturation: float = 0.0  # ... for saturation.
  brightness_std: float = 0.2  # Standard deviation of brightness.
  contrast_std: float = 0.5  # Log2 standard deviation of contrast.
  hue_max: float = 1.0  # Range of hue rotation, 1 = full circle.
  saturation_std: float = 1.0  # Log2 standard deviation of saturation.
  # Image-space filtering.
  imgfilter: float = 0.0  # Probability multiplier for image-space filtering.
  imgfilter_bands: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # ... per band.
  imgfilter_std: float = 1.0  # Log2 std of image-space filter amplification.
  # Image-space corruptions.
  noise: float = 0.0  # Probability multiplier for additive RGB noise.
  cutout: float = 0.0  # ... for cutout.
  noise_std: float = 0.1  # Standard deviation of additive RGB noise.
  cutout_size: float = 0.5  # Size of the cutout rectangle, relative to size.

  @property
  def geometric(self) -> bool:
    return any(
        getattr(self, op) > 0
        for op in ('xflip', 'rotate90', 'xint', 'scale')
        + ('rotate', 'aniso', 'xfrac')
    )

  @property
  def colour(self) -> bool:
    return any(
        getattr(self, op) > 0
        for op in ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')
    )


_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)

# data.ada_pipe: stylegan2-ada-pytorch's train.py `augpipe_specs` (its default
# is 'bgc'), and R3GAN's train.py pipe ('r3gan': bg at 1, colour at 0.5,
# cutout at 1).
PIPES: dict[str, Pipe] = {
    'blit': Pipe(**_BLIT),
    'geom': Pipe(**_GEOM),
    'color': Pipe(**_COLOR),
    'filter': Pipe(imgfilter=1),
    'noise': Pipe(noise=1),
    'cutout': Pipe(cutout=1),
    'bg': Pipe(**_BLIT, **_GEOM),
    'bgc': Pipe(**_BLIT, **_GEOM, **_COLOR),
    'bgcf': Pipe(**_BLIT, **_GEOM, **_COLOR, imgfilter=1),
    'bgcfn': Pipe(**_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1),
    'bgcfnc': Pipe(**_BLIT, **_GEOM, **_COLOR, imgfilter=1, noise=1, cutout=1),
    'r3gan': Pipe(
        **_BLIT,
        **_GEOM,
        **{op: 0.5 for op in _COLOR},
        cutout=1,
    ),
}


def get_pipe(name: str) -> Pipe:
  """The `Pipe` of data.ada_pipe `name`; a one-line error if unknown."""
  if name not in PIPES:
    raise ValueError(
        f'data.ada_pipe={name!r} is unknown; valid: {", ".join(PIPES)}'
    )
  return PIPES[name]


# --- Homogeneous matrices [N, k, k] of per-image parameters -------------------


def _matrix(*rows) -> Array:
  """Rows of scalars or [N] arrays -> [N, rows, cols] (the reference's)."""
  sizes = [x.shape[0] for row in rows for x in row if isinstance(x, Array)]
  n = sizes[0] if sizes else 1  # All constants: one matrix, broadcast.
  elems = [
      jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n,))
      for row in rows
      for x in row
  ]
  return jnp.stack(elems, axis=-1).reshape(n, len(rows), len(rows[0]))


def translate2d(tx, ty) -> Array:
  return _matrix([1, 0, tx], [0, 1, ty], [0, 0, 1])


def scale2d(sx, sy) -> Array:
  return _matrix([sx, 0, 0], [0, sy, 0], [0, 0, 1])


def rotate2d(theta) -> Array:
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _matrix([c, -s, 0], [s, c, 0], [0, 0, 1])


def translate3d(tx, ty, tz) -> Array:
  return _matrix([1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1])


def scale3d(sx, sy, sz) -> Array:
  return _matrix([sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1])


def rotate3d(v: np.ndarray, theta: Array) -> Array:
  """Rotation by `theta` [N] about the unit axis `v` (Rodrigues)."""
  vx, vy, vz = (float(a) for a in v[:3])
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _matrix(
      [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
      [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
      [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
      [0, 0, 0, 1],
  )


def _eye(n: int, k: int) -> Array:
  return jnp.broadcast_to(jnp.eye(k, dtype=jnp.float32), (n, k, k))


def _keep(key: Array, shape, prob) -> Array:
  """True where an op is applied: uniform < multiplier * p."""
  return jax.random.uniform(key, shape) < prob


# --- Parameters of the ops ------------------------------------------------------


def geometric_matrix(
    key: Array, n: int, height: int, width: int, p: Any, pipe: Pipe
) -> Array:
  """The inverse transforms G_inv [N, 3, 3]: output pixel -> input pixel.

  In pixels, centred on the image; composed in the reference's order
  (xflip, rotate90, xint, scale, pre-rotation, aniso, post-rotation, xfrac).
  """
  keys = iter(jax.random.split(key, 18))
  u = lambda shape=(n,): jax.random.uniform(next(keys), shape)
  normal = lambda shape=(n,): jax.random.normal(next(keys), shape)
  g = _eye(n, 3)
  if pipe.xflip > 0:
    i = jnp.floor(u() * 2)
    i = jnp.where(_keep(next(keys), (n,), pipe.xflip * p), i, 0.0)
    g = g @ scale2d(1 / (1 - 2 * i), 1)
  if pipe.rotate90 > 0:
    i = jnp.floor(u() * 4)
    i = jnp.where(_keep(next(keys), (n,), pipe.rotate90 * p), i, 0.0)
    g = g @ rotate2d(np.pi / 2 * i)
  if pipe.xint > 0:
    t = (u((n, 2)) * 2 - 1) * pipe.xint_max
    t = jnp.where(_keep(next(keys), (n, 1), pipe.xint * p), t, 0.0)
    g = g @ translate2d(
        -jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height)
    )
  if pipe.scale > 0:
    s = jnp.exp2(normal() * pipe.scale_std)
    s = jnp.where(_keep(next(keys), (n,), pipe.scale * p), s, 1.0)
    g = g @ scale2d(1 / s, 1 / s)
  # P(pre OR post) = multiplier * p.
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - pipe.rotate * p, 0, 1))
  if pipe.rotate > 0:
    theta = (u() * 2 - 1) * np.pi * pipe.rotate_max
    theta = jnp.where(_keep(next(keys), (n,), p_rot), theta, 0.0)
    g = g @ rotate2d(theta)  # Before anisotropic scaling.
  if pipe.aniso > 0:
    s = jnp.exp2(normal() * pipe.aniso_std)
    s = jnp.where(_keep(next(keys), (n,), pipe.aniso * p), s, 1.0)
    g = g @ scale2d(1 / s, s)
  if pipe.rotate > 0:
    theta = (u() * 2 - 1) * np.pi * pipe.rotate_max
    theta = jnp.where(_keep(next(keys), (n,), p_rot), theta, 0.0)
    g = g @ rotate2d(theta)  # After anisotropic scaling.
  if pipe.xfrac > 0:
    t = normal((n, 2)) * pipe.xfrac_std
    t = jnp.where(_keep(next(keys), (n, 1), pipe.xfrac * p), t, 0.0)
    g = g @ translate2d(-t[:, 0] * width, -t[:, 1] * height)
  return g


# The luma axis of the colour ops, homogeneous.
_LUMA = np.asarray([1, 1, 1, 0], np.float32) / np.sqrt(3)


def colour_matrix(key: Array, n: int, p: Any, pipe: Pipe) -> Array:
  """The colour transforms C [N, 4, 4]: C @ (r, g, b, 1) is the new colour.

  Composed in the reference's order (brightness, contrast, lumaflip, hue,
  saturation).
  """
  keys = iter(jax.random.split(key, 10))
  u = lambda: jax.random.uniform(next(keys), (n,))
  normal = lambda: jax.random.normal(next(keys), (n,))
  eye = _eye(n, 4)
  vv = jnp.asarray(np.outer(_LUMA, _LUMA))
  c = eye
  if pipe.brightness > 0:
    b = normal() * pipe.brightness_std
    b = jnp.where(_keep(next(keys), (n,), pipe.brightness * p), b, 0.0)
    c = translate3d(b, b, b) @ c
  if pipe.contrast > 0:
    s = jnp.exp2(normal() * pipe.contrast_std)
    s = jnp.where(_keep(next(keys), (n,), pipe.contrast * p), s, 1.0)
    c = scale3d(s, s, s) @ c
  if pipe.lumaflip > 0:
    i = jnp.floor(u() * 2)
    i = jnp.where(_keep(next(keys), (n,), pipe.lumaflip * p), i, 0.0)
    c = (eye - 2 * vv * i[:, None, None]) @ c  # Householder reflection.
  if pipe.hue > 0:
    theta = (u() * 2 - 1) * np.pi * pipe.hue_max
    theta = jnp.where(_keep(next(keys), (n,), pipe.hue * p), theta, 0.0)
    c = rotate3d(_LUMA, theta) @ c  # Rotate around the luma axis.
  if pipe.saturation > 0:
    s = jnp.exp2(normal() * pipe.saturation_std)
    s = jnp.where(_keep(next(keys), (n,), pipe.saturation * p), s, 1.0)
    c = (vv + (eye - vv) * s[:, None, None]) @ c
  return c


def filter_gains(key: Array, n: int, p: Any, pipe: Pipe) -> Array:
  """Per-image gains [N, 4] of the filter bank's bands (power-normalised)."""
  keys = jax.random.split(key, 2 * len(pipe.imgfilter_bands))
  power = jnp.asarray(_EXPECTED_POWER)
  g = jnp.ones((n, len(pipe.imgfilter_bands)), jnp.float32)
  for i, band in enumerate(pipe.imgfilter_bands):
    t_i = jnp.exp2(jax.random.normal(keys[2 * i], (n,)) * pipe.imgfilter_std)
    apply = _keep(keys[2 * i + 1], (n,), pipe.imgfilter * p * band)
    t_i = jnp.where(apply, t_i, 1.0)
    t = jnp.ones_like(g).at[:, i].set(t_i)
    t = t / jnp.sqrt(jnp.sum(power * jnp.square(t), axis=-1, keepdims=True))
    g = g * t
  return g


# --- Execution -------------------------------------------------------------------


def _upfirdn_matrix(
    n: int,
    f: np.ndarray,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> np.ndarray:
  """upfirdn2d's reference implementation along one axis, as a matrix.

  Zero-stuff by `up`, pad with zeros (negative = crop), convolve with `f`
  (correlate when flip_filter) keeping only outputs whose footprint lies in
  the signal, then keep every `down`-th sample: the [n_out, n] matrix of
  that linear map (applied to the identity).
  """
  x = np.eye(n)
  if up > 1:
    stuffed = np.zeros((n * up, n))
    stuffed[::up] = x
    x = stuffed
  p0, p1 = pad
  x = np.pad(x, ((max(p0, 0), max(p1, 0)), (0, 0)))
  x = x[max(-p0, 0) : x.shape[0] - max(-p1, 0)]
  taps = np.asarray(f, np.float64) * gain
  if not flip_filter:
    taps = taps[::-1]
  n_out = (x.shape[0] - taps.size) // down + 1
  span = (n_out - 1) * down + 1
  return sum(w * x[k : k + span : down] for k, w in enumerate(taps))


@functools.lru_cache(maxsize=None)
def resampling_matrices(size: int) -> tuple[np.ndarray, np.ndarray]:
  """The geometric ops' fixed resampling along an axis of `size` pixels.

  Returns:
    (up [2 (3 size - 2), size]: reflection padding by size - 1, then
    upfirdn2d.upsample2d with the sym6 filter (gain 2 per axis);
    down [size, 2 (size + 2 pad)]: downsample2d with the same filter,
    flip_filter=True, cropping 2 pad at each side).
  """
  taps = HZ_GEOM.size
  reflect = np.pad(np.eye(size), ((size - 1, size - 1), (0, 0)), 'reflect')
  up = _upfirdn_matrix(
      reflect.shape[0],
      HZ_GEOM,
      up=2,
      pad=((taps + 2 - 1) // 2, (taps - 2) // 2),
      gain=2.0,
  )
  down = _upfirdn_matrix(
      (size + _HZ_PAD * 2) * 2,
      HZ_GEOM,
      down=2,
      pad=(-_HZ_PAD * 2 + (taps - 2 + 1) // 2, -_HZ_PAD * 2 + (taps - 2) // 2),
      flip_filter=True,
  )
  return (up @ reflect).astype(np.float32), down.astype(np.float32)


def _resample(images: Array, rows: np.ndarray, cols: np.ndarray) -> Array:
  """Applies a separable linear map: rows along H, cols along W."""
  images = jnp.einsum('uh,nhwc->nuwc', jnp.asarray(rows), images)
  return jnp.einsum('vw,nuwc->nuvc', jnp.asarray(cols), images)


def _grid_sample(images: Array, grid: Array) -> Array:
  """torch's bilinear grid_sample, zeros outside, align_corners=False.

  Args:
    images: [N, H, W, C].
    grid: [N, Ho, Wo, 2] normalised (x, y) sampling positions.

  Returns:
    [N, Ho, Wo, C].
  """
  n, h, w, c = images.shape
  gx = ((grid[..., 0] + 1) * w - 1) / 2
  gy = ((grid[..., 1] + 1) * h - 1) / 2
  x0, y0 = jnp.floor(gx), jnp.floor(gy)
  fx, fy = gx - x0, gy - y0
  flat = images.reshape(n, h * w, c)
  gather = jax.vmap(lambda img, idx: img[idx])

  def tap(yi, xi, weight):
    inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
    idx = jnp.clip(yi, 0, h - 1).astype(jnp.int32) * w + jnp.clip(
        xi, 0, w - 1
    ).astype(jnp.int32)
    return gather(flat, idx) * jnp.where(inside, weight, 0.0)[..., None]

  return (
      tap(y0, x0, (1 - fx) * (1 - fy))
      + tap(y0, x0 + 1, fx * (1 - fy))
      + tap(y0 + 1, x0, (1 - fx) * fy)
      + tap(y0 + 1, x0 + 1, fx * fy)
  )


def apply_geometric(images: Array, g_inv: Array) -> Array:
  """Executes the inverse transforms `g_inv` [N, 3, 3] on images [N, H, W, C].

  The reference's execution: reflection padding, 2x sym6 upsampling, the
  affine grid sample, 2x sym6 downsampling and crop (see the module
  docstring for the padding).
  """
  _, height, width, _ = images.shape
  up_h, down_h = resampling_matrices(height)
  up_w, down_w = resampling_matrices(width)
  images = _resample(images, up_h, up_w)
  g = scale2d(2, 2) @ g_inv @ scale2d(0.5, 0.5)
  g = translate2d(-0.5, -0.5) @ g @ translate2d(0.5, 0.5)
  # Normalised coordinates of the output [(H + 2 pad) * 2] and input.
  out_h, out_w = (height + _HZ_PAD * 2) * 2, (width + _HZ_PAD * 2) * 2
  in_h, in_w = images.shape[1], images.shape[2]
  g = scale2d(2 / in_w, 2 / in_h) @ g @ scale2d(out_w / 2, out_h / 2)
  # affine_grid(align_corners=False): pixel centres in [-1, 1].
  xs = (2 * jnp.arange(out_w, dtype=jnp.float32) + 1) / out_w - 1
  ys = (2 * jnp.arange(out_h, dtype=jnp.float32) + 1) / out_h - 1
  base = jnp.stack(
      [
          jnp.broadcast_to(xs[None, :], (out_h, out_w)),
          jnp.broadcast_to(ys[:, None], (out_h, out_w)),
          jnp.ones((out_h, out_w), jnp.float32),
      ],
      axis=-1,
  )
  grid = jnp.einsum('hwk,nck->nhwc', base, g[:, :2, :])
  images = _grid_sample(images, grid)
  # Downsample and crop.
  images = _resample(images, down_h, down_w)
  return images


def apply_colour(images: Array, c: Array) -> Array:
  """Applies colour matrices `c` [N, 4, 4] to RGB (or L) images [N, H, W, C]."""
  channels = images.shape[-1]
  if channels == 3:
    rgb = jnp.einsum('nij,nhwj->nhwi', c[:, :3, :3], images)
    return rgb + c[:, None, None, :3, 3]
  if channels == 1:  # The reference's grey-scale rule.
    m = jnp.mean(c[:, :3, :], axis=1)
    return (
        images * jnp.sum(m[:, :3], -1)[:, None, None, None]
        + m[:, None, None, 3:]
    )
  raise ValueError(f'images must be RGB or L, not {channels} channels')


def apply_filter(images: Array, gains: Array) -> Array:
  """Filters each image with `gains` [N, 4] @ the band filters, separably."""
  hz = gains @ jnp.asarray(HZ_FBANK)  # [N, taps]
  taps = hz.shape[1]
  half = taps // 2
  _, h, w, _ = images.shape
  x = jnp.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), 'reflect')
  # torch's conv2d is a correlation: out[m] = sum_k hz[k] x[m + k].
  x = sum(hz[:, k, None, None, None] * x[:, :, k : k + w] for k in range(taps))
  return sum(hz[:, k, None, None, None] * x[:, k : k + h] for k in range(taps))


def apply_noise(images: Array, key: Array, p: Any, pipe: Pipe) -> Array:
  """Adds N(0, sigma^2) per pixel, sigma = |N(0, noise_std^2)| per image."""
  k_sigma, k_keep, k_noise = jax.random.split(key, 3)
  n = images.shape[0]
  sigma = jnp.abs(jax.random.normal(k_sigma, (n,))) * pipe.noise_std
  sigma = jnp.where(_keep(k_keep, (n,), pipe.noise * p), sigma, 0.0)
  noise = jax.random.normal(k_noise, images.shape, images.dtype)
  return images + noise * sigma[:, None, None, None]


def apply_cutout(images: Array, key: Array, p: Any, pipe: Pipe) -> Array:
  """Zeroes a rectangle of cutout_size x the image at a uniform centre."""
  k_keep, k_centre = jax.random.split(key)
  n, h, w, _ = images.shape
  size = jnp.where(_keep(k_keep, (n,), pipe.cutout * p), pipe.cutout_size, 0.0)
  centre = jax.random.uniform(k_centre, (n, 2))
  xs = (jnp.arange(w) + 0.5) / w
  ys = (jnp.arange(h) + 0.5) / h
  out_x = jnp.abs(xs[None] - centre[:, :1]) >= size[:, None] / 2
  out_y = jnp.abs(ys[None] - centre[:, 1:]) >= size[:, None] / 2
  mask = out_y[:, :, None] | out_x[:, None, :]
  return images * mask[..., None].astype(images.dtype)


def augment(images: Array, key: Array, p: Any, pipe: Pipe) -> Array:
  """Applies the ADA pipeline `pipe` with overall strength `p`.

  Args:
    images: [N, H, W, C] float images in [-1, 1] (C = 3 or 1).
    key: PRNG key of this call.
    p: the overall augmentation probability (a Python float or a traced
      scalar); each op's probability is its multiplier times p. A Python 0
      returns `images` unchanged; a traced 0 gives them back through the
      wavelet resampling (the identity up to rounding).
    pipe: the probability multipliers and strengths.

  Returns:
    The augmented images, same shape, float32; differentiable in `images`.
  """
  if isinstance(p, (int, float)) and p <= 0:
    return images
  n, height, width, channels = images.shape
  k_geom, k_colour, k_filter, k_noise, k_cutout = jax.random.split(key, 5)
  images = images.astype(jnp.float32)
  if pipe.geometric:
    g_inv = geometric_matrix(k_geom, n, height, width, p, pipe)
    images = apply_geometric(images, g_inv)
  if pipe.colour:
    if channels == 1:  # Hue and saturation need colour.
      pipe = dataclasses.replace(pipe, hue=0.0, saturation=0.0)
    images = apply_colour(images, colour_matrix(k_colour, n, p, pipe))
  if pipe.imgfilter > 0:
    images = apply_filter(images, filter_gains(k_filter, n, p, pipe))
  if pipe.noise > 0:
    images = apply_noise(images, k_noise, p, pipe)
  if pipe.cutout > 0:
    images = apply_cutout(images, k_cutout, p, pipe)
  return images


def check_config(config: Any) -> None:
  """Raises a one-line ValueError for unusable data.augment settings."""
  data = config.data
  choice = data.get('augment', 'diffaugment')
  if choice not in AUGMENTS:
    raise ValueError(
        f'data.augment={choice!r} is unknown; valid: {", ".join(AUGMENTS)}'
    )
  if choice != 'ada':
    return
  get_pipe(data.ada_pipe)
  if data.get('diffaugment', ''):
    raise ValueError(
        f'data.diffaugment={data.diffaugment!r} is not used with '
        "data.augment='ada'; set one of them"
    )
  p = data.ada_p
  if not (isinstance(p, (int, float)) and math.isfinite(p) and p >= 0):
    raise ValueError(f'data.ada_p={p!r} must be a number >= 0')
  if p == 0 and data.get('ada_target', 0.0) <= 0:
    raise ValueError(
        "data.augment='ada' with data.ada_p=0 and data.ada_target=0 never "
        'augments; set data.ada_p (fixed or ramped p) or data.ada_target '
        '(adaptive p)'
    )


# data.augment: the differentiable augmentation of D's inputs.
AUGMENTS = ('diffaugment', 'ada')
