"""What the small checking scripts of tests/ share: a failure count with a
FAIL line per failure, and running gradc with its output captured."""
import subprocess

failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL:", msg)


def run(gradc, *args):
    return subprocess.run([gradc, *args], capture_output=True, text=True, timeout=120)
