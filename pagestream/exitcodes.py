"""Every exit status a pagestream process ends with on purpose, in one place.

The supervisor and Kubernetes restart a process that exits non-zero; the code says why.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: an unexpected exception reached the top of the process
    CRASHED = 1
    #: a command did not get done what was asked (a document failed, the stack is not ready, the
    #: supervisor could not start it); the same status as CRASHED, named for what the caller sees
    FAILED = 1
    #: ``pagestream status``: no stack is running (the LSB init-script status for "not running")
    NOT_RUNNING = 3
    #: persist could not write a batch and left it unacknowledged (it will be redelivered)
    UNPERSISTED = 70
    #: a consumer loop (or another essential thread) died: the process must not live on half-alive
    LOOP_DIED = 71
    #: a page overran its timeout; the engine may be wedged, a fresh worker process takes over
    WEDGED = 75
    #: an OCR worker whose ocr service is gone ends itself
    ORPHANED = 76
