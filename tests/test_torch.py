"""fastdrop.torch: PyTorch's own dropout tests (test/nn/test_dropout.py, rewritten for these
modules), exact bits against fastdrop's NumPy backend, the custom ops' registration checks,
seeds from torch's generator, layouts, threads and the OpenMP runtimes side by side."""
import itertools
import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="fastdrop.torch needs PyTorch (pip install fastdrop[torch])")

import fastdrop  # noqa: E402
import fastdrop.torch as ft  # noqa: E402

SEED_HIGH = (1 << 63) - 1
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
MODULES = [ft.Dropout, ft.Dropout1d, ft.Dropout2d, ft.Dropout3d, ft.AlphaDropout, ft.FeatureAlphaDropout]
TORCH_MODULES = [torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
                 torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout]


def next_seed():
    """The seed the next training call draws from torch's default generator (state untouched)."""
    state = torch.get_rng_state()
    seed = int(torch.randint(0, SEED_HIGH, (), dtype=torch.int64))
    torch.set_rng_state(state)
    return seed


def to_numpy(t):
    """The tensor's values as NumPy holds them (bfloat16: ml_dtypes.bfloat16), no copy."""
    t = t.detach()
    return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


def numpy_reference(fn, x, *args, **kwargs):
    with fastdrop.use_backend("numpy"):
        return fn(to_numpy(x), *args, **kwargs)


def assert_same_bits(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got.view(f"u{got.itemsize}"), expected.view(f"u{expected.itemsize}"))


# --- exact bits ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOATS)
def test_dropout_is_fastdrops_bits_with_a_seed_from_torchs_generator(dtype):
    torch.manual_seed(7)
    x = torch.randn(37, 29, dtype=dtype)
    seed = next_seed()
    y = ft.dropout(x, 0.3)
    assert_same_bits(to_numpy(y), numpy_reference(fastdrop.dropout, x, 0.3, seed=seed))


@pytest.mark.parametrize("dtype", FLOATS)
def test_backward_regenerates_the_forwards_mask(dtype):
    torch.manual_seed(8)
    x = torch.randn(5, 6, 7, dtype=dtype, requires_grad=True)
    seed = next_seed()
    y = ft.dropout(x, 0.4)
    g = torch.randn_like(x)
    y.backward(g)
    assert_same_bits(to_numpy(x.grad), numpy_reference(fastdrop.dropout, g, 0.4, seed=seed))


def test_feature_dropout_bits_are_fastdrops_noise_shaped_mask():
    torch.manual_seed(9)
    x = torch.randn(4, 6, 3, 5)
    seed = next_seed()
    y = ft.dropout2d(x, 0.5)
    ref = numpy_reference(fastdrop.dropout, x, 0.5, seed=seed, noise_shape=(4, 6, 1, 1))
    np.testing.assert_array_equal(y.numpy(), ref)


@pytest.mark.parametrize("dtype", FLOATS)
def test_alpha_dropout_and_its_gradient_are_fastdrops_bits(dtype):
    torch.manual_seed(10)
    x = torch.randn(300, dtype=dtype, requires_grad=True)
    seed = next_seed()
    y = ft.alpha_dropout(x, 0.2, training=True)
    assert_same_bits(to_numpy(y), numpy_reference(fastdrop.alpha_dropout, x, 0.2, seed=seed))
    g = torch.randn_like(x)
    y.backward(g)
    assert_same_bits(to_numpy(x.grad), numpy_reference(fastdrop.alpha_dropout_grad, g, 0.2, seed=seed))


def test_feature_alpha_dropout_is_torchs_formula_on_fastdrops_channel_mask():
    torch.manual_seed(11)
    x = torch.randn(8, 5, 4, dtype=torch.float64)
    seed = next_seed()
    p, alpha = 0.5, 1.7580993408473766
    y = ft.feature_alpha_dropout(x, p, training=True)
    kept = fastdrop.dropout_mask((8, 5, 1), p, seed=seed)
    assert 0 < kept.sum() < kept.size
    a = 1.0 / np.sqrt((alpha * alpha * p + 1) * (1 - p))      # torch's _dropout_impl
    expected = np.where(kept, x.numpy() * a + alpha * a * p, -alpha * a * (1 - p))
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-14, atol=1e-14)


