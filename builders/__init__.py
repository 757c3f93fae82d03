"""Ready-made dataset recipes. Each module has ``build(...) -> Dataset`` and ``main(argv)``."""
