"""Run VENV/bin/python ARGS... and print its output; a run still going after
60 s is a hang: its whole process group (forked children too) is killed."""
import os
import signal
import subprocess
import sys
import time

venv, *args = sys.argv[1:]
t0 = time.time()
p = subprocess.Popen([f"{venv}/bin/python", *args], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True, start_new_session=True)
try:
    out, err = p.communicate(timeout=60)
    print(" ".join(args[1:]), "->", out.strip() or err.strip()[-200:],
          f"({time.time() - t0:.1f} s)")
except subprocess.TimeoutExpired:
    os.killpg(p.pid, signal.SIGKILL)
    p.communicate()
    print(" ".join(args[1:]), "-> HANG (killed after 60 s)")
