"""mmboat.utils.benchmark: the CPU peak of a step is what it allocates at
its peak above its start, counted from the profiler's memory events."""
import torch

from mmboat.utils.benchmark import interleaved_medians, peak_memory

CPU = torch.device('cpu')


def test_cpu_peak_of_known_allocations():

    def step():
        a = torch.empty(1000, 1000)  # 4 MB
        b = torch.empty(2000, 1000)  # 8 MB: 12 MB in use
        del a
        c = torch.empty(500, 1000)  # 10 MB
        del b, c
        return torch.empty(2500, 1000)  # 10 MB

    kept = torch.empty(4000, 1000)  # allocated before: not counted
    assert peak_memory(step, CPU) == 12_000_000
    assert kept.numel() == 4_000_000


def test_interleaved_medians_run_in_turns():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in 'ab'}
    medians = interleaved_medians(
        steps, 3, CPU, warmup=1, progress=lambda: calls.append('+'))
    assert calls == ['a', '+', 'b', '+'] * 4
    assert set(medians) == {'a', 'b'} and min(medians.values()) >= 0
