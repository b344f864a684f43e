"""A stand-in for the PDF child process that crashes as PDFium would: it reads one job, then dies of SIGSEGV."""

import os
import signal
import sys

sys.stdin.buffer.readline()
os.kill(os.getpid(), signal.SIGSEGV)
