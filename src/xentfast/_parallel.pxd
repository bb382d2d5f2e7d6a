# Inputs smaller than this many elements run on one thread: waking the
# OpenMP team costs more than it saves.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 32768
