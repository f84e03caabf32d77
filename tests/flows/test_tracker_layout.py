"""The tracker's slot rows: state, key and history share one cache-line-aligned row per slot.

The speed of tracking scans and floods rests on this layout (one row of memory per connection),
and the kernels write the key and history through views: a copy instead of a view would leave the
index probing stale keys after the state arrays grow.
"""

from __future__ import annotations

import numpy as np

from mamori.config import Settings
from mamori.flows import tracker as T
from mamori.flows.connections import ConnTracker


def _views_of_rows(tr: ConnTracker) -> None:
    S = tr.S
    assert S.flags.c_contiguous and S.shape[1] == T.ROW_W
    assert S.ctypes.data % 64 == 0 and (S.strides[0] % 64) == 0
    for view in (tr.K, tr.HL, tr.H):
        assert np.shares_memory(view, S)
        assert view.shape[0] == S.shape[0]
    s = S.shape[0] - 1
    tr.K[s, 4] = 12345
    tr.HL[s] = 7
    tr.H[s, 3] = 0x41
    assert S[s, T.C_KEY + 4] == 12345
    assert S[s, T.C_HL] == 7
    assert S.view(np.uint8)[s, 8 * T.C_HIST + 3] == 0x41


def test_rows_hold_state_key_and_history_before_and_after_growth() -> None:
    tr = ConnTracker(Settings(), capacity=4)
    _views_of_rows(tr)
    tr.S[1, : T.N_COLS] = np.arange(T.N_COLS)
    tr.K[1] = (1, 2, 3, 4, 5)
    tr.n_free = 0
    tr._grow()
    _views_of_rows(tr)
    assert tr.S.shape[0] > 4
    np.testing.assert_array_equal(tr.S[1, : T.N_COLS], np.arange(T.N_COLS))
    np.testing.assert_array_equal(tr.K[1], (1, 2, 3, 4, 5))


def test_layout_fits_the_row() -> None:
    assert T.C_KEY >= T.N_COLS and T.C_HL == T.C_KEY + 5
    assert 8 * T.C_HIST + T.HIST_MAX <= 8 * T.ROW_W
    assert (8 * T.ROW_W) % 64 == 0
