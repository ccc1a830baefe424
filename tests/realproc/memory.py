"""A process with a memory pattern, for vigil's real-process checks.

usage: memory.py leak LIMIT_MIB SECONDS   grow by touched pages until LIMIT_MIB is reached
                                          in about SECONDS (the kernel's OOM killer ends it)
       memory.py sawtooth PEAK_MIB PERIOD  grow to PEAK_MIB over PERIOD seconds, free, repeat
                 [DURATION]                 (for DURATION seconds, default 240)
"""
import sys
import time

CHUNK_SECONDS = 0.1


def touched(nbytes):
    # A filled buffer, so every page is resident (not just reserved).
    return bytearray(b"\x01") * nbytes


def leak(limit_mib, seconds):
    rate = limit_mib * 1024 * 1024 / seconds
    held = []
    start = time.monotonic()
    allocated = 0
    while True:
        due = rate * (time.monotonic() - start)
        if due > allocated:
            chunk = int(due - allocated)
            held.append(touched(chunk))
            allocated += chunk
        time.sleep(CHUNK_SECONDS)


def sawtooth(peak_mib, period, duration):
    rate = peak_mib * 1024 * 1024 / period
    end = time.monotonic() + duration
    while time.monotonic() < end:
        held = []
        start = time.monotonic()
        allocated = 0
        while time.monotonic() - start < period:
            due = rate * (time.monotonic() - start)
            if due > allocated:
                chunk = int(due - allocated)
                held.append(touched(chunk))
                allocated += chunk
            time.sleep(CHUNK_SECONDS)
        del held  # collected: large buffers go back to the kernel at once


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "leak":
        leak(float(sys.argv[2]), float(sys.argv[3]))
    elif mode == "sawtooth":
        duration = float(sys.argv[4]) if len(sys.argv) > 4 else 240.0
        sawtooth(float(sys.argv[2]), float(sys.argv[3]), duration)
    else:
        sys.exit(__doc__)
