"""Shared pieces of the memory benchmarks: lazily generated frames and the peak-RSS reading."""
import resource


class LazyFrames:
    """``n`` random uint8 (3, h, w) frames generated on access (like the test mapper's sequence),
    so the input itself does not grow with the video length."""

    def __init__(self, n, h, w):
        self.n, self.h, self.w = n, h, w

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        import torch

        if not 0 <= i < self.n:
            raise IndexError(i)
        g = torch.Generator().manual_seed(i % 8)
        return torch.randint(0, 256, (3, self.h, self.w), generator=g, dtype=torch.uint8)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux ``ru_maxrss`` is in KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
