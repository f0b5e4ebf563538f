"""A tqdm bar behind the ``progress(done, total, message)`` callback the analysis code takes."""
from __future__ import annotations

from collections.abc import Callable


def tqdm_progress(total: int = 1000) -> Callable[[int, int, str], None]:
    # deferred: loads tqdm
    from tqdm import tqdm

    bar = tqdm(total=total, unit="‰", leave=True)

    def report(done: int, of: int, message: str) -> None:
        bar.n = round(total * done / of) if of else total
        bar.set_description(message[:60])
        bar.refresh()

    return report
