"""Tests of the feature networks and of the torch-free weights reader."""

import base64
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from catgan_jax.evaluation import features
from catgan_jax.evaluation import inception_v3
from catgan_jax.evaluation import mobilenet_v2
from catgan_jax.evaluation import torch_weights
import helpers

_MOBILENET = helpers.MOBILENET
_HAS_MOBILENET = helpers.HAS_MOBILENET
_CATS = helpers.CAT_FACES

# A state dict written by torch 2.13 with
#   sd = OrderedDict(
#       conv.weight=torch.arange(6.).reshape(1, 2, 3),
#       bn.running_var=torch.tensor([0.5, 2.0]),
#       bn.num_batches_tracked=torch.tensor(3),
#       t=torch.arange(6.).reshape(2, 3).t())   # a strided view
#   torch.save(sd, f, _use_new_zipfile_serialization=False / True)
# then zlib-compressed and base64-encoded.
_TORCH_LEGACY = (
    'eNqFUstu00AUtceOAy4t5VUozwJdOBsrTlI3rOgCdTM8zWY2yHLsUexixrnjcRBIlbJpC3'
    'wDC5b8Gp+AxILruIIiWWI0D819nHPm3lmQL3b+6+v+z62D7y833QV59sPA/RA0h61rmjaT'
    'hSriIg/nXJZZIUDHALaKnjxTKuchF0kWCSCfmI1G9WHGwzL7yEswDsF0WAeNZVpIBR1KmI'
    'G3TCiwqMnMGqMQU+hSs6qQM0aanMcKWUr7hUy45MmTLFY2aL0AdIetYEZciLn7nmfTVAGJ'
    'VSHj1A0rleWlHUo+qbI8CRUXZSHD+cAGw3FYt5aAkdGUg9mk2Pt5EanXjdGGDlvDmEfD8e'
    '7Q7w/Go2F/1AdrqTaeVSjQeq7g3CuqUZ0SapzAeWpRg+onYH9Oa3ErCi4EsLqEmQhXVkJk'
    'YhrOIwlrKWpIzfQMx47n73jeeDCCi2mXEsRer7HJEVyi+hFcbjCvKLgawDW20WCK6l04iV'
    'Sc8jJUMorf8gQ2GuzTNz3FYv550vV/6Ea+7+36cAPpdKTbRLper6G5qeBWALeZXncP7rSq'
    'xfSx58PdtKnEvVqtQckxbGFBjGO430A9UPAwgO26l2/q/9OiQG/DJW2lMdp6YnK31lkP4/'
    'S0tLNj8Ri3PZy4Fri+7ZG/zqXvf/G/AVVNvXk='
)
_TORCH_ZIP = (
    'eNqlll1P01Acxs9a6GbR8aIyQMUXTBgRx9aNdfMNspje1ESY0SzeNF1X14bScrqzoV6REC'
    'B6oyZeGuMX0MR44ZfwRq+48E4TNVz4AbzxnBVGe3iHk501287zPL+el383JbNtAEQiYEvr'
    'Aj1AdTXDbOhjFRWpibkZSypEwcNAW2A0zbEsXUOmY9f4u25Fd/XKbVNDPAQjRRiKlzqwme'
    'bYjcS8blYNBBkNOdg3odSRadV4xdXLddOqKEi3a46rNAQesvF4KYxlNTxSreqwzZPwkuWo'
    '6J73JQ/bSyE8Jgm5Eksi5uowLHMIRqZlIIdkRmZX4DGZk1k5tAL5ZwbB6UDweBGeKEWxoG'
    'wn3Lptm3ZVaagujBo41WgzPNcU7DTCMoNgF3FjlmC3HFqCPZ7LSQRPFeHpUq/nYtdnlbKK'
    'NEOvKchVtRm9Ans9t3XuO45dbWHHmgEC7MMBIQT7ccDIiGc8gOCZIjzbHIDguQBRGg4azf'
    's7T4hYmVmGF/Btssvwoie+hOBQEV6uJ6bkcOTNJ3HtNZaRPrXjGsfAcGuNE48cd1ZFSkN3'
    'a3gtpcIQtdTbthQJ+/z3+yJBJH3nsAEgboatr6yiWmbVntVtJBXS+8mjWzZDACbm4R8GRz'
    'C7AnSDiRZA+QnSHbJZpcL1w+RuNMtEyNIJw9LNH/0cTuF2ZYiCW4FTNZaUCteOAOC5Lkzg'
    't0n8wn0B93eThCj28terPvxD3x5Eo0GilFSIgwPkN7NJ3oePL5IkILJH3o1gniAVcoeeAX'
    'bdleQ/X32/doj89FHyjz7/neBKi6d19ob3C5TmSdLXt9X7e+//QSBsHsDmrdd018Qn8KlK'
    'qrdiVqRC4oAzkUqKYi4riEJezOdz45lUVhhPZjKpvJgZT2XyWVEQc/hjjlCWEfsljjniTc'
    'oQgW1x+utV1xZy+jlEq/0FKBZQ/gyBnSocbeIvIgMBk2kG7FK5aB9/IegO+Hzz+bQKEC33'
    '75poQP6ABVTtoLX+ExjU/qa1KVrrPz1BbamN0gr7Z16ltWla69+7nQGt0Q7ok0GL/VtqMD'
    'jXPvH2m31K5rjRjaPBXm0peeq6yHjXx9xGqeHIfxPwb53Be+q1c56Gb473xv4H+FkKnw=='
)


