"""ginn-lab: signal propagation, edge of chaos and gauge-invariant networks (arXiv 2508.18948)."""

__version__ = "0.1.0"


def _interrupt_without_traceback() -> None:
    """A Ctrl-C before a stage has installed its handlers (while torch and Hydra import) ends with one line,
    not an import traceback; Python still exits by SIGINT (status 130). Only the default hook is replaced."""
    import sys

    default = sys.excepthook
    if default is not sys.__excepthook__:
        return

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            print("interrupted before the stage started: nothing was run or logged", file=sys.stderr)
            return
        default(kind, value, tb)

    sys.excepthook = hook


_interrupt_without_traceback()
