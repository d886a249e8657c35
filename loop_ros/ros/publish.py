"""Publishing that survives a reader far behind.

On these rclpy wheels ``publish()`` on a reliable writer whose history is full (a reader that
lags by the whole queue depth) raises ``RCLError`` instead of blocking. A node must not die of a
stalled viewer or learner: it drops the message, counts or logs it, and carries on.
"""
from __future__ import annotations

from typing import Any

try:
    from rclpy._rclpy_pybind11 import RCLError as PublishError
except ImportError:  # pragma: no cover  (other rclpy builds)
    PublishError = RuntimeError  # type: ignore[misc,assignment]


def safe_publish(node: Any, publisher: Any, msg: Any, counter: str | None = None) -> bool:
    """Publish; a full reliable history is logged (throttled), never raised. True if sent.

    ``counter``: the name of the node's attribute that counts dropped messages (incremented).
    """
    try:
        publisher.publish(msg)
        return True
    except PublishError as exc:
        so_far = ''
        if counter is not None:
            setattr(node, counter, getattr(node, counter) + 1)
            so_far = f' ({getattr(node, counter)} so far)'
        node.get_logger().warning(f'dropped a message on {publisher.topic_name}{so_far}: {exc}',
                                  throttle_duration_sec=5.0)
        return False
