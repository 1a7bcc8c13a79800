"""Inception Score (Salimans et al. 2016) of a set of class probabilities.

IS = exp(E_x KL(p(y|x) || p(y))), where p(y|x) are a classifier's class
probabilities for a generated image and p(y) their mean over the images. As
the reference implementation (openai/improved-gan,
`inception_score/model.py`; torch-fidelity's `isc_features_to_metric` is
the same computation), the images are cut into `splits` consecutive parts,
the score is computed within each part (p(y) is the part's mean) and the
result is the mean and standard deviation (ddof 0, as np.std) over parts.
torch-fidelity shuffles the images first; here they are i.i.d. draws of the
generator already, so the order is kept, as in improved-gan.

With the standard FID Inception network the probabilities are the softmax
of its 1008 logits without the classifier's bias, as improved-gan (which
multiplies pool3 by the weights of `softmax/logits/MatMul`) and
torch-fidelity ('logits_unbiased') compute them; see `features.py`. The
generated images are scored as saved 8-bit images, as for FID
(`evaluation.quantize`); improved-gan takes 0-255 images too.
"""

import numpy as np
import scipy.special


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
  """Mean and std of the Inception Score over `splits` parts of `probs`.

  Args:
    probs: class probabilities [N, K], rows summing to 1, N >= splits.
    splits: number of consecutive parts scored separately.

  Returns:
    (mean, std) over the parts. It lies in [1, K]: 1 when every image gets
    the same distribution, the number of classes when each image is
    certain of one class and the classes are used equally.

  Raises:
    ValueError: for probs that are not [N, K] or fewer images than splits.
  """
  probs = np.asarray(probs, dtype=np.float64)
  if probs.ndim != 2:
    raise ValueError(
        f'inception_score expects probabilities [N, K], got '
        f'shape {probs.shape}.'
    )
  n = probs.shape[0]
  if splits < 1 or n < splits:
    raise ValueError(
        f'inception_score needs at least eval.is_splits={splits} '
        f'images (and splits >= 1), got {n}.'
    )
  scores = []
  for i in range(splits):
    part = probs[i * n // splits : (i + 1) * n // splits]
    marginal = part.mean(axis=0, keepdims=True)
    # rel_entr is p log(p / q) with 0 log 0 = 0: one-hot rows are exact
    # (improved-gan's p * (log p - log q) is NaN there).
    kl = scipy.special.rel_entr(part, marginal).sum(axis=1).mean()
    scores.append(np.exp(kl))
  return float(np.mean(scores)), float(np.std(scores))
