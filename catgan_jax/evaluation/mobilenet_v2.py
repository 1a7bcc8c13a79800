"""MobileNetV2 (ImageNet) feature network in Flax, loaded from a TFLite file.

The weights are those of TensorFlow's `mobilenet_v2_1.0_224_quant.tflite`, a
quantisation-aware-trained MobileNetV2 whose batch norms are folded into the
convolutions and whose weights are stored as uint8. They are dequantised
(real = scale * (q - zero_point)) into this float Flax port, which runs the
network in float32 on any JAX device and in batches. The features are the
1280-d global average pool in front of the classifier. Checked against the
uint8 TFLite interpreter on 32 cat faces: pooled features correlate at 0.991
(the interpreter rounds every activation to 8 bits), and the classifier on
top of them picks the same ImageNet class for 30 of 32 images.

With `with_logits=True` the network also returns the logits of the file's
own classifier (the 1x1 convolution after the pool, as a dense layer with
its bias): 1001 classes, class 0 'background' and ImageNet's 1000 after it;
the file's output is their softmax. They give the Inception Score.

The input is RGB in [-1, 1] at 224x224 (the TFLite input quantisation,
scale 1/128 and zero point 128, maps uint8 pixels to exactly that range).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1001

# Inverted residual blocks after the stem: (expansion t, channels c,
# repeats n, first stride s), from Sandler et al. 2018, table 2.
_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _block_specs() -> list[tuple[str, int, int, int]]:
  """(name, expansion, out channels, stride) of each block, in graph order."""
  specs = []
  for t, c, n, s in _BLOCKS:
    for i in range(n):
      index = len(specs)
      name = 'expanded_conv' + (f'_{index}' if index else '')
      specs.append((name, t, c, s if i == 0 else 1))
  return specs


def _same_pads(shape, s: int) -> list[tuple[int, int, int]]:
  """TF 'SAME' (before, after, output size) of a 3x3 window per side."""
  pads = []
  for size in shape:
    out = -(-size // s)
    total = max((out - 1) * s + 3 - size, 0)
    # The odd pixel of padding goes at the end.
    pads.append((total // 2, total - total // 2, out))
  return pads


def _taps(x: jnp.ndarray, kernel: jnp.ndarray, s: int, oh: int, ow: int):
  """The sum of the nine shifted (stride s), per-channel scaled copies."""
  y = 0.0
  for i in range(3):
    for j in range(3):
      patch = x[:, i : i + (oh - 1) * s + 1 : s, j : j + (ow - 1) * s + 1 : s]
      y = y + patch * kernel[i, j, 0]
  return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def depthwise_3x3(x: jnp.ndarray, kernel: jnp.ndarray, s: int) -> jnp.ndarray:
  """3x3 depthwise convolution, stride s, TF 'SAME', as fused taps."""
  (top, bottom, oh), (left, right, ow) = _same_pads(x.shape[1:3], s)
  x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  return _taps(x, kernel, s, oh, ow)


def _depthwise_fwd(x, kernel, s):
  return depthwise_3x3(x, kernel, s), (x, kernel)


def _depthwise_bwd(s, residuals, grad):
  # Autodiff of the taps transposes each strided slice into its own padded
  # full-size array; on XLA:CPU that made the pass back through the network
  # 3x slower than this: the output gradient dilated by the stride once,
  # then nine fused taps with the flipped kernel, cropped to x.
  x, kernel = residuals
  h, w = x.shape[1:3]
  (top, bottom, oh), (left, right, ow) = _same_pads((h, w), s)
  dilated = jax.lax.pad(
      grad,
      jnp.zeros((), grad.dtype),
      ((0, 0, 0), (2, 2, s - 1), (2, 2, s - 1), (0, 0, 0)),
  )
  full = _taps(
      dilated, kernel[::-1, ::-1], 1, (oh - 1) * s + 3, (ow - 1) * s + 3
  )
  extra = (h + top + bottom - full.shape[1], w + left + right - full.shape[2])
  full = jnp.pad(
      full, ((0, 0), (0, max(extra[0], 0)), (0, max(extra[1], 0)), (0, 0))
  )
  grad_x = full[:, top : top + h, left : left + w]
  padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  grad_kernel = jnp.stack(
      [
          jnp.stack(
              [
                  jnp.sum(
                      padded[
                          :,
                          i : i + (oh - 1) * s + 1 : s,
                          j : j + (ow - 1) * s + 1 : s,
                      ]
                      * grad,
                      axis=(0, 1, 2),
                  )
                  for j in range(3)
              ]
          )
          for i in range(3)
      ]
  )[:, :, None, :]
  return grad_x, grad_kernel


depthwise_3x3.defvjp(_depthwise_fwd, _depthwise_bwd)


class DepthwiseConv3x3(nn.Module):
  """3x3 depthwise convolution with TF 'SAME' padding, plus bias.

  Written as a sum of nine shifted, per-channel scaled copies of the input
  (`depthwise_3x3`, whose gradients are fused taps too): XLA:CPU runs
  grouped convolutions (feature_group_count = channels) about six times
  slower than these fused elementwise products; on GPU both are fast. The
  kernel has the layout of a grouped `nn.Conv`: [3, 3, 1, C].
  """

  stride: int = 1

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    channels = x.shape[-1]
    kernel = self.param(
        'kernel', nn.initializers.lecun_normal(), (3, 3, 1, channels)
    )
    bias = self.param('bias', nn.initializers.zeros, (channels,))
    return depthwise_3x3(x, kernel, self.stride) + bias


class InvertedResidual(nn.Module):
  """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), + skip."""

  expansion: int
  features: int
  stride: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    in_features = x.shape[-1]
    y = x
    if self.expansion != 1:
      y = jnp.clip(
          nn.Conv(in_features * self.expansion, (1, 1), name='expand')(y), 0, 6
      )
    y = jnp.clip(DepthwiseConv3x3(self.stride, name='depthwise')(y), 0, 6)
    y = nn.Conv(self.features, (1, 1), name='project')(y)
    if self.stride == 1 and in_features == self.features:
      y = y + x
    return y


class MobileNetV2(nn.Module):
  """MobileNetV2 1.0; returns the pooled features [N, 1280].

  Attributes:
    with_logits: also return the classifier's logits [N, num_classes]:
      (features, logits).
    num_classes: classes of the file's classifier (1001 for ImageNet's
      file, 965 for the iNaturalist birds one).
  """

  with_logits: bool = False
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(
      self, x: jnp.ndarray
  ) -> jnp.ndarray | tuple[jnp.ndarray, jnp.ndarray]:
    # TF 'SAME' padding (extra pixel at the bottom/right for stride 2), which
    # is also what Flax's 'SAME' does.
    x = jnp.clip(
        nn.Conv(32, (3, 3), strides=2, padding='SAME', name='Conv')(x), 0, 6
    )
    for name, t, c, s in _block_specs():
      x = InvertedResidual(t, c, s, name=name)(x)
    x = jnp.clip(nn.Conv(FEATURE_DIM, (1, 1), name='Conv_1')(x), 0, 6)
    pool = jnp.mean(x, axis=(1, 2))
    if not self.with_logits:
      return pool
    # The file's 1x1 convolution on the 1x1 pooled map is this dense layer.
    return pool, nn.Dense(self.num_classes, name='Logits')(pool)


# Index of the last block of each stage that ends at stride 4, 8, 16 and 32
# (channels 24, 32, 96 and 320): the four resolutions a projected
# discriminator reads (`MobileNetV2Stages`).
STAGE_ENDS = (2, 5, 12, 16)


class MobileNetV2Stages(nn.Module):
  """The same network up to its last block, returning four stages' maps.

  Returns the activations after blocks `STAGE_ENDS`: [N, H/4, W/4, 24],
  [N, H/8, W/8, 32], [N, H/16, W/16, 96], [N, H/32, W/32, 320]. Its
  parameters are `MobileNetV2`'s without ``Conv_1`` (and the classifier),
  under the same names, so `load_tflite_params` fills them.
  """

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> list[jnp.ndarray]:
    x = jnp.clip(
        nn.Conv(32, (3, 3), strides=2, padding='SAME', name='Conv')(x), 0, 6
    )
    outs = []
    for index, (name, t, c, s) in enumerate(_block_specs()):
      x = InvertedResidual(t, c, s, name=name)(x)
      if index in STAGE_ENDS:
        outs.append(x)
    return outs


def conv_paths() -> list[tuple[str, ...]]:
  """Module paths of every convolution, in the order the graph runs them."""
  paths = [('Conv',)]
  for name, t, _, _ in _block_specs():
    if t != 1:
      paths.append((name, 'expand'))
    paths += [(name, 'depthwise'), (name, 'project')]
  paths.append(('Conv_1',))
  return paths


def _dequantize(model, subgraph, tensor_index: int) -> np.ndarray:
  """The constant tensor `tensor_index` as float32."""
  tensor = subgraph.Tensors(tensor_index)
  data = model.Buffers(tensor.Buffer()).DataAsNumpy()
  # Tensor types from the TFLite schema: 0 FLOAT32, 2 INT32, 3 UINT8, 9 INT8.
  dtype = {0: np.float32, 2: np.int32, 3: np.uint8, 9: np.int8}[tensor.Type()]
  values = np.frombuffer(data.tobytes(), dtype=dtype).reshape(
      tensor.ShapeAsNumpy()
  )
  if dtype == np.float32:
    return values.copy()
  quant = tensor.Quantization()
  scale = quant.ScaleAsNumpy().astype(np.float32)
  zero_point = quant.ZeroPointAsNumpy().astype(np.float32)
  if scale.size > 1:
    # Per-channel quantisation runs along QuantizedDimension().
    axis = quant.QuantizedDimension()
    shape = [1] * values.ndim
    shape[axis] = -1
    scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
  return (scale * (values.astype(np.float32) - zero_point)).astype(np.float32)


def load_tflite_params(
    path: str, classifier: bool = False
) -> dict[str, dict[str, np.ndarray]]:
  """Reads the convolution weights of the TFLite MobileNetV2 into Flax params.

  The convolutions of the file are matched with `conv_paths()` in graph
  order; every shape is checked, so a different network fails loudly.

  Args:
    path: the `.tflite` file.
    classifier: also read the classifier (the file's last convolution) into
      `Logits`, for `MobileNetV2(with_logits=True)`.

  Returns:
    A params tree for `MobileNetV2().apply({'params': ...}, x)`.

  Raises:
    ValueError: if the file does not hold the expected network.
  """
  # The flatbuffer schema ships with TensorFlow (a dependency of the project).
  from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=g-import-not-at-top

  with open(path, 'rb') as f:
    buf = f.read()
  model = schema.Model.GetRootAsModel(buf, 0)
  subgraph = model.Subgraphs(0)
  conv_ops = []
  for i in range(subgraph.OperatorsLength()):
    op = subgraph.Operators(i)
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin in (
        schema.BuiltinOperator.CONV_2D,
        schema.BuiltinOperator.DEPTHWISE_CONV_2D,
        # The iNaturalist file's classifier is a dense layer [classes, 1280].
        schema.BuiltinOperator.FULLY_CONNECTED,
    ):
      conv_ops.append((builtin, op.Inputs(1), op.Inputs(2)))
  paths = conv_paths()
  # The file ends with the classifier (a 1x1 convolution or a dense layer),
  # which only the logits need.
  if len(conv_ops) != len(paths) + 1:
    raise ValueError(
        f'{path}: expected {len(paths) + 1} convolutions of MobileNetV2 1.0, '
        f'found {len(conv_ops)}.'
    )
  shapes = _param_shapes()
  params: dict = {}
  for path_, (builtin, w_index, b_index) in zip(paths, conv_ops):
    kernel = _dequantize(model, subgraph, w_index)
    if builtin == schema.BuiltinOperator.DEPTHWISE_CONV_2D:
      # [1, kh, kw, C] -> [kh, kw, 1, C] (grouped-conv layout).
      kernel = kernel.transpose(1, 2, 0, 3)
    else:
      # [out, kh, kw, in] -> Flax [kh, kw, in, out].
      kernel = kernel.transpose(1, 2, 3, 0)
    bias = _dequantize(model, subgraph, b_index)
    want = shapes['/'.join(path_)]
    if kernel.shape != want:
      raise ValueError(
          f'{path}: convolution {"/".join(path_)} has kernel {kernel.shape}, '
          f'expected {want}.'
      )
    node = params
    for part in path_:
      node = node.setdefault(part, {})
    node['kernel'], node['bias'] = kernel, bias
  if classifier:
    _, w_index, b_index = conv_ops[-1]
    kernel = _dequantize(model, subgraph, w_index)
    if kernel.shape[-1] != FEATURE_DIM or kernel.size % FEATURE_DIM:
      raise ValueError(
          f'{path}: classifier kernel {kernel.shape}, expected '
          f'(classes, [1, 1,] {FEATURE_DIM}).'
      )
    params['Logits'] = {
        'kernel': kernel.reshape(-1, FEATURE_DIM).T,
        'bias': _dequantize(model, subgraph, b_index),
    }
  return params


@functools.cache
def _param_shapes() -> dict[str, tuple[int, ...]]:
  """Kernel shape of every convolution, keyed by its '/'-joined path."""
  abstract = jax.eval_shape(
      MobileNetV2().init,
      jax.random.key(0),
      jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)),
  )
  shapes = {}
  for path_ in conv_paths():
    node = abstract['params']
    for part in path_:
      node = node[part]
    shapes['/'.join(path_)] = tuple(node['kernel'].shape)
  return shapes


def param_count(params: dict) -> int:
  """Number of scalars in a params tree."""
  return int(sum(np.size(v) for v in jax.tree.leaves(params)))
