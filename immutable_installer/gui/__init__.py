"""The desktop window (`immutable-installer gui`, extra ``[gui]``): a second renderer of the CLI's ``--json``
events. Every action runs the command line itself as a child process, so the window and the CLI cannot
disagree; the window never installs anything on its own.

``model`` and ``layout`` are pure (no Qt) and tested without a display; ``child``, ``graph`` and ``window``
are the Qt parts; ``app`` opens the window.
"""