def test_a_dropped_nan_becomes_zero_where_torch_keeps_it():
    x = torch.full((1000,), float("nan"))
    y = ft.dropout(x, 0.5)
    dropped = ~torch.isnan(y)
    assert 300 < int(dropped.sum()) < 700
    assert torch.all(y[dropped] == 0)
    assert torch.equal(ft.dropout(torch.tensor([float("inf"), float("nan")]), 1.0), torch.zeros(2))


@pytest.mark.parametrize("p", [0.1, 0.25, 0.7])
def test_bfloat16_keeps_the_values_torchs_own_dropout_keeps(p):
    """Kept bfloat16 values are x * bfloat16(1 / (1 - p)) rounded to bfloat16, as torch's CPU
    dropout computes them (its noise tensor is bfloat16); the mask is fastdrop's."""
    torch.manual_seed(12)
    x = torch.randn(64, 333).bfloat16()
    seed = next_seed()
    y = ft.dropout(x, p)
    torch.manual_seed(0)
    theirs = torch.nn.functional.dropout(x, p)
    scale = torch.tensor(1 / (1 - p), dtype=torch.bfloat16)
    kept, kept_by_torch = y != 0, theirs != 0
    assert y.dtype == torch.bfloat16
    assert torch.equal(y[kept], (x * scale)[kept]) and torch.equal(theirs[kept_by_torch], (x * scale)[kept_by_torch])
    assert torch.equal(kept, torch.from_numpy(fastdrop.dropout_mask(x.shape, p, seed=seed)).bool())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_tensors_run_on_their_own_memory_in_any_layout(dtype, monkeypatch):
    """The kernels get NumPy views of the tensors' memory (no float32 copy): x's data pointer,
    and an output laid out as torch's, for contiguous, channels_last and transposed inputs."""
    seen = []
    real = fastdrop.dropout

    def recording(x, *args, **kwargs):
        seen.append((x.dtype, x.__array_interface__["data"][0], kwargs["out"].__array_interface__["data"][0]))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(ft._fd, "dropout", recording)
    base = torch.randn(3, 4, 5, 6).to(dtype)
    for x in (base, base.contiguous(memory_format=torch.channels_last), base.transpose(1, 3)):
        seen.clear()
        y = ft.dropout(x, 0.5)
        (np_dtype, x_address, out_address), = seen
        assert np_dtype == (ml_dtypes.bfloat16 if dtype == torch.bfloat16 else np.float16)
        assert x_address == x.data_ptr() and out_address == y.data_ptr()
        assert y.stride() == torch.nn.functional.dropout(x, 0.5).stride()


def test_bfloat16_without_ml_dtypes_names_the_extra(monkeypatch):
    monkeypatch.setattr(ft, "_ml_dtypes", None)
    with pytest.raises(TypeError, match=r"reads bfloat16 tensors as ml_dtypes.bfloat16 arrays, and ml_dtypes is not "
                                        r"installed: pip install 'fastdrop\[torch\]'"):
        ft.dropout(torch.ones(3, dtype=torch.bfloat16))
    assert torch.equal(ft.dropout(torch.ones(3), 0.0), torch.ones(3))      # the other dtypes run without it


# --- the custom ops ---------------------------------------------------------------------------------
OPS = ["dropout", "alpha_dropout", "alpha_dropout_grad"]


@pytest.mark.parametrize("feature", [False, True])
@pytest.mark.parametrize("name", OPS)
def test_opcheck(name, feature):
    op = getattr(torch.ops.fastdrop, name)
    x = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(op, (x, torch.tensor(123), 0.3, feature))
    torch.library.opcheck(op, (x.transpose(0, 2), torch.tensor(5), 0.6, feature))


def test_opcheck_in_place():
    torch.library.opcheck(torch.ops.fastdrop.dropout_, (torch.randn(6, 5), torch.tensor(3), 0.3, False, False))
    torch.library.opcheck(torch.ops.fastdrop.dropout_, (torch.randn(6, 5, 2), torch.tensor(3), 0.3, True, True))


