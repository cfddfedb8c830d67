"""Row lengths drawn in parallel equal the serial draw, and sum to N exactly."""
import numpy as np

from pyproc import rowlen


def test_parallel_equals_serial(monkeypatch):
    tasks = [(7, 1000 + i, 3000 * (i + 1), 500 + 37 * i) for i in range(12)]
    serial = rowlen.draw_row_lengths(tasks, workers=1)
    monkeypatch.setattr(rowlen, "PARALLEL_MIN_ROWS", 0)
    parallel = rowlen.draw_row_lengths(tasks, workers=2)
    assert len(serial) == len(parallel) == len(tasks)
    for (seed, stream, total, n_pre), a, b in zip(tasks, serial, parallel):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.uint32 and a.size == n_pre and int(a.sum()) == total


def test_stream_keyed_not_order_keyed():
    a = rowlen.row_lengths(1, 42, 10000, 100)
    b = rowlen.draw_row_lengths([(1, 7, 500, 10), (1, 42, 10000, 100)], workers=1)[1]
    np.testing.assert_array_equal(a, b)
