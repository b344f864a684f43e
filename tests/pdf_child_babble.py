"""A stand-in for a PDF child process out of step: it reads one job, answers something that is no message, and waits."""

import sys
import time

sys.stdin.buffer.readline()
sys.stdout.buffer.write(b"this is not JSON\n")
sys.stdout.buffer.flush()
while True:
    time.sleep(60)
