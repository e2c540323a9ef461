"""Freed heap memory goes back to the OS when a stream asks (glibc's malloc_trim), which is what keeps a long
streamed run from holding the frames it already freed."""
import subprocess
import sys
import textwrap

import pytest

from comfy_env import REPO
from m3ddm_core.pipeline import heap

PROBE = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    sys.path.insert(0, sys.argv[1])
    from m3ddm_core.pipeline.heap import release_freed_memory
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    def rss_mb():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024
    blocks = [libc.malloc(100_000) for _ in range(3000)]  # under the mmap threshold: on the heap
    for b in blocks:
        ctypes.memset(b, 1, 100_000)
    for b in blocks[:-1]:  # the last block pins the heap's top: plain free() cannot shrink it
        libc.free(b)
    held = rss_mb()
    released = release_freed_memory()
    print(held, rss_mb(), released)
""")


@pytest.mark.skipif(heap._TRIM is None, reason="not glibc: release_freed_memory is a no-op here")
def test_freed_blocks_held_by_the_heap_are_returned():
    out = subprocess.run([sys.executable, "-c", PROBE, str(REPO)], capture_output=True, text=True, check=True)
    held, after, released = out.stdout.split()
    assert released == "True"
    assert int(held) - int(after) > 200, out.stdout  # ~300 MB freed but resident, then returned