@pytest.mark.parametrize("feature", [False, True])
@pytest.mark.parametrize("name", ["dropout", "alpha_dropout"])
def test_gradcheck_and_gradgradcheck(name, feature):
    op = getattr(torch.ops.fastdrop, name)
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    seed = torch.tensor(99)

    def fn(t):
        return op(t, seed, 0.35, feature)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_autograd_saves_only_the_seed():
    saved = []

    def pack(t):
        saved.append((tuple(t.shape), t.dtype))
        return t
    x = torch.randn(256, 128, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = ft.dropout(x, 0.5)
    assert saved == [((), torch.int64)]
    y.sum().backward()
    assert torch.equal(x.grad == 0, y == 0)


def test_torch_compile_fullgraph_inductor_trains():
    torch.manual_seed(13)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), ft.Dropout(0.5), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    x = torch.randn(64, 16)
    hidden = model[0](x).detach()
    out = compiled(x)
    out.sum().backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()
    # the compiled dropout drops about half of the hidden units and scales the rest by 2
    drop = torch.compile(lambda t: ft.dropout(t, 0.5), fullgraph=True, backend="inductor")(hidden)
    kept = drop != 0
    assert 0.4 < kept.float().mean() < 0.6
    assert torch.equal(drop[kept], hidden[kept] * 2)


# --- seeds from torch's generator ------------------------------------------------------------------------
def test_manual_seed_and_fork_rng_reproduce_the_masks():
    x = torch.randn(1000)
    torch.manual_seed(1)
    first = ft.dropout(x)
    second = ft.dropout(x)
    assert not torch.equal(first, second)              # every call draws its own seed
    torch.manual_seed(1)
    assert torch.equal(ft.dropout(x), first)
    with torch.random.fork_rng():
        inside = ft.dropout(x)
    assert torch.equal(inside, second)                 # fork_rng restores the state on exit
    assert torch.equal(ft.dropout(x), second)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_activation_checkpointing_recomputes_the_same_masks(use_reentrant):
    from torch.utils.checkpoint import checkpoint
    torch.manual_seed(2)
    block = torch.nn.Sequential(torch.nn.Linear(20, 40), ft.Dropout(0.5), torch.nn.Linear(40, 20), ft.Dropout(0.3))
    x = torch.randn(8, 20, requires_grad=True)
    torch.manual_seed(3)
    plain = block(x)
    plain.sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    x.grad = None
    block.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    out = checkpoint(block, x, use_reentrant=use_reentrant)
    out.sum().backward()
    assert torch.equal(out, plain)
    for got, want in zip([x.grad] + [p.grad for p in block.parameters()], grads):
        assert torch.equal(got, want)


def test_masks_do_not_depend_on_torch_or_fastdrop_threads():
    x = torch.randn(1 << 20)
    results = []
    previous = torch.get_num_threads()
    try:
        for torch_threads, fd_threads in [(1, None), (2, None), (1, 2), (2, 1), (2, 3)]:
            torch.set_num_threads(torch_threads)
            torch.manual_seed(4)
            if fd_threads is None:
                results.append(ft.dropout(x, 0.5))
            else:
                with fastdrop.use_num_threads(fd_threads):
                    results.append(ft.dropout(x, 0.5))
    finally:
        torch.set_num_threads(previous)
    for y in results[1:]:
        assert torch.equal(y, results[0])


# --- layouts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda t: t.contiguous(memory_format=torch.channels_last),
    lambda t: t.transpose(1, 3),
    lambda t: t[:, :, ::2],
    lambda t: t.permute(3, 1, 0, 2).contiguous().permute(2, 1, 3, 0),
], ids=["channels_last", "transposed", "sliced", "permuted"])
@pytest.mark.parametrize("fn", [ft.dropout, ft.dropout2d])
def test_strided_inputs_keep_torchs_output_layout_and_the_logical_mask(make, fn):
    base = torch.randn(3, 4, 6, 5)
    x = make(base)
    assert torch.equal(x, make(base))
    torch.manual_seed(5)
    y = fn(x, 0.5)
    torch.manual_seed(5)
    expected = torch.nn.Dropout(0.5)(x)                  # torch's layout for the same input
    assert y.stride() == expected.stride()
    torch.manual_seed(5)
    assert torch.equal(y, fn(x.contiguous(), 0.5))       # the mask follows the logical index


