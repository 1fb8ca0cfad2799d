"""Imported at every Python start in a worker unit that counts Celery's tasks (pystack app role).

The unit puts this folder first on PYTHONPATH and sets PYSTACK_TASK_METRICS_DIR; in a
process that can import Celery, each task's outcome and run time is counted there
(pystack_metrics, in the folder above). Nothing else changes for the app.
"""

import os
import sys

if os.environ.get("PYSTACK_TASK_METRICS_DIR"):
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        import celery.signals  # noqa: F401  (is Celery here at all?)
    except ImportError:
        pass
    else:
        import pystack_metrics

        pystack_metrics.celery(pystack_metrics.Recorder(os.environ["PYSTACK_TASK_METRICS_DIR"]))
