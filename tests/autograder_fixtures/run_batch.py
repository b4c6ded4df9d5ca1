"""Grade a batch in a process of its own, so that ``OUT/run.json`` reports the grader's own peak memory.

``python run_batch.py SETTINGS_JSON SUBMISSION...`` (``SETTINGS_JSON``: ``lab_autograder.grade.Settings`` fields).
"""

import json
import sys
from pathlib import Path

from lab_autograder.grade import Settings, grade_all

if __name__ == "__main__":
    kw = json.loads(sys.argv[1])
    kw["out"] = Path(kw["out"])
    grade_all([Path(p) for p in sys.argv[2:]], Settings(**kw))
