# The account-data tests submit real analyses, with the same fixtures as the detection tests.
from detection.tests.conftest import run_inline, upload  # noqa: F401
