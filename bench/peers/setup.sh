#!/usr/bin/env bash
# Create bench/peers/.venv: MediaPipe, dlib and facemtl (editable, no deps) on numpy<2.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
"$python" -m venv "$here/.venv"
"$here/.venv/bin/pip" install -q --upgrade pip
"$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
# facemtl's declared deps would pull opencv-python-headless and numpy 2 next to mediapipe's
# opencv-contrib-python and numpy 1.26: install the package alone; requirements.txt has what it needs.
"$here/.venv/bin/pip" install -q --no-deps -e "$here/../.."
"$here/.venv/bin/python" -c "import mediapipe, dlib, facemtl; print('peers venv ready:', mediapipe.__version__, dlib.__version__)"
