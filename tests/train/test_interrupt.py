"""Stop requests: the first signal is recorded (not acted on), a second Ctrl-C aborts, handlers come back."""

from __future__ import annotations

import os
import signal

import pytest

from edgeflownas.train.interrupt import StopRequest, deferred_signals


def test_first_signal_is_recorded_and_previous_handlers_return():
    before = signal.getsignal(signal.SIGUSR2)
    with deferred_signals([signal.SIGUSR2, signal.SIGTERM], StopRequest()) as request:
        assert not request.requested and request.name == ""
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGUSR2)
        assert request.requested and request.name == "SIGTERM"  # the first one wins
    assert signal.getsignal(signal.SIGUSR2) is before


def test_second_ctrl_c_aborts_at_once(capfd):
    with deferred_signals([signal.SIGINT], StopRequest()) as request:
        os.kill(os.getpid(), signal.SIGINT)
        assert request.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert "SIGINT received; stopping after the current optimizer step; Ctrl-C again aborts" in capfd.readouterr().err
