"""How many connects of one hub are in their handshake at once.

A process that starts (or a network that comes back) with a thousand servers would otherwise begin a thousand
handshakes together: each gets a thousandth of the CPU, none finishes within the connect timeout, all back off
and try again together, and the fleet never comes up. Through the gate a few dozen connect at a time and each is
done in milliseconds. A slot is held at most `hold_seconds`, so servers that never answer (a black-holed address
waits out the whole connect timeout) slow the others down by that much and cannot stop them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ConnectGate:
    def __init__(self, slots: int = 32, hold_seconds: float = 2.0) -> None:
        if slots < 1 or hold_seconds <= 0:
            raise ValueError("a connect gate needs at least one slot and a positive hold time")
        self.slots = slots
        self.hold_seconds = hold_seconds
        self._free = asyncio.Semaphore(slots)
        self.waiting = 0
        self.held = 0
        self.most_held = 0  # the high-water mark, for tests and stats

    async def enter(self) -> Callable[[], None]:
        """Wait for a slot; returns `release`, to call once the handshake is over, whatever its end (the session
        itself runs on without a slot; calling it again does nothing). Released anyway after `hold_seconds`."""
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        timer: asyncio.TimerHandle | None = None
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            if timer is not None:
                timer.cancel()
            self.held -= 1
            self._free.release()

        timer = asyncio.get_running_loop().call_later(self.hold_seconds, release)
        return release