def _fixture(encoded: str, tmp_path, name: str) -> str:
  path = os.path.join(tmp_path, name)
  with open(path, 'wb') as f:
    f.write(zlib.decompress(base64.b64decode(encoded)))
  return path


@pytest.mark.parametrize(
    'encoded', [_TORCH_LEGACY, _TORCH_ZIP], ids=['legacy', 'zip']
)
def test_torch_weights_reads_files_written_by_torch(encoded, tmp_path):
  state = torch_weights.load(_fixture(encoded, tmp_path, 'w.pth'))
  assert list(state) == [
      'conv.weight',
      'bn.running_var',
      'bn.num_batches_tracked',
      't',
  ]
  np.testing.assert_array_equal(
      state['conv.weight'], np.arange(6, dtype=np.float32).reshape(1, 2, 3)
  )
  np.testing.assert_array_equal(state['bn.running_var'], [0.5, 2.0])
  assert state['bn.num_batches_tracked'].dtype == np.int64
  assert state['bn.num_batches_tracked'].shape == ()
  assert int(state['bn.num_batches_tracked']) == 3
  # The transposed view keeps its strides: [[0, 3], [1, 4], [2, 5]].
  np.testing.assert_array_equal(
      state['t'], np.arange(6, dtype=np.float32).reshape(2, 3).T
  )


def test_torch_weights_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  state = {
      'a.weight': rng.standard_normal((4, 3, 2, 2)).astype(np.float32),
      'a.count': np.array(7, dtype=np.int64),
      'b': rng.standard_normal(5),
  }
  path = os.path.join(tmp_path, 'w.pth')
  torch_weights.save_legacy(state, path)
  loaded = torch_weights.load(path)
  assert list(loaded) == list(state)
  for key, value in state.items():
    assert loaded[key].dtype == value.dtype
    np.testing.assert_array_equal(loaded[key], value)


def test_torch_weights_refuses_other_pickles(tmp_path):
  path = os.path.join(tmp_path, 'bad.pth')
  with open(path, 'wb') as f:
    f.write(b'not a torch file')
  with pytest.raises(Exception):
    torch_weights.load(path)


def test_resize_matches_torch_bilinear():
  # torch: F.interpolate([[0, 1]], size=4, mode='bilinear',
  # align_corners=False) -> [0, 0.25, 0.75, 1] along each row (half-pixel
  # centres, edges clamped).
  image = jnp.array([0.0, 1.0]).reshape(1, 1, 2, 1) * jnp.ones((1, 2, 2, 1))
  out = np.asarray(features.resize(image, 4))
  np.testing.assert_allclose(out[0, 0, :, 0], [0, 0.25, 0.75, 1], atol=1e-6)
  np.testing.assert_allclose(out[0, :, 2, 0], 0.75, atol=1e-6)


def test_unknown_feature_network_lists_valid_names():
  with pytest.raises(ValueError, match='inception_v3.*mobilenet_v2'):
    features.get_feature_fn('vgg16')


@pytest.mark.parametrize('name', ['mobilenet_v2', 'inception_v3'])
def test_missing_weights_file_names_path_and_config_field(name, tmp_path):
  path = os.path.join(tmp_path, 'absent.bin')
  with pytest.raises(ValueError, match='eval.features_path=.*absent.bin'):
    features.get_feature_fn(name, path)


def test_mobilenet_v2_needs_an_explicit_weights_path():
  with pytest.raises(
      ValueError, match="eval.features_path='': .*every_steps=-1"
  ):
    features.get_feature_fn('mobilenet_v2', '')


def test_garbage_weights_file_is_one_clear_error(tmp_path):
  path = os.path.join(tmp_path, 'garbage.tflite')
  with open(path, 'wb') as f:
    f.write(b'not a model at all' * 3)
  with pytest.raises(ValueError, match='garbage.tflite.*not a mobilenet_v2'):
    features.get_feature_fn('mobilenet_v2', path)


