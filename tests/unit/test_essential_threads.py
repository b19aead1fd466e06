"""A consumer thread that dies ends its process (``pagestream.runtime.start_essential_thread``).

Issue 10: ingest's submit consumer, the splitter and the Textract poller could die while their
process lived on (``/healthz`` 200, nothing consumed, never restarted). Each case runs a small
process: the thread's death must end it within a second with ``ExitCode.LOOP_DIED`` (71), which
the supervisor and Kubernetes restart, and the log must say which thread died and why.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from pagestream.exitcodes import ExitCode

PROCESS = textwrap.dedent("""
    import sys, threading, time
    from pagestream.logging import setup_logging
    from pagestream.runtime import start_essential_thread

    setup_logging("test-service", "INFO")
    stop = threading.Event()
    case = sys.argv[1]

    def consumer(stop):
        time.sleep(0.2)
        print(f"ENDING {time.time()}", flush=True)
        if case == "raises":
            raise RuntimeError("broker said no: unrecoverable consumer error")
        if case == "returns":
            return  # a loop that ends although nobody asked it to stop
        stop.wait()  # "stopped": runs until asked to stop, then returns

    start_essential_thread("submit-consumer", consumer, stop)
    if case == "stopped":
        time.sleep(0.5)
        stop.set()
        time.sleep(0.5)
        print("main thread finished", flush=True)
        sys.exit(0)
    time.sleep(30)  # the main thread lives on, as a service's health server would
    print("the process outlived its dead consumer thread", flush=True)
""")


def run_case(case: str) -> tuple[int, float, str, str]:
    """Exit code, seconds from the thread's end to the process's, stdout, stderr."""
    p = subprocess.run([sys.executable, "-c", PROCESS, case], capture_output=True, text=True, timeout=60)
    ended = time.time()
    marks = [float(line.split()[1]) for line in p.stdout.splitlines() if line.startswith("ENDING ")]
    return p.returncode, ended - marks[0] if marks else float("inf"), p.stdout, p.stderr


@pytest.mark.parametrize("case", ["raises", "returns"])
def test_a_dying_essential_thread_ends_the_process(case: str) -> None:
    code, seconds, out, err = run_case(case)
    assert code == int(ExitCode.LOOP_DIED) == 71, (code, out, err)
    assert seconds < 1.0, f"the process lived on {seconds:.2f} s after its thread ended"
    assert "outlived" not in out
    assert "submit-consumer" in err and "ending the process" in err, err
    if case == "raises":
        assert "Traceback" in err and "RuntimeError: broker said no: unrecoverable consumer error" in err, err
    else:
        assert "stopped while the service was running" in err, err


def test_an_essential_thread_asked_to_stop_does_not_end_the_process() -> None:
    code, _, out, err = run_case("stopped")
    assert code == 0, (code, out, err)
    assert "main thread finished" in out
    assert "died" not in err
