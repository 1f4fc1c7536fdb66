"""Errors meant for people, not for debuggers.

A `FriendlyError` names the problem and the fix in its message. In Jupyter and Colab it is shown
as that message alone (IPython calls `_render_traceback_`), so a learner who passes a wrong column
name sees one clear sentence instead of a stack of library frames.
"""
from __future__ import annotations


class FriendlyError(ValueError):
    """A problem the user can fix; the message says what it is and how to fix it."""

    def _render_traceback_(self):  # IPython hook: show the message, hide the frames
        return [f"{type(self).__name__}: {self}"]
