"""Every exit status a pagestream process ends with on purpose, in one place.

The supervisor and Kubernetes restart a process that exits non-zero; the code says why.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: an unexpected exception reached the top of the process
    CRASHED = 1
    #: persist could not write a batch and left it unacknowledged (it will be redelivered)
    UNPERSISTED = 70
    #: a consumer loop (or another essential thread) died: the process must not live on half-alive
    LOOP_DIED = 71
    #: a page overran its timeout; the engine may be wedged, a fresh worker process takes over
    WEDGED = 75
    #: an OCR worker whose ocr service is gone ends itself
    ORPHANED = 76
