"""Inside the job: ``python -I IN/worker/__main__.py IN WORK OUT``. ``-I`` puts no folder on the
import path, so the package's own parent goes on it for this one import, and off again before the
notebook's code runs."""

import os
import sys

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _HERE)
from worker.run import main  # noqa: E402

sys.path.remove(_HERE)
main()
