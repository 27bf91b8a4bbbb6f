"""A vector layer for the compiled ARM, written as LLVM vector code (numba intrinsic).

The raster decoder evaluates the ARM once per latent element, one element at a time: its layers
are 16-wide products that numba's loop vectoriser leaves scalar (it cannot rule out that the
accumulator aliases the weights). Here a layer's 16 outputs
are one <16 x double> value: one broadcast and one fused multiply-add per input (LLVM maps them
to AVX-512, AVX2 or SSE, whatever the CPU has), two independent accumulators so that the adds do
not all wait on each other, then the requantisation (scale by a power of two, floor, clamp) on
the whole vector. With it the latents of kodim01 at quality 6 decode in 95–122 ms instead of
170–215 ms (``benchmarks/overfit_bench.py speed``; docs/overfit.md).

Exactness: the ARM's operands are integers held in float64 and every partial sum stays below
2^53 (module :mod:`.coding` bounds them), so each product and sum is exact (a fused multiply-add
too) and the result does not depend on the order of the additions: splitting the sum over
accumulators gives the very same integers as the scalar loop, on any CPU (tests compare the two).

Numba's on-disk cache of a compiled function is keyed on its own source file: after editing this
module, touch raster.py (a fresh install rewrites both, so users never see a stale loop).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # outputs per call: weight matrices are padded with zero columns to a multiple of this
OUT_LANES = 4  # the output layer's (2 used)
_PARTS = 2  # independent accumulators


def _dense(lanes: int):
    """The ``dense`` intrinsic for ``lanes`` outputs per call."""

    def dense(typingctx, x, n, w, col, bias, scale, low, high, out):
        return _dense_typing(lanes, x, n, w, col, bias, scale, low, high, out)

    return intrinsic(dense)


def _dense_typing(lanes, x, n, w, col, bias, scale, low, high, out):
    arrays = (x, w, bias, out)
    if not all(isinstance(t, types.Array) and t.dtype == types.float64 for t in arrays):
        return None
    if w.ndim != 2 or w.layout != "C" or x.ndim != 1 or bias.ndim != 1 or out.ndim != 1:
        return None
    sig = types.void(x, n, w, col, bias, scale, low, high, out)

    def codegen(context, builder, signature, args):  # pragma: no cover - runs inside the compiler
        x_arr, w_arr, bias_arr, out_arr = (context.make_array(signature.args[k])(context, builder, args[k])
                                           for k in (0, 2, 4, 8))
        i64 = ir.IntType(64)
        n_ = context.cast(builder, args[1], signature.args[1], types.int64)
        col_ = context.cast(builder, args[3], signature.args[3], types.int64)
        scale_, low_, high_ = (context.cast(builder, args[k], signature.args[k], types.float64) for k in (5, 6, 7))
        f64 = ir.DoubleType()
        vec = ir.VectorType(f64, lanes)
        row = builder.extract_value(w_arr.shape, 1)  # elements per row (C-contiguous)

        def vec_ptr(base, index):
            return builder.bitcast(builder.gep(base, [index]), vec.as_pointer())

        def broadcast(value):
            one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))

        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), f"llvm.fma.v{lanes}f64")
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * lanes)) for _ in range(_PARTS)]
        builder.store(builder.load(vec_ptr(bias_arr.data, col_), align=8), accs[0])

        def step(j, part):
            xj = builder.load(builder.gep(x_arr.data, [j]))
            wj = builder.load(vec_ptr(w_arr.data, builder.add(builder.mul(j, row), col_)), align=8)
            builder.store(builder.call(fma, [broadcast(xj), wj, builder.load(accs[part])]), accs[part])

        blocks = builder.sdiv(n_, ir.Constant(i64, _PARTS))
        with cgutils.for_range(builder, blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(i64, _PARTS))
            for part in range(_PARTS):
                step(builder.add(base, ir.Constant(i64, part)), part)
        with cgutils.for_range_slice(builder, builder.mul(blocks, ir.Constant(i64, _PARTS)), n_,
                                     ir.Constant(i64, 1), inc=True) as (j, _):
            step(j, 0)
        total = builder.load(accs[0])
        for part in range(1, _PARTS):
            total = builder.fadd(total, builder.load(accs[part]))
        floor = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec]), f"llvm.floor.v{lanes}f64")
        y = builder.call(floor, [builder.fmul(total, broadcast(scale_))])
        lo, hi = broadcast(low_), broadcast(high_)
        y = builder.select(builder.fcmp_ordered("<", y, lo), lo, y)
        y = builder.select(builder.fcmp_ordered(">", y, hi), hi, y)
        builder.store(y, vec_ptr(out_arr.data, col_), align=8)
        return context.get_dummy_value()

    return sig, codegen


dense = _dense(LANES)
"""out[col : col + 16] = clamp(⌊(bias[col : col + 16] + Σ_{j < n} x[j] · w[j, col : col + 16]) · scale⌋,
low, high): one layer of the integer ARM (float64 holding integers; w C-contiguous, 2-D, with at
least col + 16 columns; x with at least n elements; bias and out with at least col + 16)."""

dense_out = _dense(OUT_LANES)
"""The same for the ARM's output layer (mean and log-scale: OUT_LANES outputs, 2 of them used)."""
