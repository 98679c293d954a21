"""Progress lines and time left, the same for training, evaluation, predict and the 310 flow."""
from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


def eta_text(elapsed: float, done: int, remaining: int) -> str:
    """``HH:MM:SS`` (``Nd HH:MM:SS`` past a day) left for ``remaining`` items at the average rate so far."""
    seconds = int(elapsed / max(done, 1) * max(remaining, 0))
    days, rest = divmod(seconds, 86400)
    clock = time.strftime("%H:%M:%S", time.gmtime(rest))
    return f"{days}d {clock}" if days else clock


class Progress:
    """Log lines with a bar, rate and ETA, about every 5% (and at the end)."""

    def __init__(self, total: int, what: str = "images") -> None:
        self.total, self.what = total, what
        self.start = time.perf_counter()
        self.every = max(1, total // 20)

    def update(self, done: int) -> None:
        """Log the line for ``done`` items when it is due."""
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        bar = "#" * int(20 * done / self.total)
        logger.info("[%-20s] %d/%d %s, %.2f s/%s, ETA %s", bar, done, self.total, self.what,
                    elapsed / max(done, 1), self.what.rstrip("s"), eta_text(elapsed, done, self.total - done))
