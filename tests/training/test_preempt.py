"""After a preemption the process outlasts the launcher's clean-up signals and exits 75."""
import os
import signal

from jeoparda.training.preempt import PreemptFlag, outlast_signals


def test_a_preempted_process_ignores_the_signals_srun_sends_while_it_exits():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        with PreemptFlag() as flag:
            os.kill(os.getpid(), signal.SIGUSR1)  # the preemption
        outlast_signals(flag)
        os.kill(os.getpid(), signal.SIGTERM)  # srun --kill-on-bad-exit, once another rank exited 75
        assert flag.raised and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        unflagged = PreemptFlag()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        outlast_signals(unflagged)  # no preemption: the signals keep their meaning
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