def _layouts():
    """Layouts of a (3, 4, 5, 6) tensor: every axis order, sliced or not, and the odd ones."""
    cases = {"expanded": lambda t: t[:, :1].expand(3, 4, 5, 6), "size-1 axis": lambda t: t[:, :1],
             "size-1 channels_last": lambda t: t[:1, :, :1].contiguous(memory_format=torch.channels_last)}
    for perm in itertools.permutations(range(4)):
        inverse = tuple(perm.index(axis) for axis in range(4))
        for shift in [(0, 0), (1, 1)]:
            cases[f"{perm}{shift}"] = (lambda perm, inverse, shift: lambda t: t.permute(perm).contiguous()
                                       .permute(inverse)[shift[0]:, shift[1]:])(perm, inverse, shift)
    return cases


TORCH_FUNCTIONS = {
    "dropout": (ft.dropout, torch.nn.functional.dropout),
    "dropout2d": (ft.dropout2d, torch.nn.functional.dropout2d),
    "alpha_dropout": (ft.alpha_dropout, torch.nn.functional.alpha_dropout),
    "feature_alpha_dropout": (ft.feature_alpha_dropout, torch.nn.functional.feature_alpha_dropout),
}


@pytest.mark.parametrize("name", sorted(TORCH_FUNCTIONS))
def test_output_strides_are_torchs_for_every_layout(name):
    ours, theirs = TORCH_FUNCTIONS[name]
    base = torch.randn(3, 4, 5, 6)
    for layout, make in _layouts().items():
        x = make(base)
        got, want = ours(x, 0.5, True).stride(), theirs(x, 0.5, True).stride()
        assert got == want, f"{layout}: strides {got}, torch's {want}"


def test_contiguous_float32_runs_on_the_tensors_memory():
    x = torch.randn(100, 10)
    view = x.numpy()
    assert np.shares_memory(view, x.numpy())            # the zero-copy view fastdrop is given
    y = ft.dropout(x, 0.5, inplace=True)
    assert y is x and y.data_ptr() == view.ctypes.data
    assert 0.35 < float((x == 0).float().mean()) < 0.65


@pytest.mark.parametrize("hold", [lambda y: y.view(10, 100), lambda y: y.numpy(), lambda y: y[::2]],
                         ids=["view", "numpy", "slice"])
def test_an_output_block_is_reused_only_once_nothing_holds_it(hold):
    x = torch.ones(1000)
    first = ft.dropout(x, 0.5)
    values = first.clone()
    address = first.data_ptr()
    holder = hold(first)
    del first
    second = ft.dropout(x, 0.5)                     # the first block is held: another one
    assert second.data_ptr() != address
    assert np.array_equal(np.asarray(holder), np.asarray(hold(values)))   # and keeps its values
    del holder, second
    assert ft.dropout(x, 0.5).data_ptr() == address     # free again: the same block


def test_output_blocks_are_bounded_and_forgotten_by_empty_cache():
    blocks = ft._OutputBlocks(max_blocks=2, max_bytes=2000)
    a = blocks.take(100, np.float32)
    b = blocks.take(100, np.float32)                 # a is held: another block
    assert not np.shares_memory(a, b)
    held = blocks.take(100, np.float64)              # the third: the oldest (a) forgotten
    assert len(blocks._blocks) == 2 and not any(np.shares_memory(a, block) for block in blocks._blocks)
    del b
    again = blocks.take(100, np.float32)             # b's block, free again and still cached
    assert any(np.shares_memory(again, block) for block in blocks._blocks)
    big = blocks.take(600, np.float32)               # 2400 bytes > max_bytes: not cached
    assert not any(np.shares_memory(big, block) for block in blocks._blocks)
    blocks.clear()
    assert blocks._blocks == []
    ft.empty_cache()
    assert ft._OUTPUTS._blocks == []
    assert held.shape == (100,)


def test_outputs_save_load_share_and_clone_but_do_not_grow():
    import io
    y = ft.dropout(torch.ones(10))
    buffer = io.BytesIO()
    torch.save(y, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer), y)
    assert y.clone().resize_(20).shape == (20,)
    with pytest.raises(RuntimeError, match="not resizable"):
        ft.dropout(torch.ones(10)).resize_(20)              # the documented difference
    shared = ft.dropout(torch.ones(10))
    shared.share_memory_()
    assert shared.is_shared()


