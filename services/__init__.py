"""Runnable services: wiring only; all logic lives in the ``pagestream`` core."""
