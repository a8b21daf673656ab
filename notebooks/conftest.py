"""nbval (`make test-notebooks`) runs the notebooks into an outputs root of its own,
`<outputs root>/nbval`, so that `make test` and a JupyterLab session (which runs the same stored
defaults into the outputs root itself) never share a run folder. The kernels inherit it."""

import os

from sgpo_lib.paths import OUTPUTS_ENV, outputs_dir


def pytest_configure(config):
    os.environ[OUTPUTS_ENV] = str(outputs_dir() / "nbval")