def test_grad_of_channels_last_input_keeps_its_layout():
    x = torch.randn(4, 3, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = ft.dropout2d(x, 0.5)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.backward(torch.ones_like(y))
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


# --- PyTorch's own dropout tests, rewritten ---------------------------------------------------------------
def check_dropout(cls, input, memory_format=torch.contiguous_format):
    """test_dropout.py's _test_dropout: mean of output and gradient near 1 - p, layouts kept,
    the in-place variant on a non-leaf, eval mode the identity, a printable module."""
    p = 0.2
    input = input.fill_(1 - p)
    module = cls(p)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var)
    assert output.is_contiguous(memory_format=memory_format)
    assert abs(float(output.data.mean()) - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous(memory_format=memory_format)
    assert abs(float(input_var.grad.data.mean()) - (1 - p)) < 0.05

    module = cls(p, True)
    input_var = input.clone(memory_format=memory_format).requires_grad_()
    output = module(input_var + 0)
    assert output.is_contiguous(memory_format=memory_format)
    assert abs(float(output.data.mean()) - (1 - p)) < 0.05
    output.backward(input)
    assert input_var.grad.is_contiguous(memory_format=memory_format)
    assert abs(float(input_var.grad.data.mean()) - (1 - p)) < 0.05

    for inplace in [True, False]:
        module = cls(p, inplace).eval()
        assert torch.equal(input, module(input))
    assert repr(module) == f"{cls.__name__}(p={p}, inplace=False)"


def check_dropout_discontiguous(cls, memory_format=torch.contiguous_format):
    for p in [0, 1e-10]:
        inp = torch.ones(2, 3, 3, 3)
        inp_discontiguous = torch.empty(2, 3, 3, 6, memory_format=memory_format)[..., ::2]
        inp_discontiguous.copy_(inp)
        out = cls(p=p)(inp_discontiguous)
        if p != 0:
            assert out.is_contiguous(memory_format=memory_format)
        assert torch.equal(inp_discontiguous, out)


def test_Dropout():
    torch.manual_seed(20)
    check_dropout(ft.Dropout, torch.empty(1000))
    check_dropout_discontiguous(ft.Dropout)
    check_dropout_discontiguous(ft.Dropout, memory_format=torch.channels_last)
    check_dropout(ft.Dropout, torch.empty(1000).bfloat16())


def test_dropout_stride_mean_preserve():
    inp = torch.ones(2, 3, 4, 5)
    for perm in itertools.permutations((0, 1, 2, 3)):
        inverse = tuple(perm.index(axis) for axis in range(4))
        for shift in [(0, 0), (1, 0), (0, 1), (1, 1)]:
            for p in [1e-10, 0.3, 0.5, 0.7]:
                permuted = inp.permute(perm).contiguous().permute(inverse)[shift[0]:, shift[1]:, :, :]
                out = ft.Dropout(p=p)(permuted)
                assert out.permute(perm).is_contiguous()
                assert abs(float(out.mean()) - 1.0) < 0.5 + 0.5
                if p == 1e-10:
                    assert torch.equal(permuted, out)
                else:
                    assert not torch.equal(permuted, out)


def check_no_batch(module, input):
    with torch.random.fork_rng():
        unbatched = module(input.clone())
    with torch.random.fork_rng():
        batched = module(input.clone().unsqueeze(0)).squeeze(0)
    assert torch.equal(unbatched, batched)


def check_channel_zero(module, input):
    result = module(input)
    per_channel = int(np.prod(input.shape[2:]))
    counts = result.reshape(input.shape[0], input.shape[1], -1).count_nonzero(dim=2)
    assert torch.all((counts == 0) | (counts == per_channel))
    assert 0 < int((counts == 0).sum()) < counts.numel()


def test_Dropout1d():
    torch.manual_seed(21)
    with torch.random.fork_rng():
        torch.set_default_dtype(torch.float64)
        try:
            check_dropout(ft.Dropout1d, torch.empty(400, 12, 13))
        finally:
            torch.set_default_dtype(torch.float32)
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 4D input"):
        ft.Dropout1d(p=0.5)(torch.rand(1, 2, 2, 2))
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input, but received a 1D input"):
        ft.Dropout1d(p=0.5)(torch.rand(2))
    check_no_batch(ft.Dropout1d(p=0.5), torch.rand(50, 2))
    check_no_batch(ft.Dropout1d(p=0.5, inplace=True), torch.rand(50, 2))
    check_channel_zero(ft.Dropout1d(p=0.5), torch.ones(10, 4, 2))
    check_channel_zero(ft.Dropout1d(p=0.5, inplace=True), torch.ones(10, 4, 2))


def test_Dropout2d():
    torch.manual_seed(22)
    input = torch.empty(1000, 3, 4, 2)
    check_dropout(ft.Dropout2d, input)
    check_dropout(ft.Dropout2d, input, memory_format=torch.channels_last)
    check_dropout_discontiguous(ft.Dropout2d)
    check_dropout_discontiguous(ft.Dropout2d, memory_format=torch.channels_last)
    with pytest.warns(UserWarning, match="Received a 5-D input to dropout2d"):
        ft.Dropout2d(p=0.5)(torch.rand(1, 2, 2, 2, 2))
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        ft.Dropout2d(p=0.5)(torch.rand(1, 2))
    with pytest.warns(UserWarning, match="assuming that channel-wise 1D dropout behavior is desired"):
        ft.Dropout2d(p=0.5)(torch.rand(1, 2, 2))
    check_channel_zero(ft.Dropout2d(p=0.5), torch.ones(10, 4, 2, 2))
    check_channel_zero(ft.Dropout2d(p=0.5, inplace=True), torch.ones(10, 4, 2, 2))


def test_Dropout3d():
    torch.manual_seed(23)
    check_dropout(ft.Dropout3d, torch.empty(1000, 2, 2, 3, 2))
    check_dropout_discontiguous(ft.Dropout3d)
    check_dropout_discontiguous(ft.Dropout3d, memory_format=torch.channels_last)
    with pytest.warns(UserWarning, match="Received a 6-D input to dropout3d"):
        ft.Dropout3d(p=0.5)(torch.rand(1, 2, 2, 2, 2, 2))
    with pytest.warns(UserWarning, match="Received a 3-D input to dropout3d"):
        ft.Dropout3d(p=0.5)(torch.rand(1, 2, 2))
    check_no_batch(ft.Dropout3d(p=0.5), torch.rand(50, 2, 2, 2))
    check_no_batch(ft.Dropout3d(p=0.5, inplace=True), torch.rand(50, 2, 2, 2))
    check_channel_zero(ft.Dropout3d(p=0.5), torch.ones(10, 4, 2, 2, 2))
    check_channel_zero(ft.Dropout3d(p=0.5, inplace=True), torch.ones(10, 4, 2, 2, 2))


def check_alpha(cls, input):
    """_test_alpha_dropout: mean and std of standard-normal input kept within 0.1."""
    mean, std = input.mean(), input.std()
    for p in [0.2, 0.5, 0.8]:
        input_var = input.detach().clone().requires_grad_()
        output = cls(p)(input_var)
        assert abs(float(output.data.mean() - mean)) < 0.1
        assert abs(float(output.data.std() - std)) < 0.1
        output.backward(input)


def test_AlphaDropout():
    torch.manual_seed(24)
    check_alpha(ft.AlphaDropout, torch.randn(5000))


def test_FeatureAlphaDropout():
    torch.manual_seed(25)
    check_alpha(ft.FeatureAlphaDropout, torch.randn(1000, 3, 2, 4, 5))
    check_alpha(ft.FeatureAlphaDropout, torch.randn(50, 20, 64, 64))


def test_empty_dropout():
    x = torch.tensor([])
    assert ft.dropout(x).size() == x.size()


def test_p_zero_one_and_eval_match_torch_without_drawing():
    x = torch.randn(50, requires_grad=True)
    state = torch.get_rng_state()
    assert ft.dropout(x, 0.0) is x and ft.dropout(x, 0.5, training=False) is x
    assert ft.alpha_dropout(x, 0.5) is x                   # alpha_dropout's training defaults to False
    assert torch.equal(torch.get_rng_state(), state)
    y = ft.dropout(x, 1.0)
    y.sum().backward()
    assert torch.equal(y, torch.zeros(50)) and torch.equal(x.grad, torch.zeros(50))


# --- errors -------------------------------------------------------------------------------------------------
def torch_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.type, str(info.value)


@pytest.mark.parametrize("p", [-0.1, 1.1])
@pytest.mark.parametrize("index", range(len(MODULES)))
def test_invalid_p_raises_torchs_error(index, p):
    kind, message = torch_error(lambda: TORCH_MODULES[index](p))
    with pytest.raises(kind) as info:
        MODULES[index](p)
    assert str(info.value) == message


@pytest.mark.parametrize("p", [-0.1, 1.1])
@pytest.mark.parametrize("name", ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                                  "feature_alpha_dropout"])
def test_invalid_p_of_the_functions_raises_torchs_error(name, p):
    ours, theirs = getattr(ft, name), getattr(torch.nn.functional, name)
    kind, message = torch_error(lambda: theirs(torch.ones(1, 1, 1), p))
    state = torch.get_rng_state()
    with pytest.raises(kind) as info:
        ours(torch.ones(1, 1, 1), p)
    assert str(info.value) == message
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("fn", [ft.dropout, ft.dropout1d, ft.alpha_dropout, ft.feature_alpha_dropout])
def test_in_place_on_a_leaf_that_requires_grad_raises_torchs_error_and_draws_nothing(fn):
    leaf = torch.randn(3, 4, requires_grad=True)
    kind, message = torch_error(lambda: torch.nn.functional.dropout(leaf, 0.5, True, True))
    state = torch.get_rng_state()
    with pytest.raises(kind) as info:
        fn(leaf, 0.5, True, True)
    assert str(info.value) == message
    assert torch.equal(torch.get_rng_state(), state)


