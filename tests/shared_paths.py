"""Where the files beside the repository are, for tests that can use them.

The project never reads `../shared` by itself; tests that need the real cat
faces or the MobileNetV2 weights pass these paths explicitly and skip when
they are absent (a user's clone has nothing beside it).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), 'shared')
CAT_FACES = os.path.join(SHARED, 'data', 'cat_faces_64')
MOBILENET = os.path.join(SHARED, 'models', 'mobilenet_v2',
                         'mobilenet_v2_1.0_224_quant.tflite')
HAS_CAT_FACES = os.path.isdir(CAT_FACES)
HAS_MOBILENET = os.path.isfile(MOBILENET)
