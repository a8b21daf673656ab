"""nbval (`make test-notebooks`) runs the notebooks into an outputs root of its own,
`<outputs root>/nbval`, so that `make test` and a JupyterLab session (which runs the same stored
defaults into the outputs root itself) never share a run folder. The kernels inherit it. A run
folder there made by other code (the library was edited since) is removed first: a test run
always measures the code under test, while the content-keyed cache stays."""

import os

from sgpo_lib.core.code_fingerprint import remove_runs_of_other_code
from sgpo_lib.core.paths import OUTPUTS_ENV, nbval_outputs_dir


def pytest_configure(config):
    root = nbval_outputs_dir()
    os.environ[OUTPUTS_ENV] = str(root)
    remove_runs_of_other_code(root)
