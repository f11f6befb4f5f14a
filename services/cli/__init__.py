"""The ``releasegate`` command line (``services.cli.main:app``)."""