def test_in_place_on_a_non_leaf_carries_the_gradient():
    torch.manual_seed(26)
    x = torch.randn(200, requires_grad=True)
    h = x * 1
    y = ft.dropout(h, 0.5, inplace=True)
    assert y is h
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2)


def test_other_devices_and_dtypes_are_refused_by_name():
    with pytest.raises(TypeError, match="device meta"):
        ft.dropout(torch.empty(3, device="meta"))
    with pytest.raises(TypeError, match="got torch.int64"):
        ft.dropout(torch.arange(4))
    with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions in the input"):
        ft.feature_alpha_dropout(torch.randn(3), 0.5, True)


def test_the_ops_on_meta_tensors_give_the_layout_without_data():
    x = torch.empty(2, 3, 4, 5, device="meta").contiguous(memory_format=torch.channels_last)
    y = torch.ops.fastdrop.dropout(x, torch.tensor(1), 0.5, True)
    assert y.device.type == "meta" and y.shape == x.shape and y.stride() == x.stride()


# --- modules -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("index", range(len(MODULES)))
def test_modules_print_load_and_switch_like_torchs(index):
    ours, theirs = MODULES[index](0.3, True), TORCH_MODULES[index](0.3, True)
    assert repr(ours) == repr(theirs) and isinstance(ours, TORCH_MODULES[index])
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), TORCH_MODULES[index](0.3))
    ported = torch.nn.Sequential(torch.nn.Linear(4, 4), MODULES[index](0.3))
    ported.load_state_dict(model.state_dict(), strict=True)
    assert list(ported.state_dict()) == list(model.state_dict())
    assert ported.eval()[1].training is False and ported.train()[1].training is True


