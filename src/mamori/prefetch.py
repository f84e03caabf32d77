"""A software prefetch for compiled kernels (LLVM's ``llvm.prefetch``), which Numba does not offer.

The tracker touches one state row and one index entry per connection, at addresses that depend on
the packet's key: on a capture of scans and floods nearly every packet opens or ends a connection
and each of those touches misses the caches. The tracker's kernels know the next packets' keys
and the next due slots in advance, so they ask for those lines early and work on the current one
while the memory system fetches them. The capture walkers follow a chain of record headers, each
read giving the next one's place; a capture is laid out in order, so they ask for the bytes a
little ahead. A prefetch is only a hint: it never faults and changes no result.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, arr, flat):  # type: ignore[no-untyped-def]
    """Hint that element ``flat`` (a flat index into a C-contiguous array) will be read soon."""
    if not isinstance(arr, types.Array) or arr.layout != "C" or not isinstance(flat, types.Integer):
        return None
    sig = types.void(arr, flat)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # read, highest temporal locality, data cache
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
