"""Examples of plugging loop_ros into a robot stack (see docs/integration.md)."""
