"""The ``streammix`` command line program (see :mod:`streammix.cli.main`)."""
