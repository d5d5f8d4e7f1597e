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