def test_failed_inception_download_names_the_way_out(tmp_path, monkeypatch):
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
  # A closed local port: the download fails at once, as offline.
  monkeypatch.setattr(inception_v3, 'WEIGHTS_URL', 'http://127.0.0.1:9/w.pth')

  def refuse(path, url=None, timeout=None):
    del path, url, timeout
    raise OSError('connection refused')

  monkeypatch.setattr(inception_v3, 'download_weights', refuse)
  with pytest.raises(ValueError, match='downloading.*failed.*mobilenet_v2'):
    features.get_feature_fn('inception_v3', '')
  assert not os.listdir(tmp_path)


def _random_fid_inception_state(seed: int = 0) -> dict[str, np.ndarray]:
  """Random weights under pytorch-fid's names and torch layouts."""
  abstract = inception_v3.abstract_variables()
  rng = np.random.default_rng(seed)
  state = {}
  torch_names = {
      'kernel': 'weight',
      'scale': 'weight',
      'bias': 'bias',
      'mean': 'running_mean',
      'var': 'running_var',
  }
  for collection in ('params', 'batch_stats'):
    for path, leaf in jax.tree_util.tree_leaves_with_path(abstract[collection]):
      keys = [p.key for p in path]
      name = '.'.join(keys[:-1] + [torch_names[keys[-1]]])
      shape = leaf.shape
      if keys[-1] == 'kernel':
        h, w, i, o = shape
        value = rng.normal(0, np.sqrt(2 / (h * w * i)), (o, i, h, w))
        state[name] = value.astype(np.float32)
        continue
      low, high = {
          'scale': (0.5, 1.5),
          'bias': (-0.2, 0.2),
          'mean': (-0.1, 0.1),
          'var': (0.5, 2.0),
      }[keys[-1]]
      state[name] = rng.uniform(low, high, shape).astype(np.float32)
      if keys[-1] == 'var':
        state[name.replace('running_var', 'num_batches_tracked')] = np.array(
            0, np.int64
        )
  # The published file also holds the 1008-way classifier (the Inception
  # Score's); its bias is not used.
  state['fc.weight'] = rng.normal(0, 0.05, (1008, 2048)).astype(np.float32)
  state['fc.bias'] = rng.normal(0, 5, (1008,)).astype(np.float32)
  return state


def test_inception_v3_param_count_matches_pytorch_fid():
  abstract = inception_v3.abstract_variables()
  # pytorch-fid's fid_inception_v3() without its classifier: torchvision's
  # Inception3(num_classes=1008, aux_logits=False) has 23,850,960 trainable
  # parameters, of which fc holds 2048 * 1008 + 1008 = 2,065,392.
  count = sum(x.size for x in jax.tree.leaves(abstract['params']))
  assert count == 23_850_960 - 2_065_392 == 21_785_568


def test_inception_v3_loads_published_format_and_gives_pool3(tmp_path):
  # The slowest test of this file (~15 s on 2 idle CPU cores, mostly the
  # compilation of the 299x299 network); it is the only full forward pass.
  state = _random_fid_inception_state()
  path = os.path.join(tmp_path, inception_v3.WEIGHTS_FILE)
  torch_weights.save_legacy(state, path)
  feature_fn = features.get_feature_fn('inception_v3', path, batch_size=2)
  rng = np.random.default_rng(1)
  images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  feats = feature_fn(images)
  assert feats.shape == (2, 2048)
  # The same pass gives the class probabilities of the Inception Score:
  # softmax(pool3 @ fc.weight.T), without fc.bias (improved-gan's MatMul,
  # torch-fidelity's 'logits_unbiased').
  outputs = features.get_network_fn('inception_v3', path, batch_size=2)(images)
  np.testing.assert_array_equal(outputs.features, feats)
  logits = feats.astype(np.float64) @ state['fc.weight'].T.astype(np.float64)
  expected = np.exp(logits - logits.max(1, keepdims=True))
  expected /= expected.sum(1, keepdims=True)
  assert outputs.probs.shape == (2, 1008)
  np.testing.assert_allclose(outputs.probs, expected, rtol=1e-3, atol=1e-7)
  assert np.isfinite(feats).all()
  assert (feats >= 0).all()  # Pooled ReLU outputs.
  assert not np.allclose(feats[0], feats[1])
  # The .npz form of the same tensors loads to the same variables.
  npz = os.path.join(tmp_path, 'w.npz')
  np.savez(npz, **state)
  jax.tree.map(
      np.testing.assert_array_equal,
      inception_v3.load_variables(npz),
      inception_v3.variables_from_state_dict(state),
  )