def test_module_follows_train_and_eval():
    module = ft.Dropout(0.5)
    x = torch.ones(1000)
    assert not torch.equal(module(x), x)
    module.eval()
    assert module(x) is x
    module.train()
    assert int((module(x) == 0).sum()) > 300


def test_without_torch_the_import_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import fastdrop.torch\nexcept ImportError as exc:\n    print(exc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.startswith("fastdrop.torch needs PyTorch (pip install 'fastdrop[torch]')")


def test_importing_fastdrop_does_not_import_torch():
    code = "import sys, fastdrop; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- threads and the two OpenMP runtimes ---------------------------------------------------------------------------
THREADS_SCRIPT = textwrap.dedent("""
    import os, sys, time
    first, second = sys.argv[1:3]
    mods = {}
    for name in (first, second):
        mods[name] = __import__(name)
    import torch, fastdrop, fastdrop.torch as ft
    from fastdrop import _backend
    torch.set_num_threads(2)
    assert fastdrop.get_num_threads(default=torch.get_num_threads()) == 2, "fastdrop did not follow torch"
    with fastdrop.use_num_threads(1):
        assert fastdrop.get_num_threads(default=torch.get_num_threads()) == 1, "fastdrop's own setting lost"
    x = torch.randn(1 << 22)
    a = torch.randn(512, 512)
    for _ in range(5):
        y = ft.dropout(x, 0.5)
        (a @ a).sum()
    with fastdrop.use_num_threads(1):
        torch.manual_seed(0); one = ft.dropout(x, 0.5)
    torch.manual_seed(0); two = ft.dropout(x, 0.5)
    assert torch.equal(one, two)
    runtimes = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line})
    assert len(runtimes) == 1, f"two OpenMP runtimes loaded: {runtimes}"
    time.sleep(0.5)                               # the pool's spin-wait is over: count the threads
    threads = len(os.listdir("/proc/self/task"))
    start = time.process_time()
    time.sleep(1.0)                               # an idle pool sleeps: no CPU time while the main thread does
    print(threads, time.process_time() - start)
""")


@pytest.mark.parametrize("order", [("fastdrop", "torch"), ("torch", "fastdrop")])
def test_torch_and_fastdrop_share_one_openmp_runtime_in_either_import_order(order):
    if not sys.platform.startswith("linux"):
        pytest.skip("counts threads through /proc")
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "FASTDROP_NUM_THREADS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, *order], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    threads, busy = done.stdout.split()[-2:]
    # the main thread, the one worker of the shared 2-thread OpenMP team, at most three helpers of torch's
    assert int(threads) <= 1 + 1 + 3, f"{threads} threads after alternating torch and fastdrop calls"
    assert float(busy) < 0.5, f"{busy} CPU seconds burnt in a second of idle: a pool spins"


# --- fastdrop bench --torch ------------------------------------------------------------------------------------
def test_the_mlp_step_saves_torchs_noise_less_but_two_seeds():
    from fastdrop.bench import MLP_BATCH, MLP_WIDTHS, mlp_saved_bytes
    saved = mlp_saved_bytes(torch)
    through_dropout = MLP_BATCH * sum(MLP_WIDTHS[1:-1])
    assert saved["torch"] - saved["fastdrop"] == 4 * through_dropout - 2 * 8     # float32 noise vs int64 seeds
    # beyond the model without dropout: the dropout outputs the next Linear keeps, and the seeds
    assert saved["fastdrop"] - saved["none"] == 4 * through_dropout + 2 * 8


def test_bench_torch_runs_and_reports_its_targets():
    from fastdrop.bench import format_torch, run_torch
    result = run_torch(budget=0.01, sizes=(1 << 10,))
    assert [(c["case"], c["dtype"]) for c in result["cases"]] == [
        ("forward", "float32"), ("forward+backward", "float32"), ("forward", "bfloat16"), ("forward+backward", "bfloat16")]
    assert [t["case"] for t in result["targets"]][-2:] == [
        "MLP step with torch's dropout / with fastdrop's", "autograd bytes saved less per dropped element (p * n)"]
    text = format_torch(result)
    assert "MLP 784-2048-2048-10, batch 256" in text and "nn.Dropout ms" in text and "bfloat16" in text


@pytest.mark.parametrize("argv, message", [
    (["--torch", "--family"], "argument --torch: not allowed with argument --family"),
    (["--torch", "--plot", "x.png"], "argument --plot: draws the size sweep, which --torch does not run"),
])
def test_bench_torch_refuses_options_it_does_not_run(argv, message, capsys):
    from fastdrop import bench
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("make", [lambda b: b[:1].expand(4, 6), lambda b: b.reshape(-1).as_strided((4, 4), (2, 1))],
                         ids=["expanded", "as_strided"])
def test_in_place_on_a_tensor_whose_elements_share_memory_is_refused_and_leaves_no_trace(make):
    """torch's own words (its check refuses the expanded tensor; the as_strided one, which its
    check finds too hard, it would write in an order-dependent mess), before a seed is drawn."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.functional.dropout(base.clone()[:1].expand(4, 6), 0.5, training=True, inplace=True)
    before, rng = base.clone(), torch.get_rng_state()
    with pytest.raises(RuntimeError) as ours:
        ft.dropout(make(base), 0.5, training=True, inplace=True)
    assert str(ours.value) == str(theirs.value).split("\n")[0]
    assert torch.equal(base, before) and torch.equal(torch.get_rng_state(), rng)
