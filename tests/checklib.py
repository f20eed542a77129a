"""What the small checking scripts of tests/ share: a failure count with a
FAIL line per failure, a report of named checks, and running gradc with its
output captured."""
import subprocess

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def run(gradc, *args):
    return subprocess.run([gradc, *args], capture_output=True, text=True, timeout=120)


def report(results, verbose=False):
    """Prints a FAIL line per (name, why) whose why is set (ok lines too when
    verbose), then the count line; returns the exit status."""
    failed = 0
    for name, why in results:
        if why:
            failed += 1
            print("FAIL %s: %s" % (name, why))
        elif verbose:
            print("ok   %s" % name)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0