def test_inception_v3_rejects_wrong_shapes():
  state = _random_fid_inception_state()
  fc = state.pop('fc.weight')
  with pytest.raises(ValueError, match=r'fc.weight: shape \(2048, 1008\)'):
    inception_v3.variables_from_state_dict({**state, 'fc.weight': fc.T})
  # Without its classifier the file gives FID features but no IS.
  assert 'fc' not in inception_v3.variables_from_state_dict(state)['params']
  state['Mixed_5b.branch1x1.conv.weight'] = np.zeros((64, 10, 1, 1), np.float32)
  with pytest.raises(ValueError, match='Mixed_5b.branch1x1.conv.weight'):
    inception_v3.variables_from_state_dict(state)
  del state['Mixed_5b.branch1x1.conv.weight']
  with pytest.raises(ValueError, match='missing'):
    inception_v3.variables_from_state_dict(state)


@pytest.fixture(scope='module')
def mobilenet_fn():
  return features.get_feature_fn('mobilenet_v2', _MOBILENET, batch_size=4)


def _cat_images(n: int) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  names = sorted(os.listdir(_CATS))[:n]
  images = [
      np.asarray(Image.open(os.path.join(_CATS, f)).convert('RGB'))
      for f in names
  ]
  return np.stack(images).astype(np.float32) / 127.5 - 1


@pytest.mark.skipif(not _HAS_MOBILENET, reason='shared/models is absent')
def test_mobilenet_v2_features(mobilenet_fn):
  images = np.random.default_rng(0).uniform(-1, 1, (5, 64, 64, 3))
  feats = mobilenet_fn(images)
  assert feats.shape == (5, 1280)
  assert feats.dtype == np.float32
  # Global average of ReLU6 outputs.
  assert (feats >= 0).all() and (feats <= 6).all()
  np.testing.assert_array_equal(feats, mobilenet_fn(images))
  assert np.abs(feats[0] - feats[1]).max() > 1e-2
  # Batching does not change a feature vector.
  np.testing.assert_allclose(
      mobilenet_fn(images[3:4])[0], feats[3], rtol=1e-5, atol=1e-5
  )
  # Any input size (it is resized to 224) and grayscale.
  assert mobilenet_fn(images[:2, :32, :48]).shape == (2, 1280)
  assert mobilenet_fn(images[:2, ..., :1]).shape == (2, 1280)


@pytest.mark.skipif(
    not _HAS_MOBILENET or not os.path.isdir(_CATS), reason='shared/ is absent'
)
def test_mobilenet_v2_cats_are_closer_to_cats_than_to_noise(mobilenet_fn):
  cats = mobilenet_fn(_cat_images(4))
  noise = mobilenet_fn(np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)))
  cat_cat = np.linalg.norm(cats[:2] - cats[2:], axis=1).mean()
  cat_noise = np.linalg.norm(cats - noise, axis=1).mean()
  assert cat_cat < cat_noise


@pytest.mark.skipif(not _HAS_MOBILENET, reason='shared/models is absent')
def test_mobilenet_v2_weights_are_dequantised_into_every_layer():
  params = mobilenet_v2.load_tflite_params(_MOBILENET)
  # 52 convolutions, each with its batch norm folded into a bias: 2,189,760
  # kernel weights + 17,056 biases. Keras' MobileNetV2(include_top=False)
  # has the same kernels and 4 parameters per batch-norm channel:
  # 2,257,984 = 2,189,760 + 4 * 17,056.
  assert len(mobilenet_v2.conv_paths()) == 52
  assert mobilenet_v2.param_count(params) == 2_189_760 + 17_056
  for leaf in jax.tree.leaves(params):
    assert np.isfinite(leaf).all() and np.abs(leaf).max() > 0


@pytest.mark.skipif(
    not _HAS_MOBILENET or not os.path.isdir(_CATS), reason='shared/ is absent'
)
def test_mobilenet_v2_probabilities_come_from_the_feature_pass(mobilenet_fn):
  network_fn = features.get_network_fn('mobilenet_v2', _MOBILENET, batch_size=4)
  cats = _cat_images(4)
  outputs = network_fn(cats)
  # The features of the pass with the classifier are the features, bit for
  # bit, and those of the network without it (the FID of earlier runs).
  np.testing.assert_array_equal(outputs.features, mobilenet_fn(cats))
  trunk = mobilenet_v2.MobileNetV2()
  params = mobilenet_v2.load_tflite_params(_MOBILENET)
  alone = jax.jit(
      lambda x: trunk.apply({'params': params}, features.resize(x, 224))
  )(cats)
  np.testing.assert_array_equal(outputs.features, np.asarray(alone))
  assert outputs.probs.shape == (4, 1001)
  np.testing.assert_allclose(outputs.probs.sum(1), 1.0, rtol=1e-12)
  # Cat faces are ImageNet's cats (classes 281-285, one later here for the
  # 'background' class 0): 'tabby', 'tiger cat', 'Persian', ...
  assert set(outputs.probs.argmax(1)) <= set(range(282, 287))
