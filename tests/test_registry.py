import sys
import types

from detectors import registry


def test_gpu_entry_is_a_no_op_without_spaces(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError

    def handler(x):
        return x + 1

    assert registry.gpu_entry(handler) is handler


def test_gpu_entry_uses_spaces_gpu_when_available(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(GPU=lambda fn: calls.append(fn) or (lambda *a: ("on gpu", fn(*a))))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    wrapped = registry.gpu_entry(lambda x: x * 2)
    assert wrapped(3) == ("on gpu", 6) and len(calls) == 1


def test_default_sources_are_the_shipped_folders():
    sources = registry.configured_sources({})
    assert set(sources) == set(registry.DETECTORS)
    assert all(source.endswith(f"assets/checkpoints/{name}") for name, source in sources.items())


def test_the_fast_path_is_cached_per_checkpoint_and_a_bad_cache_is_rebuilt(monkeypatch, tmp_path):
    import copy

    import numpy as np
    import torch

    from detectors import fast_path

    monkeypatch.setenv(fast_path.CACHE_VARIABLE, str(tmp_path))
    source = str(registry.ASSETS / "specxnet")
    first = registry.load_detector("specxnet", source, torch.device("cpu"))
    cached = list((tmp_path / "fast-path").glob("specxnet-*.pt"))
    assert len(cached) == 1 and torch.__version__.replace("+", "_") in cached[0].name
    written = cached[0].stat().st_mtime_ns
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    second = registry.load_detector("specxnet", source, torch.device("cpu"))
    assert cached[0].stat().st_mtime_ns == written  # read back, not traced again
    assert second.fast is not None and np.allclose(second.logits(crops), first.logits(crops), atol=fast_path.TOLERANCE)
    eager = registry.load_detector("specxnet", source, torch.device("cpu"), fast_path=False)
    assert np.abs(second.logits(crops) - eager.logits(crops)).max() < fast_path.TOLERANCE
    cached[0].write_bytes(b"not a TorchScript archive")  # unreadable: rebuilt, never trusted
    third = registry.load_detector("specxnet", source, torch.device("cpu"))
    assert third.fast is not None and cached[0].stat().st_size > 1000
    assert np.abs(third.logits(crops) - eager.logits(crops)).max() < fast_path.TOLERANCE
    # stale: a module that loads but is not this checkpoint's (other weights, same architecture) is replaced
    other = copy.deepcopy(eager.model)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    stale = fast_path._frozen(other, torch.rand(2, 3, 128, 128))
    check = fast_path._inputs(128, torch.device("cpu"))[1]
    with torch.no_grad():
        recorded = {"another checkpoint's": (other(check), "0" * 64), "this checkpoint's": (eager.model(check), None)}
    for what, (logits, digest) in recorded.items():  # with the logits of another checkpoint, or with this one's
        fast_path._save(stale, cached[0], logits, digest or registry.manifest()["specxnet"]["model.safetensors"])
        fourth = registry.load_detector("specxnet", source, torch.device("cpu"))
        assert np.abs(fourth.logits(crops) - eager.logits(crops)).max() < fast_path.TOLERANCE, what
    # written by an older version (no recorded logits): checked against the model, kept, and given them
    torch.jit.save(torch.jit.load(str(cached[0])), str(cached[0]))
    digest = registry.manifest()["specxnet"]["model.safetensors"]
    assert fast_path._load(cached[0], torch.device("cpu"), digest)[1] is None
    fifth = registry.load_detector("specxnet", source, torch.device("cpu"))
    assert np.abs(fifth.logits(crops) - eager.logits(crops)).max() < fast_path.TOLERANCE
    assert fast_path._load(cached[0], torch.device("cpu"), digest)[1] is not None
    # The other three run eagerly (as fast without a trace), so they start without one.
    assert registry.load_detector("sficonv", str(registry.ASSETS / "sficonv"), torch.device("cpu")).fast is None
