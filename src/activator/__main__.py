"""``python -m activator``: the same as the ``activator`` command."""

from activator.cli.app import main

main()
