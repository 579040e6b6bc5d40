"""Contract test suites shipped for other people's implementations (like `optuna.testing`).

`ssnas.testing.spaces`: the checks every search space passes, built-in or plugin.
"""
