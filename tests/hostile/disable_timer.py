# Class 1: switches off every timer it can (SIGALRM ignored, itimers cleared, faulthandler off)
# and then takes far longer than any per-input limit.
import signal
import time

for sig in (signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF, signal.SIGTERM, signal.SIGINT):
    try:
        signal.signal(sig, signal.SIG_IGN)
    except (OSError, ValueError):
        pass


def solve(*args):
    for which in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        signal.setitimer(which, 0)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGTERM})
    time.sleep(30)
    return 1
