"""Does a conditional generator draw the class it is asked for?

A simple classifier of the synthetic cats' coat colour classes (softmax
regression on --cells x --cells box-downsampled pixels, 8 by default,
trained on the real synthetic faces)
labels images that a trained run's EMA generator draws for each class; the
per-class accuracy is far above chance (1/4) only if the labels condition
the output. The classifier's accuracy on held-out real faces is its ceiling.

    python benchmarks/conditional_accuracy.py --workdir=runs/cond \\
        [--per_class=250] [--cells=8] [--out=record.json]
"""

import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from catgan_jax import inference  # pylint: disable=g-import-not-at-top
from catgan_jax.data import synthetic  # pylint: disable=g-import-not-at-top

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
_PER_CLASS = flags.DEFINE_integer('per_class', 250, 'Samples per class.')
_OUT = flags.DEFINE_string('out', '', 'JSON record to write.')
_CELLS = flags.DEFINE_integer('cells', 8, 'Side of the downsampled image.')


def features(images_uint8: np.ndarray, cells: int = 8) -> np.ndarray:
  """cells x cells box-downsampled pixels in [0, 1], flattened."""
  n, s = images_uint8.shape[:2]
  k = s // cells
  x = images_uint8.reshape(n, cells, k, cells, k, 3).mean((2, 4)) / 255.0
  return x.reshape(n, -1)


def fit_softmax(x, y, num_classes, steps=500, lr=0.5, l2=1e-3):
  """Softmax regression by full-batch gradient descent; returns a predictor."""
  mean, std = x.mean(0), x.std(0) + 1e-6
  x = (x - mean) / std
  w = np.zeros((x.shape[1], num_classes))
  b = np.zeros(num_classes)
  onehot = np.eye(num_classes)[y]
  for _ in range(steps):
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = (p - onehot) / len(x)
    w -= lr * (x.T @ g + l2 * w)
    b -= lr * g.sum(0)
  return lambda q: (((q - mean) / std) @ w + b).argmax(1)


def main(argv):
  del argv
  config, sample, step = inference.load_generator(_WORKDIR.value)
  size, seed = config.data.image_size, config.data.synthetic_seed
  num_classes = config.data.num_classes
  n = config.data.num_synthetic
  real = synthetic.draw_cat_faces(n, size, seed)
  labels = np.array([synthetic.face_class(seed, i) for i in range(n)])
  held = synthetic.draw_cat_faces(500, size, seed + 1)
  held_labels = np.array(
      [synthetic.face_class(seed + 1, i) for i in range(500)]
  )
  predict = fit_softmax(features(real, _CELLS.value), labels, num_classes)
  real_acc = float(
      (predict(features(held, _CELLS.value)) == held_labels).mean()
  )

  rng = np.random.default_rng(0)
  record = {
      'workdir': _WORKDIR.value,
      'step': step,
      'cells': _CELLS.value,
      'classifier_heldout_real_accuracy': real_acc,
      'per_class': {},
  }
  for c, name in enumerate(synthetic.CLASS_NAMES[:num_classes]):
    z = rng.standard_normal((_PER_CLASS.value, config.model.z_dim))
    z = z.astype(np.float32)
    images = sample(z, np.full(len(z), c, np.int32))
    uint8 = np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)
    pred = predict(features(uint8, _CELLS.value))
    record['per_class'][name] = float((pred == c).mean())
  record['mean_accuracy'] = float(np.mean(list(record['per_class'].values())))
  record['chance'] = 1 / num_classes
  print(json.dumps(record, indent=1))
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(record, f, indent=1)


if __name__ == '__main__':
  app.run(main)
