"""A stand-in for the PDF child process on a file that makes PDFium loop: it reads one job and never answers."""

import sys
import time

sys.stdin.buffer.readline()
while True:
    time.sleep(60)
